"""Tests for data.transforms and data.wrist_bend: config validation, exact 29-channel masks, the wrist bend."""

from __future__ import annotations

import math

import albumentations as A
import cv2
import numpy as np
import pytest

from data.cache import pack_masks, unpack_masks
from data.classes import CLASS_INDEX, NUM_CLASSES
from data.transforms import AUG_DEFAULTS, build_transforms, resolve_aug, seed_transforms
from data.wrist_bend import WristBend, warp_mask_nearest, wrist_geometry

SIZE = 96
ALL_ON = {
    "strength": 1.0,
    "hflip": 1.0,
    "affine": 1.0,
    "intensity": 1.0,
    "noise": 1.0,
    "wrist_bend": 1.0,
    "wrist_bend_max_angle": 45.0,
}


def random_stack(size: int = SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return a random (S, S) uint8 image and a (S, S, 29) uint8 0/1 mask of blobs."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (size, size), dtype=np.uint8)
    mask = np.zeros((size, size, NUM_CLASSES), dtype=np.uint8)
    for channel in range(NUM_CLASSES):
        layer = np.zeros((size, size), dtype=np.uint8)
        for _ in range(3):
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.circle(layer, centre, int(rng.integers(3, size // 5)), 1, -1)
        mask[..., channel] = layer
    return image, mask


def disc(size: int, centre: tuple[int, int], radius: int) -> np.ndarray:
    layer = np.zeros((size, size), dtype=np.uint8)
    cv2.circle(layer, centre, radius, 1, -1)
    return layer


def centroid(layer: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(layer)
    return np.array([xs.mean(), ys.mean()])


# A straight hand on a 128 px image: forearm below, Lunate at (64, 80), middle fingertip at (64, 20).
HAND_SIZE = 128
LUNATE_CENTRE = (64, 80)
FINGERTIP_CENTRE = (64, 20)


def straight_hand() -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((HAND_SIZE, HAND_SIZE, NUM_CLASSES), dtype=np.uint8)
    mask[..., CLASS_INDEX["Lunate"]] = disc(HAND_SIZE, LUNATE_CENTRE, 6)
    mask[..., CLASS_INDEX["finger-8"]] = disc(HAND_SIZE, FINGERTIP_CENTRE, 5)
    mask[..., CLASS_INDEX["Capitate"]] = disc(HAND_SIZE, (64, 66), 5)
    mask[95:, 44:60, CLASS_INDEX["Radius"]] = 1
    mask[95:, 69:85, CLASS_INDEX["Ulna"]] = 1

    image = np.full((HAND_SIZE, HAND_SIZE), 50, dtype=np.uint8)
    image[mask[..., CLASS_INDEX["Radius"]] == 1] = 100
    image[mask[..., CLASS_INDEX["Ulna"]] == 1] = 110
    image[mask[..., CLASS_INDEX["finger-8"]] == 1] = 250
    return image, mask


def bend(image: np.ndarray, mask: np.ndarray, angle: float) -> dict[str, np.ndarray]:
    transform = WristBend(angle_limit=(angle, angle), p=1.0)
    return A.Compose([transform])(image=image, mask=mask)


# --- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize("aug", [None, {}])
def test_resolve_aug_defaults(aug):
    assert resolve_aug(aug) == AUG_DEFAULTS


def test_resolve_aug_overrides_one_key():
    resolved = resolve_aug({"strength": 1})
    assert resolved["strength"] == 1.0
    assert resolved["hflip"] == AUG_DEFAULTS["hflip"]


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ValueError, match="rotation") as error:
        resolve_aug({"rotation": 10})
    for key in AUG_DEFAULTS:
        assert key in str(error.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("strength", -0.1),
        ("strength", 1.5),
        ("hflip", True),
        ("hflip", "0.5"),
        ("noise", math.nan),
        ("wrist_bend", None),
        ("wrist_bend_max_angle", 91),
    ],
)
def test_invalid_value_names_key(key, value):
    with pytest.raises(ValueError, match=f"aug.{key}"):
        resolve_aug({key: value})


def test_non_mapping_aug_rejected():
    with pytest.raises(ValueError, match="mapping"):
        build_transforms([("strength", 1.0)], train=True)


def test_validation_pipeline_is_identity():
    image, mask = random_stack()
    out = build_transforms(ALL_ON, train=False)(image=image, mask=mask)
    np.testing.assert_array_equal(out["image"], image)
    np.testing.assert_array_equal(out["mask"], mask)


def test_validation_still_checks_config():
    with pytest.raises(ValueError, match="unknown aug key"):
        build_transforms({"flip": 0.5}, train=False)


def test_zero_probabilities_give_empty_pipeline():
    off = {key: 0.0 for key in AUG_DEFAULTS}
    assert len(build_transforms(off, train=True).transforms) == 0


def test_all_steps_present():
    names = [type(t).__name__ for t in build_transforms(ALL_ON, train=True).transforms]
    assert names == [
        "WristBend",
        "HorizontalFlip",
        "Affine",
        "RandomBrightnessContrast",
        "RandomGamma",
        "GaussNoise",
    ]


# --- exact 29-channel masks -------------------------------------------------------------------


def data_independent_steps() -> list[A.BasicTransform]:
    """Every shipped step whose random parameters do not read the mask."""
    return [t for t in build_transforms(ALL_ON, train=True).transforms if not isinstance(t, WristBend)]


@pytest.mark.parametrize("step", data_independent_steps(), ids=lambda t: type(t).__name__)
@pytest.mark.parametrize("seed", [0, 1])
def test_step_keeps_channels_exact(step, seed):
    image, mask = random_stack(seed=seed)
    pipeline = A.Compose([step], mask_interpolation=cv2.INTER_NEAREST)

    seed_transforms(pipeline, seed)
    stacked = pipeline(image=image, mask=mask)

    assert stacked["mask"].shape == (SIZE, SIZE, NUM_CLASSES)
    assert stacked["mask"].dtype == np.uint8
    assert set(np.unique(stacked["mask"])) <= {0, 1}
    assert stacked["image"].shape == (SIZE, SIZE)
    assert stacked["image"].dtype == np.uint8
    for channel in range(NUM_CLASSES):
        seed_transforms(pipeline, seed)
        alone = pipeline(image=image, mask=mask[..., channel : channel + 1])
        np.testing.assert_array_equal(alone["mask"][..., 0], stacked["mask"][..., channel], err_msg=f"channel {channel}")


def test_affine_step_moves_masks():
    """The per-channel check above must not pass only because nothing moved."""
    image, mask = random_stack()
    affine = next(t for t in data_independent_steps() if isinstance(t, A.Affine))
    pipeline = A.Compose([affine])
    seed_transforms(pipeline, 0)
    assert not np.array_equal(pipeline(image=image, mask=mask)["mask"], mask)


def test_pipeline_without_bend_keeps_channels_exact():
    image, mask = random_stack(seed=2)
    pipeline = build_transforms(dict(ALL_ON, wrist_bend=0.0), train=True)
    seed_transforms(pipeline, 7)
    stacked = pipeline(image=image, mask=mask)
    for channel in range(NUM_CLASSES):
        seed_transforms(pipeline, 7)
        alone = pipeline(image=image, mask=mask[..., channel : channel + 1])
        np.testing.assert_array_equal(alone["mask"][..., 0], stacked["mask"][..., channel], err_msg=f"channel {channel}")


@pytest.mark.parametrize("channels", [1, 4, 5, NUM_CLASSES])
def test_warp_mask_nearest_per_channel(channels):
    """29 = 7 x 4 + 1 channels ends on a one-channel chunk, which cv2 returns without a channel axis."""
    _, mask = random_stack()
    mask = np.ascontiguousarray(mask[..., :channels])
    matrix = cv2.getRotationMatrix2D((40.0, 50.0), 23.0, 1.1)
    out = warp_mask_nearest(mask, matrix)
    assert out.shape == mask.shape
    for channel in range(channels):
        alone = warp_mask_nearest(np.ascontiguousarray(mask[..., channel]), matrix)
        np.testing.assert_array_equal(out[..., channel], alone, err_msg=f"channel {channel}")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_packed_masks_match_unpacked(seed):
    """Every shipped step, wrist bend included, gives the packed result of the 29-channel one."""
    image, mask = straight_hand()
    _, blobs = random_stack(HAND_SIZE, seed=seed)
    keep = [CLASS_INDEX[name] for name in ("Lunate", "Radius", "Ulna")]
    blobs[..., keep] = mask[..., keep]
    pipeline = build_transforms(ALL_ON, train=True)

    seed_transforms(pipeline, seed)
    unpacked = pipeline(image=image, mask=blobs)
    seed_transforms(pipeline, seed)
    packed = pipeline(image=image, mask=pack_masks(blobs))

    assert packed["mask"].shape == (HAND_SIZE, HAND_SIZE, 4)
    np.testing.assert_array_equal(unpack_masks(packed["mask"]), unpacked["mask"])
    np.testing.assert_array_equal(packed["image"], unpacked["image"])
    assert not np.array_equal(unpacked["mask"], blobs)


def test_seeded_pipeline_repeats():
    image, mask = random_stack()
    pipeline = build_transforms(ALL_ON, train=True)
    seed_transforms(pipeline, 11)
    first = pipeline(image=image, mask=mask)
    seed_transforms(pipeline, 11)
    second = pipeline(image=image, mask=mask)
    seed_transforms(pipeline, 12)
    third = pipeline(image=image, mask=mask)
    np.testing.assert_array_equal(first["image"], second["image"])
    np.testing.assert_array_equal(first["mask"], second["mask"])
    assert not np.array_equal(first["image"], third["image"])


# --- wrist bend -------------------------------------------------------------------------------


def test_wrist_geometry_of_straight_hand():
    _, mask = straight_hand()
    centre, axis = wrist_geometry(mask)
    np.testing.assert_allclose(centre, LUNATE_CENTRE)
    np.testing.assert_allclose(axis, [0.0, -1.0])


@pytest.mark.parametrize("angle", [30.0, -30.0, 90.0])
def test_bend_moves_fingertip_by_rotation(angle):
    image, mask = straight_hand()
    out = bend(image, mask, angle)["mask"]

    # The fingertip sits 60 px above the Lunate, and a positive cv2 angle turns counter-clockwise
    # on screen: x' = cx + cos(a) dx + sin(a) dy, y' = cy - sin(a) dx + cos(a) dy, (dx, dy) = (0, -60).
    radians = math.radians(angle)
    expected = np.array([64 - 60 * math.sin(radians), 80 - 60 * math.cos(radians)])
    np.testing.assert_allclose(centroid(out[..., CLASS_INDEX["finger-8"]]), expected, atol=0.5)


def test_bend_by_30_degrees_hand_computed():
    """sin 30 = 1/2, cos 30 = 0.866: the fingertip lands at (64 - 30, 80 - 51.96)."""
    image, mask = straight_hand()
    out = bend(image, mask, 30.0)["mask"]
    np.testing.assert_allclose(centroid(out[..., CLASS_INDEX["finger-8"]]), [34.0, 28.04], atol=0.5)


@pytest.mark.parametrize("packed", [False, True])
def test_bend_keeps_forearm_and_lunate(packed):
    image, mask = straight_hand()
    out = bend(image, pack_masks(mask) if packed else mask, 30.0)["mask"]
    if packed:
        out = unpack_masks(out)
    for name in ("Radius", "Ulna"):
        np.testing.assert_array_equal(out[..., CLASS_INDEX[name]], mask[..., CLASS_INDEX[name]], err_msg=name)
    np.testing.assert_allclose(centroid(out[..., CLASS_INDEX["Lunate"]]), LUNATE_CENTRE, atol=0.5)
    assert set(np.unique(out)) <= {0, 1}
    assert out.shape == mask.shape


def test_bend_image_follows_masks():
    image, mask = straight_hand()
    out = bend(image, mask, 30.0)

    fingertip = out["mask"][..., CLASS_INDEX["finger-8"]]
    inner = cv2.erode(fingertip, np.ones((3, 3), np.uint8)).astype(bool)
    assert inner.sum() > 20
    assert (out["image"][inner] == 250).all()

    forearm = (mask[..., CLASS_INDEX["Radius"]] | mask[..., CLASS_INDEX["Ulna"]]).astype(bool)
    np.testing.assert_array_equal(out["image"][forearm], image[forearm])
    assert (out["image"][fingertip.astype(bool) == 0] != 250).any()
    assert out["image"][FINGERTIP_CENTRE[1], FINGERTIP_CENTRE[0]] != 250


def test_bend_channels_match_single_warps():
    image, mask = straight_hand()
    _, extra = random_stack(HAND_SIZE, seed=3)
    keep = [CLASS_INDEX[name] for name in ("Lunate", "Radius", "Ulna")]
    extra[..., keep] = mask[..., keep]

    transform = WristBend(angle_limit=(20.0, 20.0), p=1.0)
    pipeline = A.Compose([transform])
    out = pipeline(image=image, mask=extra)["mask"]
    matrix = transform.params["matrix"]
    for channel in range(NUM_CLASSES):
        expected = extra[..., channel] if channel in keep[1:] else warp_mask_nearest(np.ascontiguousarray(extra[..., channel]), matrix)
        np.testing.assert_array_equal(out[..., channel], expected, err_msg=f"channel {channel}")


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("empty", [("Lunate",), ("Radius", "Ulna")])
def test_bend_without_landmarks_is_noop(empty, packed):
    image, mask = straight_hand()
    for name in empty:
        mask[..., CLASS_INDEX[name]] = 0
    if packed:
        mask = pack_masks(mask)
    out = bend(image, mask, 30.0)
    np.testing.assert_array_equal(out["image"], image)
    np.testing.assert_array_equal(out["mask"], mask)


def test_bend_with_one_forearm_bone_applies():
    image, mask = straight_hand()
    mask[..., CLASS_INDEX["Ulna"]] = 0
    out = bend(image, mask, 30.0)["mask"]
    assert not np.array_equal(out[..., CLASS_INDEX["finger-8"]], mask[..., CLASS_INDEX["finger-8"]])


@pytest.mark.parametrize("shape", [(HAND_SIZE, HAND_SIZE), (HAND_SIZE, HAND_SIZE, 3), (HAND_SIZE, HAND_SIZE, 28)])
def test_bend_needs_mask_stack(shape):
    image, _ = straight_hand()
    with pytest.raises(ValueError, match="29-channel mask stack"):
        bend(image, np.zeros(shape, dtype=np.uint8), 30.0)


@pytest.mark.parametrize("limit", [(10.0, -10.0), 120.0, "wide", (1.0, 2.0, 3.0)])
def test_invalid_angle_limit(limit):
    with pytest.raises(ValueError, match="angle_limit"):
        WristBend(angle_limit=limit)
