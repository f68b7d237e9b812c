"""Build a submission from the best trials of a search: select, predict, vote, write, check.

Usage::

    python ensemble/build.py --experiment runs/ray_results/my-search --top-k 5 \\
        --images DATA_ROOT --out submission.csv [--voting soft|hard] [--weights dice|2,1,1]
        [--threshold 0.5 | --thresholds-file t.yaml] [--min-votes 2] [--overlays DIR]
        [--selection topk|greedy] [--device auto|cpu|cuda]

Steps:

1. Read the experiment's leaderboard through ``results.experiment`` and take the ``--top-k``
   trials with the best validation Dice, or run greedy forward selection on the validation
   fold (``--selection greedy``, soft voting only).
2. Load each member's best-epoch checkpoint once and keep the models in memory.
3. Score each member and the ensemble on the validation fold of the experiment's split file,
   at each image's own size, so the gain over the best single trial is visible.
4. Predict every image once. Each member runs at its own input size, and its probabilities
   are resized to the image's own size and added to a running vote. The voted masks are then
   encoded and streamed to the CSV (written atomically), and optionally drawn as overlays.
5. Validate the CSV, write the JSON report and print the table.

Memory contains the models, one image, its (29, H, W) running vote and voted masks, and one
member's (29, S, S) output. It does not grow with the number of images, and each member adds
only one (H, W) plane at a time.

Report JSON (``format_version`` 1): options, members (trial, checkpoint, input size, weight,
leaderboard and fold Dice), ensemble fold Dice (mean and per class), the gain over the best
member, greedy picks, output files, validation problems and timings.
"""

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data.classes import CLASSES
from data.images import read_image
from data.layout import Sample
from ensemble.fold import FoldScores, collect_fold_predictions, same_fold, score_fold, validation_fold
from ensemble.image_folders import find_images, image_sizes
from ensemble.overlays import add_caption, draw_masks, write_png
from ensemble.predict import DEVICES, Member, predict_ensemble, select_device
from ensemble.selection import SELECTIONS, greedy_selection, leaderboard_members, top_k
from ensemble.submission import SubmissionWriter
from ensemble.validate import find_problems
from ensemble.voting import VOTING_MODES, as_class_thresholds, load_thresholds, parse_weights
from results.experiment import load_experiment

logger = logging.getLogger("ensemble.build")

FORMAT_VERSION = 1
DEFAULT_STORAGE_PATH = Path("runs") / "ray_results"


@dataclass
class BuildOptions:
    """Options of one ensemble build; the CLI flags of the same names set them.

    Attributes:
        experiment: experiment folder (``<storage_path>/<name>``).
        images: images to predict: a competition root (its ``test/DCM``) or any folder of
            images; None uses the ``test/DCM`` images of the members' dataset root.
        out: submission CSV to write.
        top_k: members (top-k) or greedy picks (greedy).
        voting: ``soft`` or ``hard``.
        weights: soft voting weights: None (equal), ``"dice"`` or ``"w1,w2,..."``.
        threshold: probability threshold of every class.
        thresholds_file: YAML/JSON of per-class thresholds (overrides ``threshold`` per class).
        min_votes: hard voting: members needed per pixel; None is a majority.
        overlays: folder for PNG overlays of the predicted bones, or None.
        selection: ``topk`` or ``greedy``.
        pool_size: greedy: number of best trials to choose from; None is all.
        selection_size: greedy: side of the square grid the fold is scored on; None uses the
            largest input size of the pool.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        report: JSON report path; None writes ``<out stem>.ensemble.json`` beside the CSV.
        score_fold: score members and ensemble on the validation fold.
    """

    experiment: Path
    images: Path | None = None
    out: Path = Path("submission.csv")
    top_k: int = 5
    voting: str = "soft"
    weights: str | None = None
    threshold: float = 0.5
    thresholds_file: Path | None = None
    min_votes: int | None = None
    overlays: Path | None = None
    selection: str = "topk"
    pool_size: int | None = None
    selection_size: int | None = None
    device: str = "auto"
    report: Path | None = None
    score_fold: bool = True


@dataclass
class BuildReport:
    """Outcome of a build: members, fold scores, outputs and timings (see :meth:`to_json`)."""

    options: BuildOptions
    members: list[Member]
    thresholds: np.ndarray
    min_votes: int | None
    images: int = 0
    csv: Path | None = None
    problems: list[str] = field(default_factory=list)
    fold: dict[str, Any] | None = None
    fold_scores: FoldScores | None = None
    fold_skipped: str | None = None
    greedy: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def gain(self) -> float | None:
        """Return the ensemble's fold Dice minus the best member's, or None without scores."""
        if self.fold_scores is None:
            return None
        return self.fold_scores.ensemble_mean() - float(self.fold_scores.member_means().max())

    def to_json(self) -> dict[str, Any]:
        scores = self.fold_scores
        members = []
        for index, member in enumerate(self.members):
            members.append({
                "trial_id": member.trial_id,
                "checkpoint": str(member.checkpoint),
                "architecture": member.config.get("model", {}).get("architecture"),
                "encoder": member.config.get("model", {}).get("encoder"),
                "input_size": member.input_size,
                "weight": member.weight,
                "leaderboard_val_dice": member.val_dice,
                "fold_dice": None if scores is None else float(scores.member_means()[index]),
            })
        ensemble = None
        if scores is not None:
            ensemble = {
                "fold_dice": scores.ensemble_mean(),
                "per_class": dict(zip(CLASSES, map(float, scores.ensemble_dice.mean(axis=0)))),
                "best_member_fold_dice": float(scores.member_means().max()),
                "gain_over_best_member": self.gain(),
                "images": scores.image_names,
            }
        options = {key: str(value) if isinstance(value, Path) else value
                   for key, value in vars(self.options).items()}
        return {
            "format_version": FORMAT_VERSION,
            "experiment": str(self.options.experiment),
            "options": options,
            "thresholds": dict(zip(CLASSES, map(float, self.thresholds))),
            "min_votes": self.min_votes,
            "members": members,
            "ensemble": ensemble,
            "fold": self.fold,
            "fold_skipped": self.fold_skipped,
            "greedy": self.greedy,
            "csv": None if self.csv is None else str(self.csv),
            "predicted_images": self.images,
            "problems": self.problems,
            "timings_s": self.timings,
        }


def build_ensemble(options: BuildOptions) -> BuildReport:
    """Run the whole build (see the module docstring) and write the CSV and the report.

    Raises:
        ValueError: on invalid options, an unreadable experiment, checkpoint or image.
    """
    _check_options(options)
    _check_paths(options)
    started = time.perf_counter()
    thresholds = (
        load_thresholds(options.thresholds_file, default=options.threshold)
        if options.thresholds_file is not None
        else as_class_thresholds(options.threshold, len(CLASSES))
    )
    device = select_device(options.device)
    # Every image header is read before any model is loaded, so a bad image fails in seconds.
    samples = _find_samples(options.images) if options.images is not None else None
    candidates = leaderboard_members(load_experiment(options.experiment).leaderboard())
    report = BuildReport(options, [], thresholds, None)

    if options.selection == "greedy":
        members = _greedy_members(candidates, options, thresholds, device, report)
    else:
        chosen = top_k(candidates, options.top_k)
        if options.voting == "soft":
            parse_weights(options.weights, len(chosen))  # the count, before loading the models
        else:
            _min_votes(options, len(chosen))
        members = [member.load(device) for member in chosen]
    _set_weights(members, options)
    min_votes = _min_votes(options, len(members)) if options.voting == "hard" else None
    report.members, report.min_votes = members, min_votes
    report.timings["load_and_select"] = time.perf_counter() - started
    if samples is None:
        # NOTE: the default folder comes from the members' training config, so its images are
        # checked only once the models are loaded (still before the fold is scored).
        samples = _find_samples(Path(members[0].config["data"]["root"]))

    if options.score_fold:
        step = time.perf_counter()
        _score_fold(members, options.voting, thresholds, min_votes or 1, report)
        report.timings["fold"] = time.perf_counter() - step

    step = time.perf_counter()
    sizes = _predict_images(members, samples, options, thresholds, min_votes or 1, report)
    report.timings["predict"] = time.perf_counter() - step

    report.problems = [str(problem) for problem in find_problems(options.out, sizes=sizes)]
    report.timings["total"] = time.perf_counter() - started
    report_path = options.report or options.out.with_suffix(".ensemble.json")
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    logger.info("wrote the report %s", report_path)
    return report


def _check_options(options: BuildOptions) -> None:
    problems = []
    if options.voting not in VOTING_MODES:
        problems.append(f"--voting must be one of {', '.join(VOTING_MODES)}, got {options.voting!r}")
    if options.selection not in SELECTIONS:
        problems.append(f"--selection must be one of {', '.join(SELECTIONS)}, got {options.selection!r}")
    if options.top_k < 1:
        problems.append(f"--top-k must be >= 1, got {options.top_k}")
    if options.voting == "hard" and options.weights is not None:
        problems.append("--weights applies to soft voting only; hard voting counts one vote per member")
    if options.voting != "hard" and options.min_votes is not None:
        problems.append("--min-votes applies to hard voting only; add --voting hard")
    if options.selection == "greedy":
        if options.voting != "soft":
            problems.append(
                "--selection greedy weights members by how often it picks them, which only soft "
                "voting uses; use --voting soft or --selection topk"
            )
        if options.weights is not None:
            problems.append("--selection greedy sets the weights itself; leave out --weights")
    if problems:
        raise ValueError("invalid ensemble options: " + "; ".join(problems))


def _greedy_members(
    candidates: list[Member], options: BuildOptions, thresholds: np.ndarray, device, report: BuildReport
) -> list[Member]:
    pool = candidates[: options.pool_size] if options.pool_size else candidates
    for member in pool:
        member.load(device)
    fold = validation_fold(pool[0].config)
    size = options.selection_size or max(member.input_size for member in pool)
    logger.info(
        "greedy selection: %d candidates, %d picks, %d validation images at %d px",
        len(pool), options.top_k, len(fold.samples), size,
    )
    predictions = collect_fold_predictions(pool, fold.samples, size, work_dir=options.out.parent)
    try:
        result = greedy_selection(predictions.probabilities, predictions.truth, thresholds, options.top_k)
    finally:
        predictions.close()

    members = []
    for member, count in zip(pool, result.counts):
        if count > 0:
            member.weight = float(count)
            members.append(member)
        else:
            member.model = None  # free the models that were not picked
    report.greedy = {
        "pool": [member.trial_id for member in pool],
        "picks": [pool[index].trial_id for index in result.picks],
        "scores": result.scores,
        "best_steps": result.best_steps,
        "selection_size": size,
    }
    return members


def _set_weights(members: list[Member], options: BuildOptions) -> None:
    if options.voting != "soft" or options.selection == "greedy":
        return
    weights = parse_weights(options.weights, len(members))
    if weights == "dice":
        weights = [max(member.val_dice, 0.0) for member in members]
        if sum(weights) <= 0:
            raise ValueError("--weights dice: every member has validation Dice 0; use equal weights")
    for member, weight in zip(members, weights or [1.0] * len(members)):
        member.weight = float(weight)


def _min_votes(options: BuildOptions, members: int) -> int:
    min_votes = members // 2 + 1 if options.min_votes is None else options.min_votes
    if not 1 <= min_votes <= members:
        raise ValueError(f"--min-votes must be between 1 and {members} (the members), got {min_votes}")
    return min_votes


def _score_fold(
    members: list[Member], voting: str, thresholds: np.ndarray, min_votes: int, report: BuildReport
) -> None:
    configs = [member.config for member in members]
    if not same_fold(configs):
        logger.warning("the members validate on different folds; scoring on the first member's")
    try:
        fold = validation_fold(configs[0])
    except (ValueError, OSError) as error:
        report.fold_skipped = str(error)
        logger.warning("validation fold not scored: %s", error)
        return
    report.fold = {"root": str(fold.root), "splits": str(fold.splits), "fold": fold.fold,
                   "images": len(fold.samples)}
    report.fold_scores = score_fold(members, fold.samples, voting, thresholds, min_votes)


def _check_paths(options: BuildOptions) -> None:
    """Reject missing or wrong-kind paths and a malformed --weights before any slow work."""
    problems = []
    if options.images is not None and not options.images.expanduser().is_dir():
        problems.append(
            f"--images {options.images} is not a folder; give a competition root (with "
            "test/DCM) or a folder of images, or leave it out to use the members' test/DCM"
        )
    if options.overlays is not None and options.overlays.exists() and not options.overlays.is_dir():
        problems.append(
            f"--overlays {options.overlays} exists and is not a folder; give a folder (new or "
            "existing) for the PNG overlays"
        )
    if options.out.is_dir():
        problems.append(f"--out {options.out} is a folder; give the path of the CSV file to write")
    if options.thresholds_file is not None and not options.thresholds_file.is_file():
        problems.append(
            f"--thresholds-file {options.thresholds_file} is not a file; give a YAML/JSON file "
            "mapping class names (and 'default') to thresholds"
        )
    if options.weights is not None and options.voting == "soft":
        values = options.weights.split(",")
        try:  # the format only: the count is checked once the members are known
            parse_weights(options.weights, len(values))
        except ValueError as error:
            problems.append(str(error))
    if problems:
        raise ValueError("invalid ensemble options: " + "; ".join(problems))


def _find_samples(folder: Path) -> list[Sample]:
    """List the images of ``folder`` and read every header, so a bad file fails before the work.

    Raises:
        ValueError: naming the folder or the unreadable file and what to do.
    """
    try:
        samples = find_images(folder)
        sizes = image_sizes(samples)
    except ValueError as error:  # LayoutError, ImageReadError
        raise ValueError(
            f"images to predict ({folder}): {error}; fix or remove that file, or point --images "
            "to another folder"
        ) from None
    logger.info("found %d images under %s; every header is readable", len(sizes), folder)
    return samples


def _predict_images(
    members: list[Member], samples: list[Sample], options: BuildOptions, thresholds: np.ndarray,
    min_votes: int, report: BuildReport,
) -> dict[str, tuple[int, int]]:
    """Predict the images and record them in the report."""
    logger.info("predicting %d images with %d members", len(samples), len(members))
    sizes = write_predictions(
        members, samples, options.out, options.voting, thresholds, min_votes, options.overlays
    )
    report.images, report.csv = len(samples), options.out
    return sizes


def write_predictions(
    members: list[Member],
    samples: list[Sample],
    out: Path,
    voting: str,
    thresholds: np.ndarray,
    min_votes: int = 1,
    overlays: Path | None = None,
) -> dict[str, tuple[int, int]]:
    """Vote every image once and stream its 29 rows to a submission CSV (atomic).

    Args:
        members: loaded members.
        samples: images to predict.
        out: submission CSV.
        voting: ``"soft"`` or ``"hard"``.
        thresholds: (29,) per-class thresholds.
        min_votes: hard voting: members needed per pixel.
        overlays: folder for PNG overlays of the voted masks, or None.

    Returns:
        Image name -> (H, W) of every predicted image.
    """
    sizes: dict[str, tuple[int, int]] = {}
    overlay_names: set[str] = set()
    with SubmissionWriter(out) as writer:
        for number, sample in enumerate(samples, start=1):
            image = read_image(sample.image_path)
            masks = predict_ensemble(members, image, voting, thresholds, min_votes).masks
            writer.write_image(sample.image_name, masks)
            sizes[sample.image_name] = image.shape
            if overlays is not None:
                _write_overlay(overlays, sample.image_name, image, masks, overlay_names)
            logger.info("%d/%d %s (%dx%d)", number, len(samples), sample.image_name, *image.shape)
    return sizes


def _write_overlay(folder: Path, name: str, image: np.ndarray, masks: np.ndarray, used: set[str]) -> None:
    stem = Path(name).stem
    file_name = f"{stem}.png" if stem not in used else f"{name}.png"
    used.add(stem)
    rgb = draw_masks(image, masks)
    add_caption(rgb, [name])
    write_png(folder / file_name, rgb)


def format_report(report: BuildReport) -> str:
    """Return the members-and-ensemble table of a build as text."""
    scores = report.fold_scores
    lines = [f"{'member':<20} {'size':>5} {'weight':>7} {'leaderboard':>12} {'fold (own size)':>16}"]
    for index, member in enumerate(report.members):
        fold = "-" if scores is None else f"{scores.member_means()[index]:.4f}"
        lines.append(
            f"{member.trial_id:<20} {member.input_size:>5} {member.weight:>7.3g} "
            f"{member.val_dice:>12.4f} {fold:>16}"
        )
    voting = report.options.voting + (f", min votes {report.min_votes}" if report.min_votes else "")
    if scores is not None:
        lines.append(f"{'ensemble (' + voting + ')':<47} {scores.ensemble_mean():>16.4f}")
        lines.append(f"{'gain over the best member':<47} {report.gain():>+16.4f}")
    else:
        lines.append(f"ensemble ({voting}): fold not scored ({report.fold_skipped or 'disabled'})")
    lines.append(f"wrote {report.csv}: {report.images} images, "
                 f"{'valid' if not report.problems else f'{len(report.problems)} problems'}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python ensemble/build.py",
        description="Build a submission CSV from the best trials of a search by soft or hard voting.",
    )
    add = parser.add_argument

    add("--experiment", type=Path, help="experiment folder (or give --name and --storage-path)")
    add("--name", help="experiment name, the folder under --storage-path")
    add("--storage-path", type=Path, default=DEFAULT_STORAGE_PATH,
        help="folder of the experiment folders (default: %(default)s)")
    add("--images", type=Path, help="images to predict: a competition root (test/DCM) or any "
        "folder of images (default: test/DCM of the members' dataset root)")
    add("--out", type=Path, default=Path("submission.csv"), help="submission CSV (default: %(default)s)")
    add("--report", type=Path, help="JSON report (default: <out stem>.ensemble.json)")

    add("--top-k", type=int, default=5, help="members (topk) or greedy picks (default: %(default)s)")
    add("--selection", choices=SELECTIONS, default="topk",
        help="topk: the k best trials by validation Dice; greedy: forward selection with "
        "replacement on the validation fold (default: %(default)s)")
    add("--pool-size", type=int, help="greedy: choose among this many best trials (default: all)")
    add("--selection-size", type=int, help="greedy: side in pixels of the grid the fold is "
        "scored on (default: the largest input size of the pool)")

    add("--voting", choices=VOTING_MODES, default="soft", help="soft: mean probability; hard: "
        "count of members' masks (default: %(default)s)")
    add("--weights", help="soft voting weights: 'dice' (leaderboard validation Dice) or one "
        "number per member, such as 2,1,1 (default: equal)")
    add("--threshold", type=float, default=0.5, help="probability threshold of every class (default: %(default)s)")
    add("--thresholds-file", type=Path, help="YAML/JSON mapping class names (and 'default') to thresholds")
    add("--min-votes", type=int, help="hard voting: members needed per pixel (default: a majority)")

    add("--overlays", type=Path, help="folder for PNG overlays of the predicted bones")
    add("--device", default="auto", help=f"one of {', '.join(DEVICES)} or cuda:N (default: %(default)s)")
    add("--no-fold-score", action="store_true", help="skip scoring on the validation fold")
    return parser


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    if args.experiment is None and args.name is None:
        raise ValueError("give --experiment DIR, or --name NAME with --storage-path DIR")
    experiment = args.experiment or args.storage_path / args.name
    return BuildOptions(
        experiment=experiment,
        images=args.images,
        out=args.out,
        top_k=args.top_k,
        voting=args.voting,
        weights=args.weights,
        threshold=args.threshold,
        thresholds_file=args.thresholds_file,
        min_votes=args.min_votes,
        overlays=args.overlays,
        selection=args.selection,
        pool_size=args.pool_size,
        selection_size=args.selection_size,
        device=args.device,
        report=args.report,
        score_fold=not args.no_fold_score,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        report = build_ensemble(options_from_args(args))
    except ValueError as error:
        logger.error("%s", error)
        return 2
    print(format_report(report))
    for problem in report.problems:
        print(problem)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
