"""The files the search writes into its experiment folder, beside Ray Tune's own.

An experiment folder is ``<storage_path>/<name>/``. Tune writes its experiment state
(``experiment_state-*.json``, ``tuner.pkl``, ``searcher-state-*.pkl``) and one folder per trial
(``trial_<tune trial id>/`` with ``params.json``, ``result.json``, ``progress.csv`` and
``checkpoint_*/``). The search adds:

``search_options.json``
    ``{"format_version": 1, "options": {...}}``: the options of the run (space file, data root,
    resources per trial, seed, fold, scheduler settings), all paths absolute. Where an option
    defaulted, the file records the value the run used (``max_concurrent``,
    ``n_startup_trials``). It also records ``epochs`` (the budget) and ``searched_params``
    (dotted config paths). ``--resume`` reads the resources per trial from it.

``space.yaml``
    A byte-for-byte copy of the search-space file (format in ``search.space``).

``base_config.yaml``
    The resolved training config before sampling: trainable defaults, the space's base config
    and fixed values, and the data settings of the search (``data.root``, ``data.splits``,
    ``data.fold``, absolute paths). Searched leaves hold their base values; each trial's own
    config is in its ``params.json``.

``splits.json``
    The patient-grouped folds of the training images, written by ``data.splits.write_splits``
    (format there). Every trial trains and validates on fold ``data.fold`` of this file.

``optuna_study.db``
    The Optuna study as SQLite RDB storage, written while the search runs (open it with
    ``optuna.load_study(study_name=<name>, storage="sqlite:///<path>")``, or
    :func:`load_study`). The study name is the experiment name and the direction is
    ``maximize`` (``val_dice``). Parameters are named by their config path joined with ``/``
    (``model/encoder``). Trial states: ``COMPLETE`` (ran the full epoch budget; value = best
    ``val_dice`` over its epochs), ``PRUNED`` (stopped early by ASHA; value = last ``val_dice``),
    ``FAIL`` (errored), ``RUNNING`` (unfinished when the search stopped). Intermediate values
    are ``val_dice`` per epoch (step = epoch, from 1). Each trial's user attribute
    ``tune_trial_id`` is its Tune trial id.

``search_summary.json``
    Written when ``Tuner.fit`` returns (also after an interruption)::

        {"format_version": 1, "finished": true, "trials": 40,
         "status_counts": {"TERMINATED": 40}, "max_concurrent": 2, "max_running_at_once": 2,
         "best": {"trial_id": "...", "val_dice": 0.81, "config": {...}} or null}

``synthetic_data/``
    Only when the search ran without ``--data-root``: the synthetic dataset it generated.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

FORMAT_VERSION = 1
"""Version of ``search_options.json`` and ``search_summary.json``."""

OPTIONS_FILE = "search_options.json"
SPACE_FILE = "space.yaml"
BASE_CONFIG_FILE = "base_config.yaml"
SPLITS_FILE = "splits.json"
STUDY_FILE = "optuna_study.db"
SUMMARY_FILE = "search_summary.json"
SYNTHETIC_DATA_DIR = "synthetic_data"


class ExperimentFileError(ValueError):
    """An experiment file is missing or has an unsupported format."""


def study_storage_url(experiment_dir: str | os.PathLike) -> str:
    """Return the SQLAlchemy URL of the experiment's Optuna study (``sqlite:////abs/path``)."""
    return f"sqlite:///{Path(experiment_dir).resolve() / STUDY_FILE}"


def create_study_storage(experiment_dir: str | os.PathLike) -> Any:
    """Create ``optuna_study.db`` with Optuna's schema in place and return its RDBStorage.

    The schema is written to a temporary file that is then renamed, so a reader that opens
    the study while the search starts (``results.report``, a test) never finds a half-made
    database. Otherwise the reader's Optuna would try to create the schema at the same time
    and fail with "UNIQUE constraint failed: alembic_version.version_num".
    """
    import optuna

    target = Path(experiment_dir).resolve() / STUDY_FILE
    handle, temporary = tempfile.mkstemp(prefix=f".{STUDY_FILE}.", dir=target.parent)
    os.close(handle)
    try:
        draft = optuna.storages.RDBStorage(f"sqlite:///{temporary}")
        draft.engine.dispose()
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return optuna.storages.RDBStorage(study_storage_url(target.parent))


def load_study(experiment_dir: str | os.PathLike) -> Any:
    """Open the Optuna study of a finished or running experiment.

    Raises:
        ExperimentFileError: the folder has no ``optuna_study.db``.
    """
    import optuna

    experiment_dir = Path(experiment_dir).resolve()
    if not (experiment_dir / STUDY_FILE).is_file():
        raise ExperimentFileError(
            f"no Optuna study found at {experiment_dir / STUDY_FILE}; "
            "pass the experiment folder that run_search wrote"
        )
    return optuna.load_study(study_name=experiment_dir.name, storage=study_storage_url(experiment_dir))


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON atomically (temporary file, then rename), so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(payload, stream, indent=2, sort_keys=False, default=str)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_options(experiment_dir: Path, options: Mapping[str, Any]) -> Path:
    """Write ``search_options.json`` and return its path."""
    path = experiment_dir / OPTIONS_FILE
    write_json(path, {"format_version": FORMAT_VERSION, "options": dict(options)})
    return path


def read_options(experiment_dir: Path) -> dict[str, Any]:
    """Read the options of an earlier run from ``search_options.json``.

    Raises:
        ExperimentFileError: the file is missing or has another format version.
    """
    path = experiment_dir / OPTIONS_FILE
    if not path.is_file():
        raise ExperimentFileError(
            f"{path} not found: {experiment_dir} is not an experiment folder written by run_search"
        )
    payload = json.loads(path.read_text(encoding="utf-8"))
    if payload.get("format_version") != FORMAT_VERSION:
        raise ExperimentFileError(
            f"{path}: unsupported format_version {payload.get('format_version')!r}, "
            f"expected {FORMAT_VERSION}"
        )
    return payload["options"]


def copy_space(experiment_dir: Path, space_file: Path) -> Path:
    """Copy the search-space file into the experiment folder and return the copy's path."""
    target = experiment_dir / SPACE_FILE
    shutil.copyfile(space_file, target)
    return target


def write_base_config(experiment_dir: Path, config: Mapping[str, Any]) -> Path:
    """Write the resolved base training config as YAML and return its path."""
    target = experiment_dir / BASE_CONFIG_FILE
    target.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    return target


def write_summary(experiment_dir: Path, summary: Mapping[str, Any]) -> Path:
    """Write ``search_summary.json`` and return its path."""
    path = experiment_dir / SUMMARY_FILE
    write_json(path, {"format_version": FORMAT_VERSION, **summary})
    return path


def read_summary(experiment_dir: Path) -> dict[str, Any]:
    """Read ``search_summary.json``.

    Raises:
        ExperimentFileError: the file is missing (the search has not returned yet).
    """
    path = Path(experiment_dir) / SUMMARY_FILE
    if not path.is_file():
        raise ExperimentFileError(f"{path} not found: the search has not finished or was killed")
    return json.loads(path.read_text(encoding="utf-8"))
