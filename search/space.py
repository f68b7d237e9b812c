"""Search-space files: a YAML file of dotted training-config paths, turned into a Tune param space.

File format (``version: 1``)::

    version: 1                       # required, the format version
    description: free text           # optional
    base_config: base.yaml           # optional: a training-config YAML, path relative to this
                                     # file; the trainable's defaults fill the keys it leaves out
    space:                           # required: dotted config path -> value or distribution
      model.encoder: {choice: [resnet18, mobilenet_v2]}
      optim.lr: {loguniform: [1.0e-4, 3.0e-3]}    # log-uniform on [low, high], 0 < low < high
      loss.dice: {uniform: [0.5, 2.0]}            # uniform on [low, high], low < high
      optim.batch_size: {randint: [2, 8]}         # integer in [low, high], both ends included
      input_size: {choice: [64, 96, 128]}         # one of the listed scalars
      optim.epochs: 3                             # a fixed value (any YAML scalar or list)

Rules, checked when the file is loaded (:class:`SearchSpaceError` names the file and the key):

- Every key is a dotted path to a leaf of the training config (``trainable.config.DEFAULTS``),
  or ``aug.NAME`` for a key of ``data.transforms.AUG_DEFAULTS``. ``data.root``, ``data.splits``
  and ``data.fold`` are rejected because the search sets them itself, and the other ``data.*``
  keys (``data.cache_dir``, ``data.num_workers``) can only be fixed.
- A mapping value is a distribution: exactly one of ``choice``, ``uniform``, ``loguniform``,
  ``randint``. To fix a nested mapping, list its leaves one by one.
- At least one key has a distribution (Optuna needs a parameter to sample).
- ``optim.epochs`` must be a fixed positive integer: it is the epoch budget, ASHA's ``max_t``.
- Each choice value and both bounds of every range are validated as a full training config, so
  an unknown encoder fails before the search starts.

In the Tune param space, and in the Optuna study, a searched parameter is named by its config
path joined with ``/`` (``model/encoder``), which is how Ray's OptunaSearch flattens nested
configs.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ray import tune

from trainable import config as training_config
from trainable.config import set_dotted

FORMAT_VERSION = 1
"""Version of the search-space file format read by this module."""

DISTRIBUTIONS: tuple[str, ...] = ("choice", "uniform", "loguniform", "randint")
"""Names of the distributions a space file may use."""

EPOCHS_KEY = "optim.epochs"
"""Config path of the epoch budget; fixed in every space because it is ASHA's ``max_t``."""

_TOP_LEVEL_KEYS = ("version", "description", "base_config", "space")
_SEARCH_SET_KEYS = ("data.root", "data.splits", "data.fold")
_DATA_PREFIX = "data."
_FREE_FORM_PREFIX = "aug."


class SearchSpaceError(ValueError):
    """A search-space file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class Distribution:
    """One searched parameter: a distribution name and its arguments as written in the file.

    Attributes:
        kind: one of :data:`DISTRIBUTIONS`.
        args: the choices (``choice``) or ``(low, high)`` (the ranges).
    """

    kind: str
    args: tuple

    def to_tune(self) -> tune.search.sample.Domain:
        """Return the Ray Tune domain of this distribution (``randint`` keeps ``high`` included)."""
        if self.kind == "choice":
            return tune.choice(list(self.args))
        low, high = self.args
        if self.kind == "uniform":
            return tune.uniform(low, high)
        if self.kind == "loguniform":
            return tune.loguniform(low, high)
        return tune.randint(low, high + 1)  # Tune's upper bound is exclusive

    def probe_values(self) -> list:
        """Return the values that are validated as full configs: every choice, or both bounds."""
        return list(self.args)

    def to_dict(self) -> dict[str, list]:
        """Return the file form, ``{kind: [args...]}``."""
        return {self.kind: list(self.args)}


@dataclass(frozen=True)
class SearchSpace:
    """A loaded and validated search space.

    Attributes:
        source: absolute path of the space file.
        base_config: the resolved training config before sampling: trainable defaults, then the
            ``base_config`` file, then the fixed values of ``space``. Searched leaves keep their
            base values here.
        params: dotted config path -> :class:`Distribution`, in file order.
        fixed: dotted config path -> fixed value, in file order.
    """

    source: Path
    base_config: dict
    params: dict[str, Distribution]
    fixed: dict[str, Any]

    @property
    def epochs(self) -> int:
        """The epoch budget of every trial (``optim.epochs``), ASHA's ``max_t``."""
        return int(get_dotted(self.base_config, EPOCHS_KEY))

    def param_space(self, config_overrides: Mapping[str, Any] | None = None) -> dict:
        """Build the nested Tune param space: the base config with Tune domains at searched leaves.

        Args:
            config_overrides: dotted path -> fixed value applied to the base config first, such
                as the data root, split file and fold that the search sets.

        Returns:
            A nested dict shaped like the training config; searched leaves hold
            ``ray.tune`` domains.
        """
        space = copy.deepcopy(self.base_config)
        for path, value in (config_overrides or {}).items():
            set_dotted(space, path, value)
        for path, distribution in self.params.items():
            set_dotted(space, path, distribution.to_tune())
        return space


def get_dotted(config: Mapping, path: str) -> Any:
    """Return the value at a dotted path (``"model.encoder"``) of a nested mapping.

    Raises:
        KeyError: a part of the path is missing or its parent is not a mapping.
    """
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def load_space(path: str | os.PathLike) -> SearchSpace:
    """Read, validate and resolve a search-space file.

    Args:
        path: the YAML file; the format is in this module's docstring.

    Returns:
        The validated :class:`SearchSpace`.

    Raises:
        SearchSpaceError: the file is missing or not YAML, or a key, value or distribution is
            invalid. The message names the file and the key.
    """
    source = Path(path).expanduser().resolve()
    if not source.is_file():
        raise SearchSpaceError(
            f"search-space file not found: {source}; pass an existing YAML file such as "
            "search/spaces/cpu_small.yaml"
        )
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SearchSpaceError(f"{source}: invalid YAML: {error}") from error
    return parse_space(raw, source)


def parse_space(raw: Any, source: Path) -> SearchSpace:
    """Validate the parsed YAML of a space file and resolve it against the training config.

    Args:
        raw: the object parsed from the file.
        source: the file, for messages and for resolving a relative ``base_config``.

    Returns:
        The validated :class:`SearchSpace`.

    Raises:
        SearchSpaceError: see :func:`load_space`.
    """
    _check_top_level(raw, source)
    base_raw = _load_base_config(raw.get("base_config"), source)

    params: dict[str, Distribution] = {}
    fixed: dict[str, Any] = {}
    for key, value in raw["space"].items():
        _check_key(key, source)
        if isinstance(value, Mapping) and key.startswith(_DATA_PREFIX):
            raise SearchSpaceError(
                f"{source}: key {key!r} can only be fixed: every trial reads the same data"
            )
        if isinstance(value, Mapping):
            params[key] = _parse_distribution(key, value, source)
        else:
            fixed[key] = value

    if not params:
        raise SearchSpaceError(
            f"{source}: 'space' has only fixed values; give at least one key a distribution "
            f"({', '.join(DISTRIBUTIONS)}), such as {{choice: [resnet18]}}"
        )
    base = _resolve(base_raw, fixed, f"{source}: the base config with the fixed values of 'space'")
    _check_epochs(base, params, source)
    for key, distribution in params.items():
        for value in distribution.probe_values():
            _resolve(base, {key: value}, f"{source}: key {key!r} with value {value!r}")
    return SearchSpace(source=source, base_config=base, params=params, fixed=fixed)


def _check_top_level(raw: Any, source: Path) -> None:
    if not isinstance(raw, Mapping):
        raise SearchSpaceError(
            f"{source}: expected a mapping with keys {', '.join(_TOP_LEVEL_KEYS)}, "
            f"got {type(raw).__name__}"
        )
    unknown = sorted(str(key) for key in raw if key not in _TOP_LEVEL_KEYS)
    if unknown:
        raise SearchSpaceError(
            f"{source}: unknown top-level key(s) {', '.join(unknown)}; "
            f"valid keys: {', '.join(_TOP_LEVEL_KEYS)}"
        )
    if raw.get("version") != FORMAT_VERSION:
        raise SearchSpaceError(
            f"{source}: unsupported or missing version {raw.get('version')!r}; "
            f"this code reads version: {FORMAT_VERSION}"
        )
    space = raw.get("space")
    if not isinstance(space, Mapping) or not space:
        raise SearchSpaceError(
            f"{source}: 'space' must be a non-empty mapping of dotted config paths, "
            f"got {space!r}"
        )


def _load_base_config(base_path: Any, source: Path) -> dict:
    if base_path is None:
        return {}
    if not isinstance(base_path, str):
        raise SearchSpaceError(f"{source}: base_config must be a file path, got {base_path!r}")
    try:
        return training_config.load_config((source.parent / base_path).resolve())
    except ValueError as error:
        raise SearchSpaceError(f"{source}: base_config {base_path!r}: {error}") from error


def _check_key(key: Any, source: Path) -> None:
    if not isinstance(key, str) or not key:
        raise SearchSpaceError(f"{source}: invalid key {key!r}; expected a dotted config path")
    if key in _SEARCH_SET_KEYS:
        raise SearchSpaceError(
            f"{source}: key {key!r} cannot be set in a space: the search sets data.root, "
            "data.splits and data.fold itself (use --data-root and --fold)"
        )
    sections = [name for name, value in training_config.DEFAULTS.items() if isinstance(value, dict)]
    if key in sections:
        example = f"{key}.strength" if key == "aug" else next(
            f"{key}.{leaf}" for leaf in training_config.DEFAULTS[key]
        )
        raise SearchSpaceError(
            f"{source}: key {key!r} is a config section, not a leaf; search its leaves one by "
            f"one, such as {example}"
        )
    # Keys inside the free-form aug section are checked with their values by data.transforms.
    if key.startswith(_FREE_FORM_PREFIX):
        return
    valid = [name for name in training_config.config_keys() if name not in sections]
    if key not in valid:
        hint = difflib.get_close_matches(key, valid, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise SearchSpaceError(
            f"{source}: unknown config key {key!r}{suggestion}; valid keys: {', '.join(valid)}, "
            "and aug.* keys of data.transforms.AUG_DEFAULTS"
        )


def _parse_distribution(key: str, value: Mapping, source: Path) -> Distribution:
    if len(value) != 1:
        raise SearchSpaceError(
            f"{source}: key {key!r}: a distribution is a mapping with exactly one of "
            f"{', '.join(DISTRIBUTIONS)}, got {dict(value)!r}; to fix a nested value, "
            "list its leaves by dotted path"
        )
    (kind, args), = value.items()
    if kind not in DISTRIBUTIONS:
        raise SearchSpaceError(
            f"{source}: key {key!r}: unknown distribution {kind!r}; "
            f"expected one of {', '.join(DISTRIBUTIONS)}"
        )
    if kind == "choice":
        return Distribution(kind, _check_choices(key, args, source))
    return Distribution(kind, _check_range(key, kind, args, source))


def _check_choices(key: str, args: Any, source: Path) -> tuple:
    if not isinstance(args, list) or not args:
        raise SearchSpaceError(f"{source}: key {key!r}: choice needs a non-empty list, got {args!r}")
    for option in args:
        # Optuna's CategoricalDistribution stores only None, bool, int, float and str.
        if option is not None and not isinstance(option, (bool, int, float, str)):
            raise SearchSpaceError(
                f"{source}: key {key!r}: choice values must be scalars "
                f"(string, number, boolean or null), got {option!r}"
            )
    if len(set(map(repr, args))) != len(args):
        raise SearchSpaceError(f"{source}: key {key!r}: choice lists a value twice: {args!r}")
    return tuple(args)


def _check_range(key: str, kind: str, args: Any, source: Path) -> tuple:
    expected = "[low, high] with low < high"
    if kind == "randint":
        expected = "[low, high] integers with low <= high (both included)"
    elif kind == "loguniform":
        expected = "[low, high] with 0 < low < high"
    if not isinstance(args, list) or len(args) != 2:
        raise SearchSpaceError(f"{source}: key {key!r}: {kind} needs {expected}, got {args!r}")

    low, high = args
    numbers = all(
        isinstance(bound, (int, float)) and not isinstance(bound, bool) and math.isfinite(bound)
        for bound in (low, high)
    )
    if kind == "randint":
        valid = numbers and all(isinstance(b, int) for b in (low, high)) and low <= high
    elif kind == "loguniform":
        valid = numbers and 0 < low < high
    else:
        valid = numbers and low < high
    if not valid:
        raise SearchSpaceError(f"{source}: key {key!r}: {kind} needs {expected}, got {args!r}")
    return (low, high)


def _check_epochs(base: dict, params: Mapping[str, Distribution], source: Path) -> None:
    if EPOCHS_KEY in params:
        raise SearchSpaceError(
            f"{source}: key {EPOCHS_KEY!r} must be a fixed value, not a distribution: it is the "
            "epoch budget of every trial and ASHA's max_t"
        )
    epochs = get_dotted(base, EPOCHS_KEY)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise SearchSpaceError(
            f"{source}: key {EPOCHS_KEY!r} must be a positive integer, got {epochs!r}"
        )


def _resolve(config: Mapping[str, Any], overrides: Mapping[str, Any], context: str) -> dict:
    try:
        return training_config.resolve_config(config, overrides)
    except ValueError as error:
        raise SearchSpaceError(f"{context}: {error}") from error
