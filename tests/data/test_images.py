"""Tests of data.images: formats, policies and errors, with hand-computed pixel values."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from data.images import IMAGE_SUFFIXES, ImageReadError, read_image, read_image_size

GRAY = np.array([[0, 10, 20], [200, 250, 255]], dtype=np.uint8)


def _save_pil(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def test_gray_png_keeps_values(tmp_path: Path) -> None:
    path = _save_pil(Image.fromarray(GRAY, mode="L"), tmp_path / "gray.png")
    image = read_image(path)
    assert image.dtype == np.uint8
    assert image.shape == (2, 3)
    np.testing.assert_array_equal(image, GRAY)


def test_16bit_png_stretches_used_range(tmp_path: Path) -> None:
    # Used range 1000..3000, scale 255 / 2000: 1500 -> 63.75 -> 64, 2000 -> 127.5 -> 128
    # (round half to even), 3000 -> 255.
    values = np.array([[1000, 1500], [2000, 3000]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), values)
    assert Image.open(path).mode.startswith("I;16")
    image = read_image(path)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, [[0, 64], [128, 255]])


def test_16bit_constant_image_is_zero(tmp_path: Path) -> None:
    path = tmp_path / "flat.png"
    assert cv2.imwrite(str(path), np.full((3, 5), 4000, dtype=np.uint16))
    image = read_image(path)
    assert image.shape == (3, 5)
    assert image.dtype == np.uint8
    assert not image.any()


def test_16bit_rgb_png_is_gray_then_stretched(tmp_path: Path) -> None:
    # Equal R, G and B give the same gray value, so only the stretch changes values.
    gray16 = np.array([[0, 30000], [60000, 60000]], dtype=np.uint16)
    path = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(path), np.stack([gray16] * 3, axis=-1))
    np.testing.assert_array_equal(read_image(path), [[0, 128], [255, 255]])


def test_palette_png_uses_palette_colours(tmp_path: Path) -> None:
    palette_image = Image.new("P", (2, 1))
    # Index 0 is pure red, index 1 is pure green.
    palette_image.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    palette_image.putdata([0, 1])
    path = _save_pil(palette_image, tmp_path / "palette.png")
    # BT.601 luma: 0.299 * 255 = 76.2 -> 76, 0.587 * 255 = 149.7 -> 150.
    np.testing.assert_array_equal(read_image(path), [[76, 150]])


def test_rgb_png_uses_bt601_luma(tmp_path: Path) -> None:
    rgb = np.array([[[255, 0, 0], [0, 0, 255], [100, 100, 100]]], dtype=np.uint8)
    path = _save_pil(Image.fromarray(rgb, mode="RGB"), tmp_path / "rgb.png")
    # Blue: 0.114 * 255 = 29.07 -> 29; equal channels keep their value.
    np.testing.assert_array_equal(read_image(path), [[76, 29, 100]])


def test_rgba_png_drops_alpha(tmp_path: Path) -> None:
    rgba = np.array([[[100, 100, 100, 0], [200, 200, 200, 255]]], dtype=np.uint8)
    path = _save_pil(Image.fromarray(rgba, mode="RGBA"), tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(path), [[100, 200]])


def test_gray_alpha_png_drops_alpha(tmp_path: Path) -> None:
    gray_alpha = np.array([[[30, 0], [90, 128]]], dtype=np.uint8)
    path = _save_pil(Image.fromarray(gray_alpha, mode="LA"), tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(path), [[30, 90]])


def test_jpeg_flat_gray_is_exact(tmp_path: Path) -> None:
    # A constant block survives JPEG compression exactly.
    path = tmp_path / "flat.jpg"
    assert cv2.imwrite(str(path), np.full((16, 24), 120, dtype=np.uint8))
    image = read_image(path)
    assert image.shape == (16, 24)
    assert image.dtype == np.uint8
    assert np.all(image == 120)


def test_jpeg_rgb_is_close_to_luma(tmp_path: Path) -> None:
    path = tmp_path / "red.jpeg"
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    _save_pil(Image.fromarray(rgb, mode="RGB"), path, quality=100)
    image = read_image(path)
    assert image.shape == (16, 16)
    assert abs(int(np.median(image)) - 76) <= 2


def test_jpeg_exif_orientation_is_ignored(tmp_path: Path) -> None:
    # Orientation 6 means "rotate 90 degrees clockwise to display"; the stored grid is kept.
    stored = np.zeros((10, 30), dtype=np.uint8)
    stored[:, :15] = 200
    image = Image.fromarray(stored, mode="L")
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save_pil(image, tmp_path / "rotated.jpg", exif=exif, quality=100)
    assert Image.open(path).getexif()[0x0112] == 6

    result = read_image(path)
    assert result.shape == (10, 30)
    assert read_image_size(path) == (10, 30)
    assert result[:, :10].mean() > 190
    assert result[:, 20:].mean() < 10


@pytest.mark.parametrize("height, width", [(1, 1), (7, 300), (301, 5), (64, 64)])
def test_any_size_and_aspect_ratio(tmp_path: Path, height: int, width: int) -> None:
    path = tmp_path / "odd.png"
    values = (np.arange(height * width) % 256).astype(np.uint8).reshape(height, width)
    assert cv2.imwrite(str(path), values)
    np.testing.assert_array_equal(read_image(path), values)
    assert read_image_size(path) == (height, width)


def test_suffix_does_not_decide_decoder(tmp_path: Path) -> None:
    path = tmp_path / "really_png.jpg"
    assert cv2.imwrite(str(path.with_suffix(".png")), GRAY)
    path.write_bytes(path.with_suffix(".png").read_bytes())
    np.testing.assert_array_equal(read_image(path), GRAY)


def _truncated_png(tmp_path: Path) -> Path:
    full = tmp_path / "full.png"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    assert cv2.imwrite(str(full), noise)
    data = full.read_bytes()
    path = tmp_path / "truncated.png"
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_jpeg(tmp_path: Path) -> Path:
    full = tmp_path / "full.jpg"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    assert cv2.imwrite(str(full), noise)
    data = full.read_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    "make_file, reason",
    [
        (lambda tmp: tmp / "missing.png", "file not found"),
        (lambda tmp: tmp, "not a regular file"),
        (lambda tmp: (tmp / "empty.png").open("wb").close() or tmp / "empty.png", "empty"),
        (
            lambda tmp: (tmp / "text.png").write_text("not an image") and tmp / "text.png",
            "not a decodable image",
        ),
        (_truncated_png, "not a decodable image"),
        (_truncated_jpeg, "not a decodable image"),
    ],
    ids=["missing", "folder", "empty", "text", "truncated-png", "truncated-jpeg"],
)
def test_bad_file_raises_with_path_and_reason(tmp_path: Path, make_file, reason: str) -> None:
    path = make_file(tmp_path)
    with pytest.raises(ImageReadError, match=reason) as caught:
        read_image(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert caught.value.path == Path(path)


@pytest.mark.parametrize(
    "content, reason",
    [(None, "file not found"), (b"", "empty"), (b"plain text", "no readable image header")],
    ids=["missing", "empty", "text"],
)
def test_read_image_size_errors(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason):
        read_image_size(path)


def test_image_suffixes_are_lower_case_with_dot() -> None:
    assert ".png" in IMAGE_SUFFIXES
    assert ".jpg" in IMAGE_SUFFIXES
    assert all(suffix == suffix.lower() and suffix.startswith(".") for suffix in IMAGE_SUFFIXES)


def test_one_bit_png_is_0_or_255(tmp_path: Path) -> None:
    image = Image.fromarray(np.array([[0, 255, 0]], dtype=np.uint8)).convert("1")
    path = _save_pil(image, tmp_path / "bits.png")
    np.testing.assert_array_equal(read_image(path), [[0, 255, 0]])


@pytest.mark.parametrize(
    "values, expected",
    [
        # Range -100..100, scale 255 / 200: 0 -> 127.5 -> 128 (round half to even).
        (np.array([[-100, 0, 100]], dtype=np.int16), [[0, 128, 255]]),
        # Range -1..3, scale 255 / 4: 0 -> 63.75 -> 64, 2 -> 191.25 -> 191.
        (np.array([[-1.0, 0.0, 2.0, 3.0]], dtype=np.float32), [[0, 64, 191, 255]]),
    ],
    ids=["int16", "float32"],
)
def test_tiff_other_types_are_stretched(tmp_path: Path, values: np.ndarray, expected) -> None:
    path = tmp_path / "scan.tif"
    assert cv2.imwrite(str(path), values)
    np.testing.assert_array_equal(read_image(path), expected)


def test_tiff_int16_colour_is_gray_then_stretched(tmp_path: Path) -> None:
    path = tmp_path / "colour.tif"
    values = np.array([[-100, 0, 100]], dtype=np.int16)
    assert cv2.imwrite(str(path), np.stack([values] * 3, axis=-1))
    np.testing.assert_array_equal(read_image(path), [[0, 128, 255]])


def test_tiff_nan_raises(tmp_path: Path) -> None:
    path = tmp_path / "nan.tif"
    assert cv2.imwrite(str(path), np.array([[0.0, np.nan]], dtype=np.float32))
    with pytest.raises(ImageReadError, match="NaN or infinity"):
        read_image(path)


@pytest.mark.real_data
def test_real_radiographs_load_like_pillow(real_radiographs_dir: Path) -> None:
    # Each image loads at the size its header states, and matches Pillow's "L" conversion,
    # which uses the same BT.601 weights with an independent decoder.
    paths = sorted(
        path
        for path in real_radiographs_dir.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES
    )
    assert len(paths) >= 80
    for path in paths:
        with Image.open(path) as opened:
            mode = opened.mode
            width, height = opened.size
            reference = np.asarray(opened.convert("L"), dtype=np.int16)

        image = read_image(path)
        assert image.ndim == 2, path
        assert image.dtype == np.uint8, path
        assert image.shape == (height, width), path
        assert read_image_size(path) == (height, width), path
        assert image.max() > image.min(), path

        difference = np.abs(image.astype(np.int16) - reference)
        if mode == "L" and path.suffix.lower() == ".png":
            assert difference.max() == 0, path
        else:
            assert difference.max() <= 1, path
