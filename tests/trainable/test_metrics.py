"""Competition Dice per image and class: hand-computed tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data.classes import CLASSES, NUM_CLASSES
from trainable.metrics import (
    dice_per_image_class,
    logits_to_masks,
    mean_dice,
    per_class_dice,
    per_class_metrics,
)


def masks(*rows: str) -> torch.Tensor:
    """A (1, 1, H, W) bool mask from rows of '#' (set) and '.' (clear)."""
    return torch.tensor([[c == "#" for c in row] for row in rows]).reshape(1, 1, len(rows), -1)


@pytest.mark.parametrize(
    ("pred", "target", "expected"),
    [
        (masks("##", ".."), masks("##", ".."), 1.0),  # identical
        (masks("#.", ".."), masks(".#", ".."), 0.0),  # disjoint
        (masks("..", ".."), masks("..", ".."), 1.0),  # both empty: counts as 1
        (masks("..", ".."), masks("#.", ".."), 0.0),  # missed bone
        (masks("#.", ".."), masks("..", ".."), 0.0),  # bone predicted on an empty class
        (masks("##", ".."), masks("#.", ".."), 2 / 3),  # 2 * 1 / (2 + 1)
        (masks("###", "#.."), masks("##.", "##."), 0.75),  # 2 * 3 / (4 + 4)
    ],
)
def test_dice_table(pred, target, expected):
    dice = dice_per_image_class(pred, target)
    assert dice.shape == (1, 1)
    assert dice.dtype == torch.float64
    assert dice.item() == pytest.approx(expected)


def test_dice_per_image_and_class_layout():
    pred = torch.zeros(2, NUM_CLASSES, 4, 4, dtype=torch.bool)
    target = torch.zeros_like(pred)
    target[1, 3, 0, 0] = True  # image 1 misses class 3
    pred[0, 5, :2] = True  # image 0 half-covers class 5 (4 of 8 predicted pixels are true)
    target[0, 5, 0] = True

    dice = dice_per_image_class(pred, target)

    expected = torch.ones(2, NUM_CLASSES, dtype=torch.float64)
    expected[1, 3] = 0.0
    expected[0, 5] = 2 * 4 / (8 + 4)
    torch.testing.assert_close(dice, expected)
    assert mean_dice(dice) == pytest.approx((2 * NUM_CLASSES - 1 - 1 / 3) / (2 * NUM_CLASSES))
    per_class = per_class_dice(dice)
    assert per_class[3] == pytest.approx(0.5)
    assert per_class[5] == pytest.approx((2 / 3 + 1) / 2)


def test_numpy_input_returns_numpy():
    pred = np.zeros((1, 2, 3, 3), dtype=bool)
    target = np.zeros((1, 2, 3, 3), dtype=bool)
    target[0, 1, 1, 1] = True
    dice = dice_per_image_class(pred, target)
    assert isinstance(dice, np.ndarray)
    np.testing.assert_array_equal(dice, [[1.0, 0.0]])


def test_large_masks_count_exactly():
    pred = torch.ones(1, 1, 2048, 2048, dtype=torch.bool)
    target = torch.zeros_like(pred)
    target[0, 0, :1024] = True  # half the pixels
    assert dice_per_image_class(pred, target).item() == pytest.approx(2 * 2**21 / (2**22 + 2**21))


def test_per_class_metrics_keys():
    dice = torch.ones(3, NUM_CLASSES)
    dice[:, 0] = torch.tensor([0.0, 0.5, 1.0])
    metrics = per_class_metrics(dice)
    assert list(metrics) == [f"dice/{name}" for name in CLASSES]
    assert metrics["dice/finger-1"] == pytest.approx(0.5)
    assert metrics["dice/Ulna"] == 1.0


def test_logits_to_masks_threshold():
    logits = torch.tensor([-1.0, 0.0, 1e-3, 5.0]).reshape(1, 1, 2, 2)
    assert logits_to_masks(logits).flatten().tolist() == [False, False, True, True]


@pytest.mark.parametrize(
    ("pred", "target", "expected"),
    [
        (torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4, dtype=torch.bool), "expected bool masks"),
        (torch.zeros(1, 2, 4, 4, dtype=torch.bool), torch.zeros(1, 3, 4, 4, dtype=torch.bool), "same"),
        (torch.zeros(2, 4, 4, dtype=torch.bool), torch.zeros(2, 4, 4, dtype=torch.bool), "(N, C, H, W)"),
    ],
)
def test_invalid_masks_raise(pred, target, expected):
    with pytest.raises(ValueError) as error:
        dice_per_image_class(pred, target)
    assert expected in str(error.value)


def test_empty_table_raises():
    with pytest.raises(ValueError, match="non-empty"):
        mean_dice(torch.zeros(0, NUM_CLASSES))
