"""Checkpoint files: the model file other stages load, and the training state for resumption.

``model.pt`` (format version 1), a dict that loads with ``torch.load(weights_only=True)``::

    {"format_version": 1,
     "state_dict": {name: tensor},    # CPU tensors; the EMA weights when EMA was on
     "config": {...},                 # the resolved training config (trainable.config)
     "classes": ["finger-1", ...],    # the 29 channel names, data.classes.CLASSES order
     "epoch": 7,                      # 1-based epoch after which the weights were taken
     "metrics": {"val_dice": 0.91, "dice/finger-1": 0.88, ...}}

``training_state.pt`` contains what resuming needs: raw and EMA weights, optimizer, scheduler and
grad-scaler states, the epoch, the best score so far and the random states. A checkpoint folder
written by :func:`save_checkpoint_dir` contains both files and ``metrics.json`` (the metrics and
epoch as JSON, readable without torch).
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.optim.swa_utils import AveragedModel

from data.classes import CLASSES
from trainable.config import dump_config
from trainable.models import build_model

__all__ = [
    "FORMAT_VERSION",
    "METRICS_FILE",
    "MODEL_FILE",
    "STATE_FILE",
    "CheckpointError",
    "capture_rng_state",
    "load_model",
    "load_training_state",
    "read_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
    "save_checkpoint_dir",
    "save_training_state",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the ``model.pt`` and ``training_state.pt`` formats written by this module."""

MODEL_FILE = "model.pt"
STATE_FILE = "training_state.pt"
METRICS_FILE = "metrics.json"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, of another format version or class list."""


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    config: Mapping[str, Any],
    epoch: int,
    metrics: Mapping[str, Any],
) -> Path:
    """Write ``model.pt`` (see the module docstring) atomically.

    Args:
        path: the file to write, or an existing folder to write ``model.pt`` into.
        model: the model, or an ``AveragedModel`` whose averaged module is saved.
        config: the resolved training config.
        epoch: 1-based epoch after which the weights were taken.
        metrics: numbers (floats or ints) by name; other values are left out.

    Returns:
        The path written.
    """
    target = Path(path)
    if target.is_dir():
        target = target / MODEL_FILE
    module = model.module if isinstance(model, AveragedModel) else model
    payload = {
        "format_version": FORMAT_VERSION,
        "state_dict": {key: value.detach().cpu() for key, value in module.state_dict().items()},
        "config": _plain_config(config),
        "classes": list(CLASSES),
        "epoch": int(epoch),
        "metrics": _plain_metrics(metrics),
    }
    _atomic_save(payload, target)
    return target


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check a ``model.pt`` file (or a folder holding one) on the CPU.

    Raises:
        CheckpointError: the file is missing or unreadable, its ``format_version`` is not 1, a
            field is missing, or its class list differs from ``data.classes.CLASSES``.
    """
    file_path = _model_file(path)
    payload = _load(file_path, "checkpoint")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {file_path} has format_version {version!r}, expected {FORMAT_VERSION}; "
            "it was written by another version of this project"
        )
    missing = [key for key in ("state_dict", "config", "classes", "epoch", "metrics") if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {file_path} lacks the fields {missing}")
    classes = list(payload["classes"])
    if classes != list(CLASSES):
        differences = [
            f"channel {i}: {a!r} vs {b!r}"
            for i, (a, b) in enumerate(zip(classes, CLASSES))
            if a != b
        ]
        raise CheckpointError(
            f"checkpoint {file_path} was trained on another class list ({len(classes)} classes, "
            f"expected the {len(CLASSES)} of data.classes.CLASSES; "
            f"{'; '.join(differences[:3]) or 'different length'}); it cannot predict these masks"
        )
    return payload


def load_model(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from ``model.pt`` or a checkpoint folder holding one.

    The model is built from the saved config with ``encoder_weights`` set to None, so loading
    never downloads anything, and then receives the saved weights.

    Returns:
        ``(model, config)``: the model in eval mode on ``device`` (``(N, 1, H, W)`` in [0, 1]
        to ``(N, 29, H, W)`` logits), and the resolved config it was trained with.

    Raises:
        CheckpointError: see :func:`read_checkpoint`, or the weights do not fit the model.
    """
    payload = read_checkpoint(path)
    config = payload["config"]
    build_config = {**config, "model": {**config["model"], "encoder_weights": None}}
    model = build_model(build_config)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(
            f"the weights in {_model_file(path)} do not fit {config['model']['architecture']} "
            f"with encoder {config['model']['encoder']!r}: {error}"
        ) from None
    model.to(device).eval()
    return model, config


def save_training_state(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write a training-state dict (tensors, numbers, strings, lists, dicts) atomically."""
    target = Path(path)
    if target.is_dir():
        target = target / STATE_FILE
    _atomic_save({"format_version": FORMAT_VERSION, **state}, target)
    return target


def load_training_state(path: str | os.PathLike) -> dict[str, Any]:
    """Load a training state written by :func:`save_training_state` (file or folder).

    Raises:
        CheckpointError: missing or unreadable file, or another format version.
    """
    file_path = Path(path)
    if file_path.is_dir():
        file_path = file_path / STATE_FILE
    state = _load(file_path, "training state")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"training state {file_path} has format_version {state.get('format_version')!r}, "
            f"expected {FORMAT_VERSION}"
        )
    return state


def save_checkpoint_dir(
    directory: str | os.PathLike,
    model: nn.Module,
    config: Mapping[str, Any],
    epoch: int,
    metrics: Mapping[str, Any],
    training_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model.pt``, ``metrics.json`` and, when given, ``training_state.pt`` into a folder."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / MODEL_FILE, model, config, epoch, metrics)
    if training_state is not None:
        save_training_state(folder / STATE_FILE, training_state)
    summary = {"epoch": int(epoch), **_plain_metrics(metrics)}
    (folder / METRICS_FILE).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return folder


def capture_rng_state() -> dict[str, Any]:
    """Return the Python, NumPy, torch CPU and CUDA random states as weights-only-safe values."""
    numpy_state = np.random.get_state()
    python_version, python_internal, python_gauss = random.getstate()
    return {
        "python": [python_version, list(python_internal), python_gauss],
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore random states captured by :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda")
    if cuda_states is not None and torch.cuda.is_available():
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            logger.warning(
                "not restoring CUDA random states: saved for %d GPUs, %d visible now",
                len(cuda_states),
                torch.cuda.device_count(),
            )


def _model_file(path: str | os.PathLike) -> Path:
    file_path = Path(path)
    return file_path / MODEL_FILE if file_path.is_dir() else file_path


def _load(file_path: Path, what: str) -> dict[str, Any]:
    if not file_path.is_file():
        raise CheckpointError(f"{what} file {file_path} not found")
    try:
        payload = torch.load(file_path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch.load raises many types on a bad file
        raise CheckpointError(
            f"cannot read {what} file {file_path}: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"invalid {what} file {file_path}: expected a dict, found {type(payload).__name__}"
        )
    return payload


def _atomic_save(payload: Mapping[str, Any], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    try:
        torch.save(dict(payload), temp_name)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _plain_config(config: Mapping[str, Any]) -> dict[str, Any]:
    # A round trip through YAML leaves only plain values, which weights_only loading accepts.
    return yaml.safe_load(dump_config(config))


def _plain_metrics(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    plain: dict[str, float | int] = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, np.integer)):
            plain[str(key)] = int(value)
        elif isinstance(value, (float, np.floating)) or (torch.is_tensor(value) and value.numel() == 1):
            plain[str(key)] = float(value)
        else:
            logger.debug("metric %s of type %s is not saved", key, type(value).__name__)
    return plain
