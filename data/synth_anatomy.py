"""Bone geometry of a synthetic left hand in a canonical frame, for ``data.synth``.

Canonical frame (u, v): the origin is the base of the third (middle) metacarpal, ``v`` points
along that metacarpal towards the fingertips, ``u`` points across the palm towards the thumb, and
the unit is the length of the third metacarpal (about 64 mm in adults). This is a left hand seen
in a posteroanterior (PA) view with the fingers up, so the thumb is on the image's right and
``image x = u``, ``image y = -v`` before posing. A right hand is the mirror image (``u -> -u``).

Proportions, metacarpal bases and finger angles are summary statistics of 905 real left hands:
the Digital Hand Atlas landmark set (37 expert landmarks per PA radiograph, as redistributed with
christianpayer/MedicalDataAugmentationTool-HeatmapRegression). Bone widths and the carpal and
forearm layout have no landmarks there; they are set from standard adult anatomy and checked by
eye against real radiographs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

# Log length ratio of each finger bone to the third metacarpal (finger-11), from the landmark set
# above. Each bone runs between consecutive landmarks of its ray (metacarpal base -> MCP joint ->
# PIP -> DIP -> tip; thumb base -> MCP -> IP -> tip). A factor model fits the 905 vectors of 18
# log ratios: mean + 3 principal components (loadings = eigenvector * sqrt(eigenvalue) of their
# covariance, 74% of the variance) + an independent residual standard deviation per ratio.
# Samples are clipped to the real 0.5th-99.5th percentiles of the ratio.
# label: (mean log ratio, (loading 1, 2, 3), residual sd, ratio p0.5, ratio p99.5)
LENGTH_RATIO_MODEL: dict[str, tuple[float, tuple[float, float, float], float, float, float]] = {
    "finger-1": (-1.0742, (-0.0412, -0.0259, -0.0076), 0.0432, 0.277, 0.396),
    "finger-2": (-0.7662, (-0.0370, +0.0099, +0.0274), 0.0366, 0.399, 0.531),
    "finger-3": (-0.3674, (-0.0152, +0.0010, +0.0209), 0.0363, 0.622, 0.780),
    "finger-4": (-1.3289, (-0.0502, -0.0333, -0.0045), 0.0276, 0.222, 0.309),
    "finger-5": (-1.0303, (-0.0449, +0.0177, +0.0112), 0.0322, 0.296, 0.407),
    "finger-6": (-0.5262, (-0.0282, +0.0093, +0.0275), 0.0186, 0.527, 0.661),
    "finger-7": (0.0297, (-0.0046, -0.0003, +0.0094), 0.0194, 0.979, 1.093),
    "finger-8": (-1.2566, (-0.0489, -0.0295, -0.0039), 0.0265, 0.240, 0.332),
    "finger-9": (-0.8377, (-0.0427, +0.0168, +0.0090), 0.0282, 0.379, 0.492),
    "finger-10": (-0.4068, (-0.0241, +0.0086, +0.0241), 0.0203, 0.600, 0.733),
    "finger-12": (-1.2370, (-0.0455, -0.0263, -0.0047), 0.0288, 0.247, 0.335),
    "finger-13": (-0.8928, (-0.0434, +0.0218, -0.0000), 0.0265, 0.349, 0.466),
    "finger-14": (-0.4715, (-0.0247, +0.0092, +0.0205), 0.0218, 0.564, 0.683),
    "finger-15": (-0.1174, (-0.0026, +0.0004, +0.0020), 0.0198, 0.839, 0.936),
    "finger-16": (-1.3609, (-0.0546, -0.0417, -0.0154), 0.0363, 0.198, 0.307),
    "finger-17": (-1.2589, (-0.0624, +0.0592, -0.0467), 0.0161, 0.184, 0.343),
    "finger-18": (-0.7223, (-0.0307, +0.0139, +0.0170), 0.0262, 0.430, 0.541),
    "finger-19": (-0.2029, (-0.0074, +0.0012, +0.0070), 0.0258, 0.759, 0.872),
}

# Rays, fingertip bone first (as in data.classes.GROUPS), with landmark statistics in the
# canonical frame: metacarpal base (u, v) mean and sd, metacarpal angle mean and sd (degrees from
# +v towards +u, i.e. towards the thumb), and the mean angle of each phalanx relative to the bone
# before it, proximal phalanx first, with its sd.
RAYS: dict[str, dict[str, object]] = {
    "thumb": {
        "bones": ("finger-1", "finger-2", "finger-3"),
        "base": ((0.404, -0.125), (0.037, 0.040)),
        "angle": (36.6, 6.6),
        "relative": ((-9.1, 8.9), (2.3, 7.5)),
    },
    "index": {
        "bones": ("finger-4", "finger-5", "finger-6", "finger-7"),
        "base": ((0.198, -0.023), (0.020, 0.015)),
        "angle": (8.9, 1.6),
        "relative": ((2.8, 4.8), (-2.3, 2.7), (-3.1, 2.9)),
    },
    "middle": {
        "bones": ("finger-8", "finger-9", "finger-10", "finger-11"),
        "base": ((0.0, 0.0), (0.0, 0.0)),
        "angle": (0.0, 0.0),
        "relative": ((1.9, 4.1), (-2.1, 2.3), (-4.2, 2.9)),
    },
    "ring": {
        "bones": ("finger-12", "finger-13", "finger-14", "finger-15"),
        "base": ((-0.163, -0.008), (0.021, 0.015)),
        "angle": (-9.0, 1.6),
        "relative": ((0.9, 5.1), (-0.6, 2.5), (2.0, 2.6)),
    },
    "little": {
        "bones": ("finger-16", "finger-17", "finger-18", "finger-19"),
        "base": ((-0.280, -0.052), (0.030, 0.022)),
        "angle": (-21.7, 2.7),
        "relative": ((-1.4, 8.4), (0.9, 4.0), (5.1, 4.5)),
    },
}

# Abduction of each proximal phalanx per unit of finger spread (degrees): spread 1 is the mean
# atlas pose, spread 0.3 fingers nearly closed, spread 1.5 spread wide.
SPREAD_ABDUCTION_DEG: dict[str, float] = {
    "thumb": 12.0,
    "index": 10.0,
    "middle": 2.0,
    "ring": -7.0,
    "little": -15.0,
}

# Full width of each finger bone at its base, mid-shaft and head (canonical units), from typical
# adult bone widths (a middle metacarpal shaft is about 8 mm of its 64 mm length).
BONE_WIDTHS: dict[str, tuple[float, float, float]] = {
    "finger-1": (0.19, 0.11, 0.15),
    "finger-2": (0.23, 0.14, 0.18),
    "finger-3": (0.24, 0.14, 0.21),
    "finger-4": (0.14, 0.075, 0.105),
    "finger-5": (0.17, 0.11, 0.13),
    "finger-6": (0.21, 0.13, 0.16),
    "finger-7": (0.20, 0.12, 0.19),
    "finger-8": (0.145, 0.08, 0.11),
    "finger-9": (0.18, 0.115, 0.135),
    "finger-10": (0.22, 0.135, 0.17),
    "finger-11": (0.20, 0.12, 0.19),
    "finger-12": (0.14, 0.075, 0.105),
    "finger-13": (0.17, 0.11, 0.13),
    "finger-14": (0.20, 0.125, 0.155),
    "finger-15": (0.17, 0.105, 0.17),
    "finger-16": (0.12, 0.065, 0.09),
    "finger-17": (0.14, 0.09, 0.11),
    "finger-18": (0.17, 0.105, 0.135),
    "finger-19": (0.17, 0.10, 0.16),
}

# Carpal bones as perturbed superellipses: centre (u, v), semi-axes (a, b), rotation of the a-axis
# from +u towards +v (degrees), superellipse exponent (2 is an ellipse, larger is boxier), and
# 2nd/3rd harmonic amplitudes of the outline radius. They are placed so that neighbours overlap
# slightly and the distal row overlaps the metacarpal bases, as in PA views.
CARPALS: dict[str, tuple[tuple[float, float], tuple[float, float], float, float, tuple[float, float]]] = {
    "Trapezium": ((0.325, -0.200), (0.125, 0.105), 35.0, 2.6, (0.04, 0.05)),
    "Trapezoid": ((0.175, -0.125), (0.095, 0.092), 10.0, 2.8, (0.05, 0.04)),
    "Capitate": ((0.000, -0.210), (0.115, 0.200), 0.0, 2.6, (0.03, 0.05)),
    "Hamate": ((-0.195, -0.190), (0.115, 0.150), -10.0, 2.6, (0.04, 0.06)),
    "Scaphoid": ((0.200, -0.430), (0.185, 0.095), 50.0, 2.3, (0.05, 0.05)),
    "Lunate": ((-0.040, -0.475), (0.125, 0.110), 0.0, 2.4, (0.06, 0.05)),
    "Triquetrum": ((-0.225, -0.390), (0.115, 0.100), -30.0, 2.4, (0.05, 0.05)),
    "Pisiform": ((-0.255, -0.355), (0.075, 0.070), 0.0, 2.0, (0.03, 0.03)),
}

# Forearm outlines (canonical units), distal end first. The shafts run far past any image edge
# and are clipped later. The radius is on the thumb side, its styloid reaches the scaphoid, and
# its ulnar corner overlaps the ulnar head (distal radioulnar joint).
RADIUS_OUTLINE: tuple[tuple[float, float], ...] = (
    (0.31, -0.46), (0.335, -0.55), (0.315, -0.70), (0.25, -0.90), (0.205, -1.10), (0.195, -1.40),
    (0.19, -5.0), (-0.05, -5.0), (-0.055, -1.40), (-0.08, -1.05), (-0.17, -0.85), (-0.215, -0.70),
    (-0.22, -0.625), (-0.12, -0.60), (0.0, -0.575), (0.12, -0.545), (0.22, -0.51),
)
ULNA_OUTLINE: tuple[tuple[float, float], ...] = (
    (-0.20, -0.665), (-0.30, -0.645), (-0.40, -0.62), (-0.435, -0.565), (-0.465, -0.60),
    (-0.475, -0.74), (-0.445, -0.95), (-0.41, -1.20), (-0.40, -5.0), (-0.26, -5.0),
    (-0.265, -1.20), (-0.27, -1.0), (-0.24, -0.85), (-0.18, -0.72),
)

# Distance (canonical units) by which a bone starts before the end of the bone proximal to it.
# The lips of its concave base then overlap the head before it in projection, as in PA
# radiographs, while the middle of the joint stays a thin dark gap.
JOINT_OVERLAP_RANGE: tuple[float, float] = (0.01, 0.035)
# Pivot of radial/ulnar deviation of the wrist: the head of the capitate.
WRIST_PIVOT: tuple[float, float] = (0.0, -0.40)


@dataclass(frozen=True)
class Bone:
    """One bone outline with the parameters its shading needs.

    Attributes:
        label: class name from ``data.classes.CLASSES``.
        polygon: (N, 2) float64 outline vertices, in the frame of whatever produced it
            (canonical units, or pixels after ``data.synth_pose.place_hand``).
        radius: half-width of the shaft, same unit as ``polygon``.
        cortex: cortical wall thickness of the shaft, same unit as ``polygon``.
        marrow: density of the shaft's marrow cavity relative to the cortex, in (0, 1).
        axis: (2, 2) base and tip points of a finger bone's axis, or None for other bones.
        profile: (K, 2) rows of (fraction of the axis length, half-width) from base to tip of
            a finger bone, or None.
    """

    label: str
    polygon: np.ndarray
    radius: float
    cortex: float
    marrow: float
    axis: np.ndarray | None = None
    profile: np.ndarray | None = None

    def transformed(self, transform: Callable[[np.ndarray], np.ndarray], scale: float = 1.0) -> Bone:
        """Return the bone with ``transform`` applied to its points and lengths times ``scale``.

        ``transform`` maps (N, 2) points to (N, 2) points and must scale lengths by ``scale``.
        """
        profile = None if self.profile is None else self.profile * np.array([1.0, scale])
        return replace(
            self,
            polygon=transform(self.polygon),
            radius=self.radius * scale,
            cortex=self.cortex * scale,
            axis=None if self.axis is None else transform(self.axis),
            profile=profile,
        )


@dataclass(frozen=True)
class TissuePart:
    """One piece of the soft-tissue envelope: a filled polygon, or a polyline of given width.

    Attributes:
        points: (N, 2) float64 vertices.
        width: line width for a polyline, 0 for a filled polygon (same unit as ``points``).
        thickness: relative soft-tissue thickness (X-ray attenuation), about 0.5-1.
    """

    points: np.ndarray
    width: float
    thickness: float


@dataclass(frozen=True)
class Anatomy:
    """Per-patient anatomy, shared by the left and right hand of one patient ID.

    Attributes:
        lengths: label -> bone length of the 19 finger bones (canonical units; finger-11 is 1).
        bases: ray name -> metacarpal base (u, v).
        angles: ray name -> metacarpal angle in degrees.
        relative: ray name -> phalanx angles relative to the previous bone (degrees, without
            the pose's spread).
        width_scale: factor on all bone widths (sturdy or slender bones).
        carpal_jitter: label -> (du, dv, axis scale, rotation in degrees) for each carpal.
        joint_overlap: label -> overlap of that finger bone with the bone proximal to it.
    """

    lengths: dict[str, float]
    bases: dict[str, np.ndarray]
    angles: dict[str, float]
    relative: dict[str, tuple[float, ...]]
    width_scale: float
    carpal_jitter: dict[str, tuple[float, float, float, float]]
    joint_overlap: dict[str, float]


def sample_length_ratios(rng: np.random.Generator) -> dict[str, float]:
    """Draw the 18 length ratios (bone length / third metacarpal length) of one hand.

    Returns:
        label -> ratio for every finger bone except finger-11, each inside the real hands'
        0.5th-99.5th percentile range.
    """
    factors = rng.standard_normal(3)
    ratios = {}
    for label, (mean, loadings, residual, low, high) in LENGTH_RATIO_MODEL.items():
        log_ratio = mean + float(np.dot(loadings, factors)) + residual * rng.standard_normal()
        ratios[label] = float(np.clip(math.exp(log_ratio), low, high))
    return ratios


def _clipped_normal(rng: np.random.Generator, mean: float, sd: float, limit: float = 2.0) -> float:
    return mean + sd * float(np.clip(rng.standard_normal(), -limit, limit))


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one patient's bone proportions, metacarpal layout and carpal variation."""
    lengths = {"finger-11": 1.0, **sample_length_ratios(rng)}

    bases, angles, relative = {}, {}, {}
    for ray, stats in RAYS.items():
        (mean_u, mean_v), (sd_u, sd_v) = stats["base"]
        bases[ray] = np.array(
            [_clipped_normal(rng, mean_u, 0.7 * sd_u), _clipped_normal(rng, mean_v, 0.7 * sd_v)]
        )
        angles[ray] = _clipped_normal(rng, *stats["angle"])
        relative[ray] = tuple(_clipped_normal(rng, m, 0.6 * sd) for m, sd in stats["relative"])

    carpal_jitter = {
        label: (
            _clipped_normal(rng, 0.0, 0.012),
            _clipped_normal(rng, 0.0, 0.012),
            _clipped_normal(rng, 1.0, 0.05),
            _clipped_normal(rng, 0.0, 5.0),
        )
        for label in CARPALS
    }
    joint_overlap = {
        label: float(rng.uniform(*JOINT_OVERLAP_RANGE)) for label in BONE_WIDTHS
    }
    return Anatomy(
        lengths=lengths,
        bases=bases,
        angles=angles,
        relative=relative,
        width_scale=_clipped_normal(rng, 1.0, 0.06),
        carpal_jitter=carpal_jitter,
        joint_overlap=joint_overlap,
    )
