"""Multi-label segmentation losses on raw logits: BCE, soft Dice, Focal, Tversky and their sum.

Every loss takes ``logits`` (N, C, H, W) of any float dtype and ``target`` (N, C, H, W) with
values in {0, 1}, applies one sigmoid per channel (never a softmax, because bones overlap), and
returns a float32 scalar. Inputs are cast to float32 before any reduction: under fp16 mixed
precision a sum over one 2048 x 2048 mask (4.2 million pixels) would overflow the fp16 maximum
of 65504.

Region losses (soft Dice, Tversky) are computed per image and channel and then averaged, as the
competition Dice is. Their smoothing term makes an empty prediction on an empty mask score 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LOSS_TERMS",
    "LossConfigError",
    "WeightedLoss",
    "bce_loss",
    "build_loss",
    "focal_loss",
    "soft_dice_loss",
    "tversky_loss",
]

LOSS_TERMS: tuple[str, ...] = ("bce", "dice", "focal", "tversky")
"""Names of the loss terms, as keys of the ``loss`` config section."""


class LossConfigError(ValueError):
    """Invalid loss weights or loss parameters."""


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits, averaged over all N x C x H x W elements."""
    logits, target = _as_float32(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Compute one minus the soft Dice ``(2 sum(p t) + s) / (sum(p) + sum(t) + s)``.

    ``p = sigmoid(logits)``. The sums run over H and W in float32, per image and channel, and
    the Dice is averaged over the N x C (image, channel) pairs. An empty target with an all-negative prediction scores
    about 1, so the loss is about 0.
    """
    logits, target = _as_float32(logits, target)
    probabilities = torch.sigmoid(logits)
    intersection = (probabilities * target).sum(dim=(2, 3))
    total = probabilities.sum(dim=(2, 3)) + target.sum(dim=(2, 3))
    dice = (2.0 * intersection + smooth) / (total + smooth)
    return 1.0 - dice.mean()


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float | None = None
) -> torch.Tensor:
    """Focal loss ``alpha_t (1 - p_t)^gamma BCE``, averaged over all elements.

    ``p_t`` is the predicted probability of the true label. ``alpha`` weights the positives
    (``alpha_t = alpha`` where the target is 1, ``1 - alpha`` where it is 0); None weights both 1.
    With ``gamma = 0`` and ``alpha = None`` this equals :func:`bce_loss`.
    """
    logits, target = _as_float32(logits, target)
    cross_entropy = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    true_probability = torch.exp(-cross_entropy)
    loss = (1.0 - true_probability).pow(gamma) * cross_entropy
    if alpha is not None:
        loss = (alpha * target + (1.0 - alpha) * (1.0 - target)) * loss
    return loss.mean()


def tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.5,
    beta: float = 0.5,
    smooth: float = 1.0,
) -> torch.Tensor:
    """Compute one minus the Tversky index ``(TP + s) / (TP + alpha FP + beta FN + s)``.

    TP, FP and FN are soft counts from ``p = sigmoid(logits)``, summed over H and W in float32
    per image and channel. The index is averaged over the N x C pairs. ``alpha`` weights false positives, ``beta``
    false negatives; ``alpha = beta = 0.5`` gives the soft Dice (up to the smoothing term).
    """
    logits, target = _as_float32(logits, target)
    probabilities = torch.sigmoid(logits)
    true_positive = (probabilities * target).sum(dim=(2, 3))
    false_positive = (probabilities * (1.0 - target)).sum(dim=(2, 3))
    false_negative = ((1.0 - probabilities) * target).sum(dim=(2, 3))
    index = (true_positive + smooth) / (
        true_positive + alpha * false_positive + beta * false_negative + smooth
    )
    return 1.0 - index.mean()


class WeightedLoss(nn.Module):
    """Weighted sum of the loss terms; terms with weight 0 are not computed.

    Args:
        weights: ``{"bce": 1.0, "dice": 1.0, "focal": 0.0, "tversky": 0.0}``; missing terms
            count as 0, and at least one weight must be positive.
        focal_gamma, focal_alpha: parameters of :func:`focal_loss`.
        tversky_alpha, tversky_beta: parameters of :func:`tversky_loss`.

    Raises:
        LossConfigError: an unknown term, a negative weight, or all weights 0.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        focal_gamma: float = 2.0,
        focal_alpha: float | None = None,
        tversky_alpha: float = 0.5,
        tversky_beta: float = 0.5,
    ) -> None:
        super().__init__()
        unknown = sorted(set(weights) - set(LOSS_TERMS))
        if unknown:
            raise LossConfigError(
                f"unknown loss terms {unknown}; valid terms: {', '.join(LOSS_TERMS)}"
            )
        negative = {term: w for term, w in weights.items() if w < 0}
        if negative:
            raise LossConfigError(f"loss weights must be >= 0, got {negative}")
        if not any(weights.get(term, 0.0) > 0 for term in LOSS_TERMS):
            raise LossConfigError(
                f"all loss weights are 0 ({dict(weights)}); give at least one of "
                f"{', '.join(LOSS_TERMS)} a positive weight"
            )
        self.weights = {term: float(weights.get(term, 0.0)) for term in LOSS_TERMS}
        self.focal_gamma = focal_gamma
        self.focal_alpha = focal_alpha
        self.tversky_alpha = tversky_alpha
        self.tversky_beta = tversky_beta

    def components(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the unweighted float32 scalar of each term whose weight is positive."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return self._components(logits, target)

    def _components(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        if self.weights["bce"] > 0:
            terms["bce"] = bce_loss(logits, target)
        if self.weights["dice"] > 0:
            terms["dice"] = soft_dice_loss(logits, target)
        if self.weights["focal"] > 0:
            terms["focal"] = focal_loss(logits, target, self.focal_gamma, self.focal_alpha)
        if self.weights["tversky"] > 0:
            terms["tversky"] = tversky_loss(
                logits, target, self.tversky_alpha, self.tversky_beta
            )
        return terms

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the weighted sum, a float32 scalar."""
        terms = self.components(logits, target)
        return sum(self.weights[term] * value for term, value in terms.items())

    def extra_repr(self) -> str:
        active = ", ".join(f"{term}={w:g}" for term, w in self.weights.items() if w > 0)
        return f"weights: {active}"


def build_loss(config: Mapping[str, Any]) -> WeightedLoss:
    """Build the loss from the ``loss`` section of a resolved training config."""
    section = config["loss"]
    return WeightedLoss(
        {term: section.get(term, 0.0) for term in LOSS_TERMS},
        focal_gamma=section.get("focal_gamma", 2.0),
        focal_alpha=section.get("focal_alpha"),
        tversky_alpha=section.get("tversky_alpha", 0.5),
        tversky_beta=section.get("tversky_beta", 0.5),
    )


def _as_float32(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.shape != target.shape or logits.ndim != 4:
        raise ValueError(
            f"expected logits and target of the same (N, C, H, W) shape, got "
            f"{tuple(logits.shape)} and {tuple(target.shape)}"
        )
    return logits.float(), target.float()
