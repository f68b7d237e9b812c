"""A real search with the real trainable: experiment files, Optuna study, parallel trials, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState
from ray import tune

from data.splits import read_splits
from search import experiment_files as files
from search.cluster import RayOptions
from search.run_search import SearchError, SearchOptions, main, run_search
from search.trial_log import max_running_at_once, trial_intervals

NUM_TRIALS = 4
TINY_EPOCHS = 3  # optim.epochs of the tiny space in conftest.py


@pytest.fixture(scope="module")
def tiny_search(tmp_path_factory, synthetic_root, tiny_space) -> Path:
    """4 trials of the tiny space with ASHA on a 4-CPU Ray instance, 1 CPU per trial."""
    options = SearchOptions(
        num_samples=NUM_TRIALS,
        space=tiny_space,
        data_root=synthetic_root,
        name="tiny",
        storage_path=tmp_path_factory.mktemp("search-run") / "ray_results",
        n_folds=2,
        cpus_per_trial=1,
        seed=3,
        verbose=0,
        ray=RayOptions(num_cpus=4, include_dashboard=False, object_store_memory_mib=200),
    )
    return run_search(options)


def _tune_frames(experiment_dir: Path) -> dict[str, pd.DataFrame]:
    results = tune.ExperimentAnalysis(str(experiment_dir)).trial_dataframes
    return {frame["trial_id"].iloc[0]: frame for frame in results.values() if len(frame)}


@pytest.mark.slow
def test_experiment_folder_has_search_files(tiny_search, synthetic_root, tiny_space):
    assert tiny_search.name == "tiny"
    for name in (files.OPTIONS_FILE, files.SPACE_FILE, files.BASE_CONFIG_FILE, files.SPLITS_FILE,
                 files.STUDY_FILE, files.SUMMARY_FILE):
        assert (tiny_search / name).is_file(), name

    assert (tiny_search / files.SPACE_FILE).read_bytes() == tiny_space.read_bytes()
    base = yaml.safe_load((tiny_search / files.BASE_CONFIG_FILE).read_text())
    assert base["data"]["root"] == str(synthetic_root.resolve())
    assert base["data"]["splits"] == str(tiny_search / files.SPLITS_FILE)
    assert base["data"]["fold"] == 0
    assert base["seed"] == 3
    splits = read_splits(tiny_search / files.SPLITS_FILE)
    assert splits["n_folds"] == 2
    assert len(splits["images"]) == 8

    options = files.read_options(tiny_search)
    assert options["num_samples"] == NUM_TRIALS
    assert options["epochs"] == TINY_EPOCHS
    assert options["searched_params"] == ["model.encoder", "optim.lr", "aug.strength"]
    assert Path(options["storage_path"]).is_absolute()


@pytest.mark.slow
def test_every_trial_validates_on_the_split_file(tiny_search):
    frames = _tune_frames(tiny_search)
    params = [json.loads((tiny_search / f"trial_{tid}" / "params.json").read_text()) for tid in frames]

    assert len(params) == NUM_TRIALS
    for config in params:
        assert config["data"]["splits"] == str(tiny_search / files.SPLITS_FILE)
        assert config["data"]["fold"] == 0
        assert config["model"]["encoder"] in ("resnet18", "mobilenet_v2")
        assert 1e-3 <= config["optim"]["lr"] <= 1e-2


@pytest.mark.slow
def test_study_matches_tune_results(tiny_search):
    """PRUNED for stopped trials with their per-epoch Dice, COMPLETE with the best epoch's."""
    study = files.load_study(tiny_search)
    frames = _tune_frames(tiny_search)
    by_tune_id = {t.user_attrs["tune_trial_id"]: t for t in study.trials}

    assert study.study_name == "tiny"
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert sorted(by_tune_id) == sorted(frames)
    for trial_id, frame in frames.items():
        trial = by_tune_id[trial_id]
        per_epoch = dict(zip(frame["training_iteration"], frame["val_dice"]))
        assert trial.intermediate_values == pytest.approx(per_epoch), trial_id
        if len(frame) < TINY_EPOCHS:
            assert trial.state == TrialState.PRUNED, trial_id
            assert trial.value == pytest.approx(frame["val_dice"].iloc[-1])
        else:
            assert trial.state == TrialState.COMPLETE, trial_id
            assert trial.value == pytest.approx(frame["val_dice"].max())
        assert set(trial.params) == {"model/encoder", "optim/lr", "aug/strength"}


@pytest.mark.slow
def test_trials_ran_in_parallel(tiny_search):
    """4 CPUs, 1 CPU per trial: the trials' running intervals (Tune timestamps) overlap."""
    intervals = trial_intervals(_tune_frames(tiny_search))
    summary = files.read_summary(tiny_search)

    assert len(intervals) == NUM_TRIALS
    assert max_running_at_once(intervals) >= 2
    assert summary["max_concurrent"] == 4
    assert summary["max_running_at_once"] == max_running_at_once(intervals)


@pytest.mark.slow
def test_summary_names_the_best_trial(tiny_search):
    summary = files.read_summary(tiny_search)
    frames = _tune_frames(tiny_search)
    best_id = max(frames, key=lambda trial_id: frames[trial_id]["val_dice"].max())

    assert summary["finished"] is True
    assert summary["trials"] == NUM_TRIALS
    assert summary["status_counts"] == {"TERMINATED": NUM_TRIALS, "ERROR": 0, "UNFINISHED": 0}
    assert summary["best"]["trial_id"] == best_id
    assert summary["best"]["val_dice"] == pytest.approx(frames[best_id]["val_dice"].max())
    assert set(summary["best"]["params"]) == {"model.encoder", "optim.lr", "aug.strength"}


@pytest.mark.slow
def test_existing_experiment_needs_resume(tiny_search, synthetic_root, tiny_space):
    options = SearchOptions(
        space=tiny_space, data_root=synthetic_root, name="tiny", storage_path=tiny_search.parent
    )
    with pytest.raises(SearchError, match="already exists; pass --resume"):
        run_search(options)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_samples": 0}, "num_samples must be >= 1"),
        ({"cpus_per_trial": 0}, "cpus_per_trial must be > 0"),
        ({"gpus_per_trial": -1}, "gpus_per_trial must be >= 0"),
        ({"fold": 2}, "fold must be in [0, 1]"),
        ({"n_folds": 1}, "n_folds must be >= 2"),
        ({"scheduler": "pbt"}, "scheduler must be one of asha, fifo"),
        ({"name": "../escape"}, "name '../escape' must start with a letter or digit"),
        ({"max_concurrent": 0}, "max_concurrent must be >= 1"),
        ({"reduction_factor": 1}, "reduction_factor must be >= 2"),
        ({"grace_period": 0}, "grace_period must be >= 1"),
        ({"resume": True, "name": None}, "--resume needs --name"),
    ],
)
def test_invalid_options_are_rejected(tmp_path, changes, message):
    values = {"name": "x", "storage_path": tmp_path, "n_folds": 2, **changes}
    options = SearchOptions(**values)

    with pytest.raises(SearchError) as caught:
        run_search(options)
    assert message in str(caught.value)


def test_resume_of_missing_experiment_fails(tmp_path):
    with pytest.raises(SearchError, match="no Tune experiment state found"):
        run_search(SearchOptions(name="missing", storage_path=tmp_path, resume=True))


def test_cli_reports_invalid_space_and_exits_2(tmp_path, synthetic_root, caplog):
    space = tmp_path / "bad.yaml"
    space.write_text("version: 1\nspace:\n  optim.lrr: 0.1\n", encoding="utf-8")

    code = main(["--space", str(space), "--data-root", str(synthetic_root), "--name", "bad",
                 "--storage-path", str(tmp_path), "--no-dashboard"])

    assert code == 2
    assert "unknown config key 'optim.lrr'" in caplog.text
    assert not (tmp_path / "bad").exists()


def test_cli_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    text = capsys.readouterr().out

    assert exited.value.code == 0
    for flag in ("--num-samples", "--space", "--data-root", "--name", "--storage-path",
                 "--cpus-per-trial", "--gpus-per-trial", "--max-concurrent", "--seed", "--fold",
                 "--n-folds", "--resume", "--address", "--object-store-mib"):
        assert flag in text


def _copy_dataset(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("broken", ["json", "png"])
def test_cli_rejects_broken_dataset_before_ray(tmp_path, synthetic_root, tiny_space, caplog, broken):
    root = _copy_dataset(synthetic_root, tmp_path / "data")
    folder = "outputs_json" if broken == "json" else "DCM"
    victim = sorted((root / "train" / folder).rglob(f"*.{broken}"))[0]
    victim.write_bytes(victim.read_bytes()[:60])

    code = main(["--space", str(tiny_space), "--data-root", str(root), "--name", "broken",
                 "--storage-path", str(tmp_path / "runs"), "--no-dashboard"])

    assert code == 2
    assert victim.name in caplog.text
    assert "python -m data.check" in caplog.text
    assert not (tmp_path / "runs" / "broken").exists()


@pytest.mark.slow
def test_trials_share_the_default_cache(tiny_search):
    import os

    base = yaml.safe_load((tiny_search / files.BASE_CONFIG_FILE).read_text())
    cache_dir = Path(base["data"]["cache_dir"])

    assert cache_dir == Path(os.environ["HANDBONE_CACHE_DIR"])
    assert list(cache_dir.rglob("*.npy")), "no trial wrote the decoded cache"
