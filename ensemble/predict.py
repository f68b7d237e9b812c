"""Ensemble members: trained models that predict per-class probabilities at an image's own size.

A member runs its model at the input size it was trained with (``config["input_size"]``). The
radiograph is stretched to S x S by ``data.dataset.preprocess_image``, exactly as in training.
The (29, S, S) sigmoid probabilities are then stretched back to (H, W) channel by channel with
bilinear interpolation.

Channels are resized one at a time on purpose. In OpenCV 5.1, ``cv2.resize`` with
``INTER_LINEAR`` on more than 4 float32 channels gives values up to about 5e-6 away from the
single-channel result, so a pixel near the threshold could flip. One channel at a time is exact
and keeps the temporary memory at one (H, W) plane.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from data.classes import NUM_CLASSES
from data.dataset import preprocess_image
from ensemble.voting import VoteAccumulator
from trainable.checkpoint import load_model

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


def select_device(name: str) -> torch.device:
    """Return the torch device for ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ValueError: for another name, or ``cuda`` when no CUDA device is available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu")
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N")


@dataclass
class Member:
    """One trained model of the ensemble.

    Attributes:
        trial_id: the search trial it comes from.
        checkpoint: folder (or file) of its ``model.pt``.
        val_dice: the trial's best validation Dice from the leaderboard (model resolution).
        weight: soft-voting weight (greedy selection: how often it was picked).
        model: the loaded model in eval mode.
        config: the resolved training config.
    """

    trial_id: str
    checkpoint: Path
    val_dice: float
    weight: float = 1.0
    model: torch.nn.Module | None = field(default=None, repr=False)
    config: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def input_size(self) -> int:
        """Side S of the square model input, from the training config."""
        return int(self.config["input_size"])

    def load(self, device: torch.device) -> Member:
        """Load the model from ``checkpoint`` onto ``device``; return self."""
        self.model, self.config = load_model(self.checkpoint, device)
        logger.info(
            "loaded trial %s (%s/%s, %d px) from %s",
            self.trial_id,
            self.config["model"]["architecture"],
            self.config["model"]["encoder"],
            self.input_size,
            self.checkpoint,
        )
        return self

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Return the (29, S, S) float32 sigmoid probabilities of an (H, W) uint8 image."""
        return predict_at_input_size(self.model, image, self.input_size)


@torch.inference_mode()
def predict_at_input_size(model: torch.nn.Module, image: np.ndarray, size: int) -> np.ndarray:
    """Run a model on one radiograph at its training resolution.

    Args:
        model: maps (N, 1, S, S) float in [0, 1] to (N, 29, S, S) logits.
        image: (H, W) uint8 grayscale.
        size: input side S.

    Returns:
        (29, S, S) float32 probabilities in [0, 1] (sigmoid per class).
    """
    device = next(model.parameters()).device
    batch = torch.from_numpy(preprocess_image(image, size))[None, None].to(device)
    logits = model(batch)
    if logits.shape != (1, NUM_CLASSES, size, size):
        raise ValueError(
            f"model output has shape {tuple(logits.shape)}, expected (1, {NUM_CLASSES}, {size}, "
            f"{size})"
        )
    return torch.sigmoid(logits.float())[0].cpu().numpy()


def resize_channels(probabilities: np.ndarray, shape: tuple[int, int]) -> Iterator[np.ndarray]:
    """Yield each channel of a (C, S, S) stack resized to ``shape`` = (H, W), bilinear.

    Yields:
        (H, W) float32 arrays, one per channel in order. Each is a new array, so a caller that
        keeps none of them has one plane in memory at a time.
    """
    height, width = shape
    for channel in probabilities:
        if channel.shape == (height, width):
            yield channel.astype(np.float32, copy=True)
        else:
            yield cv2.resize(channel, (width, height), interpolation=cv2.INTER_LINEAR)


def resize_stack(probabilities: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Return a (C, H, W) float32 copy of a probability stack at ``shape`` (see resize_channels)."""
    out = np.empty((probabilities.shape[0], *shape), dtype=np.float32)
    for channel, plane in enumerate(resize_channels(probabilities, shape)):
        out[channel] = plane
    return out


@dataclass
class EnsembleOutput:
    """The vote of all members on one image.

    Attributes:
        masks: (29, H, W) bool voted masks.
        member_counts: with a truth given, (M, 29, 3) int64 per member and class: pixels in
            both the member's own mask and the truth, in the member's mask, in the truth.
            None without a truth.
    """

    masks: np.ndarray
    member_counts: np.ndarray | None = None


def predict_ensemble(
    members: list[Member],
    image: np.ndarray,
    mode: str,
    thresholds: np.ndarray,
    min_votes: int = 1,
    truth: np.ndarray | None = None,
) -> EnsembleOutput:
    """Vote the members' predictions on one image at its own size.

    Members are added one at a time and their probabilities one channel at a time. Memory
    therefore contains the (29, H, W) running vote, one (H, W) plane and one member's
    (29, S, S) output.

    Args:
        members: loaded members; soft voting uses their ``weight``.
        image: (H, W) uint8 radiograph.
        mode: ``"soft"`` or ``"hard"`` (see :mod:`ensemble.voting`).
        thresholds: (29,) per-class probability thresholds.
        min_votes: hard voting: members needed to set a pixel.
        truth: optional (29, H, W) true masks; each member's own thresholded mask is then
            compared with it (see ``EnsembleOutput.member_counts``).
    """
    height, width = image.shape
    accumulator = VoteAccumulator(mode, (NUM_CLASSES, height, width), thresholds, min_votes)
    true = None if truth is None else truth != 0
    counts = None if truth is None else np.zeros((len(members), NUM_CLASSES, 3), np.int64)

    for index, member in enumerate(members):
        probabilities = member.predict(image)
        for channel, plane in enumerate(resize_channels(probabilities, (height, width))):
            accumulator.add_channels(slice(channel, channel + 1), plane[None], member.weight)
            if true is not None:
                own = plane > accumulator.thresholds[channel]
                counts[index, channel] = (
                    np.count_nonzero(own & true[channel]),
                    np.count_nonzero(own),
                    np.count_nonzero(true[channel]),
                )
        accumulator.finish_member(member.weight)
    return EnsembleOutput(accumulator.masks(), counts)


def dice_from_counts(counts: np.ndarray) -> np.ndarray:
    """Return Dice from (..., 3) counts (intersection, predicted, true); 1 when both are empty."""
    intersection, predicted, true = counts[..., 0], counts[..., 1], counts[..., 2]
    total = predicted + true
    return np.where(total == 0, 1.0, 2.0 * intersection / np.maximum(total, 1))
