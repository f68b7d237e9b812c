"""The Ray Tune function trainable: one trial trains one config and reports every epoch.

Reporting uses the Ray 2.60 function-trainable API: ``ray.tune.report(metrics,
checkpoint=ray.tune.Checkpoint.from_directory(folder))`` once per epoch, and
``ray.tune.get_checkpoint()`` on start to resume after a failure. Each checkpoint folder contains
that epoch's ``model.pt``, ``metrics.json`` and ``training_state.pt`` (see trainable.checkpoint).

Keeping the best epoch with bounded disk use. The Tuner must get :func:`checkpoint_config`:
``num_to_keep`` checkpoints ranked by ``val_dice``, highest kept. In Ray 2.60
(``ray.train._internal.checkpoint_manager._CheckpointManager.register_checkpoint``) the latest
checkpoint is never deleted when it is registered, even when it ranks below the kept ones. So a
trial's folder contains at most ``num_to_keep + 1`` checkpoints: the best ones and the latest. The
best epoch's weights stay on disk, and ``ray.tune.get_checkpoint()`` after a failure returns the
latest one, from which the trial resumes at the next epoch. ``Result.checkpoint`` is the latest
checkpoint; use :func:`best_checkpoint` (or the reports' ``checkpoint_dir_name``, as
results.experiment does) for the best.

Paths come only from the config, which must be resolved with absolute paths in the driver,
because Tune may run a trial in another current directory. With ``data.cache_dir`` set, every
trial on a machine memory-maps the same decoded-data cache on disk instead of receiving images
through Ray's object store.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ray.tune

from trainable.checkpoint import MODEL_FILE, STATE_FILE, load_training_state
from trainable.config import resolve_config
from trainable.loop import Trainer, train

__all__ = [
    "CHECKPOINT_METRIC",
    "CHECKPOINT_MODE",
    "best_checkpoint",
    "checkpoint_config",
    "report_epoch",
    "train_tune",
]

logger = logging.getLogger(__name__)

CHECKPOINT_METRIC = "val_dice"
"""The reported metric that ranks checkpoints."""

CHECKPOINT_MODE = "max"
"""Higher ``val_dice`` is better."""


def checkpoint_config(num_to_keep: int = 1) -> ray.tune.CheckpointConfig:
    """Return the checkpoint policy the Tuner needs: keep the ``num_to_keep`` best by Dice.

    With Ray 2.60 a trial keeps at most ``num_to_keep + 1`` checkpoint folders on disk: the best
    ``num_to_keep`` by ``val_dice`` and the latest (see the module docstring).

    Raises:
        ValueError: ``num_to_keep`` is not a positive integer.
    """
    if isinstance(num_to_keep, bool) or not isinstance(num_to_keep, int) or num_to_keep < 1:
        raise ValueError(f"num_to_keep must be a positive integer, got {num_to_keep!r}")
    return ray.tune.CheckpointConfig(
        num_to_keep=num_to_keep,
        checkpoint_score_attribute=CHECKPOINT_METRIC,
        checkpoint_score_order=CHECKPOINT_MODE,
    )


def report_epoch(metrics: Mapping[str, Any], write_checkpoint: Callable[[Path], Any]) -> None:
    """Report one epoch's metrics to Tune with a checkpoint folder written by ``write_checkpoint``.

    ``write_checkpoint(folder)`` fills a fresh temporary folder; ``ray.tune.report`` persists it
    to the trial's storage before returning, and the temporary folder is removed afterwards.
    """
    with tempfile.TemporaryDirectory(prefix="handbone-checkpoint-") as folder:
        write_checkpoint(Path(folder))
        ray.tune.report(dict(metrics), checkpoint=ray.tune.Checkpoint.from_directory(folder))


def train_tune(
    config: Mapping[str, Any], *, after_report: Callable[[dict[str, float]], None] | None = None
) -> None:
    """Train one trial's config under Ray Tune, reporting and checkpointing every epoch.

    Returns None because Ray 2.60's function-trainable wrapper raises on a return value other
    than None, a number or a dict (``ray.tune.trainable.function_trainable.wrap_function``).

    Args:
        config: the trial's training config, complete or partial (defaults fill the rest), with
            absolute paths.
        after_report: called with each epoch's metrics after they are reported; a test hook.

    Raises:
        trainable.config.ConfigError: invalid config, or a relative path.
    """
    resolved = resolve_config(config, require_absolute=True)
    resume_state = _latest_training_state()

    def reporter(metrics: dict[str, float], trainer: Trainer) -> None:
        report_epoch(metrics, lambda folder: trainer.save_checkpoint_dir(folder, metrics))
        if after_report is not None:
            after_report(metrics)

    summary = train(resolved, reporter, resume_state=resume_state)
    logger.info("trial finished: best val_dice %.4f at epoch %d", summary.best_val_dice, summary.best_epoch)


def best_checkpoint(result: ray.tune.Result) -> Path | None:
    """Return the folder of the best-``val_dice`` checkpoint of a finished trial, or None."""
    checkpoint = result.get_best_checkpoint(CHECKPOINT_METRIC, CHECKPOINT_MODE)
    if checkpoint is None:
        return None
    folder = Path(checkpoint.path)
    return folder if (folder / MODEL_FILE).is_file() else None


def _latest_training_state() -> dict[str, Any] | None:
    checkpoint = ray.tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        state = load_training_state(Path(folder) / STATE_FILE)
    logger.info("resuming from checkpoint %s after epoch %d", checkpoint.path, state["epoch"])
    return state
