"""Hyperparameter search: Optuna's TPE proposes configs, ASHA stops weak trials early.

Usage::

    python search/run_search.py --num-samples 40 --space search/spaces/cpu_small.yaml \\
        --data-root runs/data --storage-path runs/ray_results --name my-search
    python search/run_search.py --name my-search --storage-path runs/ray_results --resume

Each trial trains one config with ``trainable.tune_trainable.train_tune`` and reports
``val_dice`` once per epoch. Every trial validates on fold ``--fold`` of the split file that
the search writes into the experiment folder ``<storage-path>/<name>/``, whose files
``search.experiment_files`` describes. ``--resume`` continues an interrupted search: finished trials
are kept, unfinished ones restart from their latest checkpoint, and the Optuna sampler
continues from its saved state.

Ray: without ``--address`` the search starts a private Ray instance on this machine. With
``--address`` it joins that cluster and ships the pipeline packages to its nodes. The data root
and the storage path must then be the same paths on every node, such as a shared filesystem,
because the search passes them as local paths (cloud storage URIs are not supported).
"""

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import logging
import os
import re
import signal
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from data.cache import default_cache_dir
from data.check import check_dataset
from data.layout import DatasetIndex, discover
from data.splits import make_splits, write_splits
from data.synth import generate_dataset
from search import experiment_files as files
from search.cluster import (
    DEFAULT_OBJECT_STORE_MIB,
    RayOptions,
    alive_nodes,
    check_trial_fits,
    max_trials_that_fit,
    start_ray,
)
from search.searcher import PruningOptunaSearch
from search.space import SearchSpace, get_dotted, load_space
from search.trial_log import TrialLogger, format_params, warn_if_sequential
from trainable.config import resolve_config
from trainable.tune_trainable import checkpoint_config, train_tune

logger = logging.getLogger("search.run_search")

METRIC = "val_dice"
MAX_LISTED_DATA_ERRORS = 10
MODE = "max"
DEFAULT_SPACE = Path(__file__).resolve().parent / "spaces" / "cpu_small.yaml"
DEFAULT_STORAGE_PATH = Path("runs") / "ray_results"
SCHEDULERS = ("asha", "fifo")

# The synthetic dataset generated when no --data-root is given: 24 training images (12
# patients) at 256 px, enough for 5 folds at the small space's 64-128 px inputs.
SYNTHETIC_TRAIN_IMAGES = 24
SYNTHETIC_TEST_IMAGES = 4
SYNTHETIC_SIZE = 256

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SearchError(ValueError):
    """Invalid search options, or an experiment folder that does not match the request."""


@dataclass
class SearchOptions:
    """Options of one search; the CLI flags of the same names set them.

    Attributes:
        num_samples: number of trials (Optuna proposals).
        space: search-space YAML file (format in ``search.space``).
        data_root: competition-layout dataset root; None generates a synthetic dataset in the
            experiment folder.
        name: experiment name: the folder under ``storage_path`` and the Optuna study name.
            None uses ``search-<date>-<time>``.
        storage_path: folder of the experiment folders, made absolute before Ray receives it.
        cpus_per_trial: CPUs reserved per trial (fractions allowed).
        gpus_per_trial: GPUs reserved per trial (fractions allowed, 0.5 runs two per GPU).
        max_concurrent: most trials running at once; None uses as many as the cluster fits.
        seed: seed of the TPE sampler, the fold split and the trials' ``seed`` config value.
        fold: validation fold of every trial, in ``[0, n_folds)``.
        n_folds: number of patient-grouped folds of the split file.
        scheduler: ``asha`` (early stopping) or ``fifo`` (every trial runs the full budget).
        grace_period: epochs every trial runs before ASHA may stop it; None uses
            ``max(1, epochs // 4)``, because the Dice of the first epochs barely ranks configs.
        reduction_factor: ASHA's reduction factor: about 1 in this many trials passes each rung.
        n_startup_trials: random trials before TPE starts modelling; None uses
            ``min(10, max(2, num_samples // 4))``.
        max_failures: retries of a failed trial from its latest checkpoint.
        cache_dir: ``data.cache_dir`` of every trial (decoded images shared by trials); None
            keeps the space's value, or uses ``data.cache.default_cache_dir()`` when the space
            sets none.
        resume: continue the interrupted experiment ``storage_path/name``.
        ray: how to start or join Ray.
        verbose: Tune's console verbosity, 0 (silent) to 3.
        callbacks: extra ``ray.tune.Callback`` objects (Python API only).
    """

    num_samples: int = 40
    space: Path = DEFAULT_SPACE
    data_root: Path | None = None
    name: str | None = None
    storage_path: Path = DEFAULT_STORAGE_PATH
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    seed: int = 0
    fold: int = 0
    n_folds: int = 5
    scheduler: str = "asha"
    grace_period: int | None = None
    reduction_factor: int = 2
    n_startup_trials: int | None = None
    max_failures: int = 2
    cache_dir: Path | None = None
    resume: bool = False
    ray: RayOptions = field(default_factory=RayOptions)
    verbose: int = 1
    callbacks: Sequence[Any] = ()


def run_search(options: SearchOptions) -> Path:
    """Run (or resume) a search and return its experiment folder.

    Args:
        options: the search options.

    Returns:
        The absolute experiment folder ``<storage_path>/<name>``, with the files listed in
        ``search.experiment_files``. ``search_summary.json`` records whether every trial
        finished.

    Raises:
        SearchError: invalid options, an existing experiment folder without ``resume``, or a
            missing one with ``resume``.
        search.space.SearchSpaceError: invalid space file.
        search.cluster.ResourceRequestError: a trial fits on no alive node.
    """
    options = _checked(options)
    experiment_dir = Path(options.storage_path).expanduser().resolve() / options.name
    # Every epoch's checkpoint forces an experiment-state snapshot (Tune 2.60 does this when
    # CheckpointConfig.num_to_keep is set), which resuming needs. Tune warns about it at every
    # epoch unless this threshold is 0; the setting stays in this process's environment.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

    try:
        if options.resume:
            return _resume(experiment_dir, options)
        return _start(experiment_dir, options)
    finally:
        if ray.is_initialized():
            ray.shutdown()


def _checked(options: SearchOptions) -> SearchOptions:
    """Fill in a default name; raise SearchError listing every invalid option."""
    if options.name is None:
        if options.resume:
            raise SearchError("--resume needs --name: the name of the experiment to continue")
        options = replace(options, name=f"search-{datetime.now():%Y%m%d-%H%M%S}")

    checks = [
        (
            not _NAME_PATTERN.match(options.name),
            f"name {options.name!r} must start with a letter or digit and contain only "
            "letters, digits, '.', '_' and '-'",
        ),
        (options.num_samples < 1, f"num_samples must be >= 1, got {options.num_samples}"),
        (not options.cpus_per_trial > 0, f"cpus_per_trial must be > 0, got {options.cpus_per_trial}"),
        (options.gpus_per_trial < 0, f"gpus_per_trial must be >= 0, got {options.gpus_per_trial}"),
        (
            options.max_concurrent is not None and options.max_concurrent < 1,
            f"max_concurrent must be >= 1, got {options.max_concurrent}",
        ),
        (options.n_folds < 2, f"n_folds must be >= 2, got {options.n_folds}"),
        (
            not 0 <= options.fold < options.n_folds,
            f"fold must be in [0, {options.n_folds - 1}], got {options.fold}",
        ),
        (
            options.scheduler not in SCHEDULERS,
            f"scheduler must be one of {', '.join(SCHEDULERS)}, got {options.scheduler!r}",
        ),
        (
            options.grace_period is not None and options.grace_period < 1,
            f"grace_period must be >= 1, got {options.grace_period}",
        ),
        (options.reduction_factor < 2, f"reduction_factor must be >= 2, got {options.reduction_factor}"),
        (options.max_failures < 0, f"max_failures must be >= 0, got {options.max_failures}"),
    ]
    problems = [message for is_invalid, message in checks if is_invalid]
    if problems:
        raise SearchError("invalid search options: " + "; ".join(problems))
    return options


# ---------------------------------------------------------------------------------------------
# A new search


def _start(experiment_dir: Path, options: SearchOptions) -> Path:
    if experiment_dir.exists() and any(experiment_dir.iterdir()):
        raise SearchError(
            f"experiment folder {experiment_dir} already exists; pass --resume to continue it, "
            "or choose another --name"
        )
    space = load_space(options.space)
    index = splits = None
    if options.data_root is not None:
        index = _discover(Path(options.data_root))
        _check_data(Path(options.data_root))
        splits = _make_splits(index, options)

    # Ray and the resource check come before any file is written, so a request that fits no
    # node leaves no half-made experiment folder behind.
    start_ray(options.ray)
    max_concurrent = _max_concurrent(options.max_concurrent, options.cpus_per_trial, options.gpus_per_trial)
    if options.ray.address is not None:
        logger.warning(
            "joined the cluster at %s: every node must read the dataset and write the "
            "storage path at the same paths as this machine (a shared filesystem)",
            options.ray.address,
        )

    experiment_dir.mkdir(parents=True, exist_ok=True)
    logger.info("search %s: %d trials, experiment folder %s", options.name, options.num_samples, experiment_dir)
    overrides = _prepare_data(experiment_dir, options, index, splits)
    if "data.cache_dir" not in overrides and space.base_config.get("data", {}).get("cache_dir") is None:
        # Trials of one machine then decode each image once per input size, not once per trial.
        overrides["data.cache_dir"] = str(default_cache_dir())
    logger.info("decoded-data cache: %s", overrides.get("data.cache_dir", "set by the space file"))
    files.write_base_config(experiment_dir, _base_config(space, overrides))
    files.copy_space(experiment_dir, space.source)
    n_startup = options.n_startup_trials or min(10, max(2, options.num_samples // 4))
    recorded = _recorded_options(options, space, overrides, n_startup)
    recorded["max_concurrent"] = max_concurrent
    files.write_options(experiment_dir, recorded)
    _log_space(space)

    tuner = _build_tuner(experiment_dir, options, space, overrides, max_concurrent, n_startup)
    logger.info(
        "running up to %d trials at once, %g CPUs and %g GPUs each, %s scheduler, %d epochs",
        max_concurrent, options.cpus_per_trial, options.gpus_per_trial, options.scheduler, space.epochs,
    )
    results = tuner.fit()
    _finish(experiment_dir, results, recorded, max_concurrent)
    return experiment_dir


def _build_tuner(
    experiment_dir: Path,
    options: SearchOptions,
    space: SearchSpace,
    overrides: dict[str, Any],
    max_concurrent: int,
    n_startup: int,
) -> tune.Tuner:
    searcher = PruningOptunaSearch(
        max_t=space.epochs,
        sampler=optuna.samplers.TPESampler(seed=options.seed, n_startup_trials=n_startup),
        study_name=options.name,
        storage=files.create_study_storage(experiment_dir),
    )
    tune_config = tune.TuneConfig(
        metric=METRIC,
        mode=MODE,
        search_alg=searcher,
        scheduler=_scheduler(options, space.epochs),
        num_samples=options.num_samples,
        max_concurrent_trials=max_concurrent,
        trial_dirname_creator=trial_dirname,
        # Every trial gets a new worker. Reusing one saves the imports (seconds per trial), but
        # Ray 2.60 resets a reused worker only if the previous trial's training thread ends
        # within 2 s (FunctionTrainable.reset_config). A trial that ASHA stops mid-epoch
        # misses that, and the next trial then fails with an ERROR that is not retried.
        reuse_actors=False,
    )
    run_config = tune.RunConfig(
        name=options.name,
        storage_path=str(experiment_dir.parent),
        checkpoint_config=checkpoint_config(),
        failure_config=tune.FailureConfig(max_failures=options.max_failures),
        callbacks=[TrialLogger(METRIC, MODE, space.epochs, options.num_samples), *options.callbacks],
        verbose=options.verbose,
    )
    return tune.Tuner(
        _with_resources(options.cpus_per_trial, options.gpus_per_trial),
        param_space=space.param_space(overrides),
        tune_config=tune_config,
        run_config=run_config,
    )


def _discover(data_root: Path) -> DatasetIndex:
    index = discover(data_root.expanduser().resolve())
    if not index.train:
        raise SearchError(
            f"no annotated training images found under {data_root}; pass the root of a dataset "
            "in the competition layout (python -m data.check ROOT lists what is wrong)"
        )
    return index


def _check_data(data_root: Path) -> None:
    """Decode every image and annotation once; raise SearchError listing the broken files.

    Trials would otherwise meet a broken file in their first epoch, and every retry from a
    checkpoint would meet it again.
    """
    logger.info("checking every image and annotation under %s", data_root)
    report = check_dataset(data_root, decode=True)
    for warning in report.warnings:
        logger.warning("dataset %s: %s", data_root, warning)
    if not report.ok:
        listed = "\n  ".join(report.errors[:MAX_LISTED_DATA_ERRORS])
        more = len(report.errors) - MAX_LISTED_DATA_ERRORS
        suffix = f"\n  ... and {more} more" if more > 0 else ""
        raise SearchError(
            f"the dataset {data_root} has {len(report.errors)} error(s):\n  {listed}{suffix}\n"
            f"fix or remove these files (python -m data.check {data_root} --decode lists them all)"
        )


def _make_splits(index: DatasetIndex, options: SearchOptions) -> dict:
    return make_splits(index.train, n_folds=options.n_folds, seed=options.seed)


def _prepare_data(
    experiment_dir: Path, options: SearchOptions, index: DatasetIndex | None, splits: dict | None
) -> dict[str, Any]:
    """Generate the dataset when none was given, write the split file; return data overrides."""
    if index is None:
        synthetic_root = experiment_dir / files.SYNTHETIC_DATA_DIR
        logger.warning(
            "no --data-root given: generating a synthetic dataset (%d training images, %d px) in %s",
            SYNTHETIC_TRAIN_IMAGES, SYNTHETIC_SIZE, synthetic_root,
        )
        generate_dataset(
            synthetic_root, SYNTHETIC_TRAIN_IMAGES, SYNTHETIC_TEST_IMAGES, size=SYNTHETIC_SIZE,
            seed=options.seed,
        )
        index = _discover(synthetic_root)
        splits = _make_splits(index, options)
    data_root = Path(options.data_root or experiment_dir / files.SYNTHETIC_DATA_DIR).expanduser().resolve()

    for problem in index.problems:
        logger.warning("dataset %s: %s", data_root, problem)
    splits_path = experiment_dir / files.SPLITS_FILE
    write_splits(splits_path, splits)
    logger.info(
        "data: %d training images in %s; fold %d of %d validates (%s)",
        len(index.train), data_root, options.fold, options.n_folds, splits_path,
    )

    overrides: dict[str, Any] = {
        "data.root": str(data_root),
        "data.splits": str(splits_path),
        "data.fold": options.fold,
        "seed": options.seed,
    }
    if options.cache_dir is not None:
        overrides["data.cache_dir"] = str(Path(options.cache_dir).expanduser().resolve())
    return overrides


def _base_config(space: SearchSpace, overrides: dict[str, Any]) -> dict:
    return resolve_config(space.base_config, overrides)


def _recorded_options(
    options: SearchOptions, space: SearchSpace, overrides: dict[str, Any], n_startup: int
) -> dict[str, Any]:
    recorded = asdict(options)
    recorded.pop("callbacks")
    recorded.update(
        space=str(space.source),
        data_root=overrides["data.root"],
        storage_path=str(Path(options.storage_path).expanduser().resolve()),
        cache_dir=overrides.get("data.cache_dir"),
        n_startup_trials=n_startup,
        epochs=space.epochs,
        searched_params=list(space.params),
        metric=METRIC,
        mode=MODE,
    )
    return recorded


def _log_space(space: SearchSpace) -> None:
    for path, distribution in space.params.items():
        logger.info("search space: %s ~ %s", path, distribution.to_dict())


def _max_concurrent(requested: int | None, cpus: float, gpus: float) -> int:
    nodes = alive_nodes()
    check_trial_fits(cpus, gpus, nodes)
    capacity = max_trials_that_fit(cpus, gpus, nodes)
    if requested is None:
        # Tune lets a custom searcher keep only one trial pending unless max_concurrent_trials
        # is set (TUNE_MAX_PENDING_TRIALS_PG, Ray 2.60), so the search always sets it.
        return capacity
    if requested > capacity:
        logger.warning(
            "max concurrent %d is more than the %d trials the cluster fits at once; "
            "the others wait for resources",
            requested, capacity,
        )
    return requested


def _with_resources(cpus: float, gpus: float) -> Any:
    return tune.with_resources(train_tune, {"cpu": cpus, "gpu": gpus})


def _scheduler(options: SearchOptions, epochs: int) -> Any:
    if options.scheduler == "fifo":
        return FIFOScheduler()
    grace_period = options.grace_period or max(1, epochs // 4)
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=epochs,
        grace_period=min(grace_period, epochs),
        reduction_factor=options.reduction_factor,
    )


def trial_dirname(trial: Any) -> str:
    """Name a trial's folder ``trial_<tune trial id>``: short and unique in the experiment."""
    return f"trial_{trial.trial_id}"


# ---------------------------------------------------------------------------------------------
# Resuming, and the end of a run


def _resume(experiment_dir: Path, options: SearchOptions) -> Path:
    if not tune.Tuner.can_restore(experiment_dir):
        raise SearchError(
            f"cannot resume: no Tune experiment state found in {experiment_dir}; check --name and "
            "--storage-path, or start a new search without --resume"
        )
    recorded = files.read_options(experiment_dir)
    cpus, gpus = recorded["cpus_per_trial"], recorded["gpus_per_trial"]
    logger.info(
        "resuming search %s in %s (%g CPUs and %g GPUs per trial, as recorded)",
        options.name, experiment_dir, cpus, gpus,
    )

    start_ray(options.ray)
    check_trial_fits(cpus, gpus, alive_nodes())
    # Tune restores the search algorithm with its concurrency limit, so the limit stays.
    max_concurrent = recorded["max_concurrent"]
    if options.max_concurrent not in (None, max_concurrent):
        logger.warning(
            "--max-concurrent %d is ignored: a resumed search keeps its limit of %d",
            options.max_concurrent, max_concurrent,
        )
    tuner = tune.Tuner.restore(
        str(experiment_dir),
        trainable=_with_resources(cpus, gpus),
        resume_unfinished=True,
        resume_errored=True,
    )
    results = tuner.fit()
    _finish(experiment_dir, results, recorded, max_concurrent)
    return experiment_dir


def _finish(experiment_dir: Path, results: Any, recorded: dict[str, Any], max_concurrent: int) -> None:
    """Check parallelism, write ``search_summary.json`` and log the outcome and the best trial."""
    frames = {}
    for result in results:
        trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name
        frames[trial_id] = result.metrics_dataframe
    cpus, gpus = recorded["cpus_per_trial"], recorded["gpus_per_trial"]
    capacity = max_trials_that_fit(cpus, gpus, alive_nodes())
    running_at_once = warn_if_sequential(frames, max_concurrent, capacity)

    # The statuses come from the saved experiment state, which --resume reads: after an
    # interruption Tune's in-memory trials report pending trials as TERMINATED (Ray 2.60).
    statuses = [trial.status for trial in tune.ExperimentAnalysis(str(experiment_dir)).trials]
    terminated, errored = statuses.count("TERMINATED"), statuses.count("ERROR")
    unfinished = len(statuses) - terminated - errored
    num_samples = recorded["num_samples"]
    finished = unfinished == 0 and len(statuses) >= num_samples
    best = _best(results, recorded["searched_params"])
    files.write_summary(
        experiment_dir,
        {
            "finished": finished,
            "trials": len(statuses),
            "status_counts": {"TERMINATED": terminated, "ERROR": errored, "UNFINISHED": unfinished},
            "max_concurrent": max_concurrent,
            "max_running_at_once": running_at_once,
            "best": best,
        },
    )
    _log_outcome(experiment_dir, finished, terminated + errored, num_samples, errored)
    if best is not None:
        logger.info(
            "best trial %s: %s %.4f at its best epoch, with %s; %d trials ran, up to %d at once",
            best["trial_id"], METRIC, best[METRIC], format_params(best["params"]),
            len(statuses), running_at_once,
        )


def _log_outcome(experiment_dir: Path, finished: bool, ended: int, num_samples: int, errored: int) -> None:
    if not finished:
        logger.warning(
            "search %s stopped with %d of %d trials ended; continue it with "
            "--name %s --storage-path %s --resume",
            experiment_dir.name, ended, num_samples, experiment_dir.name, experiment_dir.parent,
        )
    if errored:
        logger.warning("%d trial(s) errored; their error logs are in their trial folders", errored)
    if ended == 0 or errored == ended:
        logger.warning("no trial reported %s, so there is no best trial", METRIC)


def _best(results: Any, searched: Sequence[str]) -> dict[str, Any] | None:
    """Return the trial with the highest per-epoch metric, or None when no trial reported it."""
    best: dict[str, Any] | None = None
    for result in results:
        frame = result.metrics_dataframe
        if frame is None or METRIC not in frame or frame[METRIC].dropna().empty:
            continue
        value = float(frame[METRIC].max())
        if best is not None and value <= best[METRIC]:
            continue
        best = {
            "trial_id": result.metrics.get("trial_id"),
            METRIC: value,
            "epochs": int(frame["training_iteration"].max()),
            "path": result.path,
            "params": {path: _config_value(result.config, path) for path in searched},
            "config": result.config,
        }
    return best


def _config_value(config: dict, path: str) -> Any:
    try:
        return get_dotted(config, path)
    except KeyError:
        return None


# ---------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the search CLI, its options in groups."""
    parser = argparse.ArgumentParser(
        prog="python search/run_search.py",
        description="Search training hyperparameters with Optuna (TPE) and ASHA on Ray Tune.",
    )
    defaults = SearchOptions()

    search = parser.add_argument_group("search")
    search.add_argument("--num-samples", type=int, default=defaults.num_samples, help="number of trials (default: %(default)s)")
    search.add_argument("--space", type=Path, default=defaults.space, help="search-space YAML file (default: the small CPU space)")
    search.add_argument("--name", help="experiment name: folder under --storage-path and Optuna study name (default: search-DATE-TIME; required with --resume)")
    search.add_argument("--storage-path", type=Path, default=defaults.storage_path, help="folder of the experiment folders (default: %(default)s)")
    search.add_argument("--seed", type=int, default=defaults.seed, help="seed of the sampler, the folds and the trials (default: %(default)s)")
    search.add_argument("--scheduler", choices=SCHEDULERS, default=defaults.scheduler, help="asha: stop weak trials early; fifo: run every trial to the end (default: %(default)s)")
    search.add_argument("--grace-period", type=int, help="epochs before ASHA may stop a trial (default: a quarter of the epochs, at least 1)")
    search.add_argument("--reduction-factor", type=int, default=defaults.reduction_factor, help="ASHA keeps about 1 in this many trials per rung (default: %(default)s)")
    search.add_argument("--n-startup-trials", type=int, help="random trials before TPE (default: min(10, max(2, num_samples // 4)))")
    search.add_argument("--resume", action="store_true", help="continue the interrupted experiment --storage-path/--name")

    data = parser.add_argument_group("data")
    data.add_argument("--data-root", type=Path, help="dataset root in the competition layout (default: generate a synthetic dataset in the experiment folder)")
    data.add_argument("--fold", type=int, default=defaults.fold, help="validation fold (default: %(default)s)")
    data.add_argument("--n-folds", type=int, default=defaults.n_folds, help="number of patient-grouped folds (default: %(default)s)")
    data.add_argument("--cache-dir", type=Path, help="decoded-data cache folder shared by the trials (default: the space's data.cache_dir, else $HANDBONE_CACHE_DIR or ~/.cache/handbone-search/decoded)")

    trials = parser.add_argument_group("trials")
    trials.add_argument("--cpus-per-trial", type=float, default=defaults.cpus_per_trial, help="CPUs reserved per trial (default: %(default)s)")
    trials.add_argument("--gpus-per-trial", type=float, default=defaults.gpus_per_trial, help="GPUs reserved per trial, fractions allowed (default: %(default)s)")
    trials.add_argument("--max-concurrent", type=int, help="max trials running at once (default: as many as the cluster fits)")
    trials.add_argument("--max-failures", type=int, default=defaults.max_failures, help="retries of a failed trial from its checkpoint (default: %(default)s)")

    ray_group = parser.add_argument_group("Ray")
    ray_group.add_argument("--address", help="join the Ray cluster at this address (such as HOST:6379 or auto) instead of starting one")
    ray_group.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    ray_group.add_argument("--num-gpus", type=float, help="GPUs of the local Ray instance (default: all detected)")
    ray_group.add_argument("--object-store-mib", type=int, default=DEFAULT_OBJECT_STORE_MIB, help="object store of the local Ray instance in MiB (default: %(default)s)")
    ray_group.add_argument("--no-dashboard", action="store_true", help="start the local Ray instance without its dashboard")
    ray_group.add_argument("--dashboard-host", default="127.0.0.1", help="interface of the dashboard (default: %(default)s)")
    ray_group.add_argument("--dashboard-port", type=int, help="port of the dashboard (default: 8265)")
    ray_group.add_argument("--verbose", type=int, choices=range(4), default=defaults.verbose, help="Tune console output, 0 to 3 (default: %(default)s)")
    return parser


def options_from_args(args: argparse.Namespace) -> SearchOptions:
    """Build :class:`SearchOptions` from parsed command-line arguments."""
    ray_options = RayOptions(
        address=args.address,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        object_store_memory_mib=args.object_store_mib,
        include_dashboard=not args.no_dashboard,
        dashboard_host=args.dashboard_host,
        dashboard_port=args.dashboard_port,
    )
    return SearchOptions(
        num_samples=args.num_samples,
        space=args.space,
        data_root=args.data_root,
        name=args.name,
        storage_path=args.storage_path,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent,
        seed=args.seed,
        fold=args.fold,
        n_folds=args.n_folds,
        scheduler=args.scheduler,
        grace_period=args.grace_period,
        reduction_factor=args.reduction_factor,
        n_startup_trials=args.n_startup_trials,
        max_failures=args.max_failures,
        cache_dir=args.cache_dir,
        resume=args.resume,
        ray=ray_options,
        verbose=args.verbose,
    )


def _forward_sigterm_as_sigint() -> Any:
    """Make SIGTERM (batch schedulers, ``kill``) stop the search like Ctrl+C; return the old handler.

    Tune handles SIGINT by saving the experiment state so that ``--resume`` can continue.
    """

    def handler(signum: int, frame: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    return signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the search CLI.

    Returns 0 when every trial ended, 1 when every trial failed, 2 on invalid input and 130 when
    the search was interrupted.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    previous_sigterm = _forward_sigterm_as_sigint()
    try:
        experiment_dir = run_search(options_from_args(args))
    except ValueError as error:
        logger.error("%s", error)
        return 2
    except KeyboardInterrupt:
        logger.warning("interrupted before the trials started; nothing to resume")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    summary = files.read_summary(experiment_dir)
    if summary["finished"] and summary["best"] is None:
        logger.error(
            "every trial of %s failed before reporting %s; each trial folder under %s has its "
            "error.txt", experiment_dir.name, METRIC, experiment_dir,
        )
        return 1
    return 0 if summary["finished"] else 130


if __name__ == "__main__":
    raise SystemExit(main())
