"""Data stage: classes, image reading, annotations, layout, splits, augmentations, cache, synthetic hands."""
