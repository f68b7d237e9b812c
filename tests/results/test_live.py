"""Reading an experiment while Tune still runs it, with no connection to its Ray cluster."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from results.experiment import load_experiment
from results.report import build_report

GATE_TIMEOUT_S = 120.0


def gated_trainable(config: dict) -> None:
    """Report epoch 1, wait until the gate file exists, then report epoch 2."""
    from ray import tune

    tune.report({"epoch": 1, "val_dice": 0.25, "val_loss": 0.75, "dice/Radius": 0.5})
    deadline = time.monotonic() + GATE_TIMEOUT_S
    while not Path(config["gate"]).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    tune.report({"epoch": 2, "val_dice": 0.5, "val_loss": 0.5, "dice/Radius": 0.75})


def _wait_for_reports(experiment_dir: Path, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        results = list(experiment_dir.glob("*/result.json"))
        if results and results[0].read_text().count("\n") >= count:
            return
        time.sleep(0.2)
    raise TimeoutError(f"no trial in {experiment_dir} reported {count} times within {timeout_s} s")


@pytest.mark.slow
def test_read_while_running(ray_session, tmp_path):
    from ray import tune

    gate = tmp_path / "gate"
    tuner = tune.Tuner(
        gated_trainable,
        param_space={"gate": str(gate)},
        run_config=tune.RunConfig(name="live", storage_path=str(tmp_path / "runs"), verbose=0),
    )
    fit = threading.Thread(target=tuner.fit, daemon=True)
    fit.start()
    experiment_dir = tmp_path / "runs" / "live"
    try:
        _wait_for_reports(experiment_dir, 1, timeout_s=GATE_TIMEOUT_S)
        running = load_experiment(experiment_dir).leaderboard()
        report = build_report(experiment_dir, tmp_path / "report")
    finally:
        gate.touch()
        fit.join(timeout=GATE_TIMEOUT_S)
    assert not fit.is_alive()

    assert len(running) == 1
    assert running["epochs"][0] == 1
    assert running["val_dice"][0] == 0.25
    assert running["status"][0] in ("RUNNING", "PENDING", "unknown")
    assert report.files["learning_curves.png"].is_file()

    finished = load_experiment(experiment_dir).leaderboard()
    assert finished["epochs"][0] == 2
    assert finished["val_dice"][0] == 0.5
    assert finished["best_epoch"][0] == 2
    assert finished["status"][0] == "TERMINATED"
