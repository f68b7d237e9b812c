"""Fixtures of the trainable-stage tests: tiny configs, random datasets, a synthetic dataset, Ray."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from data.classes import NUM_CLASSES
from data.layout import discover
from data.splits import make_splits, write_splits
from trainable.config import resolve_config

# About 2 million parameters: the smallest encoder family member that trains quickly on a CPU.
TINY_MODEL = {"architecture": "FPN", "encoder": "tu-mobilenetv3_small_050", "encoder_weights": None}
SIZE = 64


def tiny_config(root: Path | str | None = None, **sections) -> dict:
    """Return a resolved config for a fast CPU run at 64 px; ``sections`` override top-level keys."""
    config = {
        "data": {"root": None if root is None else str(root)},
        "model": dict(TINY_MODEL),
        "input_size": SIZE,
        "optim": {"lr": 1e-3, "batch_size": 2, "epochs": 2, "warmup_epochs": 0.5},
        "aug": {"strength": 0.5},
        "device": "cpu",
        "seed": 0,
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return resolve_config(config)


def random_dataset(n_images: int, seed: int, size: int = SIZE) -> TensorDataset:
    """Images in [0, 1] with masks that are a few bright rectangles, reproducible by seed."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand((n_images, 1, size, size), generator=generator)
    masks = torch.zeros((n_images, NUM_CLASSES, size, size))
    for index in range(n_images):
        for channel in range(0, NUM_CLASSES, 3):
            top, left = torch.randint(0, size // 2, (2,), generator=generator).tolist()
            masks[index, channel, top : top + size // 4, left : left + size // 4] = 1.0
            images[index, 0, top : top + size // 4, left : left + size // 4] += 0.5
    return TensorDataset(images.clamp(0, 1), masks)


@pytest.fixture(scope="session")
def make_config():
    """The :func:`tiny_config` factory."""
    return tiny_config


@pytest.fixture(scope="session")
def make_random_dataset():
    """The :func:`random_dataset` factory."""
    return random_dataset


@pytest.fixture(scope="session")
def synth_data(synthetic_root, tmp_path_factory) -> dict:
    """The ``data`` config section of the shared synthetic dataset with a 4-fold split file.

    The split file lives outside the dataset folder, which the whole session shares read-only.
    """
    splits = tmp_path_factory.mktemp("splits") / "splits.json"
    write_splits(splits, make_splits(discover(synthetic_root).train, n_folds=4, seed=0))
    return {"root": str(synthetic_root), "splits": str(splits)}


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance with 2 CPUs for this test module."""
    ray = pytest.importorskip("ray")
    ray.init(
        address="local",
        num_cpus=2,
        object_store_memory=200 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()
