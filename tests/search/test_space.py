"""Search-space files: parsing, validation errors naming the file and key, Tune conversion."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from ray.tune.search.sample import Categorical, Float, Integer

from search.space import Distribution, SearchSpaceError, get_dotted, load_space
from trainable.config import set_dotted

SPACES = Path(__file__).resolve().parents[2] / "search" / "spaces"


def _write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


VALID = """
version: 1
space:
  model.encoder: {choice: [resnet18, mobilenet_v2]}
  optim.lr: {loguniform: [1.0e-4, 1.0e-2]}
  loss.dice: {uniform: [0.5, 2.0]}
  optim.batch_size: {randint: [2, 4]}
  aug.strength: {uniform: [0.0, 0.5]}
  input_size: 64
  optim.epochs: 2
"""


def test_valid_space_loads(tmp_path):
    space = load_space(_write(tmp_path, VALID))

    assert list(space.params) == [
        "model.encoder", "optim.lr", "loss.dice", "optim.batch_size", "aug.strength"
    ]
    assert space.fixed == {"input_size": 64, "optim.epochs": 2}
    assert space.epochs == 2
    assert space.base_config["input_size"] == 64
    assert space.base_config["model"]["architecture"] == "Unet"  # trainable default


def test_param_space_puts_domains_at_searched_leaves(tmp_path):
    space = load_space(_write(tmp_path, VALID))
    param_space = space.param_space({"data.root": "/data", "data.fold": 2})

    assert isinstance(param_space["model"]["encoder"], Categorical)
    assert param_space["model"]["encoder"].categories == ["resnet18", "mobilenet_v2"]
    assert isinstance(param_space["optim"]["lr"], Float)
    assert isinstance(param_space["aug"]["strength"], Float)
    assert param_space["data"]["root"] == "/data"
    assert param_space["data"]["fold"] == 2
    assert param_space["optim"]["epochs"] == 2
    assert space.base_config["data"]["root"] is None  # param_space works on a copy


def test_data_settings_can_be_fixed(tmp_path):
    path = _write(tmp_path, VALID + "  data.num_workers: 2\n  data.cache_dir: /tmp/cache\n")
    space = load_space(path)

    assert space.base_config["data"]["num_workers"] == 2
    assert space.base_config["data"]["cache_dir"] == "/tmp/cache"


def test_randint_includes_both_ends():
    domain = Distribution("randint", (2, 4)).to_tune()
    samples = {domain.sample() for _ in range(200)}

    assert isinstance(domain, Integer)
    assert samples == {2, 3, 4}


def test_base_config_file_is_relative_to_space(tmp_path):
    (tmp_path / "configs").mkdir()
    _write(tmp_path / "configs", "model:\n  architecture: FPN\noptim:\n  epochs: 3\n", "base.yaml")
    path = _write(
        tmp_path,
        "version: 1\nbase_config: configs/base.yaml\nspace:\n  optim.lr: {loguniform: [1.0e-4, 1.0e-3]}\n",
    )
    space = load_space(path)

    assert space.base_config["model"]["architecture"] == "FPN"
    assert space.epochs == 3


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("model.encoderr: resnet18", "unknown config key 'model.encoderr' (did you mean 'model.encoder'?)"),
        ("optim.lr: {normal: [0, 1]}", "unknown distribution 'normal'"),
        ("optim.lr: {uniform: [1, 1]}", "uniform needs [low, high] with low < high"),
        ("optim.lr: {loguniform: [0, 1]}", "loguniform needs [low, high] with 0 < low < high"),
        ("optim.batch_size: {randint: [2, 4.5]}", "randint needs [low, high] integers"),
        ("optim.lr: {uniform: [0.1]}", "uniform needs [low, high]"),
        ("model.encoder: {choice: []}", "choice needs a non-empty list"),
        ("model.encoder: {choice: [[resnet18]]}", "choice values must be scalars"),
        ("model.encoder: {choice: [resnet18, resnet18]}", "choice lists a value twice"),
        ("optim.lr: {uniform: [0.1, 0.2], choice: [1]}", "exactly one of"),
        ("data.root: /somewhere", "cannot be set in a space"),
        ("data.fold: 1", "cannot be set in a space"),
        ("data: {choice: [1]}", "is a config section, not a leaf"),
        ("data.num_workers: {choice: [0, 2]}", "can only be fixed"),
        ("model: Unet", "is a config section, not a leaf"),
        ("aug: {choice: [1]}", "such as aug.strength"),
        ("optim.epochs: {choice: [2, 3]}", "must be a fixed value"),
        ("optim.epochs: 0", "invalid value 0 for config key 'optim.epochs'"),
        ("model.encoder: {choice: [resnet18, no_such_net]}", "key 'model.encoder' with value 'no_such_net'"),
        ("aug.strength: {uniform: [0.0, 2.0]}", "key 'aug.strength' with value 2.0"),
        ("aug.sharpness: 0.5", "unknown aug key(s) sharpness"),
        ("input_size: {choice: [64, 100]}", "multiple of 32"),
    ],
)
def test_invalid_entry_names_file_and_key(tmp_path, entry, message):
    path = _write(tmp_path, f"version: 1\nspace:\n  optim.weight_decay: {{uniform: [0.0, 0.001]}}\n  {entry}\n")

    with pytest.raises(SearchSpaceError) as caught:
        load_space(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("space:\n  optim.lr: {uniform: [0.1, 0.2]}\n", "unsupported or missing version None"),
        ("version: 2\nspace:\n  optim.lr: {uniform: [0.1, 0.2]}\n", "unsupported or missing version 2"),
        ("version: 1\n", "'space' must be a non-empty mapping"),
        ("version: 1\nspace: {}\n", "'space' must be a non-empty mapping"),
        ("version: 1\nspace:\n  optim.lr: 0.01\n", "'space' has only fixed values"),
        ("version: 1\nspaces:\n  optim.lr: {uniform: [0.1, 0.2]}\n", "unknown top-level key(s) spaces"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("version: 1\nspace: [\n", "invalid YAML"),
        ("version: 1\nbase_config: missing.yaml\nspace:\n  optim.lr: {uniform: [0.1, 0.2]}\n", "base_config 'missing.yaml'"),
    ],
)
def test_invalid_file_is_rejected(tmp_path, text, message):
    path = _write(tmp_path, text)

    with pytest.raises(SearchSpaceError) as caught:
        load_space(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(SearchSpaceError, match="search-space file not found"):
        load_space(tmp_path / "nope.yaml")


def test_dotted_helpers_round_trip():
    config: dict = {"model": {"encoder": "resnet18"}}
    set_dotted(config, "model.encoder", "resnet34")
    set_dotted(config, "aug.strength", 0.3)

    assert get_dotted(config, "model.encoder") == "resnet34"
    assert config["aug"] == {"strength": 0.3}
    with pytest.raises(KeyError):
        get_dotted(config, "model.encoder.name")


@pytest.mark.parametrize("name", ["cpu_small.yaml", "gpu_full.yaml"])
def test_shipped_spaces_load(name):
    space = load_space(SPACES / name)

    searched = set(space.params)
    for key in ("model.encoder", "model.architecture", "input_size", "optim.lr", "optim.batch_size", "aug.strength"):
        assert key in searched
    assert any(key.startswith("loss.") for key in searched)


def test_cpu_space_is_small():
    space = load_space(SPACES / "cpu_small.yaml")

    assert max(space.params["input_size"].args) <= 128
    assert space.epochs <= 10
    assert space.base_config["device"] == "cpu"


def test_gpu_space_covers_the_large_models():
    space = load_space(SPACES / "gpu_full.yaml")
    encoders = space.params["model.encoder"].args

    assert any("hrnet" in name for name in encoders)
    assert any("convnext" in name for name in encoders)
    assert any("efficientnet" in name for name in encoders)
    assert "UnetPlusPlus" in space.params["model.architecture"].args
    assert min(space.params["input_size"].args) >= 512
    assert max(space.params["input_size"].args) == 2048


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cpu_small.yaml", "gpu_full.yaml"])
def test_every_model_pair_builds(name):
    """Every architecture x encoder pair of a shipped space builds and runs on a 64 px input."""
    from trainable.models import build_model

    space = load_space(SPACES / name)
    architectures = space.params["model.architecture"].args
    encoders = space.params["model.encoder"].args
    image = torch.zeros(1, 1, 64, 64)
    for architecture, encoder in itertools.product(architectures, encoders):
        model = build_model(
            {"model": {"architecture": architecture, "encoder": encoder, "encoder_weights": None}}
        )
        with torch.no_grad():
            logits = model.eval()(image)
        assert logits.shape == (1, 29, 64, 64), (architecture, encoder)
