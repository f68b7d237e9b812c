"""Fixtures shared by every stage's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
REAL_RADIOGRAPHS = SHARED_DATA / "real-radiographs"
HAND_LANDMARKS = SHARED_DATA / "hand-landmarks" / "dha-landmarks.csv"


@pytest.fixture(scope="session")
def real_radiographs_dir() -> Path:
    """Folder of real hand radiographs beside the repository; skips when it is absent."""
    if not REAL_RADIOGRAPHS.is_dir():
        pytest.skip(f"real radiographs not found at {REAL_RADIOGRAPHS} (../shared is absent)")
    return REAL_RADIOGRAPHS


@pytest.fixture(scope="session")
def hand_landmarks_csv() -> Path:
    """CSV of 37 expert landmarks for 905 real hands; skips when it is absent."""
    if not HAND_LANDMARKS.is_file():
        pytest.skip(f"hand landmarks not found at {HAND_LANDMARKS} (../shared is absent)")
    return HAND_LANDMARKS


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Competition-layout synthetic dataset: 8 train and 2 test images at 128 px, seed 0.

    Shared by the whole session: tests must treat it as read-only.
    """
    from data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synthetic") / "hands"
    generate_dataset(root, n_train=8, n_test=2, size=128, seed=0)
    return root
