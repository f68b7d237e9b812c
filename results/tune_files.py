"""Readers for the files Ray Tune writes into an experiment directory, safe while it runs.

Layout written by Ray Tune 2.60 for ``RunConfig(storage_path=S, name=E)``::

    S/E/                                   the experiment directory
        experiment_state-<date>.json       trial statuses, rewritten now and then by the driver
        <trainable>_<trial_id>_<n>_<params>_<date>/    one directory per trial (the search
                                           names them trial_<trial_id>)
            params.json                    the trial's config
            result.json                    one JSON object per line, one line per report
            progress.csv                   the same reports as CSV
            checkpoint_000000/ ...         checkpoints, named by the report's "checkpoint_dir_name"
            error.txt                      present when the trial failed

Tune appends to ``result.json`` while a trial runs, so the last line may be half written. Every
reader here keeps only the text up to the last newline and skips lines that do not parse. None
of them needs a Ray cluster.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.csv"
PARAMS_FILE = "params.json"
ERROR_FILE = "error.txt"
STATE_GLOB = "experiment_state-*.json"

# Tune trial ids look like "ffde1_00003" (a 5-hex-digit run id and a counter) or, with a
# search algorithm, "927f54cb" (8 hex digits).
_TRIAL_ID_IN_DIRNAME = re.compile(r"_([0-9a-f]{5}_\d{5}|[0-9a-f]{8})(?:_|$)")


@dataclass(frozen=True)
class TrialState:
    """A trial's entry in Tune's experiment state file.

    Attributes:
        trial_id: Tune's trial id, such as "ffde1_00003".
        status: PENDING, RUNNING, PAUSED, TERMINATED or ERROR.
        relative_logdir: the trial directory's name inside the experiment directory.
    """

    trial_id: str
    status: str
    relative_logdir: str | None


@dataclass(frozen=True)
class ExperimentState:
    """Trial states and start time read from Tune's experiment state file.

    Attributes:
        trials: trial id to state.
        start_time: when the driver started the experiment (or its latest resume), in Unix
            seconds; None when unknown.
    """

    trials: dict[str, TrialState]
    start_time: float | None


def read_complete_lines(path: Path) -> list[str]:
    """Read the newline-terminated lines of a text file that another process may be appending to.

    Args:
        path: the file. A missing file gives no lines.

    Returns:
        The lines before the last newline, without their line endings. A last line with no
        newline after it is still being written, so it is left out.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []

    end = data.rfind(b"\n")
    if end < 0:
        return []
    return data[:end].decode("utf-8", errors="replace").splitlines()


def read_result_rows(trial_dir: Path) -> list[dict[str, Any]]:
    """Read a trial's reports, one dict per ``tune.report`` call, in report order.

    Reads ``result.json``. When that file is absent, reads ``progress.csv`` instead, where
    every value comes back as int, float, bool, str or None (an empty cell).

    Args:
        trial_dir: the trial directory.

    Returns:
        The complete reports. A half-written last line is left out. Complete lines that do not
        parse are skipped, and their count is logged as a warning.
    """
    result_path = trial_dir / RESULT_FILE
    if result_path.exists():
        return _parse_json_lines(result_path)
    return _parse_progress_csv(trial_dir / PROGRESS_FILE)


def _parse_json_lines(path: Path) -> list[dict[str, Any]]:
    rows = []
    bad_lines = 0
    for line in read_complete_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad_lines += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad_lines += 1

    if bad_lines:
        logger.warning("%s: skipped %d lines that are not JSON objects", path, bad_lines)
    return rows


def _parse_progress_csv(path: Path) -> list[dict[str, Any]]:
    lines = read_complete_lines(path)
    if not lines:
        return []

    reader = csv.reader(lines)
    header = next(reader)
    rows = []
    for cells in reader:
        if len(cells) != len(header):
            logger.warning(
                "%s: skipped a row with %d cells, expected %d", path, len(cells), len(header)
            )
            continue
        rows.append({name: _parse_csv_cell(cell) for name, cell in zip(header, cells)})
    return rows


def _parse_csv_cell(cell: str) -> Any:
    if cell == "":
        return None
    if cell in ("True", "False"):
        return cell == "True"
    for parse in (int, float):
        try:
            return parse(cell)
        except ValueError:
            pass
    return cell


def read_params(trial_dir: Path) -> dict[str, Any] | None:
    """Read a trial's config from ``params.json``; None when it is missing or not valid JSON yet."""
    try:
        params = json.loads((trial_dir / PARAMS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as error:
        logger.warning(
            "%s: invalid JSON (%s); reading the config from result.json instead",
            trial_dir / PARAMS_FILE,
            error,
        )
        return None
    return params if isinstance(params, dict) else None


def read_experiment_state(experiment_dir: Path) -> ExperimentState:
    """Read trial statuses and the start time from the newest ``experiment_state-*.json``.

    The file is Ray Tune's own resume state, not a public format. This reader follows the
    layout of Ray 2.60, where ``trial_data`` is a list of ``[trial_json, runtime_json]``
    string pairs and ``stats.start_time`` is the driver's start. A file that does not match
    is logged and ignored.

    Args:
        experiment_dir: the experiment directory.

    Returns:
        The state; no trials and no start time when there is no state file or it cannot be
        read.
    """
    newest = _newest_state_file(experiment_dir)
    if newest is None:
        return ExperimentState({}, None)

    try:
        state = json.loads(newest.read_text(encoding="utf-8"))
        trials = _parse_trial_data(state["trial_data"])
    except (OSError, ValueError, KeyError, TypeError, IndexError) as error:
        logger.warning(
            "%s: cannot read trial statuses (%s: %s); statuses will be 'unknown'",
            newest,
            type(error).__name__,
            error,
        )
        return ExperimentState({}, None)

    stats = state.get("stats")
    start = stats.get("start_time") if isinstance(stats, dict) else None
    start_time = float(start) if isinstance(start, (int, float)) else None
    return ExperimentState(trials, start_time)


def _newest_state_file(experiment_dir: Path) -> Path | None:
    """Return the most recently modified state file; Tune may delete older ones meanwhile."""
    newest, newest_mtime = None, -1.0
    for path in experiment_dir.glob(STATE_GLOB):
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if mtime > newest_mtime:
            newest, newest_mtime = path, mtime
    return newest


def _parse_trial_data(trial_data: list) -> dict[str, TrialState]:
    states = {}
    for entry in trial_data:
        trial = json.loads(entry[0])
        trial_id = str(trial["trial_id"])
        states[trial_id] = TrialState(
            trial_id=trial_id,
            status=str(trial.get("status", "unknown")),
            relative_logdir=trial.get("relative_logdir"),
        )
    return states


def is_trial_dir(path: Path) -> bool:
    """Return whether a directory contains a trial's params.json, result.json or progress.csv."""
    return path.is_dir() and any(
        (path / name).exists() for name in (PARAMS_FILE, RESULT_FILE, PROGRESS_FILE)
    )


def trial_id_from_dirname(name: str) -> str | None:
    """Extract the Tune trial id from a trial directory name, or return None.

    Example: ``train_tune_ffde1_00003_3_lr=0.01_2026-12-04_20-05-08`` gives "ffde1_00003".
    """
    match = _TRIAL_ID_IN_DIRNAME.search(name)
    return match.group(1) if match else None
