"""Submission CSV writing and reading."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.classes import CLASSES
from ensemble import rle
from ensemble.submission import (
    HEADER,
    SubmissionError,
    SubmissionIndex,
    SubmissionWriter,
    iter_records,
    masks_from_rles,
    read_submission,
    submission_table,
    write_submission,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def image_masks(shape=(6, 5), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    masks = (rng.random((len(CLASSES), *shape)) < 0.3).astype(np.uint8)
    masks[3] = 0  # one empty class per image
    return masks


def test_writer_header_and_rows(tmp_path):
    path = tmp_path / "sub.csv"
    masks = image_masks()
    with SubmissionWriter(path) as writer:
        writer.write_image("a.png", masks)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "image_name,class,rle"
    assert len(lines) == 1 + len(CLASSES)
    assert lines[1] == f"a.png,finger-1,{rle.encode(masks[0])}"
    assert lines[4] == "a.png,finger-4,"


def test_writer_empty_mask_not_nan(tmp_path):
    path = tmp_path / "sub.csv"
    write_submission(
        path,
        [("a.png", "finger-1", ""), ("a.png", "finger-2", None), ("a.png", "finger-3", np.nan)],
    )
    text = path.read_text(encoding="utf-8")
    assert "nan" not in text.lower()
    assert text.splitlines()[1:] == ["a.png,finger-1,", "a.png,finger-2,", "a.png,finger-3,"]


def test_reader_empty_rle_is_empty_string(tmp_path):
    path = tmp_path / "sub.csv"
    write_submission(path, [("a.png", "finger-1", ""), ("a.png", "finger-2", "1 2")])
    frame = read_submission(path)
    assert list(frame.columns) == list(HEADER)
    assert frame["rle"].tolist() == ["", "1 2"]
    rles = {class_name: text for (_, class_name), text in submission_table(frame).items()}
    decoded = masks_from_rles(rles, (2, 2))
    assert decoded[0].sum() == 0
    np.testing.assert_array_equal(decoded[1], [[1, 1], [0, 0]])


def test_reader_round_trip_masks(tmp_path):
    path = tmp_path / "sub.csv"
    stacks = {"b.png": image_masks((4, 7), 1), "a.png": image_masks((5, 3), 2)}
    with SubmissionWriter(path) as writer:
        for name, masks in stacks.items():
            writer.write_image(name, masks)
    table = submission_table(read_submission(path))
    for name, masks in stacks.items():
        rles = {c: table[(name, c)] for c in CLASSES}
        np.testing.assert_array_equal(masks_from_rles(rles, masks.shape[1:]), masks)


def test_reader_rejects_bad_header(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_text("ImageId,EncodedPixels\nx,1 2\n", encoding="utf-8")
    with pytest.raises(SubmissionError, match="expected 'image_name,class,rle'"):
        read_submission(path)


def test_reader_accepts_byte_order_mark(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_text("\ufeffimage_name,class,rle\na.png,Radius,1 2\n", encoding="utf-8")
    assert read_submission(path)["image_name"].tolist() == ["a.png"]
    assert SubmissionIndex(path).read(("a.png", "Radius")) == "1 2"


def test_table_rejects_duplicate_key(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_text("image_name,class,rle\na.png,Radius,1 2\na.png,Radius,\n", encoding="utf-8")
    with pytest.raises(SubmissionError, match="duplicate row"):
        submission_table(read_submission(path))


def test_writer_rejects_duplicate_and_unknown(tmp_path):
    path = tmp_path / "sub.csv"
    with pytest.raises(SubmissionError, match="duplicate row"):
        with SubmissionWriter(path) as writer:
            writer.write_row("a.png", "Radius", "")
            writer.write_row("a.png", "Radius", "")
    with pytest.raises(SubmissionError, match="unknown class 'radius'"):
        with SubmissionWriter(path) as writer:
            writer.write_row("a.png", "radius", "")
    assert not path.exists()


def test_writer_rejects_wrong_channel_count(tmp_path):
    with pytest.raises(SubmissionError, match=r"expected \(29, H, W\)"):
        with SubmissionWriter(tmp_path / "sub.csv") as writer:
            writer.write_image("a.png", np.zeros((28, 4, 4), np.uint8))


def test_failed_write_keeps_old_file(tmp_path):
    path = tmp_path / "sub.csv"
    write_submission(path, [("old.png", "Radius", "1 2")])
    old = path.read_bytes()

    with pytest.raises(RuntimeError, match="disk on fire"):
        with SubmissionWriter(path) as writer:
            writer.write_image("new.png", image_masks())
            writer.write_row("new2.png", "Radius", "1 2")
            raise RuntimeError("disk on fire")

    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub.csv"]


def test_killed_writer_keeps_old_file(tmp_path):
    # A real process that dies without cleanup (os._exit) after writing half the rows.
    path = tmp_path / "sub.csv"
    write_submission(path, [("old.png", "Radius", "1 2")])
    old = path.read_bytes()
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from ensemble.submission import SubmissionWriter
        writer = SubmissionWriter({str(path)!r})
        for i in range(1000):
            writer.write_row(f"img{{i}}.png", "Radius", "1 2")
        writer._file.flush()
        os._exit(3)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == 3, result.stderr.decode()
    assert path.read_bytes() == old
    leftovers = [p for p in tmp_path.iterdir() if p.name != "sub.csv"]
    assert len(leftovers) == 1
    assert leftovers[0].name.startswith(".sub.csv.")
    assert leftovers[0].stat().st_size > len(old)


def test_new_file_is_readable_by_others(tmp_path):
    path = tmp_path / "sub.csv"
    write_submission(path, [("a.png", "Radius", "")])
    assert path.stat().st_mode & 0o777 == 0o644


def test_index_reads_by_key_in_any_order(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_text(
        "image_name,class,rle\n"
        "b.png,Ulna,5 1\n"
        "a.png,Radius,1 2\n"
        '"c,1.png",Radius,3 1\n'
        "b.png,Radius,\n",
        encoding="utf-8",
    )
    with SubmissionIndex(path) as index:
        assert index.images == ["b.png", "a.png", "c,1.png"]
        assert index.read(("b.png", "Radius")) == ""
        assert index.read(("a.png", "Radius")) == "1 2"
        assert index.read(("b.png", "Ulna")) == "5 1"
        assert index.read(("c,1.png", "Radius")) == "3 1"
        assert index.read(("a.png", "Ulna")) is None
        assert index.read_image("b.png") == {"Radius": "", "Ulna": "5 1"}
        assert index.lines[("b.png", "Radius")] == 5


def test_index_rejects_duplicates(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_text("image_name,class,rle\na.png,Radius,\na.png,Radius,1 1\n", encoding="utf-8")
    with pytest.raises(SubmissionError, match="line 3: duplicate row"):
        SubmissionIndex(path)


def test_records_have_line_numbers(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_bytes(b"image_name,class,rle\r\na.png,Radius,1 1\r\n\r\nb.png,Ulna,\r\n")
    records = list(iter_records(path))
    assert [r.line for r in records] == [1, 2, 4]
    assert records[2].fields == ["b.png", "Ulna", ""]


def test_pandas_default_would_read_nan(tmp_path):
    # The reason read_submission switches NaN conversion off.
    path = tmp_path / "sub.csv"
    write_submission(path, [("a.png", "Radius", "")])
    assert pd.isna(pd.read_csv(path)["rle"][0])
    assert read_submission(path)["rle"][0] == ""
