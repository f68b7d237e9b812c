"""Command line ``python -m trainable.train``: outputs, resume, split creation, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trainable.checkpoint import load_model
from trainable.config import load_config
from trainable.train import main

REPO_ROOT = Path(__file__).resolve().parents[2]
DEBUG_CONFIG = REPO_ROOT / "trainable" / "configs" / "debug_cpu.yaml"
FAST = [
    "--set", "input_size=64",
    "--set", "model.architecture=FPN",
    "--set", "model.encoder=tu-mobilenetv3_small_050",
]


def _epochs(out: Path) -> list[int]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines]


@pytest.mark.slow
def test_train_then_resume(tmp_path, synthetic_root):
    root = tmp_path / "dataset"
    shutil.copytree(synthetic_root, root)
    out = tmp_path / "out"
    args = ["--config", str(DEBUG_CONFIG), "--set", f"data.root={root}", *FAST, "--out", str(out)]

    assert main([*args, "--set", "optim.epochs=1", "--make-splits", "4"]) == 0

    assert (root / "splits.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "metrics.jsonl", "model.pt", "training_state.pt"]
    assert _epochs(out) == [1]
    model, config = load_model(out)
    assert config == load_config(out / "config.yaml")
    assert config["data"]["root"] == str(root)

    assert main([*args, "--set", "optim.epochs=2", "--resume"]) == 0
    assert _epochs(out) == [1, 2]


def test_bad_override_exits_with_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(DEBUG_CONFIG), "--set", "optim.lrr=0.1", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "unknown config key 'optim.lrr' (did you mean 'optim.lr'?)" in capsys.readouterr().err


@pytest.mark.slow
def test_runs_as_module_help():
    completed = subprocess.run(
        [sys.executable, "-m", "trainable.train", "--help"], capture_output=True, text=True, check=True
    )
    assert "--set KEY=VALUE" in completed.stdout
