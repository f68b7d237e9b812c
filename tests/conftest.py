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
