"""Benchmark the search on CPU: ASHA against FIFO, trained against untrained, Tune's overhead.

Usage::

    python benchmarks/bench_search.py --out runs/bench_search            # everything
    python benchmarks/bench_search.py --out runs/bench_search --part schedulers
    python benchmarks/bench_search.py --out runs/bench_search --part overhead

Parts:

- ``schedulers``: the same search (space, trials, seed, epoch budget) with ASHA and with FIFO
  (no early stopping): wall time, best ``val_dice``, epochs trained. Then the Dice of the best
  ASHA config with untrained weights (random initialisation), on the same validation fold.
- ``overhead``: one fixed config trained for its epochs by ``trainable.loop.train`` directly,
  with one torch thread as a 1-CPU trial gets, without and with the per-epoch checkpoint
  folder that the Tune trainable writes. Then the same config runs as a 3-trial search
  with ``--max-concurrent 1``. The part reports the whole run's wall time, each trial's time
  inside its worker (Tune's ``time_total_s``) and the wall time per trial.

Prints a Markdown table per part and writes ``results.json`` into ``--out``.
"""

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import logging
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from ray import tune

from data.synth import generate_dataset
from search import experiment_files as files
from search.cluster import RayOptions
from search.run_search import DEFAULT_SPACE, SearchOptions, run_search
from search.trial_log import max_running_at_once, trial_intervals
from trainable.config import flatten_config, resolve_config
from trainable.loop import Trainer, build_datasets, train

logger = logging.getLogger("bench_search")

OVERHEAD_TRIALS = 3


def _options(args: argparse.Namespace, name: str, **changes: Any) -> SearchOptions:
    values: dict[str, Any] = dict(
        num_samples=args.num_samples,
        space=args.space,
        data_root=args.data_root,
        name=name,
        storage_path=args.out / "ray_results",
        seed=args.seed,
        verbose=0,
        ray=RayOptions(num_cpus=args.num_cpus, include_dashboard=False, object_store_memory_mib=200),
    )
    values.update(changes)
    return SearchOptions(**values)


def _frames(experiment_dir: Path) -> dict[str, Any]:
    analysis = tune.ExperimentAnalysis(str(experiment_dir))
    return {frame["trial_id"].iloc[0]: frame for frame in analysis.trial_dataframes.values() if len(frame)}


def run_timed_search(options: SearchOptions) -> dict[str, Any]:
    """Run one search; return its wall time, best Dice, epochs trained and early stops."""
    start = time.perf_counter()
    experiment_dir = run_search(options)
    wall_s = time.perf_counter() - start

    frames = _frames(experiment_dir)
    epochs = files.read_options(experiment_dir)["epochs"]
    summary = files.read_summary(experiment_dir)
    return {
        "experiment_dir": str(experiment_dir),
        "wall_s": wall_s,
        "best_val_dice": summary["best"]["val_dice"],
        "best_trial": summary["best"]["trial_id"],
        "best_params": summary["best"]["params"],
        "epochs_trained": int(sum(len(frame) for frame in frames.values())),
        "stopped_early": int(sum(len(frame) < epochs for frame in frames.values())),
        "trials": len(frames),
        "max_running_at_once": max_running_at_once(trial_intervals(frames)),
    }


def untrained_dice(config: dict) -> float:
    """Return the validation Dice of ``config``'s model with its random initial weights."""
    resolved = resolve_config(config, require_absolute=True)
    train_set, val_set = build_datasets(resolved)
    trainer = Trainer(resolved, train_set, val_set)
    try:
        return float(trainer.validate()["val_dice"])
    finally:
        trainer.close()


def best_config(result: dict[str, Any]) -> dict:
    """Return the training config of the best trial of a finished search."""
    experiment_dir = Path(result["experiment_dir"])
    params_file = experiment_dir / f"trial_{result['best_trial']}" / "params.json"
    return json.loads(params_file.read_text(encoding="utf-8"))


def bench_schedulers(args: argparse.Namespace) -> dict[str, Any]:
    asha = run_timed_search(_options(args, "asha", scheduler="asha"))
    fifo = run_timed_search(_options(args, "fifo", scheduler="fifo"))
    untrained = untrained_dice(best_config(asha))
    return {"asha": asha, "fifo": fifo, "untrained_best_asha_config": untrained}


def _fixed_space(config: dict, path: Path) -> Path:
    """Write a space whose only searched key is a one-value choice, so every trial is ``config``."""
    entries = {
        key: value for key, value in flatten_config(config).items() if not key.startswith("data.")
    }
    entries["model.encoder"] = {"choice": [config["model"]["encoder"]]}
    path.write_text(yaml.safe_dump({"version": 1, "space": entries}, sort_keys=False), encoding="utf-8")
    return path


def bench_overhead(args: argparse.Namespace, config: dict) -> dict[str, Any]:
    direct_config = resolve_config(config, require_absolute=True)
    torch.set_num_threads(1)
    start = time.perf_counter()
    train(direct_config)
    direct_s = time.perf_counter() - start

    # The same loop with the per-epoch checkpoint folder that the Tune trainable writes. Like
    # the trainable's temporary folder, each epoch's folder is deleted after the next write.
    checkpoints = args.out / "direct_checkpoints"
    sizes_mb: list[float] = []

    def save_checkpoint(metrics: dict, trainer: Trainer) -> None:
        folder = checkpoints / f"epoch_{int(metrics['epoch']):03d}"
        trainer.save_checkpoint_dir(folder, metrics)
        sizes_mb.append(sum(f.stat().st_size for f in folder.iterdir()) / 1e6)
        shutil.rmtree(folder)

    start = time.perf_counter()
    train(direct_config, save_checkpoint)
    direct_checkpoint_s = time.perf_counter() - start
    checkpoint_mb = max(sizes_mb)

    space = _fixed_space(direct_config, args.out / "fixed_space.yaml")
    options = _options(
        args, "overhead", space=space, num_samples=OVERHEAD_TRIALS, max_concurrent=1, scheduler="fifo"
    )
    start = time.perf_counter()
    experiment_dir = run_search(options)
    search_s = time.perf_counter() - start

    frames = _frames(experiment_dir)
    in_worker = [float(frame["time_total_s"].iloc[-1]) for frame in frames.values()]
    intervals = sorted(trial_intervals(frames), key=lambda interval: interval.start)
    return {
        "direct_s": direct_s,
        "direct_checkpoint_s": direct_checkpoint_s,
        "checkpoint_mb": checkpoint_mb,
        "search_wall_s": search_s,
        "trials": len(frames),
        "in_worker_s": in_worker,
        "trial_wall_s": [interval.end - interval.start for interval in intervals],
        "config": {key: direct_config[key] for key in ("model", "input_size", "optim")},
    }


def _machine() -> str:
    return (
        f"{platform.machine()}, {torch.get_num_threads()} torch threads available, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def print_tables(results: dict[str, Any]) -> None:
    if "schedulers" in results:
        part = results["schedulers"]
        print("\n| scheduler | wall time | best val_dice | epochs trained | trials stopped early | most trials at once |")
        print("|---|---|---|---|---|---|")
        for name in ("asha", "fifo"):
            row = part[name]
            print(
                f"| {name.upper()} | {row['wall_s']:.0f} s | {row['best_val_dice']:.4f} | "
                f"{row['epochs_trained']} | {row['stopped_early']} of {row['trials']} | "
                f"{row['max_running_at_once']} |"
            )
        ratio = part["fifo"]["wall_s"] / part["asha"]["wall_s"]
        print(f"\nFIFO / ASHA wall time: {ratio:.2f}")
        print(f"untrained Dice of the best ASHA config: {part['untrained_best_asha_config']:.4f}")
        print(f"best ASHA config: {part['asha']['best_params']}")
    if "overhead" in results:
        part = results["overhead"]
        mean_in_worker = sum(part["in_worker_s"]) / len(part["in_worker_s"])
        mean_wall = sum(part["trial_wall_s"]) / len(part["trial_wall_s"])
        print("\n| case | time | ratio to direct |")
        print("|---|---|---|")
        print(f"| `trainable.loop.train` directly, 1 thread | {part['direct_s']:.1f} s | 1.00 |")
        print(
            f"| the same, writing each epoch's checkpoint folder ({part['checkpoint_mb']:.0f} MB) | "
            f"{part['direct_checkpoint_s']:.1f} s | {part['direct_checkpoint_s'] / part['direct_s']:.2f} |"
        )
        print(f"| in the Tune worker (`time_total_s`), mean of {part['trials']} | {mean_in_worker:.1f} s | {mean_in_worker / part['direct_s']:.2f} |")
        print(f"| trial wall time (first report - its duration to last report), mean | {mean_wall:.1f} s | {mean_wall / part['direct_s']:.2f} |")
        per_trial = part["search_wall_s"] / part["trials"]
        print(f"| whole `run_search` / {part['trials']} trials (Ray start included) | {per_trial:.1f} s | {per_trial / part['direct_s']:.2f} |")
        print(f"\nper-trial wall times in order: {[round(t, 1) for t in part['trial_wall_s']]}")
        print(f"config: {part['config']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (must not exist)")
    parser.add_argument("--part", choices=("all", "schedulers", "overhead"), default="all")
    parser.add_argument("--data-root", type=Path, help="dataset root (default: synthetic, 32 train images at 256 px)")
    parser.add_argument("--space", type=Path, default=DEFAULT_SPACE)
    parser.add_argument("--num-samples", type=int, default=8, help="trials per search (default: %(default)s)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the Ray instance (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overhead-config", type=Path, help="params.json of a trial to time in the overhead part (default: the best ASHA trial, or the space's base config)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=False)
    if args.data_root is None:
        args.data_root = args.out / "data"
        generate_dataset(args.data_root, 32, 8, size=256, seed=args.seed)

    results: dict[str, Any] = {"machine": _machine(), "command": vars(args).copy()}
    if args.part in ("all", "schedulers"):
        results["schedulers"] = bench_schedulers(args)
    if args.part in ("all", "overhead"):
        if args.overhead_config is not None:
            config = json.loads(args.overhead_config.read_text(encoding="utf-8"))
        elif "schedulers" in results:
            config = best_config(results["schedulers"]["asha"])
        else:
            raise SystemExit("--part overhead needs --overhead-config (a trial's params.json)")
        results["overhead"] = bench_overhead(args, config)

    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print_tables(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
