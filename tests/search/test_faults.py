"""Faults, for real: a trial's worker killed mid-training, a search interrupted and resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from ray import tune

from search import experiment_files as files
from search.run_search import run_search

REPO_ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 3  # optim.epochs of the tiny space in conftest.py


class KillFirstWorker(tune.Callback):
    """Kill (SIGKILL) the worker process of the first trial once Tune has its first checkpoint.

    Tune calls ``on_checkpoint`` just before it registers the checkpoint, and notices the dead
    worker only afterwards, so the retry has the epoch-1 checkpoint to restore from.
    """

    def __init__(self) -> None:
        self.killed: tuple[str, int] | None = None

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        if self.killed is None and trial.last_result.get("training_iteration") == 1:
            pid = int(trial.last_result["pid"])
            self.killed = (trial.trial_id, pid)
            os.kill(pid, signal.SIGKILL)


def _frames(experiment_dir: Path) -> dict[str, pd.DataFrame]:
    analysis = tune.ExperimentAnalysis(str(experiment_dir))
    return {frame["trial_id"].iloc[0]: frame for frame in analysis.trial_dataframes.values() if len(frame)}


@pytest.mark.slow
def test_killed_worker_is_retried_from_checkpoint(make_options):
    killer = KillFirstWorker()
    options = make_options("killed", scheduler="fifo", max_failures=1, callbacks=[killer])

    experiment_dir = run_search(options)

    assert killer.killed is not None
    killed_id, killed_pid = killer.killed
    summary = files.read_summary(experiment_dir)
    assert summary["status_counts"] == {"TERMINATED": 2, "ERROR": 0, "UNFINISHED": 0}
    trials = {t.trial_id: t for t in tune.ExperimentAnalysis(str(experiment_dir)).trials}
    assert trials[killed_id].num_failures == 1

    frame = _frames(experiment_dir)[killed_id]
    assert frame["training_iteration"].tolist() == [1, 2, 3]
    # Epochs 2 and 3 ran in a new process that continued from the epoch-1 checkpoint.
    assert frame["epoch"].tolist() == [1, 2, 3]
    assert frame["pid"].tolist()[0] == killed_pid
    assert killed_pid not in frame["pid"].tolist()[1:]
    assert frame["val_dice"].notna().all()


def _search_command(storage: Path, space: Path, data_root: Path, *extra: str) -> list[str]:
    return [
        sys.executable, str(REPO_ROOT / "search" / "run_search.py"),
        "--space", str(space), "--data-root", str(data_root), "--name", "interrupted",
        "--storage-path", str(storage), "--num-cpus", "1", "--no-dashboard",
        "--object-store-mib", "200", "--n-folds", "2", "--verbose", "0", *extra,
    ]


def _finished_trials(experiment_dir: Path) -> int:
    if not (experiment_dir / files.STUDY_FILE).is_file():
        return 0
    try:
        study = files.load_study(experiment_dir)
    except (KeyError, ValueError, optuna.exceptions.StorageInternalError):
        return 0  # the study is not created yet
    return sum(t.state == TrialState.COMPLETE for t in study.trials)


def _wait_for_first_trial(process: subprocess.Popen, experiment_dir: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _finished_trials(experiment_dir) < 1:
        if process.poll() is not None:
            raise AssertionError(f"the search exited with {process.returncode} before a trial finished")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no trial finished within {timeout_s} s")
        time.sleep(0.5)


@pytest.mark.slow
def test_interrupted_search_resumes_without_rerunning(tmp_path, tiny_space, synthetic_root):
    """SIGTERM after the first trial finished, then --resume: 2 trials, none run twice."""
    storage = tmp_path / "ray_results"
    experiment_dir = storage / "interrupted"
    command = _search_command(storage, tiny_space, synthetic_root)
    first = subprocess.Popen(
        [*command, "--num-samples", "2", "--max-concurrent", "1", "--scheduler", "fifo"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    _wait_for_first_trial(first, experiment_dir, timeout_s=240)
    first.send_signal(signal.SIGTERM)
    output, _ = first.communicate(timeout=120)

    assert first.returncode == 130, output[-3000:]
    assert files.read_summary(experiment_dir)["finished"] is False
    before = _frames(experiment_dir)
    done_before = {trial_id for trial_id, frame in before.items() if len(frame) == EPOCHS}
    assert done_before, "no trial had finished before the interruption"

    resumed = subprocess.run(
        [*command, "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )

    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = files.read_summary(experiment_dir)
    assert summary["finished"] is True
    assert summary["status_counts"] == {"TERMINATED": 2, "ERROR": 0, "UNFINISHED": 0}
    after = _frames(experiment_dir)
    assert len(after) == 2
    assert set(before) <= set(after)
    for trial_id in done_before:
        # A finished trial was not run again: its per-epoch rows are unchanged.
        pd.testing.assert_frame_equal(after[trial_id][before[trial_id].columns], before[trial_id])
    for frame in after.values():
        assert frame["training_iteration"].tolist() == [1, 2, 3]

    study = files.load_study(experiment_dir)
    assert len(study.trials) == 2
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert {t.user_attrs["tune_trial_id"] for t in study.trials} == set(after)
