"""The results stage on a real search: run_search with the real trainable, then the report.

Uses the shared ``tiny_experiment`` fixture (a finished 3-trial search made by the search
stage's Python API, in tests/conftest.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from results.experiment import load_experiment
from results.importance import load_study
from results.report import main
from trainable.checkpoint import read_checkpoint


@pytest.fixture
def search_experiment(tiny_experiment: Path) -> Path:
    return tiny_experiment


@pytest.mark.slow
def test_leaderboard_matches_search_summary(search_experiment):
    experiment = load_experiment(search_experiment)
    table = experiment.leaderboard()
    summary = json.loads((search_experiment / "search_summary.json").read_text())

    assert len(table) == summary["trials"]
    assert table["trial_id"].iloc[0] == summary["best"]["trial_id"]
    assert math.isclose(table["val_dice"].iloc[0], summary["best"]["val_dice"], rel_tol=1e-9)


@pytest.mark.slow
def test_search_checkpoints_are_best_epoch(search_experiment):
    table = load_experiment(search_experiment).leaderboard()

    with_checkpoint = table[table["checkpoint"].notna()]
    assert len(with_checkpoint) > 0
    for row in with_checkpoint.itertuples():
        saved = read_checkpoint(row.checkpoint)
        assert saved["epoch"] == row.best_epoch
        assert math.isclose(saved["metrics"]["val_dice"], row.val_dice, rel_tol=1e-9)


@pytest.mark.slow
def test_report_on_search_output(search_experiment, tmp_path, capsys):
    assert main([str(search_experiment), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out

    assert (tmp_path / "leaderboard.csv").is_file()
    assert (tmp_path / "per_class_dice.csv").is_file()
    assert (tmp_path / "learning_curves.png").is_file()
    assert load_study(search_experiment / "optuna_study.db", search_experiment.name)
    assert search_experiment.name in printed
