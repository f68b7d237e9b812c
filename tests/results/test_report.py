"""The report CLI and its plots on a real Tune experiment."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from matplotlib.image import imread

from results import plots
from results.experiment import load_experiment
from results.leaderboard import read_leaderboard_csv
from results.report import build_report, main

PNG_NAMES = ("best_so_far.png", "learning_curves.png", "param_importance.png")


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    pixels = imread(path)
    assert pixels.shape[0] > 100
    assert pixels.shape[1] > 100
    assert pixels.std() > 0, f"{path} is blank"


def test_cli_writes_tables_and_plots(peaking_experiment, tmp_path, capsys):
    out = tmp_path / "report"

    assert main([str(peaking_experiment.path), "--out", str(out), "--top", "2"]) == 0
    printed = capsys.readouterr().out

    table = load_experiment(peaking_experiment.path).leaderboard()
    pd.testing.assert_frame_equal(
        read_leaderboard_csv(out / "leaderboard.csv"), table, check_dtype=False
    )
    per_class = pd.read_csv(out / "per_class_dice.csv")
    assert list(per_class["trial_id"]) == list(table["trial_id"][:2])
    for name in PNG_NAMES:
        _assert_png(out / name)
        assert f"wrote {out / name}" in printed
    assert table["trial_id"][0] in printed
    assert "(1 more trials in the CSV)" in printed
    assert "3 TERMINATED" in printed


def test_default_out_is_experiment_report(peaking_experiment, tmp_path):
    copy = Path(shutil.copytree(peaking_experiment.path, tmp_path / "peaking"))

    report = build_report(copy)

    assert report.files["leaderboard.csv"] == copy / "report" / "leaderboard.csv"
    assert (copy / "report" / "learning_curves.png").is_file()


def test_too_few_trials_note_not_crash(peaking_experiment, tmp_path, capsys):
    copy = Path(shutil.copytree(peaking_experiment.path, tmp_path / "peaking"))
    (copy / "optuna_study.db").unlink()
    study = optuna.create_study(
        study_name="peaking", storage=f"sqlite:///{copy / 'optuna_study.db'}", direction="maximize"
    )
    study.add_trial(
        optuna.trial.create_trial(
            params={"optim/lr": 1e-3},
            distributions={"optim/lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)},
            value=0.5,
        )
    )

    assert main([str(copy), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out

    assert "note: no hyperparameter importance plot" in printed
    assert "at least 2 COMPLETE trials" in printed
    assert not (tmp_path / "out" / "param_importance.png").exists()
    assert (tmp_path / "out" / "leaderboard.csv").is_file()


def test_cli_rejects_non_experiment(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "is not a Ray Tune experiment directory" in capsys.readouterr().err


def test_cli_rejects_top_zero(peaking_experiment, tmp_path, capsys):
    assert main([str(peaking_experiment.path), "--out", str(tmp_path), "--top", "0"]) == 2
    assert "top must be at least 1" in capsys.readouterr().err


def test_best_so_far_hand_table():
    history = pd.DataFrame({"wall_s": [0.0, 10.0, 5.0, 7.0], "val_dice": [0.2, 0.1, 0.5, np.nan]})

    curve = plots.best_so_far(history)

    assert list(curve["wall_s"]) == [0.0, 5.0, 10.0]
    assert list(curve["val_dice"]) == [0.2, 0.5, 0.1]
    assert list(curve["best_val_dice"]) == [0.2, 0.5, 0.5]


def test_plots_of_empty_history(tmp_path):
    history = pd.DataFrame(columns=["trial_id", "epoch", "wall_s", "val_dice"])

    _assert_png(plots.plot_best_so_far(history, tmp_path / "best.png"))
    _assert_png(plots.plot_learning_curves(history, [], tmp_path / "curves.png"))


@pytest.mark.parametrize(
    ("longest_s", "unit"),
    [(0.0, "s"), (119.0, "s"), (120.0, "min"), (7199.0, "min"), (7200.0, "h")],
)
def test_time_unit_table(longest_s, unit):
    assert plots._time_unit(longest_s)[0] == unit


@pytest.mark.parametrize(
    ("values", "bottom", "top"),
    [
        ([0.0055, 0.0165], 0.0, 0.1),
        ([0.25, 0.69], 0.2, 0.7),
        ([0.6, 0.6], 0.6, 0.7),
        ([1.0, 1.0], 0.9, 1.0),
        ([0.0, 1.0], 0.0, 1.0),
    ],
)
def test_dice_limits_table(values, bottom, top):
    low, high = plots._dice_limits(pd.Series(values))
    margin = 0.03 * (top - bottom)

    assert low == pytest.approx(bottom - margin)
    assert high == pytest.approx(top + margin)


def test_report_imports_no_ray_or_torch():
    code = "import sys, results.report; print(sorted({'ray', 'torch'} & set(sys.modules)))"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "[]"


def test_errored_trial_points_to_error_file(peaking_experiment, tmp_path, capsys):
    copy = Path(shutil.copytree(peaking_experiment.path, tmp_path / peaking_experiment.path.name))
    failed = copy / "trial_89abcdef"
    failed.mkdir()
    (failed / "params.json").write_text("{}")
    (failed / "error.txt").write_text("Traceback ...")

    assert main([str(copy), "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out

    assert "1 trial(s) ended with an error" in out
    assert f"error.txt in its trial folder under {copy}" in out
