"""The training config: defaults, YAML loading, dotted overrides, validation and path resolution.

A resolved config is a nested dict of plain Python values (YAML-safe, and loadable by
``torch.load(weights_only=True)`` inside a checkpoint)::

    data:  {root: ABS_PATH, splits: ABS_PATH, fold: 0, cache_dir: ABS_PATH | null, num_workers: 0}
    model: {architecture: Unet, encoder: resnet18, encoder_weights: null | imagenet | ABS_PATH}
    input_size: 256
    loss:  {bce: 1.0, dice: 1.0, focal: 0.0, tversky: 0.0,
            focal_gamma: 2.0, focal_alpha: null, tversky_alpha: 0.5, tversky_beta: 0.5}
    optim: {lr: 0.001, weight_decay: 0.0001, batch_size: 4, accumulate: 1, epochs: 10,
            warmup_epochs: 1.0, grad_clip: null}
    aug:   {...}   # validated by data.transforms.resolve_aug, passed on unchanged
    ema:   null | 0.999
    amp:   true | false | bf16 | fp16
    device: auto | cpu | cuda | cuda:N
    seed:  0

Relative paths (``data.root``, ``data.splits``, ``data.cache_dir`` and a file path in
``model.encoder_weights``) are resolved against the current directory of the process that calls
:func:`resolve_config`: the CLI or the search driver. A Ray worker must receive absolute paths,
because Tune may change its current directory, so the Tune trainable resolves with
``require_absolute=True``. ``data.splits: null`` stands for ``<data.root>/splits.json``.
"""

from __future__ import annotations

import copy
import difflib
import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from data.transforms import resolve_aug
from trainable.models import ARCHITECTURES, check_model_names, nearest_input_sizes

__all__ = [
    "ConfigError",
    "DEFAULTS",
    "apply_overrides",
    "config_keys",
    "default_config",
    "dump_config",
    "flatten_config",
    "load_config",
    "parse_override",
    "resolve_config",
    "save_config",
]

DEFAULTS: dict[str, Any] = {
    "data": {
        "root": None,
        "splits": None,
        "fold": 0,
        "cache_dir": None,
        "num_workers": 0,
    },
    "model": {
        "architecture": "Unet",
        "encoder": "resnet18",
        "encoder_weights": None,
    },
    "input_size": 256,
    "loss": {
        "bce": 1.0,
        "dice": 1.0,
        "focal": 0.0,
        "tversky": 0.0,
        "focal_gamma": 2.0,
        "focal_alpha": None,
        "tversky_alpha": 0.5,
        "tversky_beta": 0.5,
    },
    "optim": {
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "batch_size": 4,
        "accumulate": 1,
        "epochs": 10,
        "warmup_epochs": 1.0,
        "grad_clip": None,
    },
    "aug": {},
    "ema": None,
    "amp": True,
    "device": "auto",
    "seed": 0,
}
"""Default value of every config key. ``aug`` is a free-form section owned by data.transforms."""

# Sections whose content is validated elsewhere and passed on unchanged.
_FREE_FORM_SECTIONS = ("aug",)
_PATH_KEYS = ("data.root", "data.splits", "data.cache_dir")
_LOSS_TERMS = ("bce", "dice", "focal", "tversky")


class ConfigError(ValueError):
    """A training config has an unknown key, a value of the wrong type or range, or bad YAML."""


def default_config() -> dict[str, Any]:
    """Return a deep copy of :data:`DEFAULTS`."""
    return copy.deepcopy(DEFAULTS)


def config_keys() -> list[str]:
    """Return every valid dotted key, such as ``"model.encoder"``, in definition order."""
    return list(_flatten(DEFAULTS))


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML config file and return its mapping, unvalidated.

    Raises:
        ConfigError: the file is missing, is not valid YAML, or does not hold a mapping.
    """
    config_path = Path(path).expanduser()
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {config_path} not found") from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {config_path}: {error}") from None
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {config_path} is not valid YAML: {error}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(
            f"invalid config file {config_path}: expected a mapping of sections such as "
            f"'model:' and 'optim:', found a {type(content).__name__}"
        )
    return content


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``"optim.lr=0.01"`` into ``("optim.lr", 0.01)``, reading the value as YAML.

    ``null`` becomes None, ``true`` a bool, ``1e-3`` a float, ``[1, 2]`` a list; anything else
    stays a string.

    Raises:
        ConfigError: ``text`` has no ``=`` or an empty key.
    """
    key, separator, raw_value = text.partition("=")
    key = key.strip()
    if not separator or not key:
        raise ConfigError(f"invalid override {text!r}: expected KEY=VALUE, such as optim.lr=0.01")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else None
    except yaml.YAMLError:
        value = raw_value
    return key, value


def apply_overrides(
    config: Mapping[str, Any], overrides: Mapping[str, Any] | Iterable[str]
) -> dict[str, Any]:
    """Return a copy of ``config`` with values set by dotted path.

    Args:
        config: a nested config (partial or complete).
        overrides: ``{"model.encoder": "resnet34"}``, or strings ``"model.encoder=resnet34"``.
            A key inside the free-form ``aug`` section (``"aug.hflip"``) is allowed.

    Raises:
        ConfigError: a key is not a valid dotted path; the message lists the valid ones.
    """
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = [parse_override(text) for text in overrides]

    result = copy.deepcopy(dict(config))
    for key, value in items:
        _check_known_key(key)
        set_dotted(result, key, copy.deepcopy(value))
    return result


def set_dotted(config: dict, path: str, value: Any) -> None:
    """Set the value at a dotted path of a nested dict in place, creating missing parents."""
    parts = path.split(".")
    node = config
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def resolve_config(
    config: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    *,
    require_absolute: bool = False,
) -> dict[str, Any]:
    """Merge defaults, ``config`` and ``overrides``, validate every key and resolve paths.

    Top-level keys of ``config`` that contain a dot (``{"model.encoder": "resnet34"}``, the
    form a flat search space produces) are applied as overrides after the nested keys.

    Args:
        config: nested config, partial or complete; None for the defaults.
        overrides: dotted overrides applied last (see :func:`apply_overrides`).
        require_absolute: raise on a relative path instead of resolving it against the current
            directory. The Tune trainable sets it because a worker's current directory is not
            the driver's.

    Returns:
        A new, complete config of plain Python values with absolute paths.

    Raises:
        ConfigError: unknown key (the message lists the valid ones), wrong type or range (the
            message names the key, the value and what is expected), or a relative path when
            ``require_absolute`` is set.
    """
    config = dict(config or {})
    dotted = {key: config.pop(key) for key in list(config) if "." in key}
    merged = _merge(default_config(), config, prefix="")
    merged = apply_overrides(merged, dotted)
    if overrides:
        merged = apply_overrides(merged, overrides)

    validated = _validate(merged)
    _resolve_paths(validated, require_absolute)
    return validated


def flatten_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``{"model.encoder": "resnet18", ...}``; ``aug`` keys become ``"aug.hflip"``."""
    return _flatten(config)


def dump_config(config: Mapping[str, Any]) -> str:
    """Return ``config`` as YAML text, keys in definition order."""
    return yaml.safe_dump(_plain(config), sort_keys=False)


def save_config(path: str | os.PathLike, config: Mapping[str, Any]) -> Path:
    """Write ``config`` as YAML to ``path``, creating parent folders; return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dump_config(config), encoding="utf-8")
    return target


# ---------------------------------------------------------------------------------------------
# Merging


def _merge(base: dict[str, Any], update: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    for key, value in update.items():
        dotted = f"{prefix}{key}"
        if not isinstance(key, str):
            raise ConfigError(f"invalid config key {key!r}: keys are strings")
        if dotted in _FREE_FORM_SECTIONS:
            base[key] = copy.deepcopy(value)
            continue
        _check_known_key(dotted)
        if isinstance(base.get(key), dict):
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"config section {dotted!r} must be a mapping, got {value!r}; valid keys: "
                    + ", ".join(f"{dotted}.{child}" for child in base[key])
                )
            base[key] = _merge(base[key], value, prefix=f"{dotted}.")
        else:
            base[key] = copy.deepcopy(value)
    return base


def _check_known_key(dotted: str) -> None:
    if dotted.split(".")[0] in _FREE_FORM_SECTIONS:
        return
    valid = list(_flatten(DEFAULTS).keys()) + _section_names()
    if dotted in valid:
        return
    hint = difflib.get_close_matches(dotted, valid, n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise ConfigError(
        f"unknown config key {dotted!r}{suggestion}; valid keys: {', '.join(config_keys())}"
    )


def _section_names() -> list[str]:
    return [key for key, value in DEFAULTS.items() if isinstance(value, dict)]


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, prefix=f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _plain(value: Any) -> Any:
    """Convert NumPy scalars, tuples and Paths into plain YAML-safe values."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


# ---------------------------------------------------------------------------------------------
# Validation of single values


def _fail(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"invalid value {value!r} for config key {key!r}: expected {expected}")


def _integer(low: int | None = None, high: int | None = None) -> Callable[[str, Any], int]:
    def check(key: str, value: Any) -> int:
        expected = _range_text("an integer", low, high)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise _fail(key, value, expected)
        if (low is not None and value < low) or (high is not None and value > high):
            raise _fail(key, value, expected)
        return int(value)

    return check


def _real(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str, Any], float]:
    def check(key: str, value: Any) -> float:
        expected = _range_text("a number", low, high, low_open, high_open)
        if isinstance(value, str):
            # PyYAML reads 1e-3 (no dot in the mantissa) as a string.
            value = _float_or_none(value) if value.strip() else None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _fail(key, value, expected)
        number = float(value)
        if not math.isfinite(number):
            raise _fail(key, value, expected)
        if low is not None and (number < low or (low_open and number == low)):
            raise _fail(key, value, expected)
        if high is not None and (number > high or (high_open and number == high)):
            raise _fail(key, value, expected)
        return number

    return check


def _float_or_none(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _range_text(
    noun: str, low: float | None, high: float | None, low_open: bool = False, high_open: bool = False
) -> str:
    if low is not None and high is not None:
        left, right = ("(" if low_open else "["), (")" if high_open else "]")
        return f"{noun} in {left}{low}, {high}{right}"
    if low is not None:
        return f"{noun} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{noun} {'<' if high_open else '<='} {high}"
    return noun


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    def optional_check(key: str, value: Any) -> Any:
        return None if value is None else check(key, value)

    return optional_check


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(key, value, "a non-empty string")
    return value


def _path_text(key: str, value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise _fail(key, value, "a path (string)")
    return os.fspath(value)


def _architecture(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(key, value, "one of " + ", ".join(ARCHITECTURES))
    return value


def _encoder_weights(key: str, value: Any) -> str | None:
    if value is None or value == "imagenet":
        return value
    if isinstance(value, (str, os.PathLike)) and os.fspath(value):
        return os.fspath(value)
    raise _fail(key, value, "null, 'imagenet' or the path of a weights file")


def _input_size(key: str, value: Any) -> int:
    size = _integer(32)(key, value)
    if size % 32:
        nearest = " or ".join(str(s) for s in nearest_input_sizes(size))
        raise ConfigError(
            f"invalid value {size} for config key {key!r}: the models downsample by 32, so the "
            f"input size must be a multiple of 32; nearest valid sizes: {nearest}"
        )
    return size


def _amp(key: str, value: Any) -> bool | str:
    if isinstance(value, bool) or value in ("bf16", "fp16"):
        return value
    raise _fail(key, value, "true (bf16 where the GPU supports it, else fp16), false, 'bf16' or 'fp16'")


def _device(key: str, value: Any) -> str:
    if isinstance(value, str):
        if value in ("auto", "cpu", "cuda"):
            return value
        prefix, _, index = value.partition(":")
        if prefix == "cuda" and index.isdigit():
            return value
    raise _fail(key, value, "'auto', 'cpu', 'cuda' or 'cuda:N'")


def _aug(key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(key, value, "a mapping of augmentation settings (see data.transforms)")
    try:
        resolve_aug(value)
    except ValueError as error:
        raise ConfigError(f"invalid config section 'aug': {error}") from None
    return _plain(dict(value))


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "data.root": _optional(_path_text),
    "data.splits": _optional(_path_text),
    "data.fold": _integer(0),
    "data.cache_dir": _optional(_path_text),
    "data.num_workers": _integer(0),
    "model.architecture": _architecture,
    "model.encoder": _text,
    "model.encoder_weights": _encoder_weights,
    "input_size": _input_size,
    "loss.bce": _real(0.0),
    "loss.dice": _real(0.0),
    "loss.focal": _real(0.0),
    "loss.tversky": _real(0.0),
    "loss.focal_gamma": _real(0.0),
    "loss.focal_alpha": _optional(_real(0.0, 1.0)),
    "loss.tversky_alpha": _real(0.0),
    "loss.tversky_beta": _real(0.0),
    "optim.lr": _real(0.0, low_open=True),
    "optim.weight_decay": _real(0.0),
    "optim.batch_size": _integer(1),
    "optim.accumulate": _integer(1),
    "optim.epochs": _integer(1),
    "optim.warmup_epochs": _real(0.0),
    "optim.grad_clip": _optional(_real(0.0, low_open=True)),
    "aug": _aug,
    "ema": _optional(_real(0.0, 1.0, low_open=True, high_open=True)),
    "amp": _amp,
    "device": _device,
    "seed": _integer(0, 2**32 - 1),
}


def _validate(config: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(config)
    _check_structure(result)
    for dotted, check in _CHECKS.items():
        parts = dotted.split(".")
        node = result
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = check(dotted, node.get(parts[-1]))

    _check_combinations(result)
    return result


def _check_structure(config: dict[str, Any]) -> None:
    for key, value in config.items():
        _check_known_key(str(key))
        default = DEFAULTS[key]
        if key in _FREE_FORM_SECTIONS or not isinstance(default, dict):
            continue
        if not isinstance(value, dict):
            raise ConfigError(
                f"config section {key!r} must be a mapping, got {value!r}; valid keys: "
                + ", ".join(f"{key}.{child}" for child in default)
            )
        for child in value:
            _check_known_key(f"{key}.{child}")


def _check_combinations(config: dict[str, Any]) -> None:
    model = config["model"]
    try:
        check_model_names(model["architecture"], model["encoder"])
    except ValueError as error:
        raise ConfigError(str(error)) from None

    loss = config["loss"]
    if all(loss[term] == 0 for term in _LOSS_TERMS):
        raise ConfigError(
            "invalid loss weights: loss.bce, loss.dice, loss.focal and loss.tversky are all 0; "
            "give at least one of them a positive weight"
        )
    if loss["tversky"] > 0 and loss["tversky_alpha"] + loss["tversky_beta"] == 0:
        raise ConfigError(
            "invalid Tversky weights: loss.tversky_alpha and loss.tversky_beta are both 0; "
            "set at least one of them > 0 (0.5 and 0.5 give the soft Dice)"
        )

    optim = config["optim"]
    if optim["warmup_epochs"] > optim["epochs"]:
        raise ConfigError(
            f"invalid value {optim['warmup_epochs']!r} for config key 'optim.warmup_epochs': "
            f"expected at most optim.epochs ({optim['epochs']})"
        )


def _resolve_paths(config: dict[str, Any], require_absolute: bool) -> None:
    data = config["data"]
    if data["splits"] is None and data["root"] is not None:
        data["splits"] = os.path.join(data["root"], "splits.json")

    for dotted in _PATH_KEYS:
        section, key = dotted.split(".")
        value = config[section][key]
        if value is not None:
            config[section][key] = _absolute(dotted, value, require_absolute)

    weights = config["model"]["encoder_weights"]
    if weights not in (None, "imagenet"):
        config["model"]["encoder_weights"] = _absolute(
            "model.encoder_weights", weights, require_absolute
        )


def _absolute(key: str, value: str, require_absolute: bool) -> str:
    path = Path(value).expanduser()
    if not path.is_absolute():
        if require_absolute:
            raise ConfigError(
                f"config key {key!r} is the relative path {value!r}, but this process may run in "
                "another directory (a Ray worker); resolve the config with "
                "trainable.config.resolve_config in the driver, or give an absolute path"
            )
        path = Path.cwd() / path
    return os.path.normpath(os.fspath(path))
