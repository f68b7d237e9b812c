"""Train one config without Ray, for debugging: ``python -m trainable.train --config FILE``.

Writes into ``--out``: ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one JSON line
per epoch), ``model.pt`` (the best epoch so far, see trainable.checkpoint) and
``training_state.pt`` (the last epoch, for ``--resume``).

Example::

    python -m data.synth runs/synth --train 8 --test 2 --size 256
    python -m trainable.train --config trainable/configs/debug_cpu.yaml --make-splits 4 \\
        --set optim.epochs=2 --out runs/debug
"""

from __future__ import annotations

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data.layout import discover
from data.splits import make_splits, write_splits
from trainable.checkpoint import STATE_FILE, load_training_state, save_training_state
from trainable.config import load_config, resolve_config, save_config
from trainable.loop import TrainSummary, Trainer, train

logger = logging.getLogger("trainable.train")


def run_training(
    config_path: str | Path | None,
    overrides: Sequence[str] = (),
    out_dir: str | Path = "runs/train",
    *,
    resume: bool = False,
    make_splits_folds: int | None = None,
) -> TrainSummary:
    """Resolve a config file with overrides, train it and write the outputs into ``out_dir``.

    Args:
        config_path: YAML config file, or None for the defaults.
        overrides: ``"key=value"`` strings with dotted keys, applied after the file.
        out_dir: output folder, created when missing.
        resume: continue from ``out_dir/training_state.pt``.
        make_splits_folds: when the split file is missing, write one with this many folds
            (patient-grouped, seeded with the config seed) before training.

    Raises:
        ValueError: invalid config, data or split file (the message names the file and the reason).
    """
    raw = load_config(config_path) if config_path is not None else {}
    config = resolve_config(raw, overrides)
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    save_config(out / "config.yaml", config)

    if make_splits_folds is not None:
        _write_missing_splits(config, make_splits_folds)
    resume_state = load_training_state(out / STATE_FILE) if resume else None
    if not resume:
        (out / "metrics.jsonl").unlink(missing_ok=True)

    def report(metrics: dict[str, float], trainer: Trainer) -> None:
        with open(out / "metrics.jsonl", "a", encoding="utf-8") as stream:
            stream.write(json.dumps(metrics) + "\n")
        if trainer.is_best:
            trainer.save_model(out / "model.pt", metrics)
            logger.info("epoch %d is the best so far; saved %s", trainer.epoch, out / "model.pt")
        save_training_state(out / STATE_FILE, trainer.training_state())

    summary = train(config, report, resume_state=resume_state)
    logger.info(
        "best val_dice %.4f at epoch %d; outputs in %s", summary.best_val_dice, summary.best_epoch, out
    )
    return summary


def _write_missing_splits(config: dict[str, Any], n_folds: int) -> None:
    splits_path = Path(config["data"]["splits"])
    if splits_path.exists():
        logger.info("split file %s exists; --make-splits leaves it unchanged", splits_path)
        return
    if config["data"]["root"] is None:
        raise ValueError("--make-splits needs data.root in the config")
    samples = discover(config["data"]["root"]).train
    write_splits(splits_path, make_splits(samples, n_folds=n_folds, seed=config["seed"]))
    logger.info("wrote %d-fold split file %s", n_folds, splits_path)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, train, and return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m trainable.train",
        description="Train one segmentation config without Ray and save its best checkpoint.",
    )
    parser.add_argument("--config", type=Path, help="YAML training config (default: built-in defaults)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value by dotted key, e.g. --set optim.lr=0.0003 (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/train"), help="output folder")
    parser.add_argument(
        "--resume", action="store_true", help="continue from OUT/training_state.pt"
    )
    parser.add_argument(
        "--make-splits",
        type=int,
        metavar="FOLDS",
        help="write the split file with this many folds if it does not exist",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_training(
            args.config,
            args.overrides,
            args.out,
            resume=args.resume,
            make_splits_folds=args.make_splits,
        )
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
