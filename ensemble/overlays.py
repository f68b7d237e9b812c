"""PNG overlays: predicted bones in the class palette, and prediction errors against the truth.

All images are RGB uint8 arrays (H, W, 3) at the radiograph's own size. Masks are (29, H, W) in
``data.classes.CLASSES`` order, with any non-zero value as foreground.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from data.classes import NUM_CLASSES, PALETTE

TRUE_POSITIVE_RGB = (40, 200, 70)
FALSE_POSITIVE_RGB = (255, 40, 40)
FALSE_NEGATIVE_RGB = (40, 120, 255)
BOTH_ERRORS_RGB = (255, 0, 255)
"""Colour of a pixel that is a false positive of one class and a false negative of another."""


def draw_masks(
    image: np.ndarray, masks: np.ndarray, alpha: float = 0.45, palette: np.ndarray = PALETTE
) -> np.ndarray:
    """Blend each class's mask in its palette colour over a grayscale radiograph.

    Classes are blended in ``CLASSES`` order, so where bones overlap the later class is on top,
    and every class's outline is drawn at full colour to keep overlapping bones apart.

    Args:
        image: (H, W) uint8 grayscale radiograph.
        masks: (29, H, W) masks.
        alpha: opacity of the fill, in [0, 1].
        palette: (29, 3) uint8 RGB colours.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    _check_pair(image, masks)
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    for channel in range(NUM_CLASSES):
        mask = masks[channel]
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            continue
        # Blend inside the bounding rows only: most of the image is untouched by one bone.
        band = slice(rows[0], rows[-1] + 1)
        region = rgb[band]
        inside = mask[band] != 0
        colour = palette[channel].astype(np.float32)
        region[inside] = ((1 - alpha) * region[inside] + alpha * colour).astype(np.uint8)
        contours, _ = cv2.findContours(
            inside.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(region, contours, -1, tuple(int(v) for v in palette[channel]), 1)
    return rgb


def draw_errors(
    image: np.ndarray, prediction: np.ndarray, truth: np.ndarray, alpha: float = 0.6
) -> np.ndarray:
    """Colour true positives, false positives and false negatives over a radiograph.

    A pixel is a false positive when some class predicts it without the truth, a false
    negative when some class misses it, and a true positive when some class predicts it
    correctly and neither error applies. The colours are ``FALSE_POSITIVE_RGB`` (red),
    ``FALSE_NEGATIVE_RGB`` (blue), ``BOTH_ERRORS_RGB`` (magenta) and ``TRUE_POSITIVE_RGB``
    (green, drawn fainter).

    Args:
        image: (H, W) uint8 grayscale radiograph.
        prediction: (29, H, W) predicted masks.
        truth: (29, H, W) true masks.
        alpha: opacity of the error colours; true positives use half of it.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    _check_pair(image, prediction)
    _check_pair(image, truth)
    predicted = prediction != 0
    true = truth != 0
    false_positive = np.any(predicted & ~true, axis=0)
    false_negative = np.any(true & ~predicted, axis=0)
    true_positive = np.any(predicted & true, axis=0) & ~false_positive & ~false_negative

    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    layers = (
        (true_positive, TRUE_POSITIVE_RGB, alpha / 2),
        (false_positive & ~false_negative, FALSE_POSITIVE_RGB, alpha),
        (false_negative & ~false_positive, FALSE_NEGATIVE_RGB, alpha),
        (false_positive & false_negative, BOTH_ERRORS_RGB, alpha),
    )
    for where, colour, opacity in layers:
        if where.any():
            blended = (1 - opacity) * rgb[where] + opacity * np.array(colour, np.float32)
            rgb[where] = blended.astype(np.uint8)
    return rgb


def add_caption(rgb: np.ndarray, lines: list[str]) -> np.ndarray:
    """Write text lines in the top-left corner of an RGB image, in place, scaled to its size."""
    scale = max(rgb.shape[1] / 1200.0, 0.4)
    thickness = max(int(round(2 * scale)), 1)
    line_height = int(32 * scale)
    for number, text in enumerate(lines, start=1):
        origin = (int(10 * scale), number * line_height)
        cv2.putText(rgb, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2)
        cv2.putText(rgb, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness)
    return rgb


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image as PNG, creating the folder.

    Raises:
        OSError: when OpenCV cannot write the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write overlay PNG {path}; check the folder and free space")
    return path


def _check_pair(image: np.ndarray, masks: np.ndarray) -> None:
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W) uint8 image, got {image.shape} {image.dtype}")
    if masks.shape != (NUM_CLASSES, *image.shape):
        raise ValueError(
            f"masks have shape {masks.shape}, expected ({NUM_CLASSES}, {image.shape[0]}, "
            f"{image.shape[1]}) for the image"
        )
