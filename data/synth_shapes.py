"""Bone outlines and the soft-tissue envelope of a synthetic hand, for ``data.synth``.

Everything here works in the canonical left-hand frame of ``data.synth_anatomy`` (unit: length
of the third metacarpal, ``v`` towards the fingertips, ``u`` towards the thumb).
"""

from __future__ import annotations

import math

import numpy as np

from data.classes import CLASSES
from data.synth_anatomy import (
    BONE_WIDTHS,
    CARPALS,
    RADIUS_OUTLINE,
    RAYS,
    SPREAD_ABDUCTION_DEG,
    ULNA_OUTLINE,
    WRIST_PIVOT,
    Anatomy,
    Bone,
    TissuePart,
)

# Density of the inside of a bone relative to its cortex: low in the marrow cavity of tubular
# shafts, higher in trabecular bone (the bone ends are given TRABECULAR_DENSITY by the renderer).
_SHAFT_MARROW = 0.15
_CARPAL_MARROW = 0.5
# Soft tissue beyond the tip of the distal phalanx (about 5 mm), canonical units.
_FINGERTIP_PULP = 0.08


def direction(angle_deg: float) -> np.ndarray:
    """Return the unit vector (u, v) at ``angle_deg`` from +v towards +u."""
    angle = math.radians(angle_deg)
    return np.array([math.sin(angle), math.cos(angle)])


def _smoothstep_profile(t: np.ndarray, knots: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Interpolate ``values`` at ``knots`` with a smoothstep between neighbouring knots."""
    index = np.clip(np.searchsorted(knots, t, side="right") - 1, 0, len(knots) - 2)
    span = knots[index + 1] - knots[index]
    s = np.clip((t - knots[index]) / span, 0.0, 1.0)
    s = s * s * (3.0 - 2.0 * s)
    return values[index] * (1.0 - s) + values[index + 1] * s


def long_bone_outline(
    start: np.ndarray,
    angle_deg: float,
    length: float,
    widths: tuple[float, float, float],
    concavity: float = 0.5,
    n_side: int = 14,
    n_head: int = 11,
    n_base: int = 7,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outline a tubular bone: flared base with a concave joint surface, waist, rounded head.

    Args:
        start: (2,) centre of the base joint surface (u, v).
        angle_deg: direction of the bone axis, degrees from +v towards +u.
        length: distance from the base lips to the tip of the head along the axis.
        widths: full width at the base, mid-shaft and head.
        concavity: depth of the base's concave joint surface, as a fraction of the base's
            half-width.
        n_side, n_head, n_base: vertices per side, on the head arc and on the base.

    Returns:
        Three arrays. The outline is (2 * n_side + n_head + n_base, 2) float64 vertices, and its
        extent along the axis is exactly ``length`` (base lips at 0, head tip at ``length``).
        The axis is (2, 2): start and end points. The half-width profile is (K, 2) rows of
        (fraction of ``length``, half-width) from base to tip.
    """
    base_w, shaft_w, head_w = widths
    # The head is half an ellipse, a little flatter than a semicircle.
    head_radius = min(0.4 * head_w, 0.4 * length)
    side_end = length - head_radius
    knots = np.array([0.0, 0.12, 0.35, 0.65, 0.85, 1.0]) * side_end
    half_widths = 0.5 * np.array(
        [base_w, 0.6 * base_w + 0.4 * shaft_w, shaft_w, shaft_w, 0.3 * shaft_w + 0.7 * head_w, head_w]
    )

    # Sides, denser near the base so that its rounded corners keep their shape.
    t_side = side_end * np.linspace(0.0, 1.0, n_side) ** 1.3
    half_w = _smoothstep_profile(t_side, knots, half_widths)
    corner = min(0.3 * base_w, 0.3 * side_end)
    rounding = np.sqrt(np.clip(1.0 - (1.0 - t_side / corner) ** 2, 0.0, 1.0))
    half_w = np.where(t_side < corner, half_w * (0.8 + 0.2 * rounding), half_w)

    theta = np.linspace(0.0, math.pi, n_head + 2)[1:-1]
    head_t = side_end + head_radius * np.sin(theta)
    head_x = half_w[-1] * np.cos(theta)

    base_x = np.linspace(-half_w[0], half_w[0], n_base + 2)[1:-1]
    base_t = concavity * half_w[0] * (1.0 - (base_x / half_w[0]) ** 2)

    t = np.concatenate([t_side, head_t, t_side[::-1], base_t])
    x = np.concatenate([half_w, head_x, -half_w[::-1], base_x])
    axis = direction(angle_deg)
    normal = np.array([axis[1], -axis[0]])
    polygon = start[None, :] + t[:, None] * axis[None, :] + x[:, None] * normal[None, :]

    cap = theta <= 0.5 * math.pi
    profile_t = np.concatenate([t_side, head_t[cap], [length]]) / length
    profile_w = np.concatenate([half_w, head_x[cap], [0.0]])
    end_points = np.stack([start, start + length * axis])
    return polygon, end_points, np.stack([profile_t, profile_w], axis=1)


def superellipse_outline(
    centre: np.ndarray,
    axes: tuple[float, float],
    rotation_deg: float,
    exponent: float,
    harmonics: np.ndarray,
    n: int = 36,
) -> np.ndarray:
    """Outline a perturbed superellipse (a carpal bone).

    Args:
        centre: (2,) centre (u, v).
        axes: semi-axes (a, b); ``a`` lies at ``rotation_deg`` from +u towards +v.
        rotation_deg: rotation of the ``a`` axis.
        exponent: superellipse exponent, 2 for an ellipse, larger for a boxier outline.
        harmonics: (K, 2) cosine and sine amplitudes of harmonics 2..K+1 of the radius.
        n: number of vertices.

    Returns:
        (n, 2) float64 vertices.
    """
    theta = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    cos, sin = np.cos(theta), np.sin(theta)
    radius = (np.abs(cos) ** exponent + np.abs(sin) ** exponent) ** (-1.0 / exponent)
    for k, (a_cos, a_sin) in enumerate(harmonics, start=2):
        radius *= 1.0 + a_cos * np.cos(k * theta) + a_sin * np.sin(k * theta)
    local = np.stack([axes[0] * radius * cos, axes[1] * radius * sin], axis=1)
    rotation = math.radians(rotation_deg)
    c, s = math.cos(rotation), math.sin(rotation)
    return centre[None, :] + local @ np.array([[c, s], [-s, c]])


def chaikin(points: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Round the corners of a closed polygon by Chaikin corner cutting."""
    for _ in range(iterations):
        following = np.roll(points, -1, axis=0)
        points = np.stack([0.75 * points + 0.25 * following, 0.25 * points + 0.75 * following], 1)
        points = points.reshape(-1, 2)
    return points


def rotate_about(points: np.ndarray, pivot: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate (N, 2) points about ``pivot`` by ``angle_deg`` from +v towards +u."""
    angle = math.radians(angle_deg)
    c, s = math.cos(angle), math.sin(angle)
    # Rotating +v towards +u is clockwise in (u, v): (u, v) -> (u c + v s, -u s + v c).
    matrix = np.array([[c, -s], [s, c]])
    return (points - pivot) @ matrix + pivot


def build_rays(
    anatomy: Anatomy, spread: float, thumb_abduction: float
) -> tuple[list[Bone], list[TissuePart], np.ndarray]:
    """Lay out the 19 finger bones and the finger soft tissue.

    Args:
        anatomy: the patient's proportions and metacarpal layout.
        spread: finger spread, 1 for the mean atlas pose (see ``SPREAD_ABDUCTION_DEG``).
        thumb_abduction: extra thumb metacarpal angle in degrees (positive away from the palm).

    Returns:
        The bones (canonical units), the soft-tissue parts and the palm points. The tissue is
        one polyline per finger plus the thenar eminence between the thumb and index
        metacarpals. The palm points, (K, 2), are what the palm outline must enclose: the
        metacarpals of the four fingers and the finger webs.
    """
    bones: list[Bone] = []
    tissue: list[TissuePart] = []
    palm_points: list[np.ndarray] = []
    metacarpal_axes: dict[str, np.ndarray] = {}
    for ray, stats in RAYS.items():
        labels = stats["bones"][::-1]  # metacarpal first
        angle = anatomy.angles[ray] + (thumb_abduction if ray == "thumb" else 0.0)
        # Spreading the fingers fans the metacarpals a little too.
        angle += 0.25 * (spread - 1.0) * SPREAD_ABDUCTION_DEG[ray]
        relative = list(anatomy.relative[ray])
        relative[0] += (spread - 1.0) * SPREAD_ABDUCTION_DEG[ray]

        metacarpal_axis = direction(angle)
        joint = anatomy.bases[ray] - anatomy.joint_overlap[labels[0]] * metacarpal_axis
        centreline = [joint]
        for index, label in enumerate(labels):
            if index > 0:
                angle += relative[index - 1]
                joint = joint - anatomy.joint_overlap[label] * direction(angle)
            widths = tuple(anatomy.width_scale * w for w in BONE_WIDTHS[label])
            length = anatomy.lengths[label]
            polygon, axis, profile = long_bone_outline(joint, angle, length, widths)
            bones.append(
                Bone(label, polygon, radius=0.5 * widths[1], cortex=0.15 * widths[1],
                     marrow=_SHAFT_MARROW, axis=axis, profile=profile)
            )
            if index == 0:
                metacarpal_axes[ray] = axis
                if ray != "thumb":
                    palm_points.append(polygon)
            elif index == 1 and ray != "thumb":
                # The skin web between fingers reaches about a third up the proximal phalanx.
                palm_points.append((joint + 0.3 * length * direction(angle))[None, :])
            joint = joint + length * direction(angle)
            centreline.append(joint)

        # Soft tissue of the finger from the metacarpal head on. The line's round cap ends
        # _FINGERTIP_PULP past the bone tip.
        finger_width = 1.3 * BONE_WIDTHS[labels[1]][0] * anatomy.width_scale
        tip = joint + (_FINGERTIP_PULP - 0.5 * finger_width) * direction(angle)
        finger = np.array(centreline[1:-1] + [tip] if ray != "thumb" else centreline[:-1] + [tip])
        tissue.append(TissuePart(finger, width=finger_width, thickness=0.7))

    # The thenar eminence fills the space between the thumb and index metacarpals. Its free
    # edge, the thumb web, runs from the thumb's metacarpal neck to the index shaft.
    thumb_base, thumb_head = metacarpal_axes["thumb"]
    index_base, index_head = metacarpal_axes["index"]
    thenar = np.array(
        [thumb_base, thumb_base + 0.75 * (thumb_head - thumb_base),
         index_base + 0.45 * (index_head - index_base), index_base]
    )
    tissue.append(TissuePart(thenar, width=0.0, thickness=0.8))
    return bones, tissue, np.concatenate(palm_points)


def build_carpals(anatomy: Anatomy) -> list[Bone]:
    """Outline the eight carpal bones (canonical units)."""
    bones = []
    for label, ((u, v), (a, b), rotation, exponent, (h2, h3)) in CARPALS.items():
        du, dv, axis_scale, d_rotation = anatomy.carpal_jitter[label]
        harmonics = np.array([[h2, 0.5 * h2], [h3, -0.5 * h3]])
        axes = (a * axis_scale, b * axis_scale)
        centre = np.array([u + du, v + dv])
        polygon = superellipse_outline(centre, axes, rotation + d_rotation, exponent, harmonics)
        bones.append(
            Bone(label, polygon, radius=min(axes), cortex=0.12 * min(axes), marrow=_CARPAL_MARROW)
        )
    return bones


def build_forearm() -> tuple[list[Bone], TissuePart]:
    """Outline the radius and the ulna and the forearm soft tissue (canonical units)."""
    radius = chaikin(np.array(RADIUS_OUTLINE, dtype=np.float64))
    ulna = chaikin(np.array(ULNA_OUTLINE, dtype=np.float64))
    bones = [
        Bone("Radius", radius, radius=0.12, cortex=0.035, marrow=_SHAFT_MARROW),
        Bone("Ulna", ulna, radius=0.07, cortex=0.022, marrow=_SHAFT_MARROW),
    ]
    outline = np.array(
        [[0.38, -0.35], [0.45, -0.60], [0.45, -1.2], [0.43, -5.0], [-0.60, -5.0], [-0.60, -1.2],
         [-0.57, -0.60], [-0.48, -0.35]]
    )
    return bones, TissuePart(outline, width=0.0, thickness=1.0)


def palm_outline(points: np.ndarray, margin: float = 0.06) -> np.ndarray:
    """Return a palm outline: the convex hull of ``points`` grown by ``margin``, corners rounded."""
    centre = points.mean(axis=0)
    grown = points + margin * _unit_rows(points - centre)
    return chaikin(grown[_convex_hull_order(grown)], iterations=3)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _convex_hull_order(points: np.ndarray) -> np.ndarray:
    """Indices of the convex hull of (N, 2) points, counter-clockwise (monotone chain)."""
    order = np.lexsort((points[:, 1], points[:, 0]))

    def half(indices: np.ndarray) -> list[int]:
        chain: list[int] = []
        for i in indices:
            while len(chain) >= 2:
                o, a = points[chain[-2]], points[chain[-1]]
                cross = (a[0] - o[0]) * (points[i][1] - o[1]) - (a[1] - o[1]) * (points[i][0] - o[0])
                if cross > 0:
                    break
                chain.pop()
            chain.append(int(i))
        return chain

    lower, upper = half(order), half(order[::-1])
    return np.array(lower[:-1] + upper[:-1])


def build_hand(
    anatomy: Anatomy, spread: float, thumb_abduction: float, wrist_bend: float
) -> tuple[list[Bone], list[TissuePart]]:
    """Lay out all 29 bones and the soft tissue of a left hand in the canonical frame.

    Args:
        anatomy: the patient's anatomy.
        spread: finger spread (1 = mean atlas pose).
        thumb_abduction: extra thumb angle, degrees.
        wrist_bend: radial (+) or ulnar (-) deviation of the hand about the capitate head,
            degrees; the radius and ulna stay put.

    Returns:
        Bones in ``data.classes.CLASSES`` order and tissue parts, forearm first.
    """
    finger_bones, finger_tissue, palm_points = build_rays(anatomy, spread, thumb_abduction)
    carpal_bones = build_carpals(anatomy)
    forearm_bones, forearm_tissue = build_forearm()

    palm_points = np.concatenate([palm_points] + [bone.polygon for bone in carpal_bones])
    palm = TissuePart(palm_outline(palm_points), width=0.0, thickness=0.85)
    hand_tissue = [palm] + finger_tissue

    pivot = np.array(WRIST_PIVOT)
    hand_bones = [
        b.transformed(lambda points: rotate_about(points, pivot, wrist_bend))
        for b in finger_bones + carpal_bones
    ]
    hand_tissue = [
        TissuePart(rotate_about(p.points, pivot, wrist_bend), p.width, p.thickness)
        for p in hand_tissue
    ]
    by_label = {bone.label: bone for bone in hand_bones + forearm_bones}
    ordered = [by_label[label] for label in CLASSES]
    return ordered, [forearm_tissue] + hand_tissue
