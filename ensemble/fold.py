"""The validation fold of an experiment: its images and truth, and ensemble scores on it.

Every trial of a search validates on the same fold of the same split file; the trial's
resolved config names them (``data.root``, ``data.splits``, ``data.fold``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data.annotations import load_annotations, rasterize
from data.classes import NUM_CLASSES
from data.images import read_image
from data.layout import Sample, discover
from data.splits import fold_image_names, read_splits
from ensemble.predict import Member, dice_from_counts, predict_ensemble, resize_channels

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoldInfo:
    """Source of a validation fold: dataset root, split file, fold number and its samples."""

    root: Path
    splits: Path
    fold: int
    samples: tuple[Sample, ...]


def validation_fold(config: dict[str, Any]) -> FoldInfo:
    """Find the validation images of a trial's config.

    Raises:
        ValueError: when the config lacks ``data.root``/``data.splits``/``data.fold``, the files
            are missing, or no validation image of the split is in the dataset.
    """
    data = config.get("data", {})
    missing = [key for key in ("root", "splits", "fold") if data.get(key) is None]
    if missing:
        raise ValueError(
            f"the trial config has no data.{', data.'.join(missing)}; cannot find its "
            "validation fold"
        )
    root, splits_path, fold = Path(data["root"]), Path(data["splits"]), int(data["fold"])
    _, val_names = fold_image_names(read_splits(splits_path), fold)
    val_name_set = set(val_names)
    samples = tuple(sample for sample in discover(root).train if sample.image_name in val_name_set)
    if not samples:
        raise ValueError(
            f"none of the {len(val_names)} validation images of fold {fold} in {splits_path} "
            f"is annotated under {root}"
        )
    if len(samples) < len(val_names):
        logger.warning(
            "%d of %d validation images of fold %d are missing under %s",
            len(val_names) - len(samples), len(val_names), fold, root,
        )
    return FoldInfo(root, splits_path, fold, samples)


def same_fold(configs: Sequence[dict[str, Any]]) -> bool:
    """Return whether every config validates on the same split file, fold and dataset."""
    keys = {
        (str(c.get("data", {}).get("root")), str(c.get("data", {}).get("splits")),
         c.get("data", {}).get("fold"))
        for c in configs
    }
    return len(keys) == 1


def load_truth(sample: Sample, out_size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return a sample's (H, W) uint8 image and its (29, h, w) uint8 truth.

    The truth is at the image's own size, or ``out_size`` when given.
    """
    image = read_image(sample.image_path)
    truth = rasterize(load_annotations(sample.json_path), image.shape, out_size=out_size)
    return image, truth


@dataclass
class FoldScores:
    """Dice on the validation fold at each image's own size.

    Attributes:
        image_names: validation images, in fold order.
        member_dice: (M, N, 29) Dice of each member's own thresholded prediction.
        ensemble_dice: (N, 29) Dice of the voted masks.
    """

    image_names: list[str]
    member_dice: np.ndarray
    ensemble_dice: np.ndarray

    def member_means(self) -> np.ndarray:
        """Return the (M,) mean Dice of each member over images and classes."""
        return self.member_dice.mean(axis=(1, 2))

    def ensemble_mean(self) -> float:
        """Return the ensemble's mean Dice over images and classes."""
        return float(self.ensemble_dice.mean())


def score_fold(
    members: list[Member],
    samples: Sequence[Sample],
    mode: str,
    thresholds: np.ndarray,
    min_votes: int = 1,
) -> FoldScores:
    """Score every member and the ensemble on the validation images, one image at a time."""
    from ensemble.evaluate import dice_scores

    member_rows, ensemble_rows = [], []
    for number, sample in enumerate(samples, start=1):
        image, truth = load_truth(sample)
        output = predict_ensemble(members, image, mode, thresholds, min_votes, truth=truth)
        member_rows.append(dice_from_counts(output.member_counts))
        ensemble_rows.append(dice_scores(output.masks, truth))
        logger.info(
            "validation image %d/%d %s: ensemble Dice %.4f", number, len(samples),
            sample.image_name, ensemble_rows[-1].mean(),
        )
    return FoldScores(
        [sample.image_name for sample in samples],
        np.stack(member_rows, axis=1),
        np.stack(ensemble_rows),
    )


@dataclass
class FoldPredictions:
    """Candidates' probabilities on the validation fold at one square size, for selection.

    Attributes:
        probabilities: (K, N, 29, s, s) uint8, probability * 255 rounded (memory-mapped).
        truth: (N, 29, s, s) bool.
        folder: temporary folder of the memory-mapped files (removed by :meth:`close`).
    """

    probabilities: np.ndarray
    truth: np.ndarray
    folder: tempfile.TemporaryDirectory

    def close(self) -> None:
        """Release the memory maps and delete their files."""
        del self.probabilities, self.truth
        self.folder.cleanup()


def collect_fold_predictions(
    candidates: list[Member], samples: Sequence[Sample], size: int, work_dir: str | os.PathLike | None = None
) -> FoldPredictions:
    """Predict every candidate on every validation image and keep the results on disk.

    The arrays are memory-mapped files in a temporary folder, so memory does not grow with the
    number of candidates or images.

    Args:
        candidates: loaded members.
        samples: validation samples.
        size: side s of the square grid the probabilities and truth are resized to.
        work_dir: parent of the temporary folder (None: the system's temporary folder).
    """
    folder = tempfile.TemporaryDirectory(prefix="ensemble-selection-", dir=work_dir)
    shape = (len(candidates), len(samples), NUM_CLASSES, size, size)
    probabilities = np.lib.format.open_memmap(
        Path(folder.name) / "probabilities.npy", mode="w+", dtype=np.uint8, shape=shape
    )
    truth = np.lib.format.open_memmap(
        Path(folder.name) / "truth.npy", mode="w+", dtype=np.bool_, shape=shape[1:]
    )
    for image_index, sample in enumerate(samples):
        image, truth_small = load_truth(sample, out_size=(size, size))
        truth[image_index] = truth_small != 0
        for candidate_index, candidate in enumerate(candidates):
            for channel, plane in enumerate(resize_channels(candidate.predict(image), (size, size))):
                probabilities[candidate_index, image_index, channel] = np.rint(plane * 255)
    probabilities.flush()
    truth.flush()
    return FoldPredictions(probabilities, truth, folder)
