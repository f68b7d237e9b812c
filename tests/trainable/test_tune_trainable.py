"""Ray Tune trainable: best-epoch checkpoints with bounded disk use, resumption after a failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainable.checkpoint import load_model, save_checkpoint_dir
from trainable.tune_trainable import (
    CHECKPOINT_METRIC,
    best_checkpoint,
    checkpoint_config,
    report_epoch,
    train_tune,
)

tune = pytest.importorskip("ray.tune")

SCRIPTED_DICE = (0.2, 0.8, 0.5, 0.3)  # peaks at epoch 2, then drops


def test_checkpoint_config_ranks_by_dice():
    config = checkpoint_config(2)
    assert isinstance(config, tune.CheckpointConfig)
    assert config.num_to_keep == 2
    assert config.checkpoint_score_attribute == CHECKPOINT_METRIC == "val_dice"
    assert config.checkpoint_score_order == "max"


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_checkpoint_config_rejects_bad_count(value):
    with pytest.raises(ValueError, match="num_to_keep must be a positive integer"):
        checkpoint_config(value)


def _checkpoint_epochs(trial_dir: Path) -> list[int]:
    folders = sorted(trial_dir.glob("checkpoint_*"))
    return [json.loads((folder / "metrics.json").read_text())["epoch"] for folder in folders]


@pytest.mark.slow
def test_best_epoch_weights_survive(ray_local, tmp_path, make_config):
    def scripted(config):
        from trainable.models import build_model

        model = build_model(config)
        for epoch, dice in enumerate(SCRIPTED_DICE, start=1):
            with torch.no_grad():
                model.segmentation_head[0].bias.fill_(float(epoch))  # marks the epoch's weights
            metrics = {"epoch": epoch, "val_dice": dice}
            report_epoch(metrics, lambda folder: save_checkpoint_dir(folder, model, config, epoch, metrics))

    tuner = tune.Tuner(
        scripted,
        param_space=make_config(tmp_path),
        run_config=tune.RunConfig(
            name="scripted",
            storage_path=str(tmp_path / "results"),
            checkpoint_config=checkpoint_config(num_to_keep=1),
            verbose=0,
        ),
    )
    result = tuner.fit()[0]

    assert result.error is None
    best = best_checkpoint(result)
    model, config = load_model(best)
    assert torch.all(model.segmentation_head[0].bias == 2.0)
    assert json.loads((best / "metrics.json").read_text())["val_dice"] == 0.8
    # Ray's Result.checkpoint is the latest report, not the best.
    assert json.loads((Path(result.checkpoint.path) / "metrics.json").read_text())["epoch"] == 4
    # num_to_keep=1 keeps the best checkpoint and the latest one, nothing else.
    assert _checkpoint_epochs(Path(result.path)) == [2, 4]


@pytest.mark.slow
def test_trial_resumes_after_failure(ray_local, tmp_path, synth_data, make_config):
    marker = tmp_path / "failed-once"
    epochs_log = tmp_path / "epochs.txt"

    def after_report(metrics):
        with open(epochs_log, "a") as stream:
            stream.write(f"{metrics['epoch']}\n")
        if metrics["epoch"] == 2 and not marker.exists():
            marker.touch()
            raise RuntimeError("injected failure after epoch 2")

    tuner = tune.Tuner(
        tune.with_parameters(train_tune, after_report=after_report),
        param_space=make_config(data=synth_data, optim={"epochs": 3}),
        run_config=tune.RunConfig(
            name="flaky",
            storage_path=str(tmp_path / "results"),
            checkpoint_config=checkpoint_config(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=1),
            verbose=0,
        ),
    )
    result = tuner.fit()[0]

    assert marker.exists()
    assert result.error is None
    assert epochs_log.read_text().split() == ["1", "2", "3"]
    assert result.metrics["epoch"] == 3
    assert result.metrics["training_iteration"] == 3
    assert len(_checkpoint_epochs(Path(result.path))) <= 2
    model, config = load_model(best_checkpoint(result))
    assert config["optim"]["epochs"] == 3


def test_train_tune_rejects_relative_paths(make_config):
    config = make_config()
    config["data"]["root"] = "relative/dataset"
    with pytest.raises(ValueError, match="relative path"):
        train_tune(config)
