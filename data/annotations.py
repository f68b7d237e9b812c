"""Read the competition's polygon JSON files and rasterise them into 29-channel masks.

File format (other keys, at any level, are ignored)::

    {"annotations": [{"label": "finger-1", "points": [[x, y], ...]}, ...]}

``x`` is the column and ``y`` the row of a pixel centre in the full-size image, so the point
``[0, 0]`` is the centre of the top-left pixel.

Defect policy. Errors raise :class:`AnnotationError` (a ``ValueError``); warnings are
:class:`AnnotationWarning` through :func:`warnings.warn`. Both name the file and the label.

=====================================  =========  ============================================
defect                                 outcome    what happens
=====================================  =========  ============================================
JSON file missing                      error      "file not found"
JSON unreadable (syntax, encoding)     error      the parser's message, with line and column
                                                  for syntax errors
no ``annotations`` list                error      names the top-level keys that were found
entry not an object / no label/points  error      names the entry's position in the list
label not in ``data.classes.CLASSES``  error      lists the 29 valid labels
coordinates not numbers, NaN or inf    error      names the label
a coordinate beyond +-1e6 pixels       error      names the label (far beyond any radiograph)
fewer than 3 points                    warning    the polygon is skipped (it has no area)
nested lists ``[[[x, y], ...], ...]``  warning    each inner list is read as one polygon of
                                                  the label, and the polygons are unioned
float coordinates                      accepted   rasterised at sub-pixel precision
the same label twice                   warning    the polygons are unioned in one channel
points outside the image               warning    the polygon is clipped to the image
                                                  (:func:`rasterize` warns, it knows the size)
``annotations`` is an empty list       warning    the mask is all zeros
an image without JSON, or the reverse  problem    reported by ``data.layout.discover``
=====================================  =========  ============================================

Rasterising. :func:`rasterize` scales the polygon coordinates to the output size and fills
them there, so a 2048x2048 annotation becomes a 256x256 mask without a full-size mask in
between. Two rules apply:

- At the image's own size the mask equals ``cv2.fillPoly`` on the coordinates rounded to whole
  pixels, as public training code for this competition draws its masks: every pixel the
  outline touches is inside.
- At any other size a pixel is inside when its centre lies inside the scaled polygon (even-odd
  rule, scanline rows half-open at the bottom, columns closed). This is close to downsampling
  the full-size mask by area, without the half-pixel outward growth that ``cv2.fillPoly``
  would add at the small size.

Masks are multi-label: overlapping bones overlap in the output channels.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from data.classes import CLASS_INDEX, CLASSES, NUM_CLASSES

MAX_ABS_COORDINATE = 1e6
"""Largest absolute coordinate, in pixels, that a file may contain."""


class AnnotationError(ValueError):
    """An annotation file is missing, unreadable or has an invalid entry."""


class AnnotationWarning(UserWarning):
    """A defect in an annotation file that was corrected as the module docstring describes."""


@dataclass(frozen=True, eq=False)
class Annotation:
    """One polygon of one class.

    Attributes:
        label: class name, one of ``data.classes.CLASSES``.
        points: (N, 2) float64 array of ``x, y`` pixel coordinates in the full-size image,
            N >= 3.
        source: file the polygon came from, used in messages; empty when unknown.
    """

    label: str
    points: np.ndarray
    source: str = field(default="")


def load_annotations(json_path: str | os.PathLike) -> list[Annotation]:
    """Read the polygons of one annotation JSON file.

    Args:
        json_path: competition JSON file (format in the module docstring).

    Returns:
        One :class:`Annotation` per polygon, in file order. A nested point list yields
        several annotations of the same label; polygons with fewer than 3 points are left out.

    Raises:
        AnnotationError: the file is missing or unreadable, or an entry is invalid (see the
            policy table in the module docstring).

    Warns:
        AnnotationWarning: a polygon with fewer than 3 points, nested point lists, the same
            label twice, or no annotations at all.
    """
    path = Path(json_path)
    entries = _read_entries(path)
    if not entries:
        _warn(f"annotation file {path} contains no annotations; its mask is all zeros")

    annotations: list[Annotation] = []
    for position, entry in enumerate(entries):
        label, polygons = _parse_entry(entry, position, path)
        for points in polygons:
            if len(points) < 3:
                _warn(
                    f"annotation file {path}, label {label!r}: polygon has {len(points)} "
                    "point(s), at least 3 are needed; the polygon is skipped"
                )
                continue
            annotations.append(Annotation(label, points, str(path)))

    _warn_repeated_labels(entries, path)
    return annotations


def _read_entries(path: Path) -> list:
    if not path.is_file():
        reason = "file not found" if not path.exists() else "not a regular file"
        raise AnnotationError(f"cannot read annotation file {path}: {reason}")
    try:
        # utf-8-sig also accepts files that start with a byte-order mark.
        with path.open("r", encoding="utf-8-sig") as stream:
            document = json.load(stream)
    except json.JSONDecodeError as error:
        raise AnnotationError(
            f"cannot read annotation file {path}: invalid JSON at line {error.lineno}, "
            f"column {error.colno}: {error.msg}"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise AnnotationError(f"cannot read annotation file {path}: {error}") from None

    if not isinstance(document, dict) or not isinstance(document.get("annotations"), list):
        found = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise AnnotationError(
            f"annotation file {path} has no 'annotations' list (found {found}); expected "
            '{"annotations": [{"label": "finger-1", "points": [[x, y], ...]}, ...]}'
        )
    return document["annotations"]


def _parse_entry(entry: object, position: int, path: Path) -> tuple[str, list[np.ndarray]]:
    """Validate one entry; return its label and its polygons as (N, 2) float64 arrays."""
    if not isinstance(entry, dict) or "label" not in entry or "points" not in entry:
        raise AnnotationError(
            f"annotation file {path}, entry {position}: expected an object with 'label' and "
            f"'points', found {_short_repr(entry)}"
        )
    label = entry["label"]
    if not isinstance(label, str) or label not in CLASS_INDEX:
        raise AnnotationError(
            f"annotation file {path}, entry {position}: unknown label {label!r}; expected one "
            "of the 29 competition labels: " + ", ".join(CLASSES)
        )

    raw_points = entry["points"]
    if _is_nested_polygon_list(raw_points):
        _warn(
            f"annotation file {path}, label {label!r}: points is a list of {len(raw_points)} "
            "point lists; each is read as one polygon of this label and they are unioned"
        )
        polygons = [_to_points(part, label, path) for part in raw_points]
    else:
        polygons = [_to_points(raw_points, label, path)]
    return label, polygons


def _is_nested_polygon_list(raw_points: object) -> bool:
    return (
        isinstance(raw_points, list)
        and len(raw_points) > 0
        and all(isinstance(part, list) for part in raw_points)
        and all(len(part) > 0 and isinstance(part[0], list) for part in raw_points)
    )


def _to_points(raw_points: object, label: str, path: Path) -> np.ndarray:
    invalid = AnnotationError(
        f"annotation file {path}, label {label!r}: points must be a list of [x, y] number "
        f"pairs, found {_short_repr(raw_points)}"
    )
    if not isinstance(raw_points, list):
        raise invalid
    for point in raw_points:
        if not isinstance(point, list) or len(point) != 2:
            raise invalid
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point):
            raise invalid

    points = np.asarray(raw_points, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise AnnotationError(
            f"annotation file {path}, label {label!r}: coordinates contain NaN or infinity"
        )
    if points.size and np.abs(points).max() > MAX_ABS_COORDINATE:
        raise AnnotationError(
            f"annotation file {path}, label {label!r}: coordinate {np.abs(points).max():g} is "
            f"beyond +-{MAX_ABS_COORDINATE:g} pixels; coordinates must be image pixels"
        )
    return points


def _warn_repeated_labels(entries: list, path: Path) -> None:
    counts = Counter(entry["label"] for entry in entries)
    for label, count in sorted(counts.items()):
        if count > 1:
            _warn(
                f"annotation file {path}, label {label!r} appears {count} times; its polygons "
                "are unioned in one channel"
            )


def _short_repr(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _warn(message: str) -> None:
    warnings.warn(message, AnnotationWarning, stacklevel=3)


def points_outside(annotation: Annotation, image_size: tuple[int, int]) -> int:
    """Count the points of ``annotation`` that lie outside the pixel grid of ``image_size``.

    The grid of an (H, W) image spans ``-0.5 <= x <= W - 0.5`` and ``-0.5 <= y <= H - 0.5``
    in pixel-centre coordinates.
    """
    height, width = image_size
    x = annotation.points[:, 0]
    y = annotation.points[:, 1]
    outside = (x < -0.5) | (x > width - 0.5) | (y < -0.5) | (y > height - 0.5)
    return int(outside.sum())


def rasterize(
    annotations: Iterable[Annotation],
    image_size: tuple[int, int],
    out_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Fill the polygons into a multi-label mask at ``out_size``.

    Args:
        annotations: polygons from :func:`load_annotations`, in full-size image coordinates.
        image_size: ``(H, W)`` of the image the coordinates refer to.
        out_size: ``(h, w)`` of the mask; defaults to ``image_size``. Any aspect ratio works:
            x is scaled by ``w / W`` and y by ``h / H``.

    Returns:
        (29, h, w) uint8 array of 0/1 in ``data.classes.CLASSES`` order. Channels overlap where
        bones overlap; a class without a polygon is all zeros.

    Raises:
        ValueError: a size is not two positive integers, a label is unknown, or a polygon
            is not an (N, 2) array with N >= 3.

    Warns:
        AnnotationWarning: a polygon has points outside the image; the part outside is cut off.
    """
    image_size = _check_size(image_size, "image_size")
    out_size = image_size if out_size is None else _check_size(out_size, "out_size")
    full_size = out_size == image_size
    scale = np.array(
        [out_size[1] / image_size[1], out_size[0] / image_size[0]], dtype=np.float64
    )

    masks = np.zeros((NUM_CLASSES,) + out_size, dtype=np.uint8)
    for annotation in annotations:
        channel = CLASS_INDEX.get(annotation.label)
        if channel is None:
            raise ValueError(
                f"unknown class label {annotation.label!r}; expected one of: " + ", ".join(CLASSES)
            )
        points = annotation.points
        if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3:
            raise ValueError(
                f"annotation {annotation.label!r} from {annotation.source or '<unknown>'}: "
                f"points must be an (N, 2) array with N >= 3, got shape {points.shape}"
            )
        outside = points_outside(annotation, image_size)
        if outside:
            _warn(
                f"annotation file {annotation.source or '<unknown>'}, label "
                f"{annotation.label!r}: {outside} of {len(annotation.points)} points lie outside "
                f"the {image_size[1]}x{image_size[0]} image; the polygon is clipped to the image"
            )
        if full_size:
            _fill_polygon_like_opencv(masks[channel], annotation.points)
        else:
            # Map pixel centres: continuous position (x + 0.5) scales by the size ratio.
            scaled = (annotation.points + 0.5) * scale - 0.5
            fill_polygon_centres(masks[channel], scaled)
    return masks


def _check_size(size: Sequence[int], name: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
        valid = height > 0 and width > 0 and all(int(v) == v for v in size)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"{name} must be two positive integers (H, W), got {size!r}")
    return height, width


def _fill_polygon_like_opencv(mask: np.ndarray, points: np.ndarray) -> None:
    """Fill ``points`` rounded to whole pixels into ``mask`` (h, w) uint8 in place."""
    vertices = np.rint(points).astype(np.int32)
    cv2.fillPoly(mask, [vertices], 1, lineType=cv2.LINE_8)


def fill_polygon_centres(mask: np.ndarray, points: np.ndarray) -> None:
    """Set to 1 the pixels of ``mask`` whose centres lie inside the polygon ``points``.

    Args:
        mask: (h, w) uint8 array, changed in place; pixels outside the polygon keep their value.
        points: (N, 2) float64 ``x, y`` vertices in pixel-centre coordinates of ``mask``; they
            may lie outside the mask, and the polygon is clipped to it.

    The even-odd rule decides inside. A row's centre line crosses an edge when
    ``min(y0, y1) <= row < max(y0, y1)``, so a centre exactly on a bottom edge is outside.
    A centre exactly on a left or right edge is inside.
    """
    height, width = mask.shape
    start_vertices = points
    end_vertices = np.roll(points, -1, axis=0)
    y_low = np.minimum(start_vertices[:, 1], end_vertices[:, 1])
    y_high = np.maximum(start_vertices[:, 1], end_vertices[:, 1])

    first_row = max(math.ceil(y_low.min()), 0)
    last_row = min(math.ceil(y_high.max()) - 1, height - 1)
    if first_row > last_row:
        return
    rows = np.arange(first_row, last_row + 1, dtype=np.float64)[:, None]

    # x of each edge where it crosses each row's centre line: (rows, edges), inf when not.
    crosses = (rows >= y_low) & (rows < y_high)
    dy = end_vertices[:, 1] - start_vertices[:, 1]
    safe_dy = np.where(dy == 0, 1.0, dy)
    t = (rows - start_vertices[:, 1]) / safe_dy
    x_cross = start_vertices[:, 0] + t * (end_vertices[:, 0] - start_vertices[:, 0])
    x_cross = np.where(crosses, x_cross, np.inf)
    x_cross.sort(axis=1)
    max_crossings = int(crosses.sum(axis=1).max())
    x_cross = x_cross[:, : max_crossings - max_crossings % 2]

    # Even-odd: fill from crossing 2k to crossing 2k + 1, via +1/-1 marks and a running sum.
    x_enter = x_cross[:, 0::2]
    x_leave = x_cross[:, 1::2]
    valid = np.isfinite(x_leave)
    start = np.clip(np.ceil(np.where(valid, x_enter, 0.0)), 0, width).astype(np.int64)
    stop = np.clip(np.floor(np.where(valid, x_leave, -1.0)) + 1, 0, width).astype(np.int64)
    valid &= start < stop
    row_index = np.broadcast_to(np.arange(rows.shape[0])[:, None], start.shape)
    marks = np.zeros((rows.shape[0], width + 1), dtype=np.int32)
    np.add.at(marks, (row_index[valid], start[valid]), 1)
    np.add.at(marks, (row_index[valid], stop[valid]), -1)
    inside = np.cumsum(marks[:, :width], axis=1) > 0
    mask[first_row : last_row + 1][inside] = 1
