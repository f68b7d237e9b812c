"""Inputs of ensemble/build.py that are rejected before any experiment or model is read.

The experiment given here does not exist: each error must come from the early checks, so these
tests run in a fraction of a second and prove that no slow work comes first. The last test
checks the usage line of every ensemble script.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ensemble.build import BuildOptions, build_ensemble

REPO_ROOT = Path(__file__).resolve().parents[2]


def early_options(tmp_path: Path, **changes) -> BuildOptions:
    values = dict(experiment=tmp_path / "no-such-experiment", out=tmp_path / "sub.csv", device="cpu")
    values.update(changes)
    return BuildOptions(**values)


def image_folder(tmp_path: Path, bad: bytes | None = None) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    assert cv2.imwrite(str(folder / "good.png"), np.full((8, 6), 90, np.uint8))
    if bad is not None:
        (folder / "zz_bad.png").write_bytes(bad)
    return folder


@pytest.mark.parametrize(
    "changes, expected",
    [
        (dict(images=Path("missing-folder")), r"--images missing-folder is not a folder"),
        (dict(weights="abc"), r"invalid --weights 'abc'; expected 'dice' or comma-separated"),
        (dict(weights="1,-2"), r"--weights must be non-negative"),
        (dict(thresholds_file=Path("missing.yaml")), r"--thresholds-file missing.yaml is not a file"),
    ],
)
def test_bad_options_fail_before_the_experiment_is_read(tmp_path, changes, expected):
    with pytest.raises(ValueError, match=expected):
        build_ensemble(early_options(tmp_path, **changes))


def test_overlays_path_that_is_a_file(tmp_path):
    existing = tmp_path / "overlays.txt"
    existing.write_text("not a folder", encoding="utf-8")
    with pytest.raises(ValueError, match=r"--overlays .*overlays.txt exists and is not a folder"):
        build_ensemble(early_options(tmp_path, overlays=existing))


def test_out_that_is_a_folder(tmp_path):
    with pytest.raises(ValueError, match=r"--out .* is a folder"):
        build_ensemble(early_options(tmp_path, out=tmp_path))


@pytest.mark.parametrize("content", [b"", b"this is not a PNG"])
def test_unreadable_image_fails_before_any_model(tmp_path, content):
    folder = image_folder(tmp_path, bad=content)
    with pytest.raises(ValueError, match=r"zz_bad\.png") as caught:
        build_ensemble(early_options(tmp_path, images=folder))
    assert "point --images to another folder" in str(caught.value)
    assert not (tmp_path / "sub.csv").exists()


def test_cli_errors_without_traceback(tmp_path):
    existing = tmp_path / "overlays.txt"
    existing.write_text("", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "ensemble" / "build.py"), "--experiment",
         str(tmp_path / "none"), "--overlays", str(existing), "--out", str(tmp_path / "s.csv")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"--overlays {existing} exists and is not a folder" in result.stderr


@pytest.mark.parametrize("script", ["build", "evaluate", "validate", "vote_csv"])
def test_usage_names_the_command_to_type(script):
    import importlib

    module = importlib.import_module(f"ensemble.{script}")
    assert module.build_parser().format_usage().startswith(f"usage: python ensemble/{script}.py ")
