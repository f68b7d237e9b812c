"""Losses: hand-computed values on tiny tensors, weighted sums, fp16 safety."""

from __future__ import annotations

import math

import pytest
import torch

from trainable.losses import (
    LossConfigError,
    WeightedLoss,
    bce_loss,
    build_loss,
    focal_loss,
    soft_dice_loss,
    tversky_loss,
)

LN2 = math.log(2.0)
BIG = 30.0  # sigmoid(30) is 1 - 9e-14: a certain prediction


def one_pixel_target() -> torch.Tensor:
    """A (1, 1, 2, 2) target with one positive pixel out of four."""
    return torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])


def test_bce_of_zero_logits_is_ln2():
    assert bce_loss(torch.zeros(1, 1, 2, 2), one_pixel_target()).item() == pytest.approx(LN2)


def test_bce_hand_value():
    # Pixel losses: -log(sigmoid(2)) where the target is 1, -log(1 - sigmoid(2)) elsewhere.
    logits = torch.full((1, 1, 2, 2), 2.0)
    positive = -math.log(1 / (1 + math.exp(-2)))
    negative = -math.log(1 - 1 / (1 + math.exp(-2)))
    expected = (positive + 3 * negative) / 4
    assert bce_loss(logits, one_pixel_target()).item() == pytest.approx(expected)


@pytest.mark.parametrize(
    ("logit", "target", "smooth", "expected"),
    [
        # p = 0.5 everywhere, one positive: (2 * 0.5 + 1) / (2 + 1 + 1) = 0.5
        (0.0, one_pixel_target(), 1.0, 0.5),
        # without smoothing: 2 * 0.5 / (2 + 1) = 1/3, loss 2/3
        (0.0, one_pixel_target(), 0.0, 2 / 3),
        # certain positives on an all-positive target: Dice 1
        (BIG, torch.ones(1, 1, 2, 2), 1.0, 0.0),
        # certain negatives on an empty target: (0 + 1) / (0 + 0 + 1) = 1
        (-BIG, torch.zeros(1, 1, 2, 2), 1.0, 0.0),
        # certain negatives on a one-pixel target: 1 / (1 + 1) = 0.5
        (-BIG, one_pixel_target(), 1.0, 0.5),
    ],
)
def test_soft_dice_hand_values(logit, target, smooth, expected):
    logits = torch.full_like(target, logit)
    assert soft_dice_loss(logits, target, smooth=smooth).item() == pytest.approx(expected, abs=1e-6)


def test_soft_dice_averages_images_and_channels():
    target = torch.zeros(2, 2, 2, 2)
    target[0, 0] = 1.0  # (image 0, class 0) perfect with certain positives, the rest empty
    logits = torch.where(target > 0, BIG, -BIG)
    logits[1, 1, 0, 0] = BIG  # one false positive pixel on an empty target: 1 / (1 + 1)
    expected = 1.0 - (1.0 + 1.0 + 1.0 + 0.5) / 4
    assert soft_dice_loss(logits, target).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("gamma", "alpha", "expected"),
    [
        (0.0, None, LN2),  # equals BCE
        (2.0, None, 0.25 * LN2),  # (1 - 0.5)^2 * ln 2 at p = 0.5
        (2.0, 0.25, (0.25 * 0.25 * LN2 + 3 * 0.75 * 0.25 * LN2) / 4),
    ],
)
def test_focal_hand_values(gamma, alpha, expected):
    logits = torch.zeros(1, 1, 2, 2)
    assert focal_loss(logits, one_pixel_target(), gamma, alpha).item() == pytest.approx(expected)


def test_focal_gamma0_equals_bce_on_random_input():
    logits = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    target = (torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0), bce_loss(logits, target))


@pytest.mark.parametrize(
    ("alpha", "beta", "smooth", "expected"),
    [
        # p = 0.5: TP = 0.5, FP = 1.5, FN = 0.5
        (0.3, 0.7, 1.0, 1 - 1.5 / (0.5 + 0.45 + 0.35 + 1.0)),
        (0.5, 0.5, 0.0, 2 / 3),  # the soft Dice without smoothing
        (0.0, 1.0, 0.0, 0.5),  # recall: TP / (TP + FN)
    ],
)
def test_tversky_hand_values(alpha, beta, smooth, expected):
    logits = torch.zeros(1, 1, 2, 2)
    value = tversky_loss(logits, one_pixel_target(), alpha, beta, smooth)
    assert value.item() == pytest.approx(expected)


def test_weighted_sum_of_terms():
    logits = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    target = (torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.7).float()
    loss = WeightedLoss({"bce": 0.5, "dice": 2.0, "focal": 0.0, "tversky": 1.0}, tversky_alpha=0.3, tversky_beta=0.7)

    expected = (
        0.5 * bce_loss(logits, target)
        + 2.0 * soft_dice_loss(logits, target)
        + tversky_loss(logits, target, 0.3, 0.7)
    )
    torch.testing.assert_close(loss(logits, target), expected)
    assert set(loss.components(logits, target)) == {"bce", "dice", "tversky"}


def test_build_loss_from_config():
    config = {"loss": {"bce": 0.0, "dice": 0.0, "focal": 1.0, "tversky": 0.0, "focal_gamma": 0.0}}
    loss = build_loss(config)
    logits = torch.zeros(1, 1, 2, 2)
    assert loss(logits, one_pixel_target()).item() == pytest.approx(LN2)


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ({"bce": 0.0, "dice": 0.0, "focal": 0.0, "tversky": 0.0}, "all loss weights are 0"),
        ({}, "all loss weights are 0"),
        ({"bce": -1.0, "dice": 1.0}, "must be >= 0"),
        ({"lovasz": 1.0}, "unknown loss terms ['lovasz']"),
    ],
)
def test_invalid_weights_raise(weights, expected):
    with pytest.raises(LossConfigError) as error:
        WeightedLoss(weights)
    assert expected in str(error.value)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same"):
        bce_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4))


def test_dice_large_fp16_input_exact():
    generator = torch.Generator().manual_seed(0)
    shape = (1, 2, 2048, 2048)
    logits = (torch.randn(shape, generator=generator) * 4).half()
    target = (torch.rand(shape, generator=generator) > 0.5).half()
    # The positives of one mask outnumber the fp16 maximum, so an fp16 reduction overflows.
    assert torch.isinf(target[0, 0].sum(dtype=torch.float16))

    half_result = soft_dice_loss(logits, target)
    full_result = soft_dice_loss(logits.float(), target.float())

    assert half_result.dtype == torch.float32
    assert torch.isfinite(half_result)
    torch.testing.assert_close(half_result, full_result, rtol=0, atol=0)
    tversky = tversky_loss(logits, target)
    assert torch.isfinite(tversky)


def test_weighted_loss_is_float32_under_autocast():
    logits = torch.randn(1, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    target = (logits > 0).float()
    loss = WeightedLoss({"bce": 1.0, "dice": 1.0, "focal": 1.0, "tversky": 1.0})
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(logits.bfloat16(), target)
    expected = loss(logits.bfloat16().float(), target)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, expected)
