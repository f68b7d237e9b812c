"""Read radiographs as one grayscale uint8 channel at the file's own size.

Supported files: PNG (8- and 16-bit, grayscale, grayscale with alpha, palette, RGB, RGBA) and
JPEG; OpenCV decodes by content, so BMP and TIFF also load. Policies:

- 16-bit images: the range of values the image uses, ``[min, max]``, is stretched linearly to
  ``0..255`` and rounded, because radiographs stored in 16 bits often fill only 10 to 12 of them.
  An image with a single value (``min == max``) becomes all zeros. The same stretch applies to
  the other pixel types OpenCV can return from TIFF (signed integers, 32- and 64-bit floats);
  a float image with NaN or infinity is rejected.
- Colour images: converted with OpenCV's ITU-R BT.601 luma weights
  (``0.299 R + 0.587 G + 0.114 B``). A palette PNG is expanded to its colours first.
- Alpha channels are dropped, not composited: a transparent pixel keeps its colour value.
- EXIF orientation in JPEG files is ignored. The array is the pixel grid as stored, so its size
  is the width and height in the file header, and predictions written at that size line up with
  the stored pixels. A viewer that applies the EXIF tag shows the image rotated.

Any failure raises :class:`ImageReadError`, a ``ValueError`` naming the path and the reason,
and never returns a blank image.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""File suffixes (lower case) that folder scans treat as images."""


class ImageReadError(ValueError):
    """An image file is missing, empty or cannot be decoded; the message names the path."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as a single grayscale channel at its stored size.

    Args:
        path: PNG or JPEG file (see the module docstring for the formats and policies).

    Returns:
        (H, W) uint8 array in 0..255, where H and W are the height and width the file stores.

    Raises:
        ImageReadError: the file is missing, is a folder, is empty, cannot be decoded, or has
            an unsupported channel layout or dtype.
    """
    data = _read_bytes(path)
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise ImageReadError(
            path, "not a decodable image (truncated file or not PNG/JPEG); check the file"
        )
    return _to_gray_uint8(decoded, path)


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """Return ``(H, W)`` of an image from its header, without decoding the pixels.

    The size matches ``read_image(path).shape``: EXIF orientation is ignored by both.
    Pillow (installed with matplotlib) parses the header; a truncated pixel stream is not
    detected here, only by :func:`read_image`.

    Raises:
        ImageReadError: the file is missing, empty, or its header is not an image header.
    """
    from PIL import Image, UnidentifiedImageError

    _check_file(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(path, f"no readable image header ({error})") from None
    return int(height), int(width)


def _check_file(path: str | os.PathLike) -> None:
    file_path = Path(path)
    if not file_path.exists():
        raise ImageReadError(path, "file not found")
    if not file_path.is_file():
        raise ImageReadError(path, "not a regular file")
    if file_path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)")


def _read_bytes(path: str | os.PathLike) -> bytes:
    _check_file(path)
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ImageReadError(path, f"file cannot be opened ({error.strerror})") from None


def _to_gray_uint8(decoded: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Convert a decoded (H, W) or (H, W, C) array of any OpenCV pixel type to (H, W) uint8."""
    if decoded.ndim == 3:
        decoded = _colour_to_gray(decoded, path)
    if decoded.ndim != 2:
        raise ImageReadError(path, f"unsupported decoded shape {decoded.shape}")

    if decoded.dtype == np.uint8:
        return np.ascontiguousarray(decoded)
    if np.issubdtype(decoded.dtype, np.floating) and not np.isfinite(decoded).all():
        raise ImageReadError(path, "float pixels contain NaN or infinity")
    if np.issubdtype(decoded.dtype, np.integer) or np.issubdtype(decoded.dtype, np.floating):
        return stretch_to_uint8(decoded)
    raise ImageReadError(path, f"unsupported pixel type {decoded.dtype}")


def _colour_to_gray(decoded: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    channels = decoded.shape[2]
    if channels == 1:
        return decoded[:, :, 0]
    if channels == 2:  # gray + alpha
        return decoded[:, :, 0]
    if channels not in (3, 4):
        raise ImageReadError(path, f"unsupported number of channels: {channels}")

    if decoded.dtype not in (np.uint8, np.uint16, np.float32):
        # cvtColor accepts only these three types; float32 represents int16 values exactly.
        decoded = decoded.astype(np.float32)
    code = cv2.COLOR_BGR2GRAY if channels == 3 else cv2.COLOR_BGRA2GRAY
    return cv2.cvtColor(decoded, code)


def stretch_to_uint8(image: np.ndarray) -> np.ndarray:
    """Stretch the used value range ``[min, max]`` of an image linearly to 0..255.

    Args:
        image: (H, W) integer or finite float array, e.g. uint16.

    Returns:
        (H, W) uint8 array, ``round((v - min) * 255 / (max - min))``; all zeros when the image
        contains a single value.
    """
    values = image.astype(np.float64)
    low = values.min()
    high = values.max()
    if high == low:
        return np.zeros(image.shape, dtype=np.uint8)
    # Multiplying before dividing keeps integer inputs exact, so halves round as documented.
    scaled = (values - low) * 255.0 / (high - low)
    return np.rint(scaled).astype(np.uint8)
