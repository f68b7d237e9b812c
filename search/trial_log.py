"""Logging of a running search, and the check that its trials really ran in parallel.

:class:`TrialLogger` is a Tune callback on the driver: it logs each trial's start with its
sampled parameters, each retry after a failure, and each end with the epochs run and the best
``val_dice``. :func:`trial_intervals` and :func:`max_running_at_once` measure, from Tune's
per-epoch results, how many trials ran at the same time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ray.tune import Callback

logger = logging.getLogger(__name__)

TIMESTAMP_RESOLUTION_S = 1.0
"""Resolution of Tune's ``timestamp`` result field: whole seconds (Ray 2.60)."""


class TrialLogger(Callback):
    """Tune callback that logs trial starts, retries, errors and ends.

    Args:
        metric: the reported metric to summarise (``val_dice``).
        mode: ``max`` or ``min``, which value of the metric is the best.
        max_t: the epoch budget, to tell full runs from early stops.
        num_samples: the number of trials of the search, for the "n/N" counter.
    """

    def __init__(self, metric: str, mode: str, max_t: int, num_samples: int) -> None:
        self.metric = metric
        self.mode = mode
        self.max_t = max_t
        self.num_samples = num_samples
        self._started: set[str] = set()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Log a trial's first start with its sampled parameters (later restarts are retries)."""
        if trial.trial_id in self._started:
            return
        self._started.add(trial.trial_id)
        logger.info(
            "trial %s started (%d/%d): %s",
            trial.trial_id,
            trials.index(trial) + 1,
            self.num_samples,
            format_params(trial.evaluated_params),
        )

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Log a failed trial that Tune restarts, from its latest checkpoint when it has one."""
        has_checkpoint = getattr(trial, "checkpoint", None) is not None
        logger.warning(
            "trial %s failed (failure %d) and restarts %s: %s",
            trial.trial_id,
            trial.num_failures,
            "from its latest checkpoint" if has_checkpoint else "from epoch 1 (no checkpoint yet)",
            _first_line(trial.error_file),
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Log a trial that failed for good."""
        logger.error(
            "trial %s errored after %d failure(s); its error log: %s",
            trial.trial_id,
            trial.num_failures,
            trial.error_file,
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Log a trial's end: epochs run, whether ASHA stopped it, its best and last metric."""
        analysis = trial.metric_analysis.get(self.metric, {})
        epochs = int(trial.last_result.get("training_iteration", 0) or 0)
        outcome = "ran the full budget" if epochs >= self.max_t else "stopped early"
        logger.info(
            "trial %s finished (%d/%d): %s, %d/%d epochs, best %s %s, last %s; %s",
            trial.trial_id,
            _count_ended(trials, trial),
            self.num_samples,
            outcome,
            epochs,
            self.max_t,
            self.metric,
            _format_value(analysis.get(self.mode)),
            _format_value(analysis.get("last")),
            format_params(trial.evaluated_params),
        )


def _count_ended(trials: list, ending: Any) -> int:
    """Count the ended trials, ``ending`` included: Tune marks it ended only after this call."""
    ended = sum(t.status in ("TERMINATED", "ERROR") for t in trials if t is not ending)
    return ended + 1


def format_params(params: Mapping[str, Any]) -> str:
    """Format sampled parameters as ``key=value`` pairs, floats with 4 significant digits."""
    parts = []
    for key, value in params.items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        # Tune names nested parameters by their path joined with "/", so show the config path.
        parts.append(f"{key.replace('/', '.')}={text}")
    return ", ".join(parts) or "(no searched parameters)"


def _format_value(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.4f}"


def _first_line(path: Any) -> str:
    if not path:
        return "no error file"
    try:
        with open(path, encoding="utf-8") as stream:
            lines = [line.strip() for line in stream if line.strip()]
    except OSError:
        return str(path)
    return lines[-1] if lines else str(path)


@dataclass(frozen=True)
class TrialInterval:
    """When a trial ran, in Unix seconds, from its per-epoch results."""

    trial_id: str
    start: float
    end: float


def trial_intervals(frames: Mapping[str, Any]) -> list[TrialInterval]:
    """Return each trial's running interval from its per-epoch results.

    Args:
        frames: trial id -> pandas DataFrame of its results with the columns ``timestamp``
            (Unix seconds, whole) and ``time_this_iter_s`` (seconds), one row per epoch, as in
            ``ray.tune.Result.metrics_dataframe``.

    Returns:
        One interval per trial that reported at least once: the start is the earliest
        ``timestamp - time_this_iter_s``, the end the latest ``timestamp``.
    """
    intervals = []
    for trial_id, frame in frames.items():
        if frame is None or len(frame) == 0 or "timestamp" not in frame:
            continue
        durations = frame["time_this_iter_s"] if "time_this_iter_s" in frame else 0.0
        start = float((frame["timestamp"] - durations).min())
        end = float(frame["timestamp"].max())
        intervals.append(TrialInterval(trial_id, start, end))
    return intervals


def max_running_at_once(
    intervals: Sequence[TrialInterval], tolerance_s: float = TIMESTAMP_RESOLUTION_S
) -> int:
    """Return the largest number of trials whose intervals overlap at one moment.

    Two intervals count as overlapping only when they share more than ``tolerance_s`` seconds,
    because Tune's timestamps are whole seconds: trials that ran one after the other can
    appear to overlap by up to that much.

    Returns:
        0 for no intervals, otherwise at least 1.
    """
    if not intervals:
        return 0
    events: list[tuple[float, int]] = []
    for interval in intervals:
        end = interval.end - tolerance_s
        if end <= interval.start:
            continue
        events.append((interval.start, 1))
        events.append((end, -1))
    running = best = 0
    # At equal times the end (-1) sorts before the start (+1): touching intervals do not overlap.
    for _, change in sorted(events):
        running += change
        best = max(best, running)
    return max(best, 1)


def warn_if_sequential(
    frames: Mapping[str, Any], max_concurrent: int, capacity: int
) -> int:
    """Log a warning when trials that could run in parallel ran one at a time.

    Only trials that ran longer than twice the timestamp resolution are compared: shorter
    intervals cannot show an overlap.

    Args:
        frames: per-trial result frames, see :func:`trial_intervals`.
        max_concurrent: the search's limit on trials running at once.
        capacity: how many trials the cluster's resources fit at once.

    Returns:
        The largest number of trials that ran at once (0 when no trial reported).
    """
    intervals = trial_intervals(frames)
    running = max_running_at_once(intervals)
    measurable = [i for i in intervals if i.end - i.start > 2 * TIMESTAMP_RESOLUTION_S]
    possible = min(max_concurrent, capacity, len(measurable))
    if possible > 1 and max_running_at_once(measurable) <= 1:
        logger.warning(
            "the %d trials ran one at a time although up to %d could run at once "
            "(max concurrent %d, room for %d on the cluster); check the Ray resources, "
            "--max-concurrent and TUNE_MAX_PENDING_TRIALS_PG",
            len(intervals),
            possible,
            max_concurrent,
            capacity,
        )
    return running
