"""Checkpoint files: format, weights-only loading, rebuilding, error messages, random states."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from data.classes import CLASSES
from trainable.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_model,
    load_training_state,
    read_checkpoint,
    restore_rng_state,
    save_checkpoint,
    save_checkpoint_dir,
    save_training_state,
)
from trainable.models import build_model


@pytest.fixture
def saved(tmp_path, make_config):
    config = make_config(tmp_path)
    model = build_model(config).eval()
    path = save_checkpoint(tmp_path / "model.pt", model, config, epoch=3, metrics={"val_dice": 0.5, "epoch": 3})
    return path, model, config


def test_file_format(saved):
    path, model, config = saved
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"format_version", "state_dict", "config", "classes", "epoch", "metrics"}
    assert payload["format_version"] == 1
    assert payload["classes"] == list(CLASSES)
    assert payload["config"] == config
    assert payload["epoch"] == 3
    assert payload["metrics"] == {"val_dice": 0.5, "epoch": 3}
    assert payload["state_dict"].keys() == model.state_dict().keys()


def test_load_model_gives_same_outputs(saved):
    path, model, config = saved
    loaded, loaded_config = load_model(path.parent)
    images = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images))
    assert loaded_config == config
    assert not loaded.training


def test_load_model_never_downloads(tmp_path, make_config, monkeypatch):
    config = make_config(tmp_path)
    model = build_model(config)
    config["model"]["encoder_weights"] = "imagenet"
    path = save_checkpoint(tmp_path / "model.pt", model, config, 1, {})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    loaded, loaded_config = load_model(path)
    assert loaded_config["model"]["encoder_weights"] == "imagenet"


def test_missing_file_raises(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nowhere" / "model.pt")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"format_version": 2}, "format_version 2, expected 1"),
        ({"classes": list(CLASSES[:28])}, "another class list (28 classes"),
        ({"classes": ["Ulna"] + list(CLASSES[1:])}, "channel 0: 'Ulna' vs 'finger-1'"),
    ],
)
def test_bad_checkpoint_raises(saved, change, expected):
    path = saved[0]
    payload = torch.load(path, weights_only=True)
    payload.update(change)
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    assert expected in str(error.value)


def test_missing_field_raises(saved):
    path = saved[0]
    payload = torch.load(path, weights_only=True)
    del payload["config"]
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"lacks the fields \['config'\]"):
        read_checkpoint(path)


def test_not_a_checkpoint_raises(tmp_path):
    path = tmp_path / "model.pt"
    path.write_text("not a torch file")
    with pytest.raises(CheckpointError, match="cannot read checkpoint file"):
        read_checkpoint(path)


def test_checkpoint_dir_contents(tmp_path, make_config):
    config = make_config(tmp_path)
    model = build_model(config)
    folder = save_checkpoint_dir(tmp_path / "ckpt", model, config, 2, {"val_dice": 0.25}, {"epoch": 2})
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.json", "model.pt", "training_state.pt"]
    assert load_training_state(folder)["epoch"] == 2
    assert '"val_dice": 0.25' in (folder / "metrics.json").read_text()


def test_training_state_version_checked(tmp_path):
    path = save_training_state(tmp_path / "state.pt", {"epoch": 1})
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 0
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="format_version 0"):
        load_training_state(path)


def test_rng_state_round_trip(tmp_path):
    state = capture_rng_state()
    path = save_training_state(tmp_path / "state.pt", {"rng": state})
    first = (random.random(), np.random.rand(), torch.rand(1).item())

    restore_rng_state(load_training_state(path)["rng"])

    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
