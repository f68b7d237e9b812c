"""Submission validation: library function and command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from data.classes import CLASSES
from ensemble.validate import Problem, find_problems

REPO_ROOT = Path(__file__).resolve().parents[2]
HEADER_LINE = "image_name,class,rle"


def complete_rows(image_name: str, rle_of=lambda class_name: "") -> list[str]:
    return [f"{image_name},{class_name},{rle_of(class_name)}" for class_name in CLASSES]


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def messages_by_row(problems: list[Problem]) -> dict[int | None, list[str]]:
    grouped: dict[int | None, list[str]] = {}
    for problem in problems:
        grouped.setdefault(problem.row, []).append(problem.message)
    return grouped


def test_valid_file_has_no_problems(tmp_path):
    path = write_csv(
        tmp_path / "ok.csv",
        [HEADER_LINE] + complete_rows("a.png", lambda c: "1 5 100 3") + complete_rows("b.png"),
    )
    assert find_problems(path) == []


def test_bad_header(tmp_path):
    path = write_csv(tmp_path / "bad.csv", ["image,class,rle"] + complete_rows("a.png"))
    problems = find_problems(path)
    assert len(problems) == 1
    assert problems[0].row == 1
    assert "expected 'image_name,class,rle'" in problems[0].message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    assert "is empty" in str(find_problems(path)[0])


def test_header_without_rows(tmp_path):
    path = write_csv(tmp_path / "header.csv", [HEADER_LINE])
    assert [p.message for p in find_problems(path)] == [f"{path} has a header but no rows"]


# (RLE field, part of the expected message), each checked at the default 2048 x 2048 size.
INVALID_RLES = [
    ("1 2 3", "odd number of values"),
    ("1 0", "length 0"),
    ("0 5", "starts at 0"),
    ("10 5 12 1", "before the previous run ends"),
    ("20 1 10 1", "before the previous run ends"),
    ("1.5 2", "'1.5'"),
    ("x 2", "'x'"),
    ("4194304 2", "past the last pixel 4194304"),
]


@pytest.mark.parametrize("text, message", INVALID_RLES)
def test_invalid_rle_reported_with_row(tmp_path, text, message):
    rows = complete_rows("a.png")
    rows[6] = f"a.png,{CLASSES[6]},{text}"
    path = write_csv(tmp_path / "bad.csv", [HEADER_LINE] + rows)
    problems = find_problems(path)
    assert len(problems) == 1
    assert problems[0].row == 8  # header is row 1, rows[6] is row 8
    assert "invalid RLE of 2048x2048" in problems[0].message
    assert message in problems[0].message


def test_key_problems(tmp_path):
    rows = complete_rows("a.png")
    rows[2] = "a.png,finger-30,"  # unknown class, and finger-3 goes missing
    rows.append("a.png,Radius,1 1")  # duplicate of an earlier row
    rows.append("a.png,Radius")  # two fields
    rows.append(",Ulna,")  # empty image name
    path = write_csv(tmp_path / "keys.csv", [HEADER_LINE] + rows)
    by_row = messages_by_row(find_problems(path))

    assert "unknown class 'finger-30'" in by_row[4][0]
    assert "did you mean" in by_row[4][0]
    assert by_row[31] == ["duplicate key ('a.png', 'Radius'); first seen at row 29"]
    assert by_row[32] == ["2 fields, expected 3 (image_name,class,rle)"]
    assert by_row[33] == ["empty image_name"]
    missing = [message for message in by_row[2] if "has no row" in message]
    assert missing == ["image 'a.png' has no row for 1 of the 29 classes: finger-3"]


def test_missing_classes_listed(tmp_path):
    rows = complete_rows("a.png")[:-2]
    path = write_csv(tmp_path / "missing.csv", [HEADER_LINE] + rows)
    problems = find_problems(path)
    assert [str(p) for p in problems] == [
        "row 2: image 'a.png' has no row for 2 of the 29 classes: Radius, Ulna"
    ]


def test_default_size_option(tmp_path):
    path = write_csv(tmp_path / "s.csv", [HEADER_LINE] + complete_rows("a.png", lambda c: "12 2"))
    assert find_problems(path, default_size=(3, 4)) != []
    assert find_problems(path, default_size=(3, 5)) == []


def test_sizes_from_images(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((3, 5), np.uint8))
    cv2.imwrite(str(images / "c.jpg"), np.zeros((4, 4), np.uint8))
    rows = complete_rows("a.png") + complete_rows("b.png")
    rows[0] = "a.png,finger-1,14 2"  # pixels 14..15 of 15: inside 3 x 5
    rows[1] = "a.png,finger-2,15 2"  # pixel 16: outside
    path = write_csv(tmp_path / "s.csv", [HEADER_LINE] + rows)

    from ensemble.image_folders import find_images, image_sizes

    sizes = image_sizes(find_images(images))
    assert sizes == {"a.png": (3, 5), "c.jpg": (4, 4)}
    by_row = messages_by_row(find_problems(path, sizes=sizes))
    assert by_row[3] == [
        "invalid RLE of 3x5: run 1 ('15 2') ends at pixel 16, past the last pixel 15 of the image"
    ]
    # One problem for the 29 rows of b.png, at its first row, not one per row.
    assert by_row[2 + 29] == [
        "image 'b.png' (29 rows) is not in the image folder; pass the folder that holds every "
        "image of the CSV to --images"
    ]
    assert sum(len(messages) for messages in by_row.values()) == 3
    assert by_row[None] == ["image 'c.jpg' has no rows (expected 29, one per class)"]


def test_unbalanced_quote_is_row_problem(tmp_path):
    rows = complete_rows("a.png")
    rows[0] = 'a.png,finger-1,"1 2'
    path = write_csv(tmp_path / "q.csv", [HEADER_LINE] + rows)
    by_row = messages_by_row(find_problems(path))
    assert "unbalanced quotes" in by_row[2][0]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "ensemble" / "validate.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_exit_codes(tmp_path):
    good = write_csv(tmp_path / "good.csv", [HEADER_LINE] + complete_rows("a.png"))
    rows = complete_rows("a.png")
    rows[0] = "a.png,finger-1,1 2 3"
    bad = write_csv(tmp_path / "bad.csv", [HEADER_LINE] + rows)

    ok = run_cli(str(good))
    assert ok.returncode == 0, ok.stderr
    assert "valid" in ok.stdout

    failed = run_cli(str(bad))
    assert failed.returncode == 1
    assert failed.stdout.startswith("row 2: invalid RLE of 2048x2048: RLE has an odd number")

    missing_folder = run_cli(str(good), "--images", str(tmp_path / "nowhere"))
    assert missing_folder.returncode == 2
    assert "does not exist" in missing_folder.stderr
