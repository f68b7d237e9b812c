"""The 29 hand-bone classes in competition order, their anatomical groups and colours.

Masks are multi-label: channel ``i`` of a ``(29, H, W)`` mask is class ``CLASSES[i]``, and
channels overlap where bones overlap in projection. Models use one sigmoid per channel.

Finger numbering: each ray is listed from fingertip to metacarpal, thumb first.

- finger-1..3: thumb (distal phalanx, proximal phalanx, metacarpal)
- finger-4..7: index (distal, middle, proximal phalanx, metacarpal)
- finger-8..11: middle finger, finger-12..15: ring finger, finger-16..19: little finger

NOTE: the competition does not publish this numbering. It is inferred from public competition
code, where index 0 lies on the thumb, index 15 on the little finger, and the thumb's sesamoid
bone is drawn inside finger-3.
"""

from __future__ import annotations

import numpy as np

FINGER_CLASSES: tuple[str, ...] = tuple(f"finger-{i}" for i in range(1, 20))
CARPAL_CLASSES: tuple[str, ...] = (
    "Trapezium",
    "Trapezoid",
    "Capitate",
    "Hamate",
    "Scaphoid",
    "Lunate",
    "Triquetrum",
    "Pisiform",
)
FOREARM_CLASSES: tuple[str, ...] = ("Radius", "Ulna")

CLASSES: tuple[str, ...] = FINGER_CLASSES + CARPAL_CLASSES + FOREARM_CLASSES
NUM_CLASSES: int = len(CLASSES)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}

# Bones of each ray, fingertip first, then the carpals and the forearm.
GROUPS: dict[str, tuple[str, ...]] = {
    "thumb": FINGER_CLASSES[0:3],
    "index": FINGER_CLASSES[3:7],
    "middle": FINGER_CLASSES[7:11],
    "ring": FINGER_CLASSES[11:15],
    "little": FINGER_CLASSES[15:19],
    "carpals": CARPAL_CLASSES,
    "forearm": FOREARM_CLASSES,
}
GROUP_OF: dict[str, str] = {name: group for group, names in GROUPS.items() for name in names}

# Fixed RGB colour per class for overlays: one hue family per group, lighter towards the tip.
_GROUP_BASE_RGB: dict[str, tuple[int, int, int]] = {
    "thumb": (230, 25, 75),
    "index": (245, 130, 48),
    "middle": (255, 225, 25),
    "ring": (60, 180, 75),
    "little": (0, 130, 200),
    "carpals": (145, 30, 180),
    "forearm": (70, 240, 240),
}


def _build_palette() -> np.ndarray:
    palette = np.zeros((NUM_CLASSES, 3), dtype=np.uint8)
    for group, names in GROUPS.items():
        base = np.array(_GROUP_BASE_RGB[group], dtype=np.float64)
        for rank, name in enumerate(names):
            # Blend towards white for bones nearer the tip, towards black for the rest.
            t = rank / max(len(names) - 1, 1)
            if group == "carpals":
                shade = base * (0.45 + 0.55 * t) + 255 * 0.25 * (1 - t)
            else:
                shade = base * (0.55 + 0.45 * t) + 255 * 0.45 * (1 - t)
            palette[CLASS_INDEX[name]] = np.clip(shade, 0, 255).astype(np.uint8)
    return palette


PALETTE: np.ndarray = _build_palette()
"""(29, 3) uint8 RGB colour of each class, in ``CLASSES`` order."""


def class_index(label: str) -> int:
    """Return the channel index of ``label``; raise ValueError listing the valid labels."""
    try:
        return CLASS_INDEX[label]
    except KeyError:
        raise ValueError(
            f"unknown class label {label!r}; expected one of the 29 competition labels: "
            + ", ".join(CLASSES)
        ) from None
