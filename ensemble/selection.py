"""Choose the ensemble members: the k best trials, or greedy forward selection.

Greedy selection is forward ensemble selection with replacement (the method usually credited to
Caruana): start from an empty ensemble and, k times, add the candidate that gives the best
validation score of the soft-voted ensemble, even one already in it. The ensemble keeps the
prefix of picks with the best score, and a candidate picked n times gets soft-voting weight n.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ensemble.predict import Member

logger = logging.getLogger(__name__)

SELECTIONS = ("topk", "greedy")


def leaderboard_members(leaderboard) -> list[Member]:
    """Return a member (not yet loaded) for every trial with a score and a checkpoint.

    Args:
        leaderboard: ``results.experiment.Experiment.leaderboard()``, best ``val_dice`` first.

    Raises:
        ValueError: when no trial has both.
    """
    members = []
    for row in leaderboard.itertuples(index=False):
        checkpoint, val_dice = row.checkpoint, row.val_dice
        if not isinstance(checkpoint, str) or not checkpoint or not math.isfinite(val_dice):
            continue
        members.append(Member(str(row.trial_id), Path(checkpoint), float(val_dice)))
    if not members:
        raise ValueError(
            "no trial of the experiment has a validation score and a best-epoch checkpoint; "
            "wait for trials to report, or check the experiment folder"
        )
    return members


def top_k(candidates: list[Member], k: int) -> list[Member]:
    """Return the first ``k`` candidates (the leaderboard order: best first)."""
    if k < 1:
        raise ValueError(f"--top-k must be >= 1, got {k}")
    if k > len(candidates):
        logger.warning("--top-k %d but only %d trials have checkpoints; using all", k, len(candidates))
    return candidates[:k]


@dataclass
class GreedyResult:
    """Outcome of greedy forward selection.

    Attributes:
        counts: (K,) times each candidate was picked within the best prefix.
        picks: candidate index picked at each step (all steps, also after the best prefix).
        scores: ensemble score after each step.
        best_steps: length of the best prefix (the earliest one on a tie).
    """

    counts: np.ndarray
    picks: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    best_steps: int = 0


def greedy_selection(
    probabilities: np.ndarray, truth: np.ndarray, thresholds: np.ndarray, steps: int
) -> GreedyResult:
    """Forward selection with replacement of soft-voting members on validation predictions.

    Args:
        probabilities: (K, N, C, s, s) uint8 probabilities * 255 of K candidates on N images.
        truth: (N, C, s, s) bool true masks.
        thresholds: (C,) per-class probability thresholds.
        steps: number of picks (>= 1).

    Returns:
        The picks and the best prefix. The score is the mean Dice over (image, class) pairs
        (1 for an empty prediction on an empty truth). Ties go to the lower candidate index.
    """
    if steps < 1:
        raise ValueError(f"greedy selection needs at least 1 step, got {steps}")
    candidates, images = probabilities.shape[:2]
    counts = np.zeros(candidates, dtype=np.int64)
    result = GreedyResult(counts.copy())
    # Pixel in the ensemble of n members: sum of uint8 probabilities > threshold * 255 * n.
    cutoff = (np.asarray(thresholds, np.float32) * 255).reshape(-1, 1, 1)

    for step in range(1, steps + 1):
        totals = np.zeros(candidates, dtype=np.float64)
        for image in range(images):
            base = np.zeros(probabilities.shape[2:], dtype=np.float32)
            for chosen in np.flatnonzero(counts):
                base += counts[chosen] * probabilities[chosen, image].astype(np.float32)
            true = truth[image]
            for candidate in range(candidates):
                masks = base + probabilities[candidate, image] > cutoff * step
                totals[candidate] += _mean_dice(masks, true)
        pick = int(np.argmax(totals))
        counts[pick] += 1
        result.picks.append(pick)
        result.scores.append(float(totals[pick] / images))
        logger.info("greedy step %d: candidate %d, fold Dice %.4f", step, pick, result.scores[-1])

    result.best_steps = int(np.argmax(result.scores)) + 1
    result.counts = np.bincount(result.picks[: result.best_steps], minlength=candidates)
    return result


def _mean_dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Mean over classes of the Dice of (C, h, w) bool masks; 1 for empty on empty."""
    axes = (1, 2)
    intersection = np.count_nonzero(prediction & truth, axis=axes)
    total = np.count_nonzero(prediction, axis=axes) + np.count_nonzero(truth, axis=axes)
    dice = np.where(total == 0, 1.0, 2.0 * intersection / np.maximum(total, 1))
    return float(dice.mean())
