"""Pose of a synthetic hand and its placement in the image, for ``data.synth``."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from data.synth_anatomy import Bone, TissuePart

# Length of the third metacarpal as a fraction of the image side. At 0.23 the hand from the
# fingertips to the distal radius spans about 70% of the image side, with the distal forearm
# below it. NOTE: chosen by eye against real hand radiographs cropped to the hand; the framing of
# the competition's images may differ.
SCALE_RANGE: tuple[float, float] = (0.2, 0.26)
# The hand (everything but the forearm) stays inside this box, as fractions of the image side:
# (left, top, right, bottom).
HAND_BOX: tuple[float, float, float, float] = (0.02, 0.02, 0.98, 0.84)
# Radial (+) or ulnar (-) deviation of a bent wrist, degrees.
WRIST_BEND_RANGE: tuple[float, float] = (18.0, 35.0)


@dataclass(frozen=True)
class Pose:
    """Pose and framing of the hand in one radiograph.

    Attributes:
        side: "L" or "R"; a right hand is the mirror image of the canonical left hand.
        spread: finger spread, 1 for the mean atlas pose, 0.35 nearly closed, 1.5 wide.
        thumb_abduction: extra thumb metacarpal angle away from the palm, degrees.
        wrist_bend: radial (+) or ulnar (-) deviation at the wrist, degrees.
        rotation: in-plane rotation of the whole arm, degrees, counter-clockwise on screen.
        scale: third-metacarpal length as a fraction of the image side, before fitting.
        position: (x, y) in [0, 1]: where the hand sits inside the room left in the frame.
    """

    side: str
    spread: float
    thumb_abduction: float
    wrist_bend: float
    rotation: float
    scale: float
    position: tuple[float, float]


def sample_pose(rng: np.random.Generator, side: str, wrist_bend_probability: float) -> Pose:
    """Draw a pose; with probability ``wrist_bend_probability`` the wrist is clearly bent."""
    if side not in ("L", "R"):
        raise ValueError(f"invalid hand side {side!r}; expected 'L' or 'R'")
    bent = rng.random() < wrist_bend_probability
    if bent:
        sign = -1.0 if rng.random() < 0.6 else 1.0
        wrist_bend = sign * rng.uniform(*WRIST_BEND_RANGE)
    else:
        wrist_bend = 2.5 * float(np.clip(rng.standard_normal(), -2.0, 2.0))
    return Pose(
        side=side,
        spread=float(rng.uniform(0.35, 1.5)),
        thumb_abduction=6.0 * float(np.clip(rng.standard_normal(), -2.0, 2.0)),
        wrist_bend=float(wrist_bend),
        rotation=7.0 * float(np.clip(rng.standard_normal(), -2.5, 2.5)),
        scale=float(rng.uniform(*SCALE_RANGE)),
        position=(float(rng.random()), float(rng.random())),
    )


def _to_image(points: np.ndarray, pose: Pose, scale_px: float) -> np.ndarray:
    """Map canonical (u, v) points to image (x, y) pixels, before translation."""
    u = -points[:, 0] if pose.side == "R" else points[:, 0]
    x, y = u, -points[:, 1]
    angle = math.radians(pose.rotation)
    c, s = math.cos(angle), math.sin(angle)
    # Counter-clockwise on screen, where y points down.
    xr = c * x + s * y
    yr = -s * x + c * y
    return scale_px * np.stack([xr, yr], axis=1)


def clip_polygon(polygon: np.ndarray, size: int) -> np.ndarray:
    """Clip a polygon to the image of side ``size`` (Sutherland-Hodgman).

    The image spans ``-0.5 <= x, y <= size - 0.5`` in pixel-centre coordinates, as in
    ``data.annotations``.

    Returns:
        (M, 2) float64 vertices; empty (0, 2) when the polygon lies outside the image.
    """
    low, high = -0.5, size - 0.5
    points = [tuple(p) for p in polygon]
    for axis, limit, keep_below in ((0, low, False), (0, high, True), (1, low, False), (1, high, True)):
        if not points:
            break

        def inside(p: tuple[float, float]) -> bool:
            return p[axis] <= limit if keep_below else p[axis] >= limit

        clipped = []
        for i, current in enumerate(points):
            previous = points[i - 1]
            if inside(current) != inside(previous):
                t = (limit - previous[axis]) / (current[axis] - previous[axis])
                crossing = [previous[k] + t * (current[k] - previous[k]) for k in (0, 1)]
                crossing[axis] = limit
                clipped.append(tuple(crossing))
            if inside(current):
                clipped.append(current)
        points = clipped
    return np.array(points, dtype=np.float64).reshape(-1, 2)


def place_hand(
    bones: list[Bone], tissue: list[TissuePart], pose: Pose, size: int
) -> tuple[list[Bone], list[TissuePart], float]:
    """Mirror, rotate, scale and move a canonical hand into a ``size`` x ``size`` image.

    The scale shrinks below ``pose.scale`` when the posed hand would not fit in ``HAND_BOX``.
    The radius and ulna run on out of the frame and are clipped to it.

    Args:
        bones: canonical bones, radius and ulna last.
        tissue: canonical tissue parts, forearm first.
        pose: the pose.
        size: image side in pixels.

    Returns:
        Bones and tissue in pixel coordinates (x right, y down), and the third-metacarpal length
        in pixels.
    """
    scale_px = pose.scale * size
    hand_points = np.concatenate(
        [b.polygon for b in bones if b.label not in ("Radius", "Ulna")]
        + [part.points for part in tissue[1:]]
    )
    posed = _to_image(hand_points, pose, 1.0)
    extent = posed.max(axis=0) - posed.min(axis=0)
    left, top, right, bottom = (f * size for f in HAND_BOX)
    scale_px = min(scale_px, (right - left) / extent[0], (bottom - top) / extent[1])

    low = posed.min(axis=0) * scale_px
    high = posed.max(axis=0) * scale_px
    room_x = (right - left) - (high[0] - low[0])
    room_y = min((bottom - top) - (high[1] - low[1]), 0.12 * size)
    offset = np.array(
        [left - low[0] + pose.position[0] * room_x, top - low[1] + pose.position[1] * room_y]
    )

    def move(points: np.ndarray) -> np.ndarray:
        return _to_image(points, pose, scale_px) + offset

    placed_bones = []
    for bone in bones:
        placed = bone.transformed(move, scale_px)
        placed_bones.append(replace(placed, polygon=clip_polygon(placed.polygon, size)))
    placed_tissue = [
        TissuePart(move(p.points), p.width * scale_px, p.thickness) for p in tissue
    ]
    return placed_bones, placed_tissue, scale_px
