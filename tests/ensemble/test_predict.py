"""Member prediction, resizing to the image's own size, ensemble voting and selection."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from data.classes import NUM_CLASSES
from ensemble.predict import (
    Member,
    dice_from_counts,
    predict_ensemble,
    resize_channels,
    resize_stack,
    select_device,
)
from ensemble.selection import greedy_selection, leaderboard_members, top_k


def constant_member(probabilities: np.ndarray, size: int = 8, weight: float = 1.0) -> Member:
    """A member whose real 1x1 convolution outputs logit(p_c) everywhere for class c."""
    model = torch.nn.Conv2d(1, NUM_CLASSES, kernel_size=1)
    with torch.no_grad():
        model.weight.zero_()
        clipped = np.clip(probabilities, 1e-6, 1 - 1e-6)
        model.bias.copy_(torch.from_numpy(np.log(clipped / (1 - clipped))).float())
    model.eval()
    member = Member("t", Path("unused"), 0.5, weight=weight, model=model)
    member.config = {"input_size": size}
    return member


def test_resize_stack_matches_single_channel_resize():
    rng = np.random.default_rng(0)
    stack = rng.random((NUM_CLASSES, 16, 16)).astype(np.float32)
    resized = resize_stack(stack, (37, 23))
    assert resized.shape == (NUM_CLASSES, 37, 23)
    for channel in range(NUM_CLASSES):
        expected = cv2.resize(stack[channel], (23, 37), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(resized[channel], expected)


def test_resize_keeps_constant_and_range():
    stack = np.full((3, 4, 4), 0.25, dtype=np.float32)
    stack[1] = 1.0
    planes = list(resize_channels(stack, (9, 5)))
    assert len(planes) == 3
    np.testing.assert_allclose(planes[0], 0.25, rtol=0, atol=1e-7)
    np.testing.assert_allclose(planes[1], 1.0, rtol=0, atol=1e-7)


def test_resize_same_size_is_copy():
    stack = np.zeros((2, 5, 5), dtype=np.float32)
    plane = next(resize_channels(stack, (5, 5)))
    plane[0, 0] = 1.0
    assert stack[0, 0, 0] == 0.0


def test_member_predict_shape_and_values():
    probabilities = np.linspace(0.05, 0.95, NUM_CLASSES)
    member = constant_member(probabilities, size=8)
    output = member.predict(np.zeros((30, 20), np.uint8))
    assert output.shape == (NUM_CLASSES, 8, 8)
    assert output.dtype == np.float32
    np.testing.assert_allclose(output[:, 3, 4], probabilities, rtol=1e-5)


def test_soft_ensemble_hand_computed():
    # Class 0: members 0.9 and 0.2 -> mean 0.55 (in); class 1: 0.6 and 0.3 -> 0.45 (out).
    # Weighted 1 and 3, class 0: (0.9 + 0.6) / 4 = 0.375 (out).
    first = np.full(NUM_CLASSES, 0.1)
    second = np.full(NUM_CLASSES, 0.1)
    first[:2], second[:2] = (0.9, 0.6), (0.2, 0.3)
    members = [constant_member(first, 8), constant_member(second, 16)]
    image = np.zeros((12, 7), np.uint8)
    thresholds = np.full(NUM_CLASSES, 0.5, np.float32)

    masks = predict_ensemble(members, image, "soft", thresholds).masks
    assert masks.shape == (NUM_CLASSES, 12, 7)
    assert masks[0].all()
    assert not masks[1].any()
    assert not masks[2:].any()

    members[1].weight = 3.0
    assert not predict_ensemble(members, image, "soft", thresholds).masks[0].any()


def test_hard_ensemble_min_votes():
    votes = [np.full(NUM_CLASSES, p) for p in (0.7, 0.6, 0.2)]
    members = [constant_member(p) for p in votes]
    image = np.zeros((5, 6), np.uint8)
    thresholds = np.full(NUM_CLASSES, 0.5, np.float32)
    assert predict_ensemble(members, image, "hard", thresholds, min_votes=2).masks.all()
    assert not predict_ensemble(members, image, "hard", thresholds, min_votes=3).masks.any()


def test_member_counts_against_truth():
    probabilities = np.full(NUM_CLASSES, 0.1)
    probabilities[0] = 0.9  # class 0 predicted everywhere, others nowhere
    member = constant_member(probabilities)
    truth = np.zeros((NUM_CLASSES, 4, 5), np.uint8)
    truth[0, :2] = 1  # 10 of 20 pixels
    truth[1, 0, 0] = 1
    output = predict_ensemble([member], np.zeros((4, 5), np.uint8), "soft",
                              np.full(NUM_CLASSES, 0.5, np.float32), truth=truth)
    assert output.member_counts.shape == (1, NUM_CLASSES, 3)
    assert output.member_counts[0, 0].tolist() == [10, 20, 10]
    assert output.member_counts[0, 1].tolist() == [0, 0, 1]
    dice = dice_from_counts(output.member_counts)[0]
    assert dice[0] == pytest.approx(2 * 10 / 30)
    assert dice[1] == 0.0
    assert dice[2] == 1.0


def test_ensemble_memory_per_member():
    # A 29-channel probability stack of this image is 29 * 300 * 200 * 4 bytes = 6.96 MB.
    image = np.zeros((300, 200), np.uint8)
    thresholds = np.full(NUM_CLASSES, 0.5, np.float32)
    stack_bytes = NUM_CLASSES * image.size * 4
    peaks = {}
    for count in (1, 6):
        members = [constant_member(np.full(NUM_CLASSES, 0.6), size=16) for _ in range(count)]
        tracemalloc.start()
        predict_ensemble(members, image, "soft", thresholds)
        peaks[count] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[1] < 2.5 * stack_bytes
    assert peaks[6] - peaks[1] < stack_bytes / 4


def test_greedy_prefers_complementary_members():
    # Truth: pixels 0 and 1. A and B each find one pixel (Dice 2/3), C predicts all four
    # (Dice 2/3). A + B averages 0.65 on both pixels: Dice 1 after two picks.
    probabilities = np.array(
        [[0.9, 0.4, 0.0, 0.0], [0.4, 0.9, 0.0, 0.0], [0.6, 0.6, 0.6, 0.6]]
    )
    quantized = np.rint(probabilities * 255).astype(np.uint8).reshape(3, 1, 1, 1, 4)
    truth = np.array([True, True, False, False]).reshape(1, 1, 1, 4)
    result = greedy_selection(quantized, truth, np.array([0.5]), steps=3)
    assert result.picks[:2] == [0, 1]
    assert result.scores[0] == pytest.approx(2 / 3)
    assert result.scores[1] == pytest.approx(1.0)
    assert result.best_steps == 2
    assert result.counts.tolist() == [1, 1, 0]


def test_greedy_picks_with_replacement():
    probabilities = np.array([[0.9, 0.9, 0.0], [0.6, 0.0, 0.6]])
    quantized = np.rint(probabilities * 255).astype(np.uint8).reshape(2, 1, 1, 1, 3)
    truth = np.array([True, True, False]).reshape(1, 1, 1, 3)
    result = greedy_selection(quantized, truth, np.array([0.5]), steps=2)
    assert result.picks == [0, 0]
    assert result.counts.tolist() == [1, 0]  # the best prefix is one pick; a tie keeps the shorter


def test_leaderboard_members_skip_unusable_rows():
    board = pd.DataFrame({
        "trial_id": ["a", "b", "c", "d"],
        "val_dice": [0.9, 0.8, math.nan, 0.7],
        "checkpoint": ["/x/a", None, "/x/c", "/x/d"],
    })
    members = leaderboard_members(board)
    assert [m.trial_id for m in members] == ["a", "d"]
    assert members[1].checkpoint == Path("/x/d")
    assert [m.trial_id for m in top_k(members, 1)] == ["a"]
    with pytest.raises(ValueError, match="no trial"):
        leaderboard_members(board.iloc[1:3])


def test_select_device():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu")


def test_prediction_pass_memory_per_image(tmp_path):
    from data.layout import list_images
    from ensemble.build import write_predictions

    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(6):
        cv2.imwrite(str(folder / f"i{index}.png"), np.full((120, 90), 40 * index, np.uint8))
    samples = list_images(folder)
    members = [constant_member(np.full(NUM_CLASSES, 0.6), size=16) for _ in range(2)]
    thresholds = np.full(NUM_CLASSES, 0.5, np.float32)
    stack_bytes = NUM_CLASSES * 120 * 90 * 4
    peaks = {}
    for count in (2, 6):
        tracemalloc.start()
        write_predictions(members, samples[:count], tmp_path / f"{count}.csv", "soft", thresholds)
        peaks[count] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[6] - peaks[2] < stack_bytes / 4
