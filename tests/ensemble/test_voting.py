"""Soft and hard voting, thresholds files, weights and run-level voting."""

from __future__ import annotations

import numpy as np
import pytest

from data.classes import CLASS_INDEX, NUM_CLASSES
from ensemble import rle
from ensemble.voting import (
    VoteAccumulator,
    as_class_thresholds,
    load_thresholds,
    parse_weights,
    vote_runs,
)

# Three members, one class, four pixels.
MEMBERS = np.array(
    [
        [[[0.9, 0.6, 0.2, 0.1]]],
        [[[0.8, 0.3, 0.6, 0.1]]],
        [[[0.7, 0.2, 0.1, 0.45]]],
    ],
    dtype=np.float32,
)


def vote(mode, weights=(1.0, 1.0, 1.0), thresholds=0.5, min_votes=1):
    accumulator = VoteAccumulator(mode, (1, 1, 4), thresholds=thresholds, min_votes=min_votes)
    for probabilities, weight in zip(MEMBERS, weights):
        accumulator.add(probabilities, weight)
    return accumulator


def test_soft_mean_and_threshold():
    accumulator = vote("soft")
    # Means: 0.8, 0.3667, 0.3, 0.2167.
    np.testing.assert_allclose(
        accumulator.mean_probabilities()[0, 0], [0.8, 1.1 / 3, 0.3, 0.65 / 3], rtol=1e-6
    )
    assert accumulator.masks()[0, 0].tolist() == [True, False, False, False]


def test_soft_weighted():
    # Weights 2, 1, 1: pixel 1 -> (1.2 + 0.3 + 0.2) / 4 = 0.425, pixel 3 -> 0.75 / 4 = 0.1875.
    accumulator = vote("soft", weights=(2.0, 1.0, 1.0), thresholds=0.4)
    np.testing.assert_allclose(
        accumulator.mean_probabilities()[0, 0], [0.825, 0.425, 0.275, 0.1875], rtol=1e-6
    )
    assert accumulator.masks()[0, 0].tolist() == [True, True, False, False]


def test_soft_zero_weight_member_ignored():
    accumulator = vote("soft", weights=(1.0, 0.0, 0.0))
    assert accumulator.masks()[0, 0].tolist() == [True, True, False, False]


@pytest.mark.parametrize(
    "min_votes, expected",
    [
        (1, [True, True, True, False]),
        (2, [True, False, False, False]),
        (3, [True, False, False, False]),
    ],
)
def test_hard_min_votes(min_votes, expected):
    assert vote("hard", min_votes=min_votes).masks()[0, 0].tolist() == expected


def test_hard_uses_class_thresholds():
    # Threshold 0.15: votes per pixel 3, 3, 2, 1.
    assert vote("hard", thresholds=0.15, min_votes=2).masks()[0, 0].tolist() == [
        True, True, True, False,
    ]


def test_per_class_thresholds_soft():
    accumulator = VoteAccumulator("soft", (2, 1, 2), thresholds=[0.5, 0.2])
    accumulator.add(np.full((2, 1, 2), 0.3, dtype=np.float32))
    masks = accumulator.masks()
    assert masks[0].tolist() == [[False, False]]
    assert masks[1].tolist() == [[True, True]]


def test_add_channels_in_chunks_matches_whole():
    rng = np.random.default_rng(0)
    members = rng.random((3, NUM_CLASSES, 5, 6)).astype(np.float32)
    for mode in ("soft", "hard"):
        whole = VoteAccumulator(mode, members.shape[1:], min_votes=2)
        chunked = VoteAccumulator(mode, members.shape[1:], min_votes=2)
        for weight, member in zip((1.0, 2.0, 0.5), members):
            whole.add(member, weight)
            for first in range(0, NUM_CLASSES, 4):
                channels = slice(first, min(first + 4, NUM_CLASSES))
                chunked.add_channels(channels, member[channels], weight)
            chunked.finish_member(weight)
        np.testing.assert_array_equal(whole.masks(), chunked.masks())


def test_accumulator_errors():
    with pytest.raises(ValueError, match="unknown voting mode"):
        VoteAccumulator("majority", (1, 1, 1))
    with pytest.raises(ValueError, match="no member"):
        VoteAccumulator("soft", (1, 1, 1)).masks()
    with pytest.raises(ValueError, match="expected \\(1, 1, 4\\)"):
        VoteAccumulator("soft", (1, 1, 4)).add(np.zeros((1, 1, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        as_class_thresholds(1.5, 3)


def test_load_thresholds_yaml(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("default: 0.4\nPisiform: 0.3\nRadius: 0.6\n", encoding="utf-8")
    thresholds = load_thresholds(path)
    assert thresholds.shape == (NUM_CLASSES,)
    assert thresholds[CLASS_INDEX["Pisiform"]] == pytest.approx(0.3)
    assert thresholds[CLASS_INDEX["Radius"]] == pytest.approx(0.6)
    assert thresholds[0] == pytest.approx(0.4)


def test_load_thresholds_json_default(tmp_path):
    path = tmp_path / "t.json"
    path.write_text('{"Ulna": 0.25}', encoding="utf-8")
    thresholds = load_thresholds(path, default=0.45)
    assert thresholds[CLASS_INDEX["Ulna"]] == pytest.approx(0.25)
    assert thresholds[CLASS_INDEX["Radius"]] == pytest.approx(0.45)


@pytest.mark.parametrize(
    "content, message",
    [
        ("radius: 0.5\n", "unknown class 'radius'"),
        ("Radius: 1.5\n", "expected a number in \\[0, 1\\]"),
        ("Radius: yes\n", "expected a number"),
        ("- 0.5\n", "must map class names"),
        ("Radius: [\n", "not valid JSON/YAML"),
    ],
)
def test_load_thresholds_rejects(tmp_path, content, message):
    path = tmp_path / "t.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_thresholds(path)


def test_parse_weights():
    assert parse_weights(None, 3) is None
    assert parse_weights("Dice", 3) == "dice"
    assert parse_weights("2,1,0.5", 3) == [2.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="3 values for 2 members"):
        parse_weights("1,1,1", 2)
    with pytest.raises(ValueError, match="non-negative"):
        parse_weights("1,-1", 2)
    with pytest.raises(ValueError, match="comma-separated"):
        parse_weights("a,b", 2)


def runs_of(mask):
    return rle.mask_to_runs(mask)


def test_vote_runs_hand_case():
    # Flat masks of 10 pixels.
    a = np.array([1, 1, 1, 0, 0, 1, 1, 0, 0, 0])
    b = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 1])
    c = np.array([0, 0, 1, 1, 1, 0, 0, 0, 0, 1])
    members = [runs_of(m[None]) for m in (a, b, c)]
    starts, lengths = vote_runs(members, 2)
    assert starts.tolist() == [1, 6, 9]
    assert lengths.tolist() == [3, 1, 1]
    starts, lengths = vote_runs(members, 3)
    assert starts.tolist() == [2]
    assert lengths.tolist() == [1]
    starts, lengths = vote_runs(members, 1)
    assert (starts.tolist(), lengths.tolist()) == ([0, 9], [8, 1])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("min_votes", [1, 2, 3, 4])
def test_vote_runs_matches_pixel_vote(seed, min_votes):
    rng = np.random.default_rng(seed)
    height, width = rng.integers(1, 30, size=2)
    masks = rng.random((4, height, width)) < rng.uniform(0.1, 0.9)
    expected = masks.sum(axis=0) >= min_votes
    starts, lengths = vote_runs([runs_of(m) for m in masks], min_votes)
    assert rle.format_runs(starts, lengths) == rle.encode(expected)


def test_vote_runs_empty_and_too_few():
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert vote_runs([empty, empty], 1)[0].size == 0
    one = runs_of(np.ones((2, 2)))
    assert vote_runs([one], 2)[0].size == 0
    with pytest.raises(ValueError, match="min_votes"):
        vote_runs([one], 0)


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_threshold_is_strict(mode):
    # As trainable.metrics.logits_to_masks: a probability equal to the threshold is out.
    accumulator = VoteAccumulator(mode, (1, 1, 2), thresholds=0.5)
    accumulator.add(np.array([[[0.5, 0.50001]]], dtype=np.float32))
    assert accumulator.masks()[0, 0].tolist() == [False, True]
