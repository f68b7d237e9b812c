"""RLE encoding and decoding in the competition format."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble import rle


def reference_encode(mask: np.ndarray) -> str:
    """Plain reference encoder: flatten, pad with zeros, compare neighbours."""
    pixels = np.concatenate([[0], (np.asarray(mask) != 0).ravel().astype(np.int64), [0]])
    changes = np.flatnonzero(pixels[1:] != pixels[:-1]) + 1
    changes[1::2] -= changes[0::2]
    return " ".join(str(value) for value in changes)


def mask_with(shape: tuple[int, int], pixels: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    for row, col in pixels:
        mask[row, col] = 1
    return mask


# (name, shape, foreground pixels, expected RLE), computed by hand on a row-major flattening.
HAND_CASES = [
    ("empty", (3, 4), [], ""),
    ("first pixel", (3, 4), [(0, 0)], "1 1"),
    ("last pixel", (3, 4), [(2, 3)], "12 1"),
    ("full mask", (3, 4), [(r, c) for r in range(3) for c in range(4)], "1 12"),
    ("run crosses row end", (3, 4), [(0, 2), (0, 3), (1, 0), (1, 1)], "3 4"),
    ("two runs in a row", (2, 4), [(1, 0), (1, 2), (1, 3)], "5 1 7 2"),
    ("last column, two rows", (3, 4), [(0, 3), (1, 3)], "4 1 8 1"),
    ("column vector", (5, 1), [(1, 0), (2, 0), (4, 0)], "2 2 5 1"),
    ("row vector", (1, 7), [(0, 0), (0, 1), (0, 5)], "1 2 6 1"),
    ("whole rows 2 and 3", (4, 3), [(r, c) for r in (1, 2) for c in range(3)], "4 6"),
]


@pytest.mark.parametrize(
    "shape, pixels, expected",
    [case[1:] for case in HAND_CASES],
    ids=[case[0] for case in HAND_CASES],
)
def test_encode_hand_cases(shape, pixels, expected):
    assert rle.encode(mask_with(shape, pixels)) == expected


@pytest.mark.parametrize(
    "shape, pixels, text",
    [case[1:] for case in HAND_CASES],
    ids=[case[0] for case in HAND_CASES],
)
def test_decode_hand_cases(shape, pixels, text):
    decoded = rle.decode(text, shape)
    assert decoded.dtype == np.uint8
    assert decoded.shape == shape
    np.testing.assert_array_equal(decoded, mask_with(shape, pixels))


# (seed, height, width, foreground probability): non-square sizes, widths with and without
# a multiple of 8 (the 64-bit row scan), single rows and columns, sparse to full masks.
RANDOM_CASES = [
    (0, 7, 13, 0.5),
    (1, 13, 7, 0.1),
    (2, 1, 50, 0.5),
    (3, 50, 1, 0.5),
    (4, 16, 24, 0.9),
    (5, 33, 64, 0.02),
    (6, 64, 33, 0.98),
    (7, 2, 3, 1.0),
    (8, 40, 8, 0.0),
    (9, 129, 257, 0.3),
]


@pytest.mark.parametrize("seed, height, width, density", RANDOM_CASES)
def test_round_trip_random(seed, height, width, density):
    rng = np.random.default_rng(seed)
    mask = (rng.random((height, width)) < density).astype(np.uint8)
    text = rle.encode(mask)
    np.testing.assert_array_equal(rle.decode(text, (height, width)), mask)


@pytest.mark.parametrize("seed, height, width, density", RANDOM_CASES)
def test_encode_matches_reference(seed, height, width, density):
    rng = np.random.default_rng(seed)
    mask = rng.random((height, width)) < density
    assert rle.encode(mask) == reference_encode(mask)


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_blobs(seed):
    # Rectangles with edges on every side of the image, to exercise the bounding-box scan.
    rng = np.random.default_rng(seed)
    height, width = rng.integers(20, 90, size=2)
    mask = np.zeros((height, width), dtype=bool)
    for _ in range(4):
        r0, c0 = rng.integers(0, [height, width])
        r1, c1 = rng.integers([r0 + 1, c0 + 1], [height + 1, width + 1])
        mask[r0:r1, c0:c1] = True
    assert rle.encode(mask) == reference_encode(mask)
    np.testing.assert_array_equal(rle.decode(rle.encode(mask), mask.shape, dtype=bool), mask)


def test_round_trip_full_resolution():
    mask = np.zeros((2048, 2048), dtype=np.uint8)
    mask[900:1400, 700:1000] = 1
    mask[2047, 2040:] = 1
    mask[0, :5] = 1
    text = rle.encode(mask)
    assert text.startswith("1 5 ")
    assert text.endswith(f"{2047 * 2048 + 2041} 8")
    np.testing.assert_array_equal(rle.decode(text, mask.shape), mask)


@pytest.mark.parametrize(
    "dtype, value",
    [(np.bool_, True), (np.uint8, 255), (np.int8, -1), (np.int32, 7), (np.float32, 0.5)],
)
def test_encode_any_nonzero_dtype(dtype, value):
    mask = np.zeros((5, 6), dtype=dtype)
    mask[1, 4:] = value
    mask[2, 0] = value
    assert rle.encode(mask) == "11 3"


def test_encode_non_contiguous_view():
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[2, 1:4] = 1
    view = mask.T.T[:, ::2]  # (6, 4) strided view: columns 0, 2, 4, 6
    assert not view.flags.c_contiguous
    assert rle.encode(view) == reference_encode(view)


def test_encode_rejects_3d_mask():
    with pytest.raises(ValueError, match="2-D"):
        rle.encode(np.zeros((2, 3, 4), dtype=np.uint8))


def test_decode_whitespace_is_empty():
    np.testing.assert_array_equal(rle.decode("  ", (2, 2)), np.zeros((2, 2), np.uint8))


def test_decode_touching_runs():
    # Touching runs are valid (they do not overlap); the encoder writes them as one run.
    decoded = rle.decode("1 2 3 2", (2, 3))
    np.testing.assert_array_equal(decoded, [[1, 1, 1], [1, 0, 0]])
    assert rle.encode(decoded) == "1 4"


@pytest.mark.parametrize(
    "text, message",
    [
        ("1 2 3", "odd number"),
        ("1 0", "length 0"),
        ("0 2", "starts at 0"),
        ("5 2 3 1", "before the previous run ends"),
        ("5 2 5 1", "before the previous run ends"),
        ("11 3", "past the last pixel 12"),
        ("12 2", "past the last pixel 12"),
        ("1.5 2", "'1.5'"),
        ("-1 2", "'-1'"),
        ("1,2", "'1,2'"),
        ("a b", "'a'"),
        ("1 ٣", "'٣'"),
        ("99999999999999999999999 1", "past the last pixel"),
    ],
)
def test_decode_rejects_invalid(text, message):
    with pytest.raises(rle.RLEError, match=message):
        rle.decode(text, (3, 4))


def test_decode_rejects_non_string():
    with pytest.raises(rle.RLEError, match="must be a string"):
        rle.decode(float("nan"), (3, 4))


def test_parse_runs_zero_based():
    starts, lengths = rle.parse_runs("3 2 10 5")
    assert starts.tolist() == [2, 9]
    assert lengths.tolist() == [2, 5]


def test_rle_area():
    assert rle.rle_area("3 2 10 5") == 7
    assert rle.rle_area("") == 0
