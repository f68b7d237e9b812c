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
# Bone brightness is a chord length through the bone relative to the bone's radius, times
# (radius / _REFERENCE_RADIUS) ** _THICKNESS_EXPONENT (radius in canonical units; 0.065 is about
# the shaft radius of a proximal phalanx). A plain chord length would make the radius far
# brighter than the finger bones, unlike real radiographs, whose detectors and display
# processing flatten such differences.
_REFERENCE_RADIUS = 0.065
_THICKNESS_EXPONENT = 0.3
# Bone outlines are filled at this multiple of the image resolution for anti-aliased edges.
_SUPERSAMPLING = 4
# Density of trabecular bone (joint ends, carpals) relative to cortex.
TRABECULAR_DENSITY = 0.5
# Depth below the skin (canonical units) over which soft tissue reaches its full thickness.
_SKIN_ROUNDING = 0.1


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
        background=float(rng.uniform(0.0, 0.3)),
        tissue_gain=float(rng.uniform(0.32, 0.5)),
        bone_gain=float(rng.uniform(0.3, 0.45)),
        compression=float(rng.uniform(0.3, 1.0)),
        gamma=float(rng.uniform(0.8, 1.25)),
        noise_sd=float(rng.uniform(0.006, 0.02)),
        texture_sd=float(rng.uniform(0.05, 0.12)),
        gradient=(float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05))),
        blur_px=float(rng.uniform(0.4, 1.0)) * size / 1024,
        marker_corner=int(rng.integers(4)),
        marker_scale=float(rng.uniform(0.8, 1.3)),
    )


def render_tissue(
    tissue: list[TissuePart], size: int, scale_px: float, downscale: int = TISSUE_DOWNSCALE
) -> np.ndarray:
    """Return the soft-tissue thickness map, (size, size) float32 in about [0, 1].

    The parts are unioned (maximum thickness), then rounded off towards the skin line like the
    chord through a cylinder, so the skin edge stays sharp while the thickness falls off. The
    map is drawn at ``size // downscale`` pixels, but at least 512 or ``size``, and upsampled.
    """
    small = max(size // downscale, min(size, 512))
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

    inside = (canvas > 0).astype(np.uint8)
    depth = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    rim = max(_SKIN_ROUNDING * scale_px * factor, 1.0)
    edge = np.clip(depth / np.float32(rim), 0.0, 1.0)
    edge = np.sqrt(1.0 - (1.0 - edge) ** 2)

    # Smooth the steps between parts (palm to forearm, palm to finger) with a blur normalised
    # by the blurred inside mask, so that thickness does not fade near the skin, then cut there.
    sigma = max(0.08 * scale_px * factor, 0.5)
    weight = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), sigma)
    canvas = cv2.GaussianBlur(canvas, (0, 0), sigma) / np.maximum(weight, 1e-3) * edge
    canvas = cv2.GaussianBlur(canvas, (0, 0), 1.0)
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_LINEAR)


def add_bone(canvas: np.ndarray, bone: Bone, scale_px: float) -> None:
    """Add one bone's projected density to ``canvas`` (float32, modified in place).

    A bone is shaded as a tube: the ray at distance ``x`` from the axis of a tube of radius
    ``R`` with walls ``c`` thick crosses ``sqrt(R^2 - x^2) - sqrt(r^2 - x^2)`` of cortex and
    ``sqrt(r^2 - x^2)`` of marrow (half chords, ``r = R - c``). Finger bones use their axis and
    width profile, with thick cortex and a marrow cavity along the shaft and thin cortex over
    trabecular bone at the ends. Other bones use the distance to their outline as ``R - x``.
    """
    polygon = bone.polygon
    if len(polygon) < 3:
        return
    height, width = canvas.shape
    x0, y0 = np.maximum(np.floor(polygon.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(polygon.max(axis=0)).astype(int) + 3, (width, height))
    if x1 <= x0 or y1 <= y0:
        return

    coverage = _polygon_coverage(polygon - (x0, y0), (y1 - y0, x1 - x0))
    mask = (coverage >= 0.5).astype(np.uint8)
    distance = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    if bone.axis is not None and bone.profile is not None:
        outer, cortex, marrow, offset = _finger_bone_fields(bone, (x0, y0), mask.shape)
    else:
        outer, cortex, marrow, offset = _outline_fields(bone, distance)

    inner = np.maximum(outer - cortex, 0.0)
    offset2 = offset * offset
    outer_chord = np.sqrt(np.maximum(outer * outer - offset2, 0.0))
    inner_chord = np.sqrt(np.maximum(inner * inner - offset2, 0.0))
    density = (outer_chord - inner_chord) + marrow * inner_chord

    reference = max(bone.radius, 1.0)
    gain = (bone.radius / (_REFERENCE_RADIUS * scale_px)) ** _THICKNESS_EXPONENT / reference
    # Weighting by coverage anti-aliases edges that cut across the tube (joint surfaces).
    density *= np.float32(gain) * coverage
    canvas[y0:y1, x0:x1] += density


def _polygon_coverage(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Return the fraction of each pixel inside ``polygon``, (H, W) float32 in [0, 1].

    The polygon is filled at _SUPERSAMPLING times the resolution and area-averaged down.
    """
    factor = _SUPERSAMPLING
    fine = np.zeros((shape[0] * factor, shape[1] * factor), np.uint8)
    # Pixel centres sit at integer coordinates, so a fine pixel centre is (x + 0.5) * f - 0.5.
    points = np.round(((polygon + 0.5) * factor - 0.5) * 16).astype(np.int32)
    cv2.fillPoly(fine, [points], 255, cv2.LINE_8, shift=4)
    coarse = cv2.resize(fine, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return coarse.astype(np.float32) * np.float32(1 / 255)


def _finger_bone_fields(
    bone: Bone, origin: tuple[int, int], shape: tuple[int, int]
) -> tuple[np.ndarray, ...]:
    """Return tube radius, cortex, marrow density and distance from the axis per ROI pixel."""
    start, end = bone.axis
    length = float(np.linalg.norm(end - start))
    along = (end - start) / max(length, 1e-6)
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    dx = xs + np.float32(origin[0] - start[0])
    dy = ys + np.float32(origin[1] - start[1])
    t = (dx * along[0] + dy * along[1]) / np.float32(max(length, 1e-6))
    offset = np.abs(dx * along[1] - dy * along[0])

    outer = np.interp(t, bone.profile[:, 0], bone.profile[:, 1]).astype(np.float32)
    # 1 along the middle of the shaft, 0 at the joint ends.
    shaft = np.clip(np.minimum(t - 0.06, 0.94 - t) / 0.2, 0.0, 1.0)
    shaft = shaft * shaft * (3.0 - 2.0 * shaft)
    cortex = np.float32(bone.cortex) * (0.35 + 0.65 * shaft)
    marrow = TRABECULAR_DENSITY + (bone.marrow - TRABECULAR_DENSITY) * shaft
    # Where the outline bulges past the profile (base lips), treat the pixel as on the axis.
    outer = np.maximum(outer, offset)
    return outer, cortex, marrow.astype(np.float32), offset


def _outline_fields(bone: Bone, distance: np.ndarray) -> tuple[np.ndarray, ...]:
    """Return tube radius, cortex, marrow density and distance from the axis per ROI pixel.

    ``distance`` is each ROI pixel's distance (pixels) to the outside of the bone.
    """
    outer = np.float32(max(bone.radius, 1.0))
    offset = outer - np.minimum(distance, outer)
    # Deeper inside than one shaft radius means a wide end (distal radius, carpal body):
    # trabecular bone rather than a marrow cavity.
    depth = np.clip(distance / outer - 1.0, 0.0, 1.0)
    marrow = bone.marrow + (max(bone.marrow, TRABECULAR_DENSITY) - bone.marrow) * depth
    return outer, np.float32(bone.cortex), marrow.astype(np.float32), offset


def _smooth_noise(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """Return (size, size) float32 noise with about unit variance and features ``cell`` px wide."""
    small = max(size // cell, 2)
    noise = rng.standard_normal((small, small), dtype=np.float32)
    return cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)


def draw_marker(image: np.ndarray, letter: str, appearance: Appearance) -> None:
    """Burn a bright side-marker letter into a corner of ``image`` (uint8, in place)."""
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
    # Soft cap: two overlapping bones look brighter than one, but not twice as bright.
    bone_map *= np.float32(1.6) / (1.0 + np.float32(0.6) * bone_map)
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
