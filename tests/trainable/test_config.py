"""Training config: defaults, YAML, dotted overrides, validation messages, path resolution."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainable.config import (
    DEFAULTS,
    ConfigError,
    apply_overrides,
    config_keys,
    flatten_config,
    load_config,
    parse_override,
    resolve_config,
    save_config,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEBUG_CONFIG = REPO_ROOT / "trainable" / "configs" / "debug_cpu.yaml"


def test_defaults_resolve_unchanged():
    config = resolve_config()
    assert config == {**DEFAULTS, "aug": {}}
    assert config is not DEFAULTS


def test_config_keys_are_dotted_leaves():
    keys = config_keys()
    assert "model.encoder" in keys
    assert "optim.warmup_epochs" in keys
    assert "aug" in keys
    assert "model" not in keys


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("optim.lr=0.01", ("optim.lr", 0.01)),
        ("optim.epochs=3", ("optim.epochs", 3)),
        ("ema=null", ("ema", None)),
        ("amp=false", ("amp", False)),
        ("model.encoder=tu-convnext_atto", ("model.encoder", "tu-convnext_atto")),
        ("model.encoder_weights=", ("model.encoder_weights", None)),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


def test_parse_override_without_equals_raises():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("optim.lr")


def test_overrides_set_values_by_dotted_path():
    config = resolve_config(
        {"model": {"encoder": "resnet34"}},
        ["optim.lr=1e-2", "aug.hflip=0.0", "input_size=128"],
    )
    assert config["model"]["encoder"] == "resnet34"
    assert config["model"]["architecture"] == "Unet"
    assert config["optim"]["lr"] == 0.01  # PyYAML reads 1e-2 as a string
    assert config["aug"] == {"hflip": 0.0}
    assert config["input_size"] == 128


def test_flat_dotted_keys_in_config_are_overrides():
    config = resolve_config({"optim": {"lr": 0.1}, "optim.lr": 0.2, "model.encoder": "resnet50"})
    assert config["optim"]["lr"] == 0.2
    assert config["model"]["encoder"] == "resnet50"


def test_apply_overrides_keeps_input():
    base = {"optim": {"lr": 0.1}}
    result = apply_overrides(base, {"optim.batch_size": 8})
    assert base == {"optim": {"lr": 0.1}}
    assert result == {"optim": {"lr": 0.1, "batch_size": 8}}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"modle": {}}, "unknown config key 'modle' (did you mean 'model'?); valid keys: data.root"),
        ({"model": {"encoderr": "x"}}, "unknown config key 'model.encoderr' (did you mean 'model.encoder'?)"),
        ({"optim.lrr": 0.1}, "unknown config key 'optim.lrr'"),
        ({"model": 3}, "config section 'model' must be a mapping, got 3"),
    ],
)
def test_unknown_keys_raise_with_valid_keys(config, expected):
    with pytest.raises(ConfigError) as error:
        resolve_config(config)
    assert expected in str(error.value)
    assert "valid keys: " in str(error.value)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("optim.lr=-1", "invalid value -1 for config key 'optim.lr': expected a number > 0.0"),
        ("optim.lr=fast", "invalid value 'fast' for config key 'optim.lr'"),
        ("optim.batch_size=2.5", "invalid value 2.5 for config key 'optim.batch_size': expected an integer >= 1"),
        ("optim.epochs=true", "invalid value True for config key 'optim.epochs'"),
        ("data.fold=-1", "config key 'data.fold': expected an integer >= 0"),
        ("ema=1.0", "config key 'ema': expected a number in (0.0, 1.0)"),
        ("loss.focal_alpha=2", "config key 'loss.focal_alpha': expected a number in [0.0, 1.0]"),
        ("amp=maybe", "config key 'amp': expected true"),
        ("device=gpu", "config key 'device': expected 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ("model.encoder_weights=3", "config key 'model.encoder_weights'"),
        ("input_size=100", "input size must be a multiple of 32; nearest valid sizes: 96 or 128"),
        ("input_size=16", "config key 'input_size': expected an integer >= 32"),
        ("model.architecture=unet", "unknown architecture 'unet' (did you mean 'Unet'?)"),
        ("model.encoder=resnet19", "unknown encoder 'resnet19' (did you mean 'resnet18'?)"),
        ("aug.hflipp=1", "invalid config section 'aug'"),
        ("optim.warmup_epochs=20", "config key 'optim.warmup_epochs': expected at most optim.epochs (10)"),
        ("seed=-3", "config key 'seed'"),
    ],
)
def test_invalid_values_raise(override, expected):
    with pytest.raises(ConfigError) as error:
        resolve_config(None, [override])
    assert expected in str(error.value)


def test_all_zero_loss_weights_raise():
    weights = {"bce": 0, "dice": 0, "focal": 0, "tversky": 0}
    with pytest.raises(ConfigError, match="all 0"):
        resolve_config({"loss": weights})


def test_numpy_numbers_become_plain():
    np = pytest.importorskip("numpy")
    config = resolve_config({"optim": {"lr": np.float64(0.01), "batch_size": np.int64(8)}})
    assert type(config["optim"]["lr"]) is float
    assert type(config["optim"]["batch_size"]) is int


def test_relative_paths_resolve_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = resolve_config(
        {"data": {"root": "data/set", "cache_dir": "cache"}, "model": {"encoder_weights": "w.pth"}}
    )
    assert config["data"]["root"] == str(tmp_path / "data" / "set")
    assert config["data"]["splits"] == str(tmp_path / "data" / "set" / "splits.json")
    assert config["data"]["cache_dir"] == str(tmp_path / "cache")
    assert config["model"]["encoder_weights"] == str(tmp_path / "w.pth")


def test_require_absolute_rejects_relative_paths():
    with pytest.raises(ConfigError, match="relative path 'data/set'"):
        resolve_config({"data": {"root": "data/set"}}, require_absolute=True)


def test_absolute_paths_and_imagenet_kept(tmp_path):
    config = resolve_config(
        {"data": {"root": str(tmp_path), "splits": str(tmp_path / "s.json")}, "model": {"encoder_weights": "imagenet"}},
        require_absolute=True,
    )
    assert config["data"]["splits"] == str(tmp_path / "s.json")
    assert config["model"]["encoder_weights"] == "imagenet"


def test_resolving_twice_changes_nothing(tmp_path):
    once = resolve_config({"data": {"root": str(tmp_path)}, "aug": {"strength": 0.2}})
    assert resolve_config(once, require_absolute=True) == once


def test_save_and_load_round_trip(tmp_path):
    config = resolve_config({"data": {"root": str(tmp_path)}}, ["optim.lr=0.003", "aug.noise=0.1"])
    path = save_config(tmp_path / "out" / "config.yaml", config)
    assert resolve_config(load_config(path)) == config


def test_flatten_config():
    flat = flatten_config(resolve_config(None, ["aug.hflip=0.2"]))
    assert flat["model.encoder"] == "resnet18"
    assert flat["aug.hflip"] == 0.2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "not found"),
        ("model: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping of sections such as 'model:' and 'optim:', found a list"),
    ],
)
def test_load_config_errors(tmp_path, content, expected):
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert expected in str(error.value)


def test_debug_config_resolves(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    config = resolve_config(load_config(DEBUG_CONFIG))
    assert config["device"] == "cpu"
    assert os.path.isabs(config["data"]["root"])
    assert config["data"]["splits"].endswith("splits.json")
