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


@pytest.fixture(scope="session")
def ensemble_experiment(tiny_experiment: Path) -> Path:
    """The shared finished 3-trial search (``tiny_experiment`` in tests/conftest.py)."""
    return tiny_experiment
