"""Score a submission CSV against the ground-truth polygons of a dataset.

Usage::

    python ensemble/evaluate.py pred.csv --gt ROOT [--json OUT.json] [--plot OUT.png]
        [--overlays DIR --worst N]

Dice per image and class as the competition defines it, ``2 |P & T| / (|P| + |T|)``, with 1 for
an empty prediction on an empty truth. Ground truth comes from ``ROOT/train/outputs_json``,
rasterized by ``data.annotations`` at each image's own size. Every image of the CSV that has an
annotation is scored; images without one are skipped and listed in the JSON.

Missing predictions:

- A row ``(image_name, class)`` that the CSV lacks, for an image it has other rows of, is
  scored as an empty prediction: Dice 1 where that bone is absent from the truth, 0 otherwise.
- An annotated image with no row at all in the CSV is not scored: the mean covers the images
  of the CSV only, so a CSV of one validation fold can be scored against the whole dataset.

Both are logged as warnings with their count and a few examples, and counted in the JSON.

JSON output (``format_version`` 1)::

    {"format_version": 1, "prediction": ..., "gt_root": ..., "classes": [29 names],
     "images": N, "mean": float, "per_class": {class: float},
     "per_image": {image_name: {"mean": float, "dice": {class: float}}},
     "skipped_images": [names without ground truth], "missing_rows": int,
     "unpredicted_images": [annotated names without rows]}
"""

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data.annotations import load_annotations, rasterize
from data.classes import CLASS_INDEX, CLASSES, NUM_CLASSES
from data.images import read_image, read_image_size
from data.layout import Sample, discover
from ensemble.overlays import add_caption, draw_errors, write_png
from ensemble.rle import RLEError, fill_runs, parse_runs
from ensemble.submission import SubmissionIndex
from trainable.metrics import dice_per_image_class

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass
class Evaluation:
    """Dice of every scored (image, class) pair.

    Attributes:
        image_names: scored images, in CSV order.
        dice: (N, 29) float64 Dice in [0, 1].
        skipped_images: images of the CSV without ground truth.
        missing_rows: (image, class) rows of scored images absent from the CSV, scored as
            empty predictions.
        unpredicted_images: annotated images with no row in the CSV; not scored.
    """

    image_names: list[str]
    dice: np.ndarray
    skipped_images: list[str] = field(default_factory=list)
    missing_rows: int = 0
    unpredicted_images: list[str] = field(default_factory=list)

    def per_class(self) -> np.ndarray:
        """Return the (29,) mean Dice of each class over the images."""
        return self.dice.mean(axis=0)

    def per_image(self) -> np.ndarray:
        """Return the (N,) mean Dice of each image over the classes."""
        return self.dice.mean(axis=1)

    def mean(self) -> float:
        """Return the competition score: the mean over all (image, class) pairs."""
        return float(self.dice.mean())

    def to_json(self, prediction: str | os.PathLike, gt_root: str | os.PathLike) -> dict:
        """Return the JSON document described in the module docstring."""
        return {
            "format_version": FORMAT_VERSION,
            "prediction": str(prediction),
            "gt_root": str(gt_root),
            "classes": list(CLASSES),
            "images": len(self.image_names),
            "mean": self.mean(),
            "per_class": dict(zip(CLASSES, map(float, self.per_class()))),
            "per_image": {
                name: {"mean": float(row.mean()), "dice": dict(zip(CLASSES, map(float, row)))}
                for name, row in zip(self.image_names, self.dice)
            },
            "skipped_images": list(self.skipped_images),
            "missing_rows": self.missing_rows,
            "unpredicted_images": list(self.unpredicted_images),
        }


def dice_scores(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Return the (29,) float64 Dice of one image's (29, H, W) masks (non-zero = foreground).

    An empty prediction on an empty truth scores 1.
    """
    predicted = _as_bool(prediction)
    true = _as_bool(truth)
    return dice_per_image_class(predicted[None], true[None])[0]


def truth_masks(sample: Sample, size: tuple[int, int] | None = None) -> np.ndarray:
    """Rasterize a sample's annotation at the image's own size: (29, H, W) uint8 0/1."""
    if sample.json_path is None:
        raise ValueError(f"image {sample.image_name} has no annotation file")
    size = size if size is not None else read_image_size(sample.image_path)
    return rasterize(load_annotations(sample.json_path), image_size=size)


def evaluate_submission(
    prediction: str | os.PathLike,
    gt_root: str | os.PathLike,
    overlays_dir: str | os.PathLike | None = None,
    worst: int = 0,
) -> Evaluation:
    """Score a submission against the annotations of a competition-layout dataset.

    Images are scored one at a time, so only one image's masks are in memory.

    Args:
        prediction: submission CSV.
        gt_root: dataset root with ``train/DCM`` and ``train/outputs_json``.
        overlays_dir: folder for error overlays of the worst images, or None.
        worst: number of lowest-scoring images to draw (needs ``overlays_dir``).

    Raises:
        ValueError: when no image of the CSV has ground truth, or a file cannot be read.
    """
    annotated = {sample.image_name: sample for sample in discover(gt_root).train}
    names: list[str] = []
    rows: list[np.ndarray] = []
    skipped: list[str] = []
    missing_keys: list[tuple[str, str]] = []

    with SubmissionIndex(prediction) as index:
        for image_name in index.images:
            sample = annotated.get(image_name)
            if sample is None:
                skipped.append(image_name)
                continue
            prediction_masks, truth, absent = _load_pair(index, sample)
            missing_keys.extend((image_name, class_name) for class_name in absent)
            names.append(image_name)
            rows.append(dice_scores(prediction_masks, truth))
            logger.debug("%s: mean Dice %.4f", image_name, rows[-1].mean())

        if not names:
            raise ValueError(
                f"none of the {len(index.images)} images of {prediction} has an annotation under "
                f"{gt_root}/train/outputs_json; check --gt"
            )
        if skipped:
            logger.warning("%d images of %s have no ground truth and were skipped", len(skipped),
                           prediction)
        predicted = set(index.images)
        unpredicted = [name for name in annotated if name not in predicted]
        _warn_missing(prediction, gt_root, missing_keys, unpredicted, len(names))
        evaluation = Evaluation(names, np.stack(rows), skipped, len(missing_keys), unpredicted)

        if overlays_dir is not None and worst > 0:
            write_error_overlays(evaluation, index, annotated, Path(overlays_dir), worst)
    return evaluation


def _warn_missing(
    prediction: str | os.PathLike,
    gt_root: str | os.PathLike,
    missing_keys: list[tuple[str, str]],
    unpredicted: list[str],
    scored: int,
) -> None:
    """Log the rows and annotated images that the CSV lacks, with a few examples of each."""
    if missing_keys:
        logger.warning(
            "%s lacks %d (image_name, class) rows of its %d scored images, e.g. %s; each is "
            "scored as an empty prediction (Dice 1 where the bone is absent, else 0); run "
            "ensemble/validate.py on the CSV to list them all",
            prediction, len(missing_keys), scored, _examples(missing_keys),
        )
    if unpredicted:
        logger.warning(
            "%d annotated images under %s have no row in %s, e.g. %s; they are not scored: the "
            "mean covers the %d images of the CSV only",
            len(unpredicted), gt_root, prediction, _examples(unpredicted), scored,
        )


def _examples(items: list, count: int = 3) -> str:
    shown = ", ".join(str(item) for item in items[:count])
    return shown + (f" and {len(items) - count} more" if len(items) > count else "")


def write_error_overlays(
    evaluation: Evaluation,
    index: SubmissionIndex,
    samples: dict[str, Sample],
    folder: Path,
    worst: int,
) -> list[Path]:
    """Draw false positives and negatives of the ``worst`` lowest-Dice images as PNG files.

    Files are named ``<rank>_<image stem>.png`` (rank 1 is the worst image).
    """
    order = np.argsort(evaluation.per_image(), kind="stable")[:worst]
    written = []
    for rank, position in enumerate(order, start=1):
        name = evaluation.image_names[position]
        sample = samples[name]
        prediction_masks, truth, _ = _load_pair(index, sample)
        rgb = draw_errors(read_image(sample.image_path), prediction_masks, truth)
        caption = [
            f"{name}  mean Dice {evaluation.per_image()[position]:.4f}",
            "red: false positive  blue: false negative  magenta: both  green: correct",
        ]
        add_caption(rgb, caption)
        written.append(write_png(folder / f"{rank:03d}_{Path(name).stem}.png", rgb))
    logger.info("wrote %d error overlays to %s", len(written), folder)
    return written


def _load_pair(
    index: SubmissionIndex, sample: Sample
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return the (29, H, W) predicted and true masks of one image and its classes without a row.

    Raises:
        ValueError: when an RLE is invalid at the image's size; the message names the CSV, the
            line and the ``(image_name, class)`` key.
    """
    size = read_image_size(sample.image_path)
    rles = index.read_image(sample.image_name)
    masks = np.zeros((NUM_CLASSES, size[0] * size[1]), dtype=np.uint8)
    for class_name, text in rles.items():
        try:
            starts, lengths = parse_runs(text, size=size[0] * size[1])
        except RLEError as error:
            key = (sample.image_name, class_name)
            raise ValueError(
                f"{index.path} line {index.lines[key]}: invalid RLE for {key} at the image's "
                f"size {size[0]}x{size[1]}: {error}; fix that row (ensemble/validate.py "
                f"{index.path} --images IMAGES lists every problem)"
            ) from None
        fill_runs(masks[CLASS_INDEX[class_name]], starts, lengths)
    absent = [class_name for class_name in CLASSES if class_name not in rles]
    return masks.reshape(NUM_CLASSES, *size), truth_masks(sample, size), absent


def _as_bool(masks: np.ndarray) -> np.ndarray:
    if masks.dtype == np.bool_:
        return masks
    return masks != 0


def format_table(evaluation: Evaluation) -> str:
    """Return a text table of per-class mean Dice and the overall mean."""
    width = max(len(name) for name in CLASSES)
    lines = [f"{'class':<{width}}  dice", f"{'-' * width}  ------"]
    for name, value in zip(CLASSES, evaluation.per_class()):
        lines.append(f"{name:<{width}}  {value:.4f}")
    lines.append(f"{'-' * width}  ------")
    lines.append(f"{'mean':<{width}}  {evaluation.mean():.4f}  ({len(evaluation.image_names)} images)")
    return "\n".join(lines)


def plot_per_class(evaluation: Evaluation, path: str | os.PathLike, title: str = "") -> Path:
    """Draw a bar chart of per-class mean Dice as PNG (matplotlib's Agg canvas, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from data.classes import PALETTE

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(12, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = np.arange(NUM_CLASSES)
    axes.bar(positions, evaluation.per_class(), color=PALETTE / 255.0, edgecolor="black",
             linewidth=0.5)
    axes.axhline(evaluation.mean(), color="black", linestyle="--", linewidth=1,
                 label=f"mean {evaluation.mean():.4f}")
    axes.set_xticks(positions, CLASSES, rotation=60, ha="right", fontsize=8)
    axes.set_ylim(0, 1)
    axes.set_ylabel("Dice")
    axes.set_title(title or f"Per-class Dice over {len(evaluation.image_names)} images")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python ensemble/evaluate.py",
        description="Score a submission CSV against the annotations of a dataset (Dice per "
        "image and class; empty prediction on empty truth scores 1)."
    )
    parser.add_argument("prediction", type=Path, help="submission CSV to score")
    parser.add_argument("--gt", type=Path, required=True,
                        help="dataset root with train/DCM and train/outputs_json")
    parser.add_argument("--json", type=Path,
                        help="output JSON (default: <prediction stem>.dice.json beside the CSV)")
    parser.add_argument("--plot", type=Path,
                        help="bar chart PNG (default: <prediction stem>.dice.png beside the CSV)")
    parser.add_argument("--overlays", type=Path,
                        help="folder for error overlays of the worst images")
    parser.add_argument("--worst", type=int, default=10,
                        help="number of worst images drawn with --overlays (default: 10)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.worst < 0:
        print(f"error: --worst must be >= 0, got {args.worst}", file=sys.stderr)
        return 2
    json_path = args.json or args.prediction.with_suffix(".dice.json")
    plot_path = args.plot or args.prediction.with_suffix(".dice.png")
    try:
        evaluation = evaluate_submission(args.prediction, args.gt, args.overlays, args.worst)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(
        json.dumps(evaluation.to_json(args.prediction, args.gt), indent=2), encoding="utf-8"
    )
    plot_per_class(evaluation, plot_path, title=f"Per-class Dice of {args.prediction.name}")
    print(format_table(evaluation))
    print(f"wrote {json_path} and {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
