"""Fixtures shared by every stage's tests."""

from __future__ import annotations

import sys
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


# Three trials of tiny models (64-96 px inputs, 2 epochs) on the shared synthetic dataset.
TINY_SPACE = """\
version: 1
description: tiny models for the tests
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
def tiny_experiment(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Path:
    """A finished 3-trial search made by ``search.run_search``; returns its folder.

    FIFO scheduling, so every trial runs both epochs and has a best checkpoint. Read-only.
    """
    from search.cluster import RayOptions
    from search.run_search import SearchOptions, run_search

    folder = tmp_path_factory.mktemp("tiny-search")
    space = folder / "space.yaml"
    space.write_text(TINY_SPACE, encoding="utf-8")
    options = SearchOptions(
        num_samples=3,
        space=space,
        data_root=synthetic_root,
        name="tiny",
        storage_path=folder / "ray_results",
        n_folds=2,
        scheduler="fifo",
        cpus_per_trial=1,
        seed=1,
        verbose=0,
        ray=RayOptions(num_cpus=2, include_dashboard=False, object_store_memory_mib=200),
    )
    return run_search(options)


@pytest.fixture(autouse=True, scope="module")
def _no_ray_left_running():
    """Shut down a Ray connection a test module left open, so the next module can start its own."""
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@pytest.fixture(autouse=True, scope="session")
def _private_decoded_cache(tmp_path_factory: pytest.TempPathFactory):
    """Point the default decoded-data cache at a temporary folder, not the user's ~/.cache."""
    import os

    previous = os.environ.get("HANDBONE_CACHE_DIR")
    os.environ["HANDBONE_CACHE_DIR"] = str(tmp_path_factory.mktemp("decoded-cache"))
    yield
    if previous is None:
        os.environ.pop("HANDBONE_CACHE_DIR", None)
    else:
        os.environ["HANDBONE_CACHE_DIR"] = previous
