"""Tests for data.dataset: tensor format, shared preprocessing, cache equivalence and seeding."""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data.annotations import load_annotations, rasterize
from data.classes import CLASS_INDEX, NUM_CLASSES
from data.dataset import HandBoneDataset, preprocess_image
from data.images import read_image
from data.layout import Sample, discover
from data.transforms import build_transforms

STRONG_AUG = {"strength": 1.0, "hflip": 0.5, "affine": 1.0, "intensity": 1.0, "noise": 1.0, "wrist_bend": 0.5}


def write_sample(root: Path, stem: str, height: int, width: int) -> Sample:
    """Write a random PNG and a JSON with a Lunate triangle and a Radius rectangle."""
    image_path = root / "train" / "DCM" / "ID001" / f"{stem}.png"
    json_path = root / "train" / "outputs_json" / "ID001" / f"{stem}.json"
    image_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(zlib.crc32(stem.encode()))
    cv2.imwrite(str(image_path), rng.integers(0, 256, (height, width), dtype=np.uint8))
    annotations = [
        {"label": "Lunate", "points": [[width * 0.2, height * 0.2], [width * 0.8, height * 0.3], [width * 0.5, height * 0.6]]},
        {"label": "Radius", "points": [[width * 0.3, height * 0.5], [width * 0.6, height * 0.5], [width * 0.6, height * 0.9], [width * 0.3, height * 0.9]]},
    ]
    json_path.write_text(json.dumps({"annotations": annotations}))
    return Sample(f"{stem}.png", image_path, json_path, "ID001")


@pytest.fixture
def samples(tmp_path: Path) -> list[Sample]:
    return [write_sample(tmp_path / "dataset", f"image{k}", 96, 96) for k in range(4)]


@pytest.fixture(scope="module")
def synthetic_samples(synthetic_root) -> list[Sample]:
    return discover(synthetic_root).train


def items(dataset: HandBoneDataset) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [dataset[index] for index in range(len(dataset))]


def assert_items_equal(first, second):
    for (image_a, mask_a), (image_b, mask_b) in zip(first, second, strict=True):
        assert torch.equal(image_a, image_b)
        assert torch.equal(mask_a, mask_b)


# --- format -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cached", [False, True])
def test_item_format(samples, tmp_path, cached):
    cache_dir = tmp_path / "cache" if cached else None
    dataset = HandBoneDataset(samples, 32, cache_dir=cache_dir, transform=build_transforms(STRONG_AUG, train=True))
    image, mask = dataset[0]

    assert image.shape == (1, 32, 32)
    assert image.dtype == torch.float32
    assert image.min() >= 0.0
    assert image.max() <= 1.0
    assert mask.shape == (NUM_CLASSES, 32, 32)
    assert mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert mask.is_contiguous()


@pytest.mark.parametrize("dtype", [torch.uint8, torch.bool])
def test_mask_dtype_option(synthetic_samples, dtype):
    transform = build_transforms(STRONG_AUG, train=True)
    default = HandBoneDataset(synthetic_samples, 64, transform=transform)[1]
    other = HandBoneDataset(synthetic_samples, 64, transform=transform, mask_dtype=dtype)[1]
    assert other[1].dtype == dtype
    assert torch.equal(other[1].float(), default[1])
    assert torch.equal(other[0], default[0])


def test_invalid_mask_dtype_rejected(samples):
    with pytest.raises(ValueError, match="invalid mask_dtype"):
        HandBoneDataset(samples, 32, mask_dtype=torch.float64)


def test_item_without_transform_matches_preprocessing(samples):
    dataset = HandBoneDataset(samples, 32)
    image, mask = dataset[2]

    source = read_image(samples[2].image_path)
    expected_image = preprocess_image(source, 32)
    assert torch.equal(image[0], torch.from_numpy(expected_image))
    expected_mask = rasterize(load_annotations(samples[2].json_path), image_size=source.shape, out_size=(32, 32))
    assert torch.equal(mask, torch.from_numpy(expected_mask).float())
    assert mask[CLASS_INDEX["Lunate"]].sum() > 0


def test_non_square_image_resized(tmp_path):
    sample = write_sample(tmp_path, "wide", height=60, width=150)
    image, mask = HandBoneDataset([sample], 40)[0]
    assert image.shape == (1, 40, 40)
    assert mask.shape == (NUM_CLASSES, 40, 40)
    # The Radius rectangle spans x 0.3..0.6 and y 0.5..0.9 of the image, so of the 40 px output too.
    ys, xs = np.nonzero(mask[CLASS_INDEX["Radius"]].numpy())
    assert abs(xs.min() - 12) <= 1
    assert abs(xs.max() - 24) <= 1
    assert abs(ys.min() - 20) <= 1
    assert abs(ys.max() - 36) <= 1


def test_preprocess_image_values():
    image = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    out = preprocess_image(image, 2)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([[0.0, 1.0], [0.2, 0.4]], dtype=np.float32))


@pytest.mark.parametrize("image", [np.zeros((8, 8), np.float32), np.zeros((8, 8, 3), np.uint8)])
def test_preprocess_image_rejects(image):
    with pytest.raises(ValueError, match="uint8"):
        preprocess_image(image, 4)


# --- cache ------------------------------------------------------------------------------------


@pytest.mark.parametrize("aug", [None, STRONG_AUG])
def test_cached_equals_uncached(synthetic_samples, tmp_path, aug):
    transform = None if aug is None else build_transforms(aug, train=True)
    uncached = HandBoneDataset(synthetic_samples, 64, transform=transform, seed=5)
    cached = HandBoneDataset(synthetic_samples, 64, cache_dir=tmp_path / "cache", transform=transform, seed=5)
    assert cached.cache.built == len(synthetic_samples)
    assert_items_equal(items(uncached), items(cached))


# --- random streams ---------------------------------------------------------------------------


def train_dataset(samples, seed=0):
    return HandBoneDataset(samples, 64, transform=build_transforms(STRONG_AUG, train=True), seed=seed)


def test_same_seed_same_items(synthetic_samples):
    assert_items_equal(items(train_dataset(synthetic_samples)), items(train_dataset(synthetic_samples)))


def test_seed_and_epoch_change_items(synthetic_samples):
    base = train_dataset(synthetic_samples)
    first = base[0]
    base.set_epoch(1)
    next_epoch = base[0]
    other_seed = train_dataset(synthetic_samples, seed=1)[0]
    assert not torch.equal(first[0], next_epoch[0])
    assert not torch.equal(first[0], other_seed[0])


def test_item_independent_of_order(synthetic_samples):
    forward = items(train_dataset(synthetic_samples))
    dataset = train_dataset(synthetic_samples)
    backward = [dataset[index] for index in reversed(range(len(dataset)))][::-1]
    assert_items_equal(forward, backward)


def test_validation_leaves_training_stream(synthetic_samples):
    """Training items are the same whether or not validation (even augmented) ran in between."""
    alone = train_dataset(synthetic_samples)
    alone.set_epoch(3)
    expected = items(alone)

    training = train_dataset(synthetic_samples)
    validation = HandBoneDataset(synthetic_samples, 64, transform=build_transforms(STRONG_AUG, train=False))
    augmented_validation = train_dataset(synthetic_samples, seed=9)
    training.set_epoch(3)
    got = []
    for index in range(len(training)):
        validation[index]
        augmented_validation[index]
        got.append(training[index])
    assert_items_equal(expected, got)


def test_global_random_state_untouched(synthetic_samples):
    dataset = train_dataset(synthetic_samples)
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    items(dataset)
    assert random.random() == random.Random(1).random()
    assert np.random.random() == np.random.RandomState(1).random()
    assert torch.equal(torch.rand(1), torch.rand(1, generator=torch.Generator().manual_seed(1)))


def test_worker_count_does_not_change_batches(synthetic_samples):
    dataset = train_dataset(synthetic_samples)
    dataset.set_epoch(2)
    single = list(DataLoader(dataset, batch_size=2, num_workers=0))
    parallel = list(DataLoader(dataset, batch_size=2, num_workers=2))
    assert_items_equal(single, parallel)


def test_persistent_workers_follow_epoch(synthetic_samples):
    expected = []
    reference = train_dataset(synthetic_samples)
    for epoch in range(2):
        reference.set_epoch(epoch)
        expected.extend(items(reference))

    dataset = train_dataset(synthetic_samples)
    loader = DataLoader(dataset, batch_size=None, num_workers=1, persistent_workers=True)
    got = []
    for epoch in range(2):
        dataset.set_epoch(epoch)
        got.extend(loader)
    assert_items_equal(expected, got)


# --- errors -----------------------------------------------------------------------------------


def test_sample_without_json_rejected(samples):
    bad = Sample("x.png", samples[0].image_path, None, "ID001")
    with pytest.raises(ValueError, match="no annotation JSON"):
        HandBoneDataset([bad], 32)


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_invalid_seed_rejected(samples, seed):
    with pytest.raises(ValueError, match="invalid seed"):
        HandBoneDataset(samples, 32, seed=seed)


def test_invalid_epoch_rejected(samples):
    with pytest.raises(ValueError, match="invalid epoch"):
        HandBoneDataset(samples, 32).set_epoch(-1)


def test_interpolating_transform_rejected(synthetic_samples):
    """Linear mask interpolation mixes packed bits, and here it sets the unused ones."""
    rotate = A.Affine(rotate=(37, 37), mask_interpolation=cv2.INTER_LINEAR, p=1.0)
    dataset = HandBoneDataset(synthetic_samples, 64, transform=A.Compose([rotate]))
    with pytest.raises(ValueError, match="nearest neighbour"):
        dataset[0]


def test_resizing_transform_rejected(samples):
    dataset = HandBoneDataset(samples, 32, transform=A.Compose([A.Resize(16, 16)]))
    with pytest.raises(ValueError, match="transform changed the shapes"):
        dataset[0]
