"""The function that Ray Tune runs for every trial of the search."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainable.tune_trainable import train_tune


def run_trial(config: Mapping[str, Any]) -> None:
    """Train one trial's config with ``trainable.tune_trainable.train_tune``, returning nothing.

    ``train_tune`` reports ``val_dice`` and a checkpoint every epoch and returns a summary for
    direct callers. Ray 2.60's function-trainable wrapper raises on any return value other than
    None, a number or a dict (``ray.tune.trainable.function_trainable``), so the summary stays
    here.

    Args:
        config: the trial's training config with absolute paths.
    """
    train_tune(config)
