"""Trial intervals from Tune results, overlap counting, and the one-at-a-time warning."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from search.trial_log import (
    TrialInterval,
    format_params,
    max_running_at_once,
    trial_intervals,
    warn_if_sequential,
)


def _frame(timestamps: list[int], durations: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": timestamps, "time_this_iter_s": durations})


def test_interval_spans_first_epoch_start_to_last_report():
    frames = {"a": _frame([105, 110, 115], [5.0, 5.0, 5.0])}

    assert trial_intervals(frames) == [TrialInterval("a", 100.0, 115.0)]


def test_trial_without_results_has_no_interval():
    frames = {"a": _frame([], []), "b": None, "c": _frame([10], [2.0])}

    assert [i.trial_id for i in trial_intervals(frames)] == ["c"]


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([], 0),
        ([(0, 10)], 1),
        ([(0, 10), (10, 20), (20, 30)], 1),  # one after the other
        ([(0, 10), (9.5, 20)], 1),  # overlap within the 1 s timestamp resolution
        ([(0, 10), (5, 15)], 2),
        ([(0, 10), (2, 12), (4, 14), (6, 16)], 4),
        ([(0, 10), (2, 5), (6, 9), (11, 20)], 2),
        ([(0, 0.5), (0, 0.5)], 1),  # too short to show an overlap
    ],
)
def test_max_running_at_once_table(spans, expected):
    intervals = [TrialInterval(str(i), start, end) for i, (start, end) in enumerate(spans)]

    assert max_running_at_once(intervals) == expected


def test_sequential_trials_are_warned_about(caplog):
    frames = {
        "a": _frame([103, 106], [3.0, 3.0]),
        "b": _frame([110, 113], [3.0, 3.0]),
    }
    with caplog.at_level(logging.WARNING, logger="search.trial_log"):
        running = warn_if_sequential(frames, max_concurrent=2, capacity=4)

    assert running == 1
    assert "ran one at a time although up to 2 could run at once" in caplog.text


@pytest.mark.parametrize(
    ("max_concurrent", "capacity", "second_start"),
    [
        (2, 4, 102),  # the trials overlapped
        (1, 4, 110),  # one at a time was requested
        (4, 1, 110),  # the cluster fits one trial
    ],
)
def test_no_warning_when_expected(caplog, max_concurrent, capacity, second_start):
    frames = {
        "a": _frame([103, 106], [3.0, 3.0]),
        "b": _frame([second_start + 3, second_start + 6], [3.0, 3.0]),
    }
    with caplog.at_level(logging.WARNING, logger="search.trial_log"):
        warn_if_sequential(frames, max_concurrent=max_concurrent, capacity=capacity)

    assert "one at a time" not in caplog.text


def test_format_params_shows_config_paths():
    text = format_params({"model/encoder": "resnet18", "optim/lr": 0.00123456, "input_size": 64})

    assert text == "model.encoder=resnet18, optim.lr=0.001235, input_size=64"
