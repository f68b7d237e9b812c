"""Fixtures of the search tests: a tiny synthetic dataset, a tiny search space, search options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from data.synth import generate_dataset
from search.cluster import RayOptions
from search.run_search import SearchOptions

TINY_SPACE = """\
version: 1
space:
  model.architecture: Unet
  model.encoder: {choice: [resnet18, mobilenet_v2]}
  model.encoder_weights: null
  input_size: 64
  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}
  optim.batch_size: 4
  optim.epochs: 3
  optim.warmup_epochs: 0
  aug.strength: {uniform: [0.0, 0.5]}
  amp: false
  device: cpu
"""
"""Two encoders at 64 px for 3 epochs: a trial takes a few seconds on one CPU core."""

TINY_EPOCHS = 3


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A competition-layout synthetic dataset: 8 training images (4 patients), 2 test, 128 px."""
    root = tmp_path_factory.mktemp("search-data") / "synthetic"
    generate_dataset(root, n_train=8, n_test=2, size=128, seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The :data:`TINY_SPACE` file."""
    path = tmp_path_factory.mktemp("search-space") / "tiny.yaml"
    path.write_text(TINY_SPACE, encoding="utf-8")
    return path


@pytest.fixture
def make_options(tmp_path: Path, synthetic_root: Path, tiny_space: Path) -> Callable[..., SearchOptions]:
    """Factory of small local search options: the tiny space, 2 folds, Ray without dashboard.

    Call it as ``make_options(name, **changes)``; ``num_cpus`` and ``address`` go to the
    :class:`RayOptions`, everything else to :class:`SearchOptions`.
    """

    def make(name: str, **changes: Any) -> SearchOptions:
        ray_options = RayOptions(
            address=changes.pop("address", None),
            num_cpus=changes.pop("num_cpus", 2),
            include_dashboard=False,
            object_store_memory_mib=200,
        )
        values: dict[str, Any] = dict(
            num_samples=2,
            space=tiny_space,
            data_root=synthetic_root,
            name=name,
            storage_path=tmp_path / "ray_results",
            n_folds=2,
            verbose=0,
            ray=ray_options,
        )
        values.update(changes)
        return SearchOptions(**values)

    return make
