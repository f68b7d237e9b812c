"""Training augmentations built from the ``aug`` section of the training config.

Every pipeline works on ``image`` (S, S) uint8 and ``mask`` (S, S, 29) uint8 0/1, channels in
``data.classes.CLASSES`` order, and returns them at the same shape and dtype. Geometric
transforms sample masks with nearest-neighbour interpolation and fill with 0, so masks stay 0/1
and each channel comes out as if it had been transformed alone. For the same reason a mask may
also be passed bit-packed, (S, S, 4) from ``data.cache.pack_masks``: nearest-neighbour sampling
moves whole bytes, and the result equals packing the transformed 29-channel mask.

Random numbers: a pipeline draws from the generators that ``seed_transforms`` installs.
``data.dataset.HandBoneDataset`` installs fresh ones for every sample, derived from its seed, the
epoch and the sample index.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

import albumentations as A
import cv2
import numpy as np

from data.wrist_bend import WristBend

__all__ = ["AUG_DEFAULTS", "WristBend", "build_transforms", "resolve_aug", "seed_transforms"]

AUG_DEFAULTS: dict[str, float] = {
    "strength": 0.5,
    "hflip": 0.5,
    "affine": 0.8,
    "intensity": 0.8,
    "noise": 0.3,
    "wrist_bend": 0.3,
    "wrist_bend_max_angle": 30.0,
}
"""Default value of every key of the ``aug`` config."""

AUG_RANGES: dict[str, tuple[float, float]] = {
    "strength": (0.0, 1.0),
    "hflip": (0.0, 1.0),
    "affine": (0.0, 1.0),
    "intensity": (0.0, 1.0),
    "noise": (0.0, 1.0),
    "wrist_bend": (0.0, 1.0),
    "wrist_bend_max_angle": (0.0, 90.0),
}
"""Closed range of valid values of every key of the ``aug`` config."""

# Largest magnitude of each random parameter at strength 1. Strength scales them linearly.
MAX_ROTATE_DEG = 30.0
MAX_SCALE = 0.3  # relative zoom: scale drawn from 1 - 0.3 s .. 1 + 0.3 s
MAX_TRANSLATE = 0.1  # fraction of the image side
MAX_BRIGHTNESS = 0.3  # fraction of the dtype's maximum value
MAX_CONTRAST = 0.3  # relative contrast change
MAX_GAMMA = 0.5  # gamma drawn from 1 - 0.5 s .. 1 + 0.5 s
MAX_NOISE_STD = 0.1  # fraction of the dtype's maximum value


def resolve_aug(aug: Mapping[str, Any] | None) -> dict[str, float]:
    """Validate an ``aug`` config and fill in the defaults.

    Args:
        aug: mapping with any subset of the keys of :data:`AUG_DEFAULTS`, or None for all
            defaults. Values are real numbers inside :data:`AUG_RANGES`.

    Returns:
        A new dict with every key of :data:`AUG_DEFAULTS`, values as float.

    Raises:
        ValueError: ``aug`` is not a mapping, has an unknown key (the message lists the valid
            ones), or a value is not a finite number inside its range.
    """
    if aug is None:
        return dict(AUG_DEFAULTS)
    if not isinstance(aug, Mapping):
        raise ValueError(f"invalid aug config {aug!r}: expected a mapping such as {AUG_DEFAULTS}")

    unknown = sorted(str(key) for key in aug if key not in AUG_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown aug key(s) {', '.join(unknown)}; valid keys: {', '.join(AUG_DEFAULTS)}"
        )

    resolved = dict(AUG_DEFAULTS)
    for key, value in aug.items():
        low, high = AUG_RANGES[key]
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"invalid aug.{key} = {value!r}: expected a number in [{low}, {high}]")
        resolved[key] = float(value)
    return resolved


def build_transforms(aug: Mapping[str, Any] | None, train: bool) -> A.Compose:
    """Build the augmentation pipeline of one training run.

    Config keys (all optional, defaults in :data:`AUG_DEFAULTS`):

    - ``strength`` in [0, 1], default 0.5: scales every random magnitude linearly. At strength
      ``s`` the rotation is up to ±30 s degrees, the zoom 1 ± 0.3 s and the shift up to ±0.1 s
      of the side. Brightness and contrast change by up to ±0.3 s and gamma lies in 1 ± 0.5 s.
      Gaussian noise has a standard deviation up to 0.1 s of the intensity range. At 0 the
      affine, intensity and noise steps are left out.
    - ``hflip`` in [0, 1], default 0.5: probability of a horizontal flip (left hand to right).
    - ``affine`` in [0, 1], default 0.8: probability of the rotation, zoom and shift.
    - ``intensity`` in [0, 1], default 0.8: probability of each of brightness/contrast and gamma.
    - ``noise`` in [0, 1], default 0.3: probability of Gaussian noise.
    - ``wrist_bend`` in [0, 1], default 0.3: probability of :class:`WristBend`.
    - ``wrist_bend_max_angle`` in [0, 90] degrees, default 30: the bend angle is drawn uniformly
      from ±this value.

    Order: wrist bend (it reads the anatomy from the unchanged masks), flip, affine,
    brightness/contrast, gamma, noise.

    Args:
        aug: the ``aug`` config, or None for the defaults.
        train: False returns an empty pipeline (the identity) for validation, after validating
            ``aug`` all the same so that a bad config fails before training starts.

    Returns:
        ``A.Compose`` called as ``pipeline(image=(S, S) uint8, mask=(S, S, 29) uint8)``, or
        with the mask bit-packed as (S, S, 4) (see the module docstring).

    Raises:
        ValueError: invalid ``aug``, see :func:`resolve_aug`.
    """
    config = resolve_aug(aug)
    if not train:
        return A.Compose([])

    strength = config["strength"]
    steps: list[A.BasicTransform] = []
    if config["wrist_bend"] > 0 and config["wrist_bend_max_angle"] > 0:
        steps.append(WristBend(angle_limit=config["wrist_bend_max_angle"], p=config["wrist_bend"]))
    if config["hflip"] > 0:
        steps.append(A.HorizontalFlip(p=config["hflip"]))
    if strength > 0:
        steps.extend(_strength_steps(config, strength))
    return A.Compose(steps, mask_interpolation=cv2.INTER_NEAREST)


def _strength_steps(config: dict[str, float], strength: float) -> list[A.BasicTransform]:
    steps: list[A.BasicTransform] = []
    if config["affine"] > 0:
        steps.append(
            A.Affine(
                rotate=(-MAX_ROTATE_DEG * strength, MAX_ROTATE_DEG * strength),
                scale=(1 - MAX_SCALE * strength, 1 + MAX_SCALE * strength),
                translate_percent=(-MAX_TRANSLATE * strength, MAX_TRANSLATE * strength),
                keep_ratio=True,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=config["affine"],
            )
        )
    if config["intensity"] > 0:
        limit = MAX_BRIGHTNESS * strength
        contrast = MAX_CONTRAST * strength
        steps.append(
            A.RandomBrightnessContrast(
                brightness_limit=(-limit, limit), contrast_limit=(-contrast, contrast), p=config["intensity"]
            )
        )
        gamma = 100 * MAX_GAMMA * strength
        steps.append(A.RandomGamma(gamma_limit=(100 - gamma, 100 + gamma), p=config["intensity"]))
    if config["noise"] > 0:
        steps.append(A.GaussNoise(std_range=(0.0, MAX_NOISE_STD * strength), p=config["noise"]))
    return steps


def seed_transforms(pipeline: A.BaseCompose | A.BasicTransform, seed: int | np.random.SeedSequence) -> None:
    """Give a pipeline one fresh random stream, shared in order by all its transforms.

    ``A.Compose(seed=...)`` seeds each transform with the same number, so the transforms draw
    identical first values and their decisions become correlated. Sharing one generator makes
    them draw one after another from a single stream instead.

    Args:
        pipeline: a Compose or a single transform.
        seed: int or ``np.random.SeedSequence``; equal seeds give equal augmentations.
    """
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    numpy_state, python_state = sequence.spawn(2)
    pipeline.set_random_state(
        np.random.default_rng(numpy_state), random.Random(int(python_state.generate_state(1)[0]))
    )
