"""Training Dataset: (image, 29-channel mask) tensors at one square resolution.

Preprocessing is shared with prediction. :func:`preprocess_image` is the exact resize and scaling
of a training image without augmentation, so a model gets the same input at prediction time.

Random augmentation streams. Before each sample, :class:`HandBoneDataset` installs a fresh random
generator in its pipeline, seeded from ``SeedSequence([seed, epoch, index])``. So:

- a sample's augmentation depends only on the dataset seed, the epoch and its index, not on the
  DataLoader worker that loads it, the number of workers, or the order of loading;
- validation never consumes the training stream, because there is no shared stream to consume:
  a validation dataset (usually with the identity pipeline of
  ``build_transforms(aug, train=False)``) seeds only its own pipeline object;
- the training loop calls :meth:`HandBoneDataset.set_epoch` before each epoch so that epochs
  differ. DataLoader workers copy the dataset when an iteration starts, so the epoch reaches them
  unless ``persistent_workers=True`` keeps workers, and their old copy, across epochs.

Global ``random``, ``numpy.random`` and ``torch`` random states are neither read nor changed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from data.cache import DecodedCache, check_size, decode_sample, require_json, resize_image
from data.classes import NUM_CLASSES
from data.layout import Sample
from data.transforms import seed_transforms


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """Scale a uint8 image to float32 in [0, 1] (``value / 255``), keeping its shape."""
    return image.astype(np.float32) / np.float32(255.0)


def preprocess_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize and scale an image exactly as training does before augmentation.

    Args:
        image: (H, W) uint8 grayscale, as ``data.images.read_image`` returns it, any size and
            aspect ratio.
        size: the model's input side S.

    Returns:
        (S, S) float32 in [0, 1]. A non-square image is stretched to S x S. Predictions at
        (S, S) map back to (H, W) by resizing with the same stretch.

    Raises:
        ValueError: ``image`` is not (H, W) uint8, or ``size`` is not a positive integer.
    """
    return to_unit_float(resize_image(image, size))


class HandBoneDataset(Dataset):
    """Training or validation samples as ``(image, mask)`` tensors of side ``size``.

    Each item is ``image`` float32 (1, S, S) in [0, 1] and ``mask`` float32 (29, S, S) in
    {0, 1}, channels in ``data.classes.CLASSES`` order. Multi-label: channels overlap where
    bones overlap. Without a transform, ``image[0]`` equals :func:`preprocess_image` of the
    source image.

    Args:
        samples: samples with annotation JSON files (``data.layout.discover(root).train``).
        size: side S of the square output.
        cache_dir: folder of the decoded-data cache (``data.cache.default_cache_dir()`` for the
            machine-wide one). With None, every item decodes its image and JSON again.
        transform: albumentations pipeline from ``data.transforms.build_transforms``, called as
            ``transform(image=(S, S) uint8, mask=(S, S, 29) uint8)``; it must keep the shapes.
            None skips augmentation.
        seed: non-negative int; with the epoch and the item index it seeds the transform (see
            the module docstring).

    Raises:
        ValueError: invalid size or seed, a sample without JSON, an unreadable source file
            (when building the cache), or, per item, a transform that changes shapes.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        size: int,
        cache_dir: str | os.PathLike | None = None,
        transform: A.BaseCompose | A.BasicTransform | None = None,
        *,
        seed: int = 0,
    ):
        self.samples = list(samples)
        self.size = check_size(size)
        for sample in self.samples:
            require_json(sample)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"invalid seed {seed!r}: expected a non-negative integer")

        self.seed = int(seed)
        self.epoch = 0
        self.transform = transform
        self.cache = None if cache_dir is None else DecodedCache(cache_dir, self.samples, self.size)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (a non-negative int) for later items."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"invalid epoch {epoch!r}: expected a non-negative integer")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return sample ``index`` before augmentation: (S, S) uint8 and (S, S, 29) uint8 0/1."""
        if self.cache is not None:
            return self.cache[index]
        return decode_sample(self.samples[index], self.size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.load(index)
        if self.transform is not None:
            image, mask = self._augment(index, image, mask)
        return _image_tensor(image), _mask_tensor(mask)

    def _augment(self, index: int, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seed_transforms(self.transform, np.random.SeedSequence([self.seed, self.epoch, index]))
        out = self.transform(image=image, mask=mask)

        shape = (self.size, self.size)
        if out["image"].shape != shape or out["mask"].shape != shape + (NUM_CLASSES,):
            raise ValueError(
                f"transform changed the shapes of sample {self.samples[index].image_name}: "
                f"image {out['image'].shape}, mask {out['mask'].shape}, expected {shape} and "
                f"{shape + (NUM_CLASSES,)}; use transforms that keep the size (no crop or resize)"
            )
        return out["image"], out["mask"]


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    if image.dtype != np.uint8:
        raise ValueError(
            f"transform returned a {image.dtype} image, expected uint8; keep the pipeline on uint8 "
            "images (data.transforms.build_transforms does)"
        )
    return torch.from_numpy(to_unit_float(image)).unsqueeze(0)


def _mask_tensor(mask: np.ndarray) -> torch.Tensor:
    # One strided copy does the channels-first transpose and the float conversion together.
    channels_last = torch.from_numpy(np.ascontiguousarray(mask))
    out = torch.empty((mask.shape[2],) + mask.shape[:2], dtype=torch.float32)
    return out.copy_(channels_last.permute(2, 0, 1))
