"""Training loop: schedule, devices, reports, random streams, resumption, EMA, accumulation."""

from __future__ import annotations

import math

import pytest
import torch

from data.classes import CLASSES
from trainable.checkpoint import load_training_state, save_training_state
from trainable.loop import (
    DeviceError,
    Trainer,
    amp_dtype,
    build_datasets,
    lr_factor,
    resolve_device,
    train,
)

NO_GPU = not torch.cuda.is_available()


@pytest.mark.parametrize(
    ("step", "warmup", "total", "expected"),
    [
        (0, 4, 20, 0.25),
        (3, 4, 20, 1.0),
        (4, 4, 20, 1.0),  # first cosine step
        (12, 4, 20, 0.5),  # half-way through the decay
        (19, 4, 20, 0.5 * (1 + math.cos(math.pi * 15 / 16))),
        (0, 0, 10, 1.0),  # no warm-up
        (5, 0, 10, 0.5),
    ],
)
def test_lr_factor_table(step, warmup, total, expected):
    assert lr_factor(step, warmup, total) == pytest.approx(expected)


@pytest.mark.skipif(not NO_GPU, reason="checks the behaviour without a GPU")
@pytest.mark.parametrize("requested", ["cuda", "cuda:0"])
def test_cuda_without_gpu_raises(requested):
    with pytest.raises(DeviceError, match=f"config device '{requested}' needs a GPU"):
        resolve_device(requested)


@pytest.mark.skipif(not NO_GPU, reason="checks the behaviour without a GPU")
def test_auto_device_is_cpu_without_gpu():
    assert resolve_device("auto") == torch.device("cpu")


def test_cpu_never_uses_mixed_precision():
    for amp in (True, "bf16", "fp16"):
        assert amp_dtype(torch.device("cpu"), amp) is None


@pytest.mark.skipif(not NO_GPU, reason="checks the behaviour without a GPU")
def test_train_with_cuda_config_fails_without_gpu(make_config, make_random_dataset):
    config = make_config(device="cuda")
    datasets = (make_random_dataset(4, seed=0), make_random_dataset(2, seed=1))
    with pytest.raises(DeviceError):
        train(config, datasets=datasets)


def test_train_reports_every_epoch(make_config, make_random_dataset):
    config = make_config(optim={"epochs": 2})
    datasets = (make_random_dataset(4, seed=0), make_random_dataset(3, seed=1))
    reports = []

    summary = train(config, lambda metrics, trainer: reports.append(metrics), datasets=datasets)

    assert [report["epoch"] for report in reports] == [1, 2]
    expected_keys = {"epoch", "train_loss", "val_loss", "val_dice", "lr", "epoch_time_s", "best_val_dice", "best_epoch"}
    expected_keys |= {f"dice/{name}" for name in CLASSES}
    for report in reports:
        assert set(report) == expected_keys
        assert 0.0 <= report["val_dice"] <= 1.0
        assert math.isfinite(report["train_loss"])
        assert math.isfinite(report["val_loss"])
        assert report["epoch_time_s"] > 0
        per_class = [report[f"dice/{name}"] for name in CLASSES]
        assert report["val_dice"] == pytest.approx(sum(per_class) / len(per_class))
    assert reports[1]["lr"] < reports[0]["lr"]
    best = max(reports, key=lambda report: report["val_dice"])
    assert summary.best_val_dice == best["val_dice"]
    assert summary.best_epoch == best["epoch"]
    assert summary.epochs_run == 2


def _epoch2_batches(config, datasets, validate_in_epoch1: bool) -> list[torch.Tensor]:
    trainer = Trainer(config, *datasets)
    trainer.train_epoch()
    if validate_in_epoch1:
        before = torch.get_rng_state()
        trainer.validate()
        assert torch.equal(torch.get_rng_state(), before)
    trainer.epoch += 1
    batches: list[torch.Tensor] = []
    trainer.train_epoch(on_batch=lambda images, masks: batches.append(images.clone()))
    trainer.close()
    return batches


@pytest.mark.slow
def test_validation_leaves_training_batches_unchanged(make_config, make_random_dataset):
    config = make_config()
    datasets = (make_random_dataset(6, seed=0), make_random_dataset(4, seed=1))

    with_validation = _epoch2_batches(config, datasets, validate_in_epoch1=True)
    without_validation = _epoch2_batches(config, datasets, validate_in_epoch1=False)

    assert len(with_validation) == 3
    for first, second in zip(with_validation, without_validation):
        assert torch.equal(first, second)
    other_seed = _epoch2_batches({**config, "seed": 1}, datasets, validate_in_epoch1=False)
    assert not all(torch.equal(a, b) for a, b in zip(with_validation, other_seed))


@pytest.mark.slow
def test_resume_matches_uninterrupted_run(tmp_path, make_config, make_random_dataset):
    config = make_config(ema=0.9, optim={"epochs": 3, "accumulate": 2, "batch_size": 1, "warmup_epochs": 1})
    datasets = (make_random_dataset(4, seed=0), make_random_dataset(2, seed=1))
    final_weights = {}

    def record(metrics, trainer):
        if trainer.epoch == 1:
            save_training_state(tmp_path / "state.pt", trainer.training_state())
        if trainer.epoch == 3:
            final_weights["uninterrupted"] = trainer.eval_model().state_dict()
            final_weights["uninterrupted_metrics"] = metrics

    train(config, record, datasets=datasets)
    resumed_epochs = []

    def record_resumed(metrics, trainer):
        resumed_epochs.append(metrics["epoch"])
        final_weights["resumed"] = trainer.eval_model().state_dict()
        final_weights["resumed_metrics"] = metrics

    train(config, record_resumed, resume_state=load_training_state(tmp_path / "state.pt"), datasets=datasets)

    assert resumed_epochs == [2, 3]
    for key, value in final_weights["uninterrupted"].items():
        torch.testing.assert_close(final_weights["resumed"][key], value, rtol=0, atol=0, msg=key)
    assert final_weights["resumed_metrics"]["val_dice"] == final_weights["uninterrupted_metrics"]["val_dice"]
    assert final_weights["resumed_metrics"]["lr"] == final_weights["uninterrupted_metrics"]["lr"]


def test_accumulation_steps_per_epoch(make_config, make_random_dataset):
    config = make_config(optim={"batch_size": 1, "accumulate": 2, "epochs": 1})
    trainer = Trainer(config, make_random_dataset(5, seed=0), make_random_dataset(1, seed=1))
    assert len(trainer.train_loader) == 5
    assert trainer.steps_per_epoch == 3
    trainer.train_epoch()
    assert trainer.scheduler.last_epoch == 3
    trainer.close()


def test_ema_weights_are_validated(make_config, make_random_dataset):
    config = make_config(ema=0.5, optim={"epochs": 1})
    trainer = Trainer(config, make_random_dataset(4, seed=0), make_random_dataset(2, seed=1))
    trainer.train_epoch()
    assert trainer.eval_model() is trainer.ema.module
    raw = dict(trainer.model.named_parameters())
    averaged = dict(trainer.ema.module.named_parameters())
    assert any(not torch.equal(raw[name], averaged[name]) for name in raw)
    trainer.close()


def test_build_datasets_from_split(synth_data, make_config):
    config = make_config(data=synth_data)
    train_set, val_set = build_datasets(config)
    assert len(train_set) + len(val_set) == 8
    assert len(val_set) == 2
    image, mask = train_set[0]
    assert image.shape == (1, 64, 64)
    assert mask.shape == (29, 64, 64)
    assert train_set.transform is not None
    assert val_set.transform is None


def test_missing_split_file_raises(tmp_path, synth_data, make_config):
    config = make_config(data={**synth_data, "splits": str(tmp_path / "absent.json")})
    with pytest.raises(ValueError, match="absent.json not found; write one with data.splits"):
        build_datasets(config)
