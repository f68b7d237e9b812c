"""Reading a real Ray Tune experiment back: leaderboard, best checkpoints, per-class Dice."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from data.classes import CLASSES
from results.experiment import (
    LEADERBOARD_COLUMNS,
    ExperimentError,
    best_result_index,
    flatten_config,
    load_experiment,
    report_epoch,
)
from results.tune_files import read_complete_lines, trial_id_from_dirname
from trainable.checkpoint import read_checkpoint


def _reports(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]


def _copy_experiment(source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(source, tmp_path / source.name))


def test_leaderboard_columns_and_order(peaking_experiment):
    table = load_experiment(peaking_experiment.path).leaderboard()

    assert list(table.columns[: len(LEADERBOARD_COLUMNS)]) == list(LEADERBOARD_COLUMNS)
    assert all(column.startswith("config/") for column in table.columns[len(LEADERBOARD_COLUMNS) :])
    assert "config/optim/lr" in table.columns
    assert "config/model/encoder" in table.columns
    assert len(table) == peaking_experiment.num_trials
    assert table["val_dice"].is_monotonic_decreasing
    assert set(table["status"]) == {"TERMINATED"}
    assert list(table["epochs"]) == [len(peaking_experiment.curve)] * peaking_experiment.num_trials
    assert (table["time_s"] > 0).all()


def test_val_dice_is_best_report(peaking_experiment):
    experiment = load_experiment(peaking_experiment.path)
    for row in experiment.leaderboard().itertuples():
        config = experiment.trial(row.trial_id).config
        expected = peaking_experiment.expected_val_dice(config, peaking_experiment.peak_epoch)
        assert row.val_dice == pytest.approx(expected, rel=1e-12)
        assert row.best_epoch == peaking_experiment.peak_epoch


def test_checkpoint_is_peak_not_latest(peaking_experiment):
    experiment = load_experiment(peaking_experiment.path)
    for row in experiment.leaderboard().itertuples():
        trial = experiment.trial(row.trial_id)
        reports = _reports(trial.path)
        peak_report = next(
            report for report in reports if report["epoch"] == peaking_experiment.peak_epoch
        )
        latest_dir = trial.path / reports[-1]["checkpoint_dir_name"]

        checkpoint = Path(row.checkpoint)
        assert checkpoint == trial.path / peak_report["checkpoint_dir_name"]
        assert (latest_dir / "model.pt").is_file(), "the latest checkpoint should be on disk too"
        assert checkpoint != latest_dir

        saved = read_checkpoint(checkpoint)
        assert saved["epoch"] == row.best_epoch
        assert saved["metrics"]["val_dice"] == pytest.approx(row.val_dice, rel=1e-12)


def test_best_checkpoints_follow_leaderboard(peaking_experiment):
    experiment = load_experiment(peaking_experiment.path)
    table = experiment.leaderboard()

    assert experiment.best_checkpoints(2) == [Path(path) for path in table["checkpoint"][:2]]
    assert len(experiment.best_checkpoints(10)) == peaking_experiment.num_trials
    for path in experiment.best_checkpoints(10):
        assert (path / "model.pt").is_file()


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_best_checkpoints_rejects_bad_k(peaking_experiment, k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        load_experiment(peaking_experiment.path).best_checkpoints(k)


def test_per_class_dice_at_best_epoch(peaking_experiment):
    experiment = load_experiment(peaking_experiment.path)
    table = experiment.per_class_dice(top=2)

    assert list(table.columns) == ["trial_id", "val_dice", "best_epoch", *CLASSES]
    assert list(table["trial_id"]) == list(experiment.leaderboard()["trial_id"][:2])
    for _, row in table.iterrows():
        for index, name in enumerate(CLASSES):
            assert row[name] == pytest.approx(peaking_experiment.class_dice(row["val_dice"], index))


def test_history_has_every_report(peaking_experiment):
    history = load_experiment(peaking_experiment.path).history()

    assert len(history) == peaking_experiment.num_trials * len(peaking_experiment.curve)
    assert list(history.columns[:3]) == ["trial_id", "epoch", "wall_s"]
    assert "config" not in history.columns
    assert set(history["epoch"]) == {1, 2, 3}
    assert (history["wall_s"] >= 0).all()


def test_half_written_line_is_ignored(peaking_experiment, tmp_path):
    copy = _copy_experiment(peaking_experiment.path, tmp_path)
    before = load_experiment(copy).leaderboard()
    last_id = before["trial_id"].iloc[-1]
    trial_dir = load_experiment(copy).trial(last_id).path
    completed = {**_reports(trial_dir)[-1], "val_dice": 0.99, "epoch": 4, "training_iteration": 4}
    line = json.dumps(completed)

    with open(trial_dir / "result.json", "a") as stream:
        stream.write(line[:40])
    during = load_experiment(copy).leaderboard()
    pd.testing.assert_frame_equal(during, before)

    with open(trial_dir / "result.json", "a") as stream:
        stream.write(line[40:] + "\n")
    after = load_experiment(copy).leaderboard()
    assert after["trial_id"].iloc[0] == last_id
    assert after["val_dice"].iloc[0] == 0.99
    assert after["epochs"].iloc[0] == 4


def test_trial_without_results_comes_last(peaking_experiment, tmp_path):
    copy = _copy_experiment(peaking_experiment.path, tmp_path)
    pending = copy / "trial_0123abcd"
    pending.mkdir()
    (pending / "params.json").write_text(json.dumps({"optim": {"lr": 0.01}}))
    (pending / "result.json").write_text("")

    table = load_experiment(copy).leaderboard()
    last = table.iloc[-1]

    assert len(table) == peaking_experiment.num_trials + 1
    assert last["trial_id"] == "0123abcd"
    assert math.isnan(last["val_dice"])
    assert last["epochs"] == 0
    assert pd.isna(last["best_epoch"])
    assert last["checkpoint"] is None
    assert last["status"] == "unknown"
    assert last["config/optim/lr"] == 0.01


def test_progress_csv_read_without_result_json(peaking_experiment, tmp_path):
    copy = _copy_experiment(peaking_experiment.path, tmp_path)
    expected = load_experiment(copy).leaderboard()
    for trial in load_experiment(copy).trials:
        (trial.path / "result.json").unlink()
        with open(trial.path / "progress.csv", "a") as stream:
            stream.write("0.99,4")  # a half-written row

    table = load_experiment(copy).leaderboard()

    pd.testing.assert_series_equal(table["trial_id"], expected["trial_id"])
    pd.testing.assert_series_equal(table["val_dice"], expected["val_dice"])
    pd.testing.assert_series_equal(table["checkpoint"], expected["checkpoint"])
    assert list(table["epochs"]) == list(expected["epochs"])


def test_error_file_marks_unlisted_trial(peaking_experiment, tmp_path):
    copy = _copy_experiment(peaking_experiment.path, tmp_path)
    failed = copy / "trial_89abcdef"
    failed.mkdir()
    (failed / "params.json").write_text("{}")
    (failed / "error.txt").write_text("Traceback ...")

    assert load_experiment(copy).trial("89abcdef").status == "ERROR"


def test_missing_checkpoint_gives_none(peaking_experiment, tmp_path, caplog):
    copy = _copy_experiment(peaking_experiment.path, tmp_path)
    best = load_experiment(copy).leaderboard().iloc[0]
    shutil.rmtree(best["checkpoint"])

    with caplog.at_level("WARNING", logger="results.experiment"):
        table = load_experiment(copy).leaderboard()

    assert table.iloc[0]["trial_id"] == best["trial_id"]
    assert table.iloc[0]["checkpoint"] is None
    assert best["trial_id"] in caplog.text


def test_load_rejects_storage_dir(peaking_experiment):
    with pytest.raises(ExperimentError, match="experiment directories inside it: peaking"):
        load_experiment(peaking_experiment.path.parent)


def test_load_rejects_missing_and_file(tmp_path):
    with pytest.raises(ExperimentError, match="not found"):
        load_experiment(tmp_path / "absent")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ExperimentError, match="got a file"):
        load_experiment(tmp_path / "file.txt")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        ([{"val_dice": math.nan}, {}], None),
        ([{"val_dice": 0.1}, {"val_dice": 0.3}, {"val_dice": 0.2}], 1),
        # Ties go to the latest report: Ray keeps only the later of two equal checkpoints.
        ([{"val_dice": 0.3}, {"val_dice": 0.3}], 1),
        ([{"val_dice": 0.0}, {"val_dice": 0.0}, {"val_dice": 0.0}], 2),
        ([{"val_dice": 0.1}, {"val_dice": 0.5}, {"val_dice": 0.5}, {"val_dice": 0.4}], 2),
        ([{"val_dice": True}, {"val_dice": 0.2}], 1),
        ([{"val_dice": "0.9"}, {"val_dice": 0.2}, {"val_dice": math.inf}], 1),
    ],
)
def test_best_result_index_table(values, expected):
    assert best_result_index(values, "val_dice") == expected


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"epoch": 3, "training_iteration": 4}, 3),
        ({"training_iteration": 4}, 4),
        ({"epoch": None}, None),
        ({}, None),
    ],
)
def test_report_epoch_table(row, expected):
    assert report_epoch(row) == expected


def test_flatten_config_nested():
    config = {
        "model": {"encoder": "resnet18", "extra": {}},
        "aug": {"scale": [0.9, 1.1]},
        "ema": None,
    }
    assert flatten_config(config) == {
        "config/model/encoder": "resnet18",
        "config/model/extra": "{}",
        "config/aug/scale": "[0.9, 1.1]",
        "config/ema": None,
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", []),
        (b"a", []),
        (b"a\n", ["a"]),
        (b"a\nb", ["a"]),
        (b"a\nb\n", ["a", "b"]),
        (b"a\r\nb\n", ["a", "b"]),
    ],
)
def test_read_complete_lines_table(tmp_path, content, expected):
    path = tmp_path / "result.json"
    path.write_bytes(content)
    assert read_complete_lines(path) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("train_tune_ffde1_00003_3_lr=0.01_2026-12-04_20-05-08", "ffde1_00003"),
        ("peaking_trainable_927f54cb_1_encoder=resnet34_2026-12-04", "927f54cb"),
        ("trial_927f54cb", "927f54cb"),
        ("notes", None),
    ],
)
def test_trial_id_from_dirname_table(name, expected):
    assert trial_id_from_dirname(name) == expected


def test_checkpoint_of_other_epoch_rejected(peaking_experiment, tmp_path, caplog):
    copy = _copy_experiment(peaking_experiment.path, tmp_path)
    best = load_experiment(copy).leaderboard().iloc[0]
    metrics_path = Path(best["checkpoint"]) / "metrics.json"
    saved = json.loads(metrics_path.read_text())
    metrics_path.write_text(json.dumps({**saved, "epoch": 3}))

    with caplog.at_level("WARNING", logger="results.experiment"):
        table = load_experiment(copy).leaderboard()

    assert table.iloc[0]["trial_id"] == best["trial_id"]
    assert table.iloc[0]["checkpoint"] is None
    assert "contains the weights of epoch 3, but the best report is epoch 2" in caplog.text
