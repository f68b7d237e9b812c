"""A real Ray Tune experiment for the results tests, made by a small function trainable.

The trainable reports the keys of ``trainable.tune_trainable.train_tune`` (val_dice, val_loss,
train_loss, dice/<class>, epoch_time_s, lr, epoch) with a checkpoint directory at every epoch.
Its val_dice follows a fixed curve that peaks at epoch 2 of 3, so the tests can compute the
best epoch without training a real model. The search is Ray's OptunaSearch writing
``optuna_study.db`` into the experiment directory, as the search stage does. Checkpoints are
kept by ``trainable.tune_trainable.checkpoint_config()``: the best by val_dice plus the latest,
so the latest (epoch 3) checkpoint is on disk beside the best (epoch 2) one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from data.classes import CLASSES

VAL_DICE_CURVE: tuple[float, ...] = (0.30, 0.70, 0.50)
"""val_dice per epoch (1, 2, 3) before scaling by the trial's quality: it peaks at epoch 2."""

PEAK_EPOCH = 2
NUM_TRIALS = 3
EXPERIMENT_NAME = "peaking"


def trial_quality(config: dict[str, Any]) -> float:
    """Map a trial's config to a factor in [0.5, 1.0]: higher lr and resnet34 score higher."""
    lr_position = (math.log10(config["optim"]["lr"]) + 4.0) / 2.0  # 1e-4 -> 0, 1e-2 -> 1
    bonus = 0.1 if config["model"]["encoder"] == "resnet34" else 0.0
    return 0.5 + 0.4 * lr_position + bonus


def expected_val_dice(config: dict[str, Any], epoch: int) -> float:
    """Return the val_dice the trainable reports for this config at this epoch (from 1)."""
    return VAL_DICE_CURVE[epoch - 1] * trial_quality(config)


def class_dice(val_dice: float, class_index: int) -> float:
    """Return the per-class Dice reported for one class: val_dice shifted by a class offset."""
    return min(1.0, max(0.0, val_dice + 0.01 * (class_index - 14)))


def peaking_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: three epochs, each reported with a checkpoint directory.

    The checkpoint directories are written by ``trainable.checkpoint.save_checkpoint_dir``
    (model.pt and metrics.json) and reported through ``trainable.tune_trainable.report_epoch``,
    as ``train_tune`` does, around a tiny real torch model.
    """
    import torch

    from trainable.checkpoint import save_checkpoint_dir
    from trainable.tune_trainable import report_epoch

    model = torch.nn.Conv2d(1, len(CLASSES), kernel_size=1)
    for epoch in range(1, len(VAL_DICE_CURVE) + 1):
        val_dice = expected_val_dice(config, epoch)
        metrics = {
            "epoch": epoch,
            "val_dice": val_dice,
            "val_loss": 1.0 - val_dice,
            "train_loss": 1.0 / epoch,
            "epoch_time_s": 0.01,
            "lr": config["optim"]["lr"],
        }
        for index, name in enumerate(CLASSES):
            metrics[f"dice/{name}"] = class_dice(val_dice, index)
        report_epoch(
            metrics, lambda folder: save_checkpoint_dir(folder, model, config, epoch, metrics)
        )


def param_space() -> dict[str, Any]:
    from ray import tune

    return {
        "model": {"architecture": "Unet", "encoder": tune.choice(["resnet18", "resnet34"])},
        "optim": {"lr": tune.loguniform(1e-4, 1e-2), "epochs": len(VAL_DICE_CURVE)},
        "seed": 0,
    }


def run_experiment(
    storage_path: Path, name: str, trainable: Any, num_samples: int, seed: int = 0
) -> Path:
    """Run a Tune experiment with OptunaSearch storing its study in the experiment directory.

    Ray must already be initialised. Returns the experiment directory.
    """
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from trainable.tune_trainable import checkpoint_config

    experiment_dir = storage_path / name
    experiment_dir.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{experiment_dir / 'optuna_study.db'}")
    searcher = OptunaSearch(study_name=name, storage=storage, seed=seed)
    tuner = tune.Tuner(
        trainable,
        param_space=param_space(),
        tune_config=tune.TuneConfig(
            metric="val_dice",
            mode="max",
            num_samples=num_samples,
            search_alg=searcher,
            max_concurrent_trials=1,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage_path),
            verbose=0,
            checkpoint_config=checkpoint_config(),
        ),
    )
    tuner.fit()
    return experiment_dir


def _start_private_ray() -> None:
    import ray

    ray.init(
        address="local", num_cpus=1, object_store_memory=200 * 1024**2, include_dashboard=False
    )


@pytest.fixture(scope="module")
def ray_session():
    """Start a private local Ray for one test module; shut it down after.

    Module scope, not session scope: later test modules start Ray instances of their own, and
    ``ray.init`` fails while this process is still connected to another one.
    """
    import ray

    _start_private_ray()
    yield
    ray.shutdown()


@dataclass(frozen=True)
class PeakingExperiment:
    """A finished experiment of :func:`peaking_trainable` and the values it reported."""

    path: Path
    num_trials: int = NUM_TRIALS
    peak_epoch: int = PEAK_EPOCH
    curve: tuple[float, ...] = VAL_DICE_CURVE

    @staticmethod
    def expected_val_dice(config: dict[str, Any], epoch: int) -> float:
        return expected_val_dice(config, epoch)

    @staticmethod
    def class_dice(val_dice: float, class_index: int) -> float:
        return class_dice(val_dice, class_index)


@pytest.fixture(scope="session")
def peaking_experiment(tmp_path_factory) -> PeakingExperiment:
    """A finished 3-trial experiment of :func:`peaking_trainable`, run on a private Ray."""
    import ray

    storage = tmp_path_factory.mktemp("tune")
    _start_private_ray()
    try:
        path = run_experiment(storage, EXPERIMENT_NAME, peaking_trainable, NUM_TRIALS)
    finally:
        ray.shutdown()
    return PeakingExperiment(path)


@pytest.fixture(scope="session")
def run_tune_experiment():
    """The :func:`run_experiment` function, for tests that run their own experiment."""
    return run_experiment


def pytest_collection_modifyitems(config, items) -> None:
    """Mark the results tests that need the Ray experiment as slow (it takes ~15-30 s to run)."""
    here = Path(__file__).parent
    for item in items:
        uses_ray = {"peaking_experiment", "ray_session"} & set(getattr(item, "fixturenames", ()))
        if uses_ray and here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)
