"""Helpers of the ensemble tests: tiny annotated datasets with hand-placed squares."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest


def square_polygon(label: str, low_x: int, low_y: int, high_x: int, high_y: int) -> dict:
    """Annotation entry of an axis-aligned rectangle; it fills pixels low..high inclusive."""
    return {
        "label": label,
        "points": [[low_x, low_y], [high_x, low_y], [high_x, high_y], [low_x, high_y]],
    }


def write_annotated_image(
    root: Path,
    patient: str,
    stem: str,
    size: tuple[int, int],
    polygons: list[dict],
    suffix: str = ".png",
) -> Path:
    """Write ``root/train/DCM/<patient>/<stem><suffix>`` and its JSON; return the image path."""
    height, width = size
    image_path = root / "train" / "DCM" / patient / f"{stem}{suffix}"
    json_path = root / "train" / "outputs_json" / patient / f"{stem}.json"
    image_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    ramp = (np.arange(height * width) % 200 + 30).astype(np.uint8).reshape(height, width)
    if not cv2.imwrite(str(image_path), ramp):
        raise RuntimeError(f"cv2.imwrite failed for {image_path}")
    json_path.write_text(json.dumps({"annotations": polygons}), encoding="utf-8")
    return image_path


@pytest.fixture
def helpers() -> SimpleNamespace:
    """The helpers above, as one fixture: test modules cannot import conftest by name."""
    return SimpleNamespace(
        square_polygon=square_polygon, write_annotated_image=write_annotated_image
    )


# Three trials of tiny models (64 px inputs, 2 epochs) on the shared synthetic dataset.
ENSEMBLE_SPACE = """\
version: 1
description: tiny models for the ensemble tests
space:
  model.architecture: {choice: [Unet, FPN]}
  model.encoder: resnet18
  model.encoder_weights: null
  input_size: {choice: [64, 96]}
  optim.lr: {loguniform: [3.0e-3, 1.0e-2]}
  optim.batch_size: 4
  optim.epochs: 2
  optim.warmup_epochs: 0
  ema: null
  amp: false
  device: cpu
"""


@pytest.fixture(scope="session")
def ensemble_experiment(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Path:
    """A finished 3-trial search made by the search stage's Python API; returns its folder."""
    from search.cluster import RayOptions
    from search.run_search import SearchOptions, run_search

    folder = tmp_path_factory.mktemp("ensemble-search")
    space = folder / "space.yaml"
    space.write_text(ENSEMBLE_SPACE, encoding="utf-8")
    options = SearchOptions(
        num_samples=3,
        space=space,
        data_root=synthetic_root,
        name="ensemble",
        storage_path=folder / "ray_results",
        n_folds=2,
        scheduler="fifo",
        cpus_per_trial=1,
        seed=1,
        verbose=0,
        ray=RayOptions(num_cpus=2, include_dashboard=False, object_store_memory_mib=200),
    )
    return run_search(options)
