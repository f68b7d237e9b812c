"""Tests of data.check: the report, the printed summary and the exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from data.check import CheckReport, check_dataset, format_report, main
from data.classes import CLASSES

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_clean_dataset_report(competition_root: Path) -> None:
    report = check_dataset(competition_root)
    assert isinstance(report, CheckReport)
    assert report.ok
    assert report.errors == []
    assert report.warnings == []
    assert report.n_train_patients == 3
    assert report.n_test_patients == 1
    assert report.n_train == 6
    assert report.n_test == 2
    assert dict(report.image_sizes) == {(16, 16): 8}
    assert report.class_counts == dict.fromkeys(CLASSES, 6)


def test_class_counts_and_sizes(tmp_path: Path, files) -> None:
    root = tmp_path / "r"
    files.write_image(root / "train" / "DCM" / "P1" / "a.png", 20, 30)
    files.write_json(
        root / "train" / "outputs_json" / "P1" / "a.json",
        [files.square("Ulna"), files.square("Radius")],
    )
    files.write_image(root / "train" / "DCM" / "P2" / "b.jpg", 40, 10)
    files.write_json(root / "train" / "outputs_json" / "P2" / "b.json", [files.square("Ulna")])

    report = check_dataset(root)
    assert report.ok
    assert dict(report.image_sizes) == {(20, 30): 1, (40, 10): 1}
    assert report.class_counts["Ulna"] == 2
    assert report.class_counts["Radius"] == 1
    assert report.class_counts["finger-1"] == 0
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith("27 class(es) appear in none of the training images")


def test_warnings_only_exit_zero(competition_root: Path, files, capsys) -> None:
    files.write_image(competition_root / "train" / "DCM" / "ID001" / "lonely.png")
    json_dir = competition_root / "train" / "outputs_json"
    entries = [files.square(label) for label in CLASSES] + [files.square("Ulna", 0, 3)]
    files.write_json(json_dir / "ID002" / "ID002_0.json", entries)
    # Image is 16x16: the corners (20, 10), (20, 20) and (10, 20) lie outside it.
    entries = [files.square(label) for label in CLASSES[:-1]] + [files.square("Ulna", 10, 20)]
    files.write_json(json_dir / "ID003" / "ID003_1.json", entries)

    report = check_dataset(competition_root)
    assert report.ok
    text = "\n".join(report.warnings)
    assert "image without annotation" in text
    assert "'Ulna' appears 2 times" in text
    assert f"{json_dir / 'ID003' / 'ID003_1.json'}, label 'Ulna': 3 of 4 points lie outside" in text
    assert len(report.warnings) == 3

    assert main([str(competition_root)]) == 0
    output = capsys.readouterr().out
    assert "warnings (3):" in output
    assert "result: OK with 3 warning(s)" in output


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: (root / "train/outputs_json/ID001/ID001_0.json").write_text("{"), "invalid JSON"),
        (
            lambda root: (root / "train/outputs_json/ID001/ID001_0.json").write_text(
                json.dumps({"annotations": [{"label": "Femur", "points": [[0, 0], [1, 0], [1, 1]]}]})
            ),
            "unknown label 'Femur'",
        ),
        (lambda root: (root / "train/DCM/ID002/ID002_1.png").write_bytes(b""), "file is empty"),
        (lambda root: (root / "test/DCM/ID100/ID100_test0.png").write_text("text"), "no readable image header"),
    ],
    ids=["broken-json", "unknown-label", "empty-image", "text-image"],
)
def test_errors_exit_one(competition_root: Path, damage, message: str, capsys) -> None:
    damage(competition_root)
    report = check_dataset(competition_root)
    assert not report.ok
    assert len(report.errors) == 1
    assert message in report.errors[0]

    assert main([str(competition_root)]) == 1
    output = capsys.readouterr().out
    assert "errors (1):" in output
    assert "result: FAILED with 1 error(s)" in output


def test_decode_finds_truncated_image(competition_root: Path) -> None:
    path = competition_root / "train" / "DCM" / "ID001" / "ID001_0.png"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    assert cv2.imwrite(str(path), noise)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    assert check_dataset(competition_root).ok
    decoded = check_dataset(competition_root, decode=True)
    assert not decoded.ok
    assert "not a decodable image" in decoded.errors[0]
    assert str(path) in decoded.errors[0]


def test_bad_root_is_an_error(tmp_path: Path, capsys) -> None:
    report = check_dataset(tmp_path / "absent")
    assert not report.ok
    assert "does not exist" in report.errors[0]
    assert main([str(tmp_path / "absent")]) == 1
    assert "result: FAILED" in capsys.readouterr().out


def test_duplicate_names_are_an_error(competition_root: Path, files) -> None:
    files.write_image(competition_root / "test" / "DCM" / "ID100" / "ID001_0.png")
    report = check_dataset(competition_root)
    assert not report.ok
    assert "share the file name 'ID001_0.png'" in report.errors[0]


def test_format_report_lists_classes(competition_root: Path) -> None:
    text = format_report(check_dataset(competition_root))
    assert "patients: 3 train, 1 test" in text
    assert "images: 6 train (with annotations), 2 test" in text
    assert "image sizes (H x W): 16x16: 8" in text
    for label in CLASSES:
        assert f"  {label} " in text
    assert text.endswith("result: OK")


def test_cli_runs_as_module(competition_root: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "data.check", str(competition_root)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "result: OK" in completed.stdout


def test_cli_runs_as_file_and_fails(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "data" / "check.py"), str(tmp_path / "absent")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 1, completed.stderr
    assert "does not exist" in completed.stdout


def test_synthetic_dataset_checks_clean(synthetic_dataset: Path) -> None:
    report = check_dataset(synthetic_dataset, decode=True)
    assert report.errors == []
    assert report.warnings == []
    assert report.n_train == 8
    assert report.n_test == 2
    assert report.n_train_patients == 4
    assert dict(report.image_sizes) == {(128, 128): 10}
    assert all(count > 0 for count in report.class_counts.values())
