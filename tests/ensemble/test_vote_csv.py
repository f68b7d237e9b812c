"""Hard voting over submission CSVs, joined on keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data.classes import CLASSES
from ensemble import rle
from ensemble.submission import SubmissionWriter, read_submission, submission_table
from ensemble.vote_csv import vote_csvs

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE = (4, 6)


def write_masks(path: Path, stacks: dict[str, np.ndarray], reverse: bool = False) -> Path:
    """Write (29, H, W) stacks; ``reverse`` writes rows in the opposite order."""
    rows = [
        (name, class_name, rle.encode(masks[c]))
        for name, masks in stacks.items()
        for c, class_name in enumerate(CLASSES)
    ]
    with SubmissionWriter(path) as writer:
        for row in reversed(rows) if reverse else rows:
            writer.write_row(*row)
    return path


def random_stacks(seed: int, names=("x.png", "y.png")) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: (rng.random((len(CLASSES), *SIZE)) < 0.4).astype(np.uint8) for name in names}


def voted(path: Path) -> dict[tuple[str, str], np.ndarray]:
    table = submission_table(read_submission(path))
    return {key: rle.decode(text, SIZE) for key, text in table.items()}


@pytest.mark.parametrize("min_votes", [1, 2, 3])
def test_vote_matches_pixel_majority(tmp_path, min_votes):
    members = [random_stacks(seed) for seed in range(3)]
    # Rows in different orders: the vote must join on keys, not positions.
    paths = [
        write_masks(tmp_path / f"m{i}.csv", stacks, reverse=(i == 1))
        for i, stacks in enumerate(members)
    ]
    out = tmp_path / "vote.csv"
    summary = vote_csvs(paths, out, min_votes=min_votes, default_size=SIZE)

    assert summary.images == 2
    assert summary.rows == 2 * len(CLASSES)
    assert summary.problems == []
    result = voted(out)
    for name in ("x.png", "y.png"):
        expected = sum(m[name].astype(int) for m in members) >= min_votes
        for c, class_name in enumerate(CLASSES):
            np.testing.assert_array_equal(result[(name, class_name)], expected[c])


def test_missing_rows_count_as_empty(tmp_path):
    full = {"x.png": np.ones((len(CLASSES), *SIZE), np.uint8)}
    a = write_masks(tmp_path / "a.csv", full)
    b = write_masks(tmp_path / "b.csv", full)
    c = tmp_path / "c.csv"
    with SubmissionWriter(c) as writer:
        writer.write_row("x.png", "Radius", "1 24")
    summary = vote_csvs([a, b, c], tmp_path / "vote.csv", min_votes=3, default_size=SIZE)
    assert summary.missing_rows == len(CLASSES) - 1
    result = voted(tmp_path / "vote.csv")
    assert result[("x.png", "Radius")].all()
    assert result[("x.png", "Ulna")].sum() == 0


def test_image_only_in_one_input(tmp_path):
    a = write_masks(tmp_path / "a.csv", random_stacks(0, names=("x.png",)))
    b = write_masks(tmp_path / "b.csv", random_stacks(1, names=("x.png", "z.png")))
    summary = vote_csvs([a, b], tmp_path / "vote.csv", min_votes=1, default_size=SIZE)
    assert summary.images == 2
    assert summary.missing_rows == len(CLASSES)


def test_default_min_votes_is_majority(tmp_path):
    members = [random_stacks(seed) for seed in range(4)]
    paths = [write_masks(tmp_path / f"m{i}.csv", s) for i, s in enumerate(members)]
    vote_csvs(paths, tmp_path / "vote.csv", default_size=SIZE)
    expected = sum(m["x.png"].astype(int) for m in members) >= 3
    np.testing.assert_array_equal(voted(tmp_path / "vote.csv")[("x.png", "Ulna")], expected[-1])


def test_invalid_rle_names_file_and_line(tmp_path):
    a = write_masks(tmp_path / "a.csv", random_stacks(0))
    b = tmp_path / "b.csv"
    with SubmissionWriter(b) as writer:
        writer.write_row("x.png", "finger-1", "20 10")  # ends at pixel 29 of 24
    with pytest.raises(ValueError, match=r"b.csv line 2: invalid RLE .* at 4x6"):
        vote_csvs([a, b], tmp_path / "vote.csv", default_size=SIZE)
    assert not (tmp_path / "vote.csv").exists()


@pytest.mark.parametrize("count, min_votes, message", [(1, 1, "at least 2"), (2, 3, "between 1 and 2")])
def test_argument_errors(tmp_path, count, min_votes, message):
    paths = [write_masks(tmp_path / f"m{i}.csv", random_stacks(i)) for i in range(count)]
    with pytest.raises(ValueError, match=message):
        vote_csvs(paths, tmp_path / "vote.csv", min_votes=min_votes)


def test_cli_with_image_sizes(tmp_path):
    import cv2

    images = tmp_path / "images"
    images.mkdir()
    for name in ("x.png", "y.png"):
        cv2.imwrite(str(images / name), np.zeros(SIZE, np.uint8))
    paths = [write_masks(tmp_path / f"m{i}.csv", random_stacks(i)) for i in range(3)]
    out = tmp_path / "vote.csv"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "ensemble" / "vote_csv.py"), *map(str, paths),
         "--out", str(out), "--min-votes", "2", "--images", str(images)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "2 images, 58 rows" in result.stdout
    assert len(read_submission(out)) == 58


@pytest.mark.parametrize("how", ["same", "relative", "symlink", "hardlink"])
def test_out_that_is_an_input_is_rejected(tmp_path, monkeypatch, how):
    a = write_masks(tmp_path / "a.csv", random_stacks(1))
    b = write_masks(tmp_path / "b.csv", random_stacks(2))
    before = a.read_bytes()
    monkeypatch.chdir(tmp_path)
    out = {"same": a, "relative": Path("sub") / ".." / "a.csv"}.get(how)
    if how == "symlink":
        out = tmp_path / "link.csv"
        out.symlink_to(a)
    elif how == "hardlink":
        out = tmp_path / "hard.csv"
        out.hardlink_to(a)
    with pytest.raises(ValueError, match=r"--out .* is the input .*a\.csv; .*give another --out"):
        vote_csvs([a, b], out)
    assert a.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def test_cli_out_that_is_an_input(tmp_path):
    a = write_masks(tmp_path / "a.csv", random_stacks(1))
    b = write_masks(tmp_path / "b.csv", random_stacks(2))
    before = b.read_bytes()
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "ensemble" / "vote_csv.py"), str(a), str(b),
         "--out", str(b), "--default-size", "4x6"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"--out {b} is the input {b}" in result.stderr
    assert b.read_bytes() == before
