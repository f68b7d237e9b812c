"""Dice as the competition defines it: per image and class, on binary masks.

For one image and one class, ``Dice = 2 |P & T| / (|P| + |T|)`` where P and T are the predicted
and true pixel sets. An empty prediction on an empty truth counts as 1. The score of a
submission is the mean over all (image, class) pairs. Binary predictions come from
``sigmoid(logits) > 0.5`` per class (multi-label; classes overlap).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from data.classes import CLASSES

__all__ = [
    "THRESHOLD",
    "dice_per_image_class",
    "logits_to_masks",
    "mean_dice",
    "per_class_dice",
    "per_class_metrics",
]

THRESHOLD = 0.5
"""Probability above which a pixel belongs to a class."""


def logits_to_masks(logits: torch.Tensor, threshold: float = THRESHOLD) -> torch.Tensor:
    """Return ``sigmoid(logits) > threshold`` as a bool tensor of the same (N, C, H, W) shape."""
    return torch.sigmoid(logits.float()) > threshold


def dice_per_image_class(
    pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray
) -> torch.Tensor | np.ndarray:
    """Return the Dice of every (image, class) pair.

    Args:
        pred: (N, C, H, W) bool predicted masks (threshold probabilities first, for example
            with :func:`logits_to_masks`).
        target: (N, C, H, W) bool true masks.

    Returns:
        (N, C) float64 in [0, 1], of the input's kind (torch tensor on the input's device, or
        NumPy array). A pair with empty prediction and empty truth scores 1; an empty
        prediction on a non-empty truth, or the reverse, scores 0.

    Raises:
        ValueError: shapes differ, are not 4-D, or a mask is not bool.
    """
    is_numpy = isinstance(pred, np.ndarray)
    pred_tensor = torch.from_numpy(pred) if is_numpy else pred
    target_tensor = torch.from_numpy(target) if isinstance(target, np.ndarray) else target
    _check_masks(pred_tensor, target_tensor)

    intersection = (pred_tensor & target_tensor).sum(dim=(2, 3), dtype=torch.int64)
    total = pred_tensor.sum(dim=(2, 3), dtype=torch.int64) + target_tensor.sum(
        dim=(2, 3), dtype=torch.int64
    )
    dice = torch.where(
        total == 0,
        torch.ones_like(total, dtype=torch.float64),
        2.0 * intersection.double() / total.clamp(min=1).double(),
    )
    return dice.cpu().numpy() if is_numpy else dice


def mean_dice(dice: torch.Tensor | np.ndarray) -> float:
    """Return the competition score: the mean over all (image, class) pairs of an (N, C) table."""
    values = torch.as_tensor(dice)
    if values.ndim != 2 or values.numel() == 0:
        raise ValueError(f"expected a non-empty (N, C) Dice table, got shape {tuple(values.shape)}")
    return float(values.double().mean())


def per_class_dice(dice: torch.Tensor | np.ndarray) -> np.ndarray:
    """Return the (C,) float64 mean Dice of each class over the images of an (N, C) table."""
    values = torch.as_tensor(dice)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"expected a non-empty (N, C) Dice table, got shape {tuple(values.shape)}")
    return values.double().mean(dim=0).cpu().numpy()


def per_class_metrics(
    dice: torch.Tensor | np.ndarray, classes: Sequence[str] = CLASSES, prefix: str = "dice/"
) -> dict[str, float]:
    """Return ``{"dice/finger-1": 0.93, ...}``: the per-class mean of an (N, C) table by name."""
    means = per_class_dice(dice)
    if len(means) != len(classes):
        raise ValueError(f"the Dice table has {len(means)} classes, expected {len(classes)}")
    return {f"{prefix}{name}": float(value) for name, value in zip(classes, means)}


def _check_masks(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(
            f"expected pred and target masks of the same (N, C, H, W) shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    for name, mask in (("pred", pred), ("target", target)):
        if mask.dtype != torch.bool:
            raise ValueError(
                f"{name} has dtype {mask.dtype}; expected bool masks (threshold probabilities "
                "first, for example sigmoid(logits) > 0.5)"
            )
