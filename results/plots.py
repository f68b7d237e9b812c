"""PNG plots of an experiment: best-so-far Dice over wall time, learning curves, importances.

Every function draws on its own ``matplotlib.figure.Figure`` and saves it with the Agg
renderer, so nothing here touches pyplot's global state or needs a display.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from results.experiment import METRIC

_DPI = 120


def best_so_far(history: pd.DataFrame) -> pd.DataFrame:
    """Return the running maximum of ``val_dice`` over wall time across all trials.

    Args:
        history: ``Experiment.history()``.

    Returns:
        Columns ``wall_s`` (ascending), ``val_dice`` (the report's) and ``best_val_dice``
        (non-decreasing), one row per report with a finite ``val_dice`` and wall time.
    """
    reports = history[["wall_s", METRIC]].apply(pd.to_numeric, errors="coerce").dropna()
    reports = reports.sort_values("wall_s", kind="stable").reset_index(drop=True)
    reports["best_val_dice"] = reports[METRIC].cummax()
    return reports


def plot_best_so_far(history: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Plot every report's ``val_dice`` and the best so far against wall time since the start.

    The time axis is in seconds, minutes or hours, whichever keeps its numbers below about 120.
    Tune stamps reports to the whole second, so reports within one second share a time.

    Args:
        history: ``Experiment.history()``.
        path: the PNG to write.
        title: figure title, usually the experiment name.

    Returns:
        ``path``.
    """
    curve = best_so_far(history)
    figure = Figure(figsize=(8, 4.5))
    axes = figure.add_subplot()
    unit, seconds_per_unit = _time_unit(curve["wall_s"].max() if not curve.empty else 0.0)
    if curve.empty:
        _write_no_data(axes, "no val_dice reported yet")
    else:
        times = curve["wall_s"] / seconds_per_unit
        axes.scatter(times, curve[METRIC], s=10, color="0.65", label="each report")
        axes.step(
            times,
            curve["best_val_dice"],
            where="post",
            color="tab:blue",
            linewidth=2,
            label="best so far",
        )
        axes.set_ylim(*_dice_limits(curve[METRIC]))
        axes.set_xlim(left=0.0)
        axes.legend(loc="best")
    axes.set_xlabel(f"wall time since the experiment started ({unit})")
    axes.set_ylabel("validation Dice")
    axes.set_title(
        f"{title}: best validation Dice so far" if title else "best validation Dice so far"
    )
    axes.grid(alpha=0.3)
    return _save(figure, path)


def plot_learning_curves(
    history: pd.DataFrame, ranking: list[str], path: Path, highlight: int = 10, title: str = ""
) -> Path:
    """Plot ``val_dice`` per epoch, one line per trial; the best trials in colour with a legend.

    Args:
        history: ``Experiment.history()``.
        ranking: trial ids best first (the leaderboard's ``trial_id`` column).
        path: the PNG to write.
        highlight: how many of the best trials get a colour and a legend entry; the rest are
            drawn thin and grey.
        title: figure title, usually the experiment name.

    Returns:
        ``path``.
    """
    figure = Figure(figsize=(8, 4.5))
    axes = figure.add_subplot()
    reports = history.dropna(subset=["epoch"])
    reports = reports[pd.to_numeric(reports[METRIC], errors="coerce").notna()]
    if reports.empty:
        _write_no_data(axes, "no val_dice reported yet")
    else:
        _draw_curves(axes, reports, ranking, highlight)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("validation Dice")
    axes.set_title(f"{title}: learning curves" if title else "learning curves")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def _draw_curves(axes, reports: pd.DataFrame, ranking: list[str], highlight: int) -> None:
    """Draw the other trials grey first, then the best ones in colour, the best on top."""
    highlighted = ranking[:highlight]
    order = [trial_id for trial_id in ranking if trial_id not in highlighted] + highlighted[::-1]
    legend: dict[int, tuple[object, str]] = {}

    for trial_id in order:
        curve = reports[reports["trial_id"] == trial_id]
        if curve.empty:
            continue
        epochs = curve["epoch"].astype(float).to_numpy()
        values = pd.to_numeric(curve[METRIC]).to_numpy()
        if trial_id not in highlighted:
            axes.plot(epochs, values, color="0.75", linewidth=0.8)
            continue

        rank = highlighted.index(trial_id) + 1
        colour = f"C{(rank - 1) % 10}"
        (line,) = axes.plot(epochs, values, marker="o", markersize=3, color=colour)
        best = values.argmax()
        axes.scatter([epochs[best]], [values[best]], s=60, facecolors="none", edgecolors=colour)
        legend[rank] = (line, f"{rank}. {trial_id}")

    axes.set_ylim(*_dice_limits(pd.to_numeric(reports[METRIC])))
    if legend:
        entries = [legend[rank] for rank in sorted(legend)]
        axes.legend(
            [line for line, _ in entries],
            [label for _, label in entries],
            fontsize="small",
            loc="best",
        )


def plot_param_importance(
    importances: dict[str, float], path: Path, completed_trials: int, title: str = ""
) -> Path:
    """Plot hyperparameter importances as horizontal bars, the most important on top.

    Args:
        importances: parameter name to importance, from ``results.importance.param_importances``.
        path: the PNG to write.
        completed_trials: how many completed trials the estimate used, shown in the title.
        title: figure title, usually the experiment name.

    Returns:
        ``path``.
    """
    names = list(importances)[::-1]
    values = [importances[name] for name in names]
    figure = Figure(figsize=(8, max(2.5, 0.45 * len(names) + 1.5)))
    axes = figure.add_subplot()
    axes.barh(names, values, color="tab:blue")
    for position, value in enumerate(values):
        axes.text(value, position, f" {value:.2f}", va="center", fontsize="small")
    axes.set_xlim(0, max(values + [0.0]) * 1.15 or 1.0)
    axes.set_xlabel("importance (Optuna get_param_importances, sums to 1)")
    heading = f"hyperparameter importance, {completed_trials} completed trials"
    axes.set_title(f"{title}: {heading}" if title else heading)
    axes.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def _time_unit(longest_s: float) -> tuple[str, float]:
    """Pick seconds, minutes or hours so that the longest time reads as a number below ~120."""
    if longest_s < 120:
        return "s", 1.0
    if longest_s < 120 * 60:
        return "min", 60.0
    return "h", 3600.0


def _dice_limits(values: pd.Series) -> tuple[float, float]:
    """Return y limits for Dice values: their range widened to tenths, plus a 3 % margin."""
    lowest, highest = float(values.min()), float(values.max())
    if not (math.isfinite(lowest) and math.isfinite(highest)):
        return 0.0, 1.0
    bottom = max(0.0, math.floor(round(lowest * 10, 6)) / 10)
    top = min(1.0, math.ceil(round(highest * 10, 6)) / 10)
    if top <= bottom:
        top = min(1.0, bottom + 0.1)
        bottom = top - 0.1
    margin = 0.03 * (top - bottom)
    return bottom - margin, top + margin


def _write_no_data(axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes)


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI, format="png")
    return path
