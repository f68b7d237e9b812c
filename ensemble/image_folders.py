"""Find the images to predict or check in a folder, and read their sizes from the headers."""

from __future__ import annotations

import os
from pathlib import Path

from data.images import read_image_size
from data.layout import Sample, discover, list_images


def find_images(folder: str | os.PathLike) -> list[Sample]:
    """List the images of a folder.

    Args:
        folder: a competition root (its ``test/DCM`` images are used), or any folder of
            images, flat or nested (searched recursively).

    Returns:
        Samples with unique ``image_name`` (the file name), in a stable sorted order.

    Raises:
        data.layout.LayoutError: when the folder is missing, contains no image, or two images
            share a file name.
    """
    top = Path(folder).expanduser().resolve()
    if (top / "test" / "DCM").is_dir():
        test_images = discover(top).test
        if test_images:
            return test_images
    return list_images(top)


def image_sizes(samples: list[Sample]) -> dict[str, tuple[int, int]]:
    """Map each image name to its ``(H, W)``, read from the file header.

    Raises:
        data.images.ImageReadError: when a header cannot be read.
    """
    return {sample.image_name: read_image_size(sample.image_path) for sample in samples}


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"HxW"`` (for example ``"2048x2048"``) into ``(H, W)``.

    Raises:
        ValueError: when the text is not two positive integers joined by ``x``.
    """
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise ValueError(f"invalid image size {text!r}; expected HEIGHTxWIDTH, e.g. 2048x2048")
    height, width = int(parts[0]), int(parts[1])
    if height < 1 or width < 1:
        raise ValueError(f"invalid image size {text!r}; height and width must be >= 1")
    return height, width
