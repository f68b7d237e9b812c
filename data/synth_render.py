"""X-ray-like rendering of a posed synthetic hand, for ``data.synth``.

Brightness follows attenuation, as on a radiograph displayed with bone white: a dark background,
a soft-tissue envelope of medium grey, and bones whose projected thickness gives a bright cortex
at their edges over a less bright marrow cavity. Overlapping bones add up and look brighter.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from data.synth_anatomy import Bone, TissuePart

# Soft tissue is drawn and blurred at 1/TISSUE_DOWNSCALE of the image side, then upsampled: it
# has no sharp detail, and drawing it small saves most of the time at 2048 x 2048.
TISSUE_DOWNSCALE = 4
# Bone brightness is a chord length through the bone divided by this length (canonical units,
# about the shaft radius of a proximal phalanx), so a phalanx shaft edge comes out near 0.7.
_REFERENCE_RADIUS = 0.065


@dataclass(frozen=True)
class Appearance:
    """Exposure and display settings of one radiograph (all unitless, image values in [0, 1])."""

    background: float
    tissue_gain: float
    bone_gain: float
    compression: float
    gamma: float
    noise_sd: float
    texture_sd: float
    gradient: tuple[float, float]
    blur_px: float
    marker_corner: int
    marker_scale: float


def sample_appearance(rng: np.random.Generator, size: int) -> Appearance:
    """Draw exposure, contrast, noise and marker settings for one image of side ``size``."""
    return Appearance(
        background=float(rng.uniform(0.03, 0.16)),
        tissue_gain=float(rng.uniform(0.28, 0.42)),
        bone_gain=float(rng.uniform(0.32, 0.48)),
        compression=float(rng.uniform(0.2, 0.8)),
        gamma=float(rng.uniform(0.8, 1.25)),
        noise_sd=float(rng.uniform(0.006, 0.02)),
        texture_sd=float(rng.uniform(0.05, 0.12)),
        gradient=(float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05))),
        blur_px=float(rng.uniform(0.4, 1.0)) * size / 1024,
        marker_corner=int(rng.integers(4)),
        marker_scale=float(rng.uniform(0.8, 1.3)),
    )


def render_tissue(tissue: list[TissuePart], size: int, scale_px: float) -> np.ndarray:
    """Return the soft-tissue thickness map, (size, size) float32 in about [0, 1]."""
    small = max(size // TISSUE_DOWNSCALE, 16)
    factor = small / size
    canvas = np.zeros((small, small), np.float32)
    for part in tissue:
        layer = np.zeros_like(canvas)
        points = np.round(part.points * factor * 16).astype(np.int32)
        if part.width > 0:
            width = max(int(round(part.width * factor)), 1)
            cv2.polylines(layer, [points], False, part.thickness, width, cv2.LINE_8, shift=4)
        else:
            cv2.fillPoly(layer, [points], part.thickness, cv2.LINE_8, shift=4)
        np.maximum(canvas, layer, out=canvas)

    sigma = max(0.045 * scale_px * factor, 0.5)
    canvas = cv2.GaussianBlur(canvas, (0, 0), sigma)
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_LINEAR)


def add_bone(canvas: np.ndarray, bone: Bone, scale_px: float) -> None:
    """Add one bone's projected density to ``canvas`` (float32, modified in place).

    Each pixel's distance ``d`` to the outline stands for a tube of radius ``bone.radius``: the
    ray at ``x = radius - d`` from the axis crosses ``sqrt(R^2 - x^2) - sqrt(r^2 - x^2)`` of
    cortex and ``sqrt(r^2 - x^2)`` of marrow (half chords, ``r = R - cortex``). Where the bone is
    wider than the tube (joint ends, carpals) the value stays at the centre-line value.
    """
    polygon = bone.polygon
    if len(polygon) < 3:
        return
    height, width = canvas.shape
    x0, y0 = np.maximum(np.floor(polygon.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(polygon.max(axis=0)).astype(int) + 3, (width, height))
    if x1 <= x0 or y1 <= y0:
        return

    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    points = np.round((polygon - (x0, y0)) * 16).astype(np.int32)
    cv2.fillPoly(mask, [points], 1, cv2.LINE_8, shift=4)
    distance = cv2.distanceTransform(mask, cv2.DIST_L2, 3)

    outer = np.float32(max(bone.radius, 1.0))
    inner = np.float32(max(bone.radius - bone.cortex, 0.0))
    x = outer - np.minimum(distance, outer)
    x2 = x * x
    outer_chord = np.sqrt(np.maximum(outer * outer - x2, 0.0))
    inner_chord = np.sqrt(np.maximum(inner * inner - x2, 0.0))
    density = (outer_chord - inner_chord) + bone.marrow * inner_chord
    density *= np.float32(1.0 / (_REFERENCE_RADIUS * scale_px)) * (mask > 0)
    canvas[y0:y1, x0:x1] += density


def _smooth_noise(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """Return (size, size) float32 noise with about unit variance and features ``cell`` px wide."""
    small = max(size // cell, 2)
    noise = rng.standard_normal((small, small), dtype=np.float32)
    return cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)


def draw_marker(image: np.ndarray, letter: str, appearance: Appearance) -> None:
    """Burn a bright side-marker letter into a top corner of ``image`` (uint8, in place)."""
    size = image.shape[0]
    scale = appearance.marker_scale * size / 512
    thickness = max(int(round(scale * 2.5)), 1)
    (text_w, text_h), _ = cv2.getTextSize(letter, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    margin = int(0.03 * size)
    corner = appearance.marker_corner
    x = margin if corner % 2 == 0 else size - margin - text_w
    y = margin + text_h if corner < 2 else size - margin
    cv2.putText(image, letter, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 245, thickness, cv2.LINE_AA)


def render_radiograph(
    bones: list[Bone],
    tissue: list[TissuePart],
    scale_px: float,
    size: int,
    side: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render a posed hand as an 8-bit radiograph.

    Args:
        bones: bones in pixel coordinates (from ``data.synth_pose.place_hand``).
        tissue: soft-tissue parts in pixel coordinates.
        scale_px: third-metacarpal length in pixels.
        size: image side in pixels.
        side: marker letter, "L" or "R".
        rng: random generator; this function draws the appearance, texture and noise from it.

    Returns:
        (size, size) uint8 image, bone bright on a dark background.
    """
    appearance = sample_appearance(rng, size)

    tissue_map = render_tissue(tissue, size, scale_px)
    bone_map = np.zeros((size, size), np.float32)
    for bone in bones:
        add_bone(bone_map, bone, scale_px)
    texture = _smooth_noise(rng, size, max(size // 300, 2))
    bone_map *= 1.0 + appearance.texture_sd * texture
    if appearance.blur_px > 0.3:
        bone_map = cv2.GaussianBlur(bone_map, (0, 0), appearance.blur_px)

    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    linear = appearance.tissue_gain * tissue_map
    linear += appearance.bone_gain * bone_map
    linear += appearance.background + appearance.gradient[0] * ramp[None, :]
    linear += appearance.gradient[1] * ramp[:, None]

    c = np.float32(appearance.compression)
    display = linear * (1 + c) / (1 + c * np.maximum(linear, 0))
    display += appearance.noise_sd * rng.standard_normal((size, size), dtype=np.float32)
    np.clip(display, 0.0, 1.0, out=display)
    display **= np.float32(appearance.gamma)
    image = (display * 255 + 0.5).astype(np.uint8)

    draw_marker(image, side, appearance)
    return image
