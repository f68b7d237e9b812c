"""Leaderboard CSV round trip, its format_version, and the printed tables."""

from __future__ import annotations

import pandas as pd
import pytest

from results.experiment import LEADERBOARD_COLUMNS, load_experiment
from results.leaderboard import (
    LEADERBOARD_FORMAT_VERSION,
    format_leaderboard,
    format_per_class_dice,
    read_leaderboard_csv,
    varied_config_columns,
    write_leaderboard_csv,
    write_per_class_csv,
)


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trial_id": ["b_00001", "a_00000", "00002000"],
            "val_dice": [0.8125, 0.5, float("nan")],
            "best_epoch": pd.array([3, 1, None], dtype="Int64"),
            "epochs": [4, 2, 0],
            "time_s": [12.25, 6.5, float("nan")],
            "status": ["TERMINATED", "RUNNING", "PENDING"],
            "checkpoint": pd.Series(
                ["/runs/e/b/checkpoint_000002", "/runs/e/a/checkpoint_000000", None], dtype=object
            ),
            "config/model/encoder": ["resnet34", "resnet18", "resnet18"],
            "config/optim/lr": [0.01, 0.001, 0.0001],
            "config/seed": [0, 0, 0],
        }
    )


def test_csv_starts_with_format_version(tmp_path):
    path = write_leaderboard_csv(_table(), tmp_path / "out" / "leaderboard.csv")
    header = path.read_text().splitlines()[0].split(",")

    assert header[0] == "format_version"
    assert header[1 : 1 + len(LEADERBOARD_COLUMNS)] == list(LEADERBOARD_COLUMNS)
    assert set(pd.read_csv(path)["format_version"]) == {LEADERBOARD_FORMAT_VERSION}


def test_csv_round_trip_hand_table(tmp_path):
    table = _table()
    path = write_leaderboard_csv(table, tmp_path / "leaderboard.csv")

    pd.testing.assert_frame_equal(read_leaderboard_csv(path), table, check_dtype=False)
    assert read_leaderboard_csv(path)["checkpoint"].iloc[2] is None


def test_csv_round_trip_experiment(peaking_experiment, tmp_path):
    table = load_experiment(peaking_experiment.path).leaderboard()
    back = read_leaderboard_csv(write_leaderboard_csv(table, tmp_path / "leaderboard.csv"))

    pd.testing.assert_frame_equal(back, table, check_dtype=False)


@pytest.mark.parametrize("version", [0, 2])
def test_read_rejects_other_version(tmp_path, version):
    path = tmp_path / "leaderboard.csv"
    write_leaderboard_csv(_table(), path)
    text = path.read_text().replace("\n1,", f"\n{version},")
    path.write_text(text)

    with pytest.raises(ValueError, match=f"format_version \\[{version}\\] is not supported"):
        read_leaderboard_csv(path)


def test_read_rejects_unversioned_csv(tmp_path):
    path = tmp_path / "leaderboard.csv"
    _table().to_csv(path, index=False)

    with pytest.raises(ValueError, match="no format_version column"):
        read_leaderboard_csv(path)


def test_per_class_csv_has_version(tmp_path):
    table = pd.DataFrame(
        {"trial_id": ["a"], "val_dice": [0.5], "best_epoch": [2], "Radius": [0.25]}
    )
    path = write_per_class_csv(table, tmp_path / "per_class_dice.csv")

    assert path.read_text().splitlines() == [
        "format_version,trial_id,val_dice,best_epoch,Radius",
        "1,a,0.5,2,0.25",
    ]


def test_varied_config_columns_only():
    assert varied_config_columns(_table()) == ["config/model/encoder", "config/optim/lr"]


def test_format_leaderboard_text():
    text = format_leaderboard(_table(), top=2)
    lines = text.splitlines()

    assert lines[0].split() == [
        "trial_id",
        "val_dice",
        "best_epoch",
        "epochs",
        "time_s",
        "status",
        "model/encoder",
        "optim/lr",
        "checkpoint",
    ]
    assert lines[1].split() == [
        "b_00001",
        "0.8125",
        "3",
        "4",
        "12.2",
        "TERMINATED",
        "resnet34",
        "0.010",
        "checkpoint_000002",
    ]
    assert "00002000" not in text
    assert lines[-1] == "(1 more trials in the CSV)"
    assert "seed" not in text


def test_format_leaderboard_empty():
    assert format_leaderboard(pd.DataFrame(columns=list(LEADERBOARD_COLUMNS))) == "no trials yet"


def test_format_per_class_by_class():
    table = pd.DataFrame(
        {
            "trial_id": ["a", "b"],
            "val_dice": [0.5, 0.4],
            "best_epoch": [2, 1],
            "Radius": [0.25, 0.125],
            "Ulna": [0.5, None],
        }
    )
    lines = format_per_class_dice(table).splitlines()

    assert lines[0].split() == ["trial_id", "a", "b"]
    assert lines[2].split() == ["Radius", "0.250", "0.125"]
    assert lines[3].split() == ["Ulna", "0.500", "-"]


def test_format_per_class_without_classes():
    table = pd.DataFrame({"trial_id": ["a"], "val_dice": [0.5], "best_epoch": [2]})
    assert "no per-class Dice" in format_per_class_dice(table)
