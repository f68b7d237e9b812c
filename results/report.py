"""Report on a search: leaderboard, per-class Dice and plots, also while the search runs.

    python -m results.report EXPERIMENT_DIR [--out DIR] [--top N]

prints the leaderboard and the per-class Dice of the best trials, and writes into ``--out``
(default ``EXPERIMENT_DIR/report``):

- ``leaderboard.csv``: every trial, best first (format in ``results.leaderboard``)
- ``per_class_dice.csv``: the ``--top`` best trials' per-class Dice at their best epoch
- ``best_so_far.png``: best validation Dice so far over wall time
- ``learning_curves.png``: validation Dice per epoch, the ``--top`` best trials in colour
- ``param_importance.png``: hyperparameter importance from the Optuna study, when the study
  has enough completed trials; otherwise the report prints the reason
"""

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from results import importance, leaderboard, plots
from results.experiment import Experiment, load_experiment

logger = logging.getLogger(__name__)

PRINTED_CLASS_TRIALS = 5
"""At most this many trials get a column in the printed per-class table (the CSV has --top)."""


@dataclass
class Report:
    """Outputs and findings of :func:`build_report`.

    Attributes:
        experiment: the experiment as read.
        leaderboard: ``Experiment.leaderboard()``, all trials.
        per_class: ``Experiment.per_class_dice(top)``.
        files: output name (such as "leaderboard.csv") to the written path.
        notes: messages for the reader, such as why the importance plot is missing.
    """

    experiment: Experiment
    leaderboard: pd.DataFrame
    per_class: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def build_report(
    experiment_dir: str | Path, out_dir: str | Path | None = None, top: int = 10
) -> Report:
    """Read an experiment and write its CSV tables and PNG plots.

    Args:
        experiment_dir: the Ray Tune experiment directory, finished or running.
        out_dir: where to write (None: ``experiment_dir/report``); created when missing.
        top: how many of the best trials get per-class Dice and a coloured learning curve.

    Returns:
        The tables, the written files and notes.

    Raises:
        ValueError: ``top`` is below 1.
        results.experiment.ExperimentError: ``experiment_dir`` is not an experiment directory.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    experiment = load_experiment(experiment_dir)
    out = Path(out_dir) if out_dir is not None else experiment.path / "report"
    out.mkdir(parents=True, exist_ok=True)

    table = experiment.leaderboard()
    per_class = experiment.per_class_dice(top=top)
    history = experiment.history()
    report = Report(experiment, table, per_class)

    report.files["leaderboard.csv"] = leaderboard.write_leaderboard_csv(
        table, out / "leaderboard.csv"
    )
    report.files["per_class_dice.csv"] = leaderboard.write_per_class_csv(
        per_class, out / "per_class_dice.csv"
    )
    report.files["best_so_far.png"] = plots.plot_best_so_far(
        history, out / "best_so_far.png", experiment.name
    )
    report.files["learning_curves.png"] = plots.plot_learning_curves(
        history,
        list(table["trial_id"]),
        out / "learning_curves.png",
        highlight=top,
        title=experiment.name,
    )
    _write_importance(experiment, out / "param_importance.png", report)
    return report


def _write_importance(experiment: Experiment, path: Path, report: Report) -> None:
    try:
        study = importance.load_study(experiment.study_path, experiment.name)
        importances, completed = importance.param_importances(study)
    except importance.ImportanceUnavailable as error:
        report.notes.append(f"no hyperparameter importance plot: {error}")
        path.unlink(missing_ok=True)  # a plot from an earlier report would be out of date
        return
    report.files["param_importance.png"] = plots.plot_param_importance(
        importances, path, completed, experiment.name
    )


def format_report(report: Report, top: int) -> str:
    """Format the report for a terminal: counts, leaderboard, per-class Dice, notes, files."""
    experiment = report.experiment
    printed_classes = report.per_class.head(min(top, PRINTED_CLASS_TRIALS))
    statuses = Counter(report.leaderboard["status"]) if not report.leaderboard.empty else Counter()
    status_text = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
    lines = [
        f"experiment {experiment.name} ({experiment.path}): {len(experiment.trials)} trials"
        + (f" ({status_text})" if status_text else ""),
        "",
        leaderboard.format_leaderboard(report.leaderboard, top=top),
        "",
        f"per-class validation Dice at the best epoch (best {len(printed_classes)} trials):",
        leaderboard.format_per_class_dice(printed_classes),
        "",
    ]
    lines += [f"note: {note}" for note in report.notes]
    if statuses.get("ERROR"):
        lines.append(
            f"note: {statuses['ERROR']} trial(s) ended with an error; each one's error.txt in its "
            f"trial folder under {experiment.path} has the traceback"
        )
    lines += [f"wrote {path}" for path in report.files.values()]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m results.report",
        description="Print the leaderboard of a Ray Tune experiment; write CSVs and PNG plots.",
    )
    parser.add_argument(
        "experiment_dir", type=Path, help="the experiment directory (<storage_path>/<name>)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: EXPERIMENT_DIR/report)"
    )
    parser.add_argument(
        "--top",
        type=int,
        default=10,
        help="number of best trials to print, to list in per_class_dice.csv and to colour in "
        "the learning curves (default: 10)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the report CLI; return the exit status (0, or 2 for an invalid argument or directory)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = build_report(args.experiment_dir, args.out, args.top)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_report(report, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
