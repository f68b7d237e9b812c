"""Tests for data.cache: entry format, decoding, invalidation, damaged entries and concurrent builds."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from data.cache import (
    CACHE_DIR_ENV,
    FORMAT_VERSION,
    DecodedCache,
    decode_sample,
    default_cache_dir,
    pack_entry,
    resize_image,
    unpack_entry,
)
from data.classes import CLASS_INDEX, NUM_CLASSES
from data.layout import Sample, discover

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_sample(root: Path, stem: str, height: int = 64, width: int = 64, low: float = 7.5, high: float = 23.5) -> Sample:
    """Write a gradient PNG and a JSON with one Capitate square from ``low`` to ``high`` (pixel centres)."""
    image_path = root / "train" / "DCM" / "ID001" / f"{stem}.png"
    json_path = root / "train" / "outputs_json" / "ID001" / f"{stem}.json"
    image_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)

    gradient = (np.add.outer(np.arange(height), np.arange(width)) * 3 % 256).astype(np.uint8)
    cv2.imwrite(str(image_path), gradient)
    square = [[low, low], [high, low], [high, high], [low, high]]
    json_path.write_text(json.dumps({"annotations": [{"label": "Capitate", "points": square}]}))
    return Sample(f"{stem}.png", image_path, json_path, "ID001")


@pytest.fixture
def samples(tmp_path: Path) -> list[Sample]:
    return [write_sample(tmp_path / "dataset", f"image{k}") for k in range(3)]


def random_mask(size: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((size, size, NUM_CLASSES)) < 0.4).astype(np.uint8)


# --- entry format and decoding ----------------------------------------------------------------


def test_pack_unpack_roundtrip():
    image = np.random.default_rng(1).integers(0, 256, (16, 16), dtype=np.uint8)
    mask = random_mask(16)
    entry = pack_entry(image, mask)
    assert entry.shape == (16, 16, 5)
    assert entry.dtype == np.uint8
    restored_image, restored_mask = unpack_entry(entry)
    np.testing.assert_array_equal(restored_image, image)
    np.testing.assert_array_equal(restored_mask, mask)


def test_packed_bit_order():
    """Channel 0 is the highest bit of the first mask byte, and channel 28 is bit 3 of the fourth."""
    mask = np.zeros((1, 1, NUM_CLASSES), dtype=np.uint8)
    mask[0, 0, 0] = 1
    mask[0, 0, 28] = 1
    entry = pack_entry(np.zeros((1, 1), np.uint8), mask)
    assert list(entry[0, 0]) == [0, 0b1000_0000, 0, 0, 0b0000_1000]


def test_decode_sample_hand_computed(tmp_path):
    sample = write_sample(tmp_path, "image0")
    image, mask = decode_sample(sample, 32)

    assert image.shape == (32, 32)
    assert image.dtype == np.uint8
    assert mask.shape == (32, 32, NUM_CLASSES)
    assert mask.dtype == np.uint8
    # Centres 8..23 at 64 px are inside. At 32 px, x' = (x + 0.5) / 2 - 0.5 maps 7.5..23.5 to 3.5..11.5.
    expected = np.zeros((32, 32), np.uint8)
    expected[4:12, 4:12] = 1
    np.testing.assert_array_equal(mask[..., CLASS_INDEX["Capitate"]], expected)
    assert mask.sum() == expected.sum()


def test_decode_sample_without_json(tmp_path):
    sample = write_sample(tmp_path, "image0")
    with pytest.raises(ValueError, match="image0.png.*no annotation JSON"):
        decode_sample(Sample(sample.image_name, sample.image_path, None, "ID001"), 32)


# --- resize_image -----------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(64, 64), (48, 80), (20, 100), (10, 12)])
def test_resize_image_square_output(height, width):
    image = np.full((height, width), 77, dtype=np.uint8)
    out = resize_image(image, 32)
    assert out.shape == (32, 32)
    assert out.dtype == np.uint8
    assert (out == 77).all()


def test_resize_image_same_size_copies():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    out = resize_image(image, 4)
    np.testing.assert_array_equal(out, image)
    assert not np.shares_memory(out, image)


def test_resize_image_averages_when_shrinking():
    image = np.array([[0, 100], [200, 100]], dtype=np.uint8)
    assert resize_image(image, 1)[0, 0] == 100


@pytest.mark.parametrize(
    ("image", "size", "match"),
    [
        (np.zeros((8, 8), np.float32), 4, "uint8"),
        (np.zeros((8, 8, 3), np.uint8), 4, "uint8"),
        (np.zeros((8, 8), np.uint8), 0, "invalid size"),
        (np.zeros((8, 8), np.uint8), 4.0, "invalid size"),
        (np.zeros((8, 8), np.uint8), True, "invalid size"),
    ],
)
def test_resize_image_rejects(image, size, match):
    with pytest.raises(ValueError, match=match):
        resize_image(image, size)


# --- DecodedCache -----------------------------------------------------------------------------


def test_cache_matches_decoding(samples, tmp_path):
    cache = DecodedCache(tmp_path / "cache", samples, 32)
    assert len(cache) == len(samples)
    assert cache.built == len(samples)
    for index, sample in enumerate(samples):
        image, mask = cache[index]
        expected_image, expected_mask = decode_sample(sample, 32)
        np.testing.assert_array_equal(image, expected_image)
        np.testing.assert_array_equal(mask, expected_mask)


def test_cache_entry_is_one_sample_memmap(samples, tmp_path):
    cache = DecodedCache(tmp_path / "cache", samples, 32)
    entry = cache.open_entry(1)
    assert isinstance(entry, np.memmap)
    assert entry.shape == (32, 32, 5)
    assert cache.entry_paths[1].parent == tmp_path / "cache" / f"v{FORMAT_VERSION}" / "s32"
    assert cache.entry_paths[1].name.startswith("image1-")


def test_cache_reused_by_second_instance(samples, tmp_path):
    DecodedCache(tmp_path / "cache", samples, 32)
    again = DecodedCache(tmp_path / "cache", samples, 32)
    assert again.built == 0


def test_cache_subset_reuses_entries(samples, tmp_path):
    DecodedCache(tmp_path / "cache", samples, 32)
    subset = DecodedCache(tmp_path / "cache", samples[1:], 32)
    assert subset.built == 0


def test_cache_sizes_are_separate(samples, tmp_path):
    small = DecodedCache(tmp_path / "cache", samples, 16)
    large = DecodedCache(tmp_path / "cache", samples, 32)
    assert large.built == len(samples)
    assert small[0][0].shape == (16, 16)
    assert large[0][0].shape == (32, 32)


def test_cache_rebuilds_edited_json(samples, tmp_path):
    first = DecodedCache(tmp_path / "cache", samples, 32)
    old_path = first.entry_paths[0]
    write_sample(tmp_path / "dataset", "image0", low=15.5, high=31.5)

    second = DecodedCache(tmp_path / "cache", samples, 32)
    assert second.built == 1
    assert second.entry_paths[0] != old_path
    expected = np.zeros((32, 32), np.uint8)
    expected[8:16, 8:16] = 1
    np.testing.assert_array_equal(second[0][1][..., CLASS_INDEX["Capitate"]], expected)


@pytest.mark.parametrize("which", ["image_path", "json_path"])
def test_cache_rebuilds_touched_file(samples, tmp_path, which):
    DecodedCache(tmp_path / "cache", samples, 32)
    path = getattr(samples[2], which)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert DecodedCache(tmp_path / "cache", samples, 32).built == 1


def test_cache_rebuilds_damaged_entry(samples, tmp_path):
    cache = DecodedCache(tmp_path / "cache", samples, 32)
    path = cache.entry_paths[0]
    path.write_bytes(path.read_bytes()[:100])
    again = DecodedCache(tmp_path / "cache", samples, 32)
    assert again.built == 1
    np.testing.assert_array_equal(again[0][1], decode_sample(samples[0], 32)[1])


def test_cache_leaves_no_temporary_files(samples, tmp_path):
    cache = DecodedCache(tmp_path / "cache", samples, 32)
    names = sorted(path.name for path in cache.folder.iterdir())
    assert names == sorted([".lock"] + [path.name for path in cache.entry_paths])


def test_cache_rejects_sample_without_json(samples, tmp_path):
    bad = Sample("x.png", samples[0].image_path, None, "ID001")
    with pytest.raises(ValueError, match="no annotation JSON"):
        DecodedCache(tmp_path / "cache", [bad], 32)


def test_cache_missing_image(samples, tmp_path):
    samples[1].image_path.unlink()
    with pytest.raises(FileNotFoundError):
        DecodedCache(tmp_path / "cache", samples, 32)


def test_cache_unreadable_json_builds_nothing_broken(samples, tmp_path):
    samples[1].json_path.write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        DecodedCache(tmp_path / "cache", samples, 32, build_workers=1)
    folder = tmp_path / "cache" / f"v{FORMAT_VERSION}" / "s32"
    assert not [path for path in folder.iterdir() if path.suffix == ".tmp"]


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert default_cache_dir() == (tmp_path / "mine").resolve()


def test_default_cache_dir_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path.resolve() / "handbone-search" / "decoded"


# --- two processes ----------------------------------------------------------------------------

BUILD_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from data.cache import DecodedCache
    from data.layout import discover

    root, cache_dir, go_file = sys.argv[1:4]
    samples = discover(root).train
    while not Path(go_file).exists():
        time.sleep(0.01)
    cache = DecodedCache(cache_dir, samples, 32, build_workers=1)
    print(json.dumps({"built": cache.built, "paths": [str(p) for p in cache.entry_paths]}))
    """
)


def start_builder(root: Path, cache_dir: Path, go_file: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", BUILD_SCRIPT, str(root), str(cache_dir), str(go_file)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    return json.loads(stdout)


def test_two_processes_build_once(tmp_path):
    root = tmp_path / "dataset"
    for k in range(12):
        write_sample(root, f"image{k:02d}", height=512, width=512)
    go_file = tmp_path / "go"
    builders = [start_builder(root, tmp_path / "cache", go_file) for _ in range(2)]
    go_file.touch()
    results = [finish(process) for process in builders]

    assert sum(result["built"] for result in results) == 12
    assert results[0]["paths"] == results[1]["paths"]
    for path, sample in zip(results[0]["paths"], discover(root).train, strict=True):
        image, mask = unpack_entry(np.load(path))
        expected_image, expected_mask = decode_sample(sample, 32)
        np.testing.assert_array_equal(image, expected_image)
        np.testing.assert_array_equal(mask, expected_mask)
    leftovers = [path.name for path in Path(results[0]["paths"][0]).parent.iterdir() if path.suffix == ".tmp"]
    assert leftovers == []


def test_builder_waits_for_lock(tmp_path):
    root = tmp_path / "dataset"
    for k in range(2):
        write_sample(root, f"image{k}")
    folder = tmp_path / "cache" / f"v{FORMAT_VERSION}" / "s32"
    folder.mkdir(parents=True)
    go_file = tmp_path / "go"
    go_file.touch()

    with open(folder / ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        builder = start_builder(root, tmp_path / "cache", go_file)
        time.sleep(3.0)
        assert builder.poll() is None
        assert not list(folder.glob("*.npy"))
        fcntl.flock(lock, fcntl.LOCK_UN)
    assert finish(builder)["built"] == 2
