"""Read a Ray Tune experiment back from its directory, also while the search still runs.

``load_experiment(path)`` reads every trial's config, reports and status straight from Tune's
files (see ``results.tune_files``), so it needs no Ray cluster. A trial that has not reported
yet appears with no results; a half-written last report is ignored until Tune finishes it.

Each trial's best epoch is the report with the highest ``val_dice`` (the latest one on a
tie, because Ray 2.60's checkpoint manager keeps the later of two equal-scored checkpoints). Its checkpoint is the directory named by that report's ``checkpoint_dir_name``, which
is the best epoch's, not the trial's latest.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from data.classes import CLASS_INDEX
from results import tune_files

logger = logging.getLogger(__name__)

METRIC = "val_dice"
"""The metric a trial is ranked by (mean validation Dice over classes, in [0, 1])."""

CLASS_DICE_PREFIX = "dice/"
"""Prefix of the per-class validation Dice keys a trial reports, as in "dice/Radius"."""

MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"
"""The epoch and metrics beside model.pt in a checkpoint directory (trainable.checkpoint)."""
STUDY_FILE = "optuna_study.db"

LEADERBOARD_COLUMNS: tuple[str, ...] = (
    "trial_id",
    "val_dice",
    "best_epoch",
    "epochs",
    "time_s",
    "status",
    "checkpoint",
)
"""Leading leaderboard columns; the trial's flattened config follows as ``config/...``."""

UNKNOWN_STATUS = "unknown"


class ExperimentError(ValueError):
    """A path is not a readable Ray Tune experiment directory."""


@dataclass(frozen=True)
class Trial:
    """One trial of an experiment, as read from its files.

    Attributes:
        trial_id: Tune's trial id, such as "ffde1_00003".
        path: the trial directory (absent for a trial Tune has not started).
        config: the trial's config, nested as the trainable received it.
        results: complete reports in report order, one per epoch.
        status: PENDING, RUNNING, PAUSED, TERMINATED, ERROR, or "unknown" when Tune's state
            file does not list the trial yet.
        checkpoint: the best epoch's checkpoint directory (with model.pt), or None when it is
            not on disk or its metrics.json names another epoch.
    """

    trial_id: str
    path: Path
    config: dict[str, Any]
    results: tuple[dict[str, Any], ...] = field(repr=False)
    status: str
    checkpoint: Path | None = None

    @property
    def best_result(self) -> dict[str, Any] | None:
        """The report with the highest finite ``val_dice`` (latest on a tie), or None."""
        index = best_result_index(self.results, METRIC)
        return None if index is None else self.results[index]

    @property
    def best_epoch(self) -> int | None:
        """The best report's "epoch" value (its training_iteration when it has none)."""
        best = self.best_result
        return None if best is None else report_epoch(best)

    @property
    def epochs(self) -> int:
        """The number of distinct epochs the trial has reported.

        A trial that Tune restored from a checkpoint reports the epochs after that checkpoint
        again, and those repeats count once.
        """
        return len({report_epoch(row) for row in self.results} - {None})

    @property
    def time_s(self) -> float | None:
        """Training time of the trial so far in seconds (Tune's time_total_s of the last report)."""
        if not self.results:
            return None
        value = self.results[-1].get("time_total_s")
        return float(value) if isinstance(value, (int, float)) else None


def best_result_index(
    results: tuple[dict[str, Any], ...] | list[dict[str, Any]], metric: str
) -> int | None:
    """Return the index of the report with the highest finite ``metric``, the latest on a tie.

    Ray 2.60's checkpoint manager (``ray/train/_internal/checkpoint_manager.py``) ranks the later
    of two equal scores higher and deletes the earlier checkpoint, so only the latest tied
    report still has its checkpoint on disk. Returns None when no report has a finite number
    under ``metric``.
    """
    best_index = None
    best_value = -math.inf
    for index, row in enumerate(results):
        value = row.get(metric)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            continue
        if value >= best_value:
            best_index, best_value = index, value
    return best_index


def report_epoch(row: dict[str, Any]) -> int | None:
    """Return a report's epoch: its "epoch" key, else Tune's training_iteration."""
    for key in ("epoch", "training_iteration"):
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return int(value)
    return None


def _saved_epoch(metrics_path: Path) -> int | None:
    try:
        saved = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return report_epoch(saved) if isinstance(saved, dict) else None


def flatten_config(config: dict[str, Any], prefix: str = "config/") -> dict[str, Any]:
    """Flatten a nested config into ``{"config/model/encoder": "resnet18", ...}``.

    Lists and tuples become their ``repr`` so that every value fits one CSV cell.
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_config(value, prefix=f"{name}/"))
        elif isinstance(value, (list, tuple)):
            flat[name] = repr(list(value))
        elif isinstance(value, dict):
            flat[name] = "{}"
        else:
            flat[name] = value
    return flat


class Experiment:
    """A Ray Tune experiment read from disk: trials, leaderboard, best checkpoints, histories.

    Build it with :func:`load_experiment`. It is a snapshot: load again to see newer reports.
    """

    def __init__(self, path: Path, trials: list[Trial], start_time: float | None) -> None:
        self.path = path
        self.trials = trials
        self.start_time = start_time

    @property
    def name(self) -> str:
        """The experiment name (the directory name, also the Optuna study name)."""
        return self.path.name

    @property
    def study_path(self) -> Path:
        """The Optuna SQLite storage the search writes (it may not exist)."""
        return self.path / STUDY_FILE

    def trial(self, trial_id: str) -> Trial:
        """Return the trial with this id; raise KeyError naming the known ids otherwise."""
        for trial in self.trials:
            if trial.trial_id == trial_id:
                return trial
        known = ", ".join(trial.trial_id for trial in self.trials) or "none"
        raise KeyError(f"trial {trial_id!r} not found in {self.path}; trials: {known}")

    def leaderboard(self) -> pd.DataFrame:
        """Return one row per trial, best ``val_dice`` first; trials without reports come last.

        Columns:

        - ``trial_id`` (str)
        - ``val_dice`` (float in [0, 1], NaN before the first report)
        - ``best_epoch`` (Int64): the best report's epoch
        - ``epochs`` (int): epochs reported so far
        - ``time_s`` (float): training seconds so far
        - ``status`` (str)
        - ``checkpoint`` (str or None): absolute path of the best epoch's checkpoint directory
        - ``config/<key>/<subkey>``: the trial's flattened config, one column per leaf
        """
        rows = [self._leaderboard_row(trial) for trial in self.trials]
        table = pd.DataFrame(rows)
        if table.empty:
            return pd.DataFrame(columns=list(LEADERBOARD_COLUMNS))

        config_columns = sorted(column for column in table.columns if column.startswith("config/"))
        table = table[list(LEADERBOARD_COLUMNS) + config_columns]
        table["val_dice"] = table["val_dice"].astype(float)
        table["best_epoch"] = table["best_epoch"].astype("Int64")
        table["epochs"] = table["epochs"].astype(int)
        table["time_s"] = table["time_s"].astype(float)
        table["checkpoint"] = pd.Series(
            [path if isinstance(path, str) else None for path in table["checkpoint"]],
            index=table.index,
            dtype=object,
        )
        table = table.sort_values(
            ["val_dice", "trial_id"], ascending=[False, True], na_position="last", kind="stable"
        )
        return table.reset_index(drop=True)

    @staticmethod
    def _leaderboard_row(trial: Trial) -> dict[str, Any]:
        best = trial.best_result
        checkpoint = trial.checkpoint
        row = {
            "trial_id": trial.trial_id,
            "val_dice": math.nan if best is None else float(best[METRIC]),
            "best_epoch": None if best is None else report_epoch(best),
            "epochs": trial.epochs,
            "time_s": math.nan if trial.time_s is None else trial.time_s,
            "status": trial.status,
            "checkpoint": None if checkpoint is None else str(checkpoint),
        }
        row.update(flatten_config(trial.config))
        return row

    def best_checkpoints(self, k: int) -> list[Path]:
        """Return the best-epoch checkpoint directories of the ``k`` best trials that have one.

        Args:
            k: how many (>= 1). Fewer come back when fewer trials have a checkpoint.

        Returns:
            Directories that contain model.pt, best ``val_dice`` first.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        table = self.leaderboard()
        paths = [Path(path) for path in table["checkpoint"] if isinstance(path, str) and path]
        return paths[:k]

    def per_class_dice(self, top: int | None = None) -> pd.DataFrame:
        """Return each trial's per-class validation Dice at its best epoch, best trials first.

        Args:
            top: keep the ``top`` best trials with reports (None: all of them).

        Returns:
            Columns ``trial_id``, ``val_dice``, ``best_epoch``, then one float column per
            class from the best report's "dice/<class>" keys, in ``data.classes.CLASSES``
            order (names outside that list follow alphabetically). NaN where a trial did not
            report a class.
        """
        ranked = [self.trial(trial_id) for trial_id in self.leaderboard()["trial_id"]]
        ranked = [trial for trial in ranked if trial.best_result is not None]
        if top is not None:
            ranked = ranked[:top]

        leading = ["trial_id", "val_dice", "best_epoch"]
        rows = [_class_dice_row(trial) for trial in ranked]
        if not rows:
            return pd.DataFrame(columns=leading)

        table = pd.DataFrame(rows)
        class_columns = [column for column in table.columns if column not in leading]
        class_columns.sort(key=lambda name: (CLASS_INDEX.get(name, len(CLASS_INDEX)), name))
        table = table[leading + class_columns]
        table["best_epoch"] = table["best_epoch"].astype("Int64")
        return table

    def history(self) -> pd.DataFrame:
        """Return every report of every trial as one row, in report order per trial.

        Columns: ``trial_id``, ``epoch`` (Int64, see :func:`report_epoch`), ``wall_s`` (float,
        seconds from the experiment's start to the report, from Tune's whole-second
        ``timestamp``), then the reported keys as Tune wrote them (``val_dice``,
        ``training_iteration``, ``time_total_s``...), without the ``config`` copy.
        """
        rows = []
        for trial in self.trials:
            for report in trial.results:
                row = {key: value for key, value in report.items() if key != "config"}
                row["trial_id"] = trial.trial_id
                row["epoch"] = report_epoch(report)
                rows.append(row)
        if not rows:
            return pd.DataFrame(columns=["trial_id", "epoch", "wall_s", METRIC])

        table = pd.DataFrame(rows)
        start = self.wall_start()
        if "timestamp" in table and start is not None:
            table["wall_s"] = pd.to_numeric(table["timestamp"], errors="coerce") - start
        else:
            table["wall_s"] = math.nan
        table["epoch"] = table["epoch"].astype("Int64")
        if METRIC not in table:
            table[METRIC] = math.nan
        leading = ["trial_id", "epoch", "wall_s"]
        return table[leading + [column for column in table.columns if column not in leading]]

    def wall_start(self) -> float | None:
        """Return the experiment's start in Unix seconds, the origin of ``history()["wall_s"]``.

        This is the earlier of the start in Tune's state file (the latest resume) and the
        earliest trial start estimated from the first reports; None without either.
        """
        starts = _first_report_starts(self.trials)
        if self.start_time is not None:
            starts.append(self.start_time)
        return min(starts) if starts else None


def _class_dice_row(trial: Trial) -> dict[str, Any]:
    best = trial.best_result
    row: dict[str, Any] = {
        "trial_id": trial.trial_id,
        "val_dice": float(best[METRIC]),
        "best_epoch": report_epoch(best),
    }
    for key, value in best.items():
        if key.startswith(CLASS_DICE_PREFIX) and _is_number(value):
            row[key[len(CLASS_DICE_PREFIX) :]] = float(value)
    return row


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _first_report_starts(trials: list[Trial]) -> list[float]:
    """Estimate each trial's start as (timestamp - time_total_s) of its first report."""
    starts = []
    for trial in trials:
        if not trial.results:
            continue
        first = trial.results[0]
        timestamp, elapsed = first.get("timestamp"), first.get("time_total_s", 0.0)
        if isinstance(timestamp, (int, float)) and isinstance(elapsed, (int, float)):
            starts.append(float(timestamp) - float(elapsed))
    return starts


def load_experiment(path: str | Path) -> Experiment:
    """Read a Ray Tune experiment directory (``<storage_path>/<name>``), finished or running.

    Args:
        path: the experiment directory, which contains one directory per trial and Tune's
            ``experiment_state-*.json``.

    Returns:
        The experiment with every trial found on disk or in Tune's state file.

    Raises:
        ExperimentError: the path is missing or not a directory, or it contains no trial and
            no state file. When experiment directories lie below it, the message lists them.
    """
    # NOTE: only local paths are read. An experiment whose storage_path is cloud storage
    # (s3://, gs://) must be downloaded first.
    experiment_dir = Path(path).expanduser().resolve()
    _check_experiment_dir(experiment_dir)

    state = tune_files.read_experiment_state(experiment_dir)
    states = state.trials
    trials_by_id: dict[str, Trial] = {}
    for trial_dir in sorted(
        child for child in experiment_dir.iterdir() if tune_files.is_trial_dir(child)
    ):
        trial = _read_trial(trial_dir, states)
        trials_by_id[trial.trial_id] = trial

    for trial_state in states.values():
        if trial_state.trial_id not in trials_by_id:
            trial_dir = experiment_dir / (trial_state.relative_logdir or trial_state.trial_id)
            trials_by_id[trial_state.trial_id] = Trial(
                trial_state.trial_id, trial_dir, {}, (), trial_state.status
            )

    trials = list(trials_by_id.values())
    return Experiment(experiment_dir, trials, state.start_time)


def _check_experiment_dir(experiment_dir: Path) -> None:
    if not experiment_dir.exists():
        raise ExperimentError(f"experiment directory not found: {experiment_dir}")
    if not experiment_dir.is_dir():
        raise ExperimentError(f"expected an experiment directory, got a file: {experiment_dir}")

    if _looks_like_experiment(experiment_dir):
        return

    below = sorted(
        child.name for child in experiment_dir.iterdir() if _looks_like_experiment(child)
    )
    hint = f"; experiment directories inside it: {', '.join(below)}" if below else ""
    raise ExperimentError(
        f"{experiment_dir} is not a Ray Tune experiment directory: it contains no trial "
        f"directories (with params.json or result.json) and no experiment_state-*.json. Pass "
        f"the directory <storage_path>/<experiment name>{hint}"
    )


def _looks_like_experiment(path: Path) -> bool:
    if not path.is_dir():
        return False
    if any(path.glob(tune_files.STATE_GLOB)):
        return True
    return any(tune_files.is_trial_dir(child) for child in path.iterdir())


def _read_trial(trial_dir: Path, states: dict[str, tune_files.TrialState]) -> Trial:
    results = tuple(tune_files.read_result_rows(trial_dir))
    trial_id = _trial_id(trial_dir, results, states)

    config = tune_files.read_params(trial_dir)
    if config is None:
        last_config = results[-1].get("config") if results else None
        config = last_config if isinstance(last_config, dict) else {}

    state = states.get(trial_id)
    status = state.status if state is not None else UNKNOWN_STATUS
    if status == UNKNOWN_STATUS and (trial_dir / tune_files.ERROR_FILE).exists():
        status = "ERROR"

    best_index = best_result_index(results, METRIC)
    checkpoint = None
    if best_index is not None:
        checkpoint = _best_checkpoint(trial_id, trial_dir, results[best_index])
    return Trial(trial_id, trial_dir, config, results, status, checkpoint)


def _trial_id(
    trial_dir: Path, results: tuple[dict[str, Any], ...], states: dict[str, tune_files.TrialState]
) -> str:
    for row in results:
        if isinstance(row.get("trial_id"), str):
            return row["trial_id"]
    for state in states.values():
        if state.relative_logdir == trial_dir.name:
            return state.trial_id
    return tune_files.trial_id_from_dirname(trial_dir.name) or trial_dir.name


def _best_checkpoint(trial_id: str, trial_dir: Path, best: dict[str, Any]) -> Path | None:
    """Return the checkpoint directory the best report names, or None with a logged reason.

    The directory must contain model.pt. When it also contains metrics.json (written by
    ``trainable.checkpoint.save_checkpoint_dir``), the epoch there must be the report's epoch,
    because other weights must never pass for the best epoch's.
    """
    epoch = report_epoch(best)
    name = best.get("checkpoint_dir_name")
    if not isinstance(name, str) or not name:
        logger.warning("trial %s: its best epoch %s reported no checkpoint", trial_id, epoch)
        return None

    path = trial_dir / name
    if not (path / MODEL_FILE).is_file():
        logger.warning(
            "trial %s: the best epoch's checkpoint %s is missing or has no %s (deleted by "
            "CheckpointConfig.num_to_keep without checkpoint_score_attribute=%r?)",
            trial_id,
            path,
            MODEL_FILE,
            METRIC,
        )
        return None

    saved_epoch = _saved_epoch(path / METRICS_FILE)
    if saved_epoch is not None and epoch is not None and saved_epoch != epoch:
        logger.warning(
            "trial %s: %s contains the weights of epoch %d, but the best report is epoch %d; "
            "the trial gets no checkpoint",
            trial_id,
            path / METRICS_FILE,
            saved_epoch,
            epoch,
        )
        return None
    return path
