"""Helpers of the data-stage tests: small competition-layout datasets written to tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from data.classes import CLASSES


def write_image(path: Path, height: int = 16, width: int = 16, value: int = 128) -> Path:
    """Write a constant 8-bit grayscale PNG (or JPEG, by suffix) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.full((height, width), value, dtype=np.uint8)):
        raise RuntimeError(f"cv2.imwrite failed for {path}")
    return path


def write_json(path: Path, annotations: list[dict]) -> Path:
    """Write a competition annotation JSON with the given entries and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"annotations": annotations}), encoding="utf-8")
    return path


def square(label: str, low: int = 2, high: int = 5) -> dict:
    """Annotation entry of a closed pixel square from ``low`` to ``high`` in both axes."""
    return {"label": label, "points": [[low, low], [high, low], [high, high], [low, high]]}


def make_competition_root(
    root: Path,
    patients: dict[str, int],
    test_patients: dict[str, int] | None = None,
    size: int = 16,
    labels: tuple[str, ...] = CLASSES,
) -> Path:
    """Write ``root/train`` with ``patients[pid]`` annotated images each, and ``root/test``.

    Image names are ``<pid>_<k>.png``, unique across the dataset; each JSON contains one square
    per label.
    """
    for patient, count in patients.items():
        for k in range(count):
            stem = f"{patient}_{k}"
            write_image(root / "train" / "DCM" / patient / f"{stem}.png", size, size)
            write_json(
                root / "train" / "outputs_json" / patient / f"{stem}.json",
                [square(label) for label in labels],
            )
    for patient, count in (test_patients or {}).items():
        for k in range(count):
            write_image(root / "test" / "DCM" / patient / f"{patient}_test{k}.png", size, size)
    return root


@pytest.fixture
def competition_root(tmp_path: Path) -> Path:
    """Three patients with two hands each in train, one patient with two hands in test."""
    return make_competition_root(
        tmp_path / "dataset",
        {"ID001": 2, "ID002": 2, "ID003": 2},
        {"ID100": 2},
    )


class DatasetFiles:
    """The helpers above, as one fixture: test modules cannot import conftest by name."""

    write_image = staticmethod(write_image)
    write_json = staticmethod(write_json)
    square = staticmethod(square)
    make_competition_root = staticmethod(make_competition_root)


@pytest.fixture
def files() -> type[DatasetFiles]:
    """Writers of test images, annotation JSONs and competition-layout folders."""
    return DatasetFiles


@pytest.fixture(scope="module")
def synthetic_dataset(tmp_path_factory) -> Path:
    """A small synthetic competition-layout dataset from ``data.synth.generate_dataset``.

    Same arguments as the planned session-wide ``synthetic_root`` fixture: 8 training and 2
    test images of 128 px, seed 0.
    """
    from data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synthetic") / "dataset"
    generate_dataset(root, n_train=8, n_test=2, size=128, seed=0)
    return root
