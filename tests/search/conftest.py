"""Fixtures of the search tests: a tiny search space and small search options.

The dataset is the shared ``synthetic_root`` fixture (8 training images of 4 patients, 128 px).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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
