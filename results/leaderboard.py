"""The leaderboard and per-class Dice tables as printed text and as CSV files.

``leaderboard.csv``, format_version 1: one row per trial, best ``val_dice`` first.

=================  ==============================================================================
column             contents
=================  ==============================================================================
format_version     1 in every row; a reader rejects other versions
trial_id           Tune's trial id, such as "ffde1_00003"
val_dice           the trial's best validation Dice (mean over the classes, in [0, 1]); empty
                   before its first report
best_epoch         the epoch of that best report
epochs             epochs reported so far
time_s             training seconds so far (Tune's time_total_s)
status             PENDING, RUNNING, PAUSED, TERMINATED, ERROR, or unknown
checkpoint         absolute path of the directory holding the best epoch's model.pt; empty when
                   the best epoch has no checkpoint on disk
config/<a>/<b>     the trial's config, one column per leaf; nested keys are joined with "/", and
                   lists are written as their Python repr
=================  ==============================================================================

``per_class_dice.csv``, format_version 1: ``format_version``, ``trial_id``, ``val_dice``,
``best_epoch``, then one column per class name (``data.classes.CLASSES`` order) holding the
validation Dice of that class at the trial's best epoch; empty where the trial did not report
the class.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

LEADERBOARD_FORMAT_VERSION = 1
PER_CLASS_FORMAT_VERSION = 1

_CONFIG_PREFIX = "config/"


def write_leaderboard_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write ``Experiment.leaderboard()`` to ``path`` in the format above; return the path."""
    return _write_versioned_csv(table, Path(path), LEADERBOARD_FORMAT_VERSION)


def write_per_class_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write ``Experiment.per_class_dice()`` to ``path`` in the format above; return the path."""
    return _write_versioned_csv(table, Path(path), PER_CLASS_FORMAT_VERSION)


def read_leaderboard_csv(path: str | Path) -> pd.DataFrame:
    """Read a ``leaderboard.csv`` back as the DataFrame ``Experiment.leaderboard()`` returned.

    Raises:
        ValueError: the file has no ``format_version`` column or another version; the message
            names the file and the version found.
    """
    path = Path(path)
    # Trial ids such as "00123456" are text: read them as str so no leading zero is lost.
    table = pd.read_csv(path, dtype={"trial_id": str, "status": str, "checkpoint": str})
    if "format_version" not in table.columns:
        raise ValueError(
            f"{path}: no format_version column; expected a leaderboard.csv written by "
            f"results.report"
        )

    versions = set(table["format_version"].dropna().astype(int))
    if versions - {LEADERBOARD_FORMAT_VERSION}:
        raise ValueError(
            f"{path}: leaderboard format_version {sorted(versions)} is not supported (this reader "
            f"reads version {LEADERBOARD_FORMAT_VERSION}); rewrite it with python -m results.report"
        )

    table = table.drop(columns="format_version")
    table["best_epoch"] = table["best_epoch"].astype("Int64")
    table["checkpoint"] = (
        table["checkpoint"].astype(object).where(table["checkpoint"].notna(), None)
    )
    return table


def _write_versioned_csv(table: pd.DataFrame, path: Path, version: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    versioned = table.copy()
    versioned.insert(0, "format_version", version)
    versioned.to_csv(path, index=False)
    return path


def varied_config_columns(table: pd.DataFrame) -> list[str]:
    """Return the ``config/...`` columns whose value differs between trials."""
    return [
        column
        for column in table.columns
        if column.startswith(_CONFIG_PREFIX) and table[column].astype(str).nunique() > 1
    ]


def format_leaderboard(table: pd.DataFrame, top: int | None = None) -> str:
    """Format the leaderboard as a plain-text table for a terminal.

    Shows only the config columns that differ between trials, without their "config/" prefix,
    and only the name of each checkpoint directory inside its trial directory (the CSV has the
    full paths).

    Args:
        table: ``Experiment.leaderboard()``.
        top: show only the first ``top`` rows (None: all).

    Returns:
        The table text, or a one-line message when there are no trials.
    """
    if table.empty:
        return "no trials yet"

    shown = table if top is None else table.head(top)
    config_columns = varied_config_columns(table)
    columns = (
        ["trial_id", "val_dice", "best_epoch", "epochs", "time_s", "status"]
        + config_columns
        + ["checkpoint"]
    )
    text_table = shown[columns].copy()
    text_table["val_dice"] = shown["val_dice"].map(
        lambda value: "-" if pd.isna(value) else f"{value:.4f}"
    )
    text_table["time_s"] = shown["time_s"].map(
        lambda value: "-" if pd.isna(value) else f"{value:.1f}"
    )
    text_table["checkpoint"] = shown["checkpoint"].map(_checkpoint_name)
    text_table = text_table.rename(
        columns={column: column[len(_CONFIG_PREFIX) :] for column in config_columns}
    )

    text = text_table.to_string(index=False, na_rep="-")
    if top is not None and len(table) > top:
        text += f"\n({len(table) - top} more trials in the CSV)"
    return text


def format_per_class_dice(table: pd.DataFrame) -> str:
    """Format ``Experiment.per_class_dice()`` with one row per class and one column per trial."""
    if table.empty:
        return "no trial has reported yet"
    if len(table.columns) <= 3:
        return "the trials reported no per-class Dice (no dice/<class> keys)"

    by_class = table.drop(columns=["val_dice", "best_epoch"]).set_index("trial_id").T
    by_class.index.name = "class"
    return by_class.to_string(float_format=lambda value: f"{value:.3f}", na_rep="-")


def _checkpoint_name(value: object) -> str:
    if not isinstance(value, str) or not value:
        return "-"
    return Path(value).name
