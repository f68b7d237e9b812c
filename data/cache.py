"""Decoded-data cache: resized images and rasterised masks on disk, shared by all trials.

A search trains many trials on the same images at a few resolutions. Decoding a 2048x2048 PNG
and filling 29 polygon masks costs far more than a training step needs, so each sample is decoded
once per resolution and stored as one ``.npy`` file that every later reader memory-maps.

Layout under the cache folder::

    CACHE_DIR/v<FORMAT_VERSION>/s<S>/<image stem>-<key>.npy   one file per sample
    CACHE_DIR/v<FORMAT_VERSION>/s<S>/.lock                    build lock of that resolution

Entry format: a (S, S, 5) uint8 array. ``[..., 0]`` is the image resized by
:func:`resize_image`. ``[..., 1:5]`` contains the 29 mask channels packed by :func:`pack_masks`
(``np.packbits`` over the channel axis, big-endian bit order: channel 0 in the highest bit of
byte 1, the last 3 bits zero), which takes 4 bytes per pixel instead of 29.

Invalidation: ``<key>`` hashes the format version, the resolution, and the resolved path, size
and modification time (ns) of the image and of its JSON file. Editing or touching a source file
gives a new key, so the sample is decoded again. NOTE: entries of an older key are never
removed, so delete the cache folder to reclaim their space.

Concurrency: entries are written to a temporary file in the same folder and renamed into place
(``os.replace`` is atomic on POSIX), so a reader sees a whole entry or none. Building takes an
exclusive ``fcntl.flock`` on ``.lock``, so when several processes start at once one decodes the
missing entries with a thread pool while the others wait, then find them present. The kernel
releases the lock if the builder dies. The lock needs a local file system, or NFS with working
locks. Without locks the result is still correct, only decoded more than once.

Default location: :func:`default_cache_dir`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from data.annotations import load_annotations, rasterize
from data.classes import NUM_CLASSES
from data.images import read_image
from data.layout import Sample

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the entry format and of the decoding. Raising it makes every old entry invisible."""

PACKED_BYTES = (NUM_CLASSES + 7) // 8
"""Bytes per pixel of the packed 29-channel mask (4)."""

CACHE_DIR_ENV = "HANDBONE_CACHE_DIR"
"""Environment variable that overrides :func:`default_cache_dir`."""


def default_cache_dir() -> Path:
    """Return the machine-wide cache folder that trials share unless the config names another.

    Order: ``$HANDBONE_CACHE_DIR``, else ``$XDG_CACHE_HOME/handbone-search/decoded``, else
    ``~/.cache/handbone-search/decoded``. Every process of one user on one machine gets the same
    folder, so Ray trials on that machine share one cache.
    """
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser().resolve() / "handbone-search" / "decoded"


def check_size(size: object) -> int:
    """Return ``size`` as int, or raise ValueError unless it is a positive integer (not a bool)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"invalid size {size!r}: expected a positive integer side length in pixels")
    return int(size)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a grayscale image to ``size`` x ``size``, ignoring its aspect ratio.

    Area averaging when both sides shrink, bilinear otherwise. Training (through the cache and
    :class:`data.dataset.HandBoneDataset`) and prediction (through
    :func:`data.dataset.preprocess_image`) both resize with this function.

    Args:
        image: (H, W) uint8.
        size: output side S in pixels.

    Returns:
        (S, S) uint8, C-contiguous; a copy even when H = W = S.

    Raises:
        ValueError: ``image`` is not a 2-D uint8 array or ``size`` is not a positive integer.
    """
    size = check_size(size)
    if not isinstance(image, np.ndarray) or image.ndim != 2 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(
            f"expected a (H, W) uint8 grayscale image, got shape {shape} dtype {dtype}; "
            "read images with data.images.read_image"
        )

    height, width = image.shape
    if (height, width) == (size, size):
        return image.copy()
    shrinking = size <= height and size <= width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def decode_sample(sample: Sample, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one training sample and bring it to ``size`` x ``size``.

    Returns:
        ``(image, mask)``: (S, S) uint8 image from :func:`resize_image`, and (S, S, 29) uint8
        0/1 mask, channels last in ``data.classes.CLASSES`` order, rasterised directly at S.

    Raises:
        ValueError: the sample has no JSON file, or reading fails (``ImageReadError``,
            ``AnnotationError``, both ValueError subclasses naming the file).
    """
    size = check_size(size)
    json_path = require_json(sample)
    image = read_image(sample.image_path)
    masks = rasterize(load_annotations(json_path), image_size=image.shape, out_size=(size, size))
    return resize_image(image, size), np.ascontiguousarray(masks.transpose(1, 2, 0))


def require_json(sample: Sample) -> Path:
    """Return the sample's JSON path, or raise ValueError naming the image when it has none."""
    if sample.json_path is None:
        raise ValueError(
            f"sample {sample.image_name} ({sample.image_path}) has no annotation JSON; the "
            "training dataset and its cache take only samples with masks (data.layout train)"
        )
    return Path(sample.json_path)


def pack_masks(mask: np.ndarray) -> np.ndarray:
    """Pack an (H, W, 29) 0/1 mask into (H, W, 4) uint8 bits, channel 0 in the highest bit."""
    return np.packbits(mask.astype(bool, copy=False), axis=-1)


def unpack_masks(packed: np.ndarray) -> np.ndarray:
    """Unpack (H, W, 4) mask bits from :func:`pack_masks` into an (H, W, 29) uint8 0/1 mask."""
    return np.unpackbits(packed, axis=-1, count=NUM_CLASSES)


def channel_bits(channels: Sequence[int]) -> np.ndarray:
    """Return the (4,) uint8 bit mask that selects ``channels`` in a packed mask."""
    selected = np.zeros(NUM_CLASSES, dtype=bool)
    selected[list(channels)] = True
    return np.packbits(selected)


def pack_entry(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pack an (S, S) uint8 image and an (S, S, 29) 0/1 mask into one (S, S, 5) uint8 entry."""
    return np.concatenate([image[..., None], pack_masks(mask)], axis=-1)


def split_entry(entry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split an (S, S, 5) entry into an (S, S) uint8 image and (S, S, 4) packed mask bits.

    Both outputs are new C-contiguous arrays, so the entry (often a memory map) can be closed.
    """
    return np.ascontiguousarray(entry[..., 0]), np.ascontiguousarray(entry[..., 1:])


def unpack_entry(entry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split an (S, S, 5) entry into an (S, S) uint8 image and an (S, S, 29) uint8 0/1 mask."""
    image, packed = split_entry(entry)
    return image, unpack_masks(packed)


def entry_key(sample: Sample, size: int) -> str:
    """Hash what an entry depends on: format version, size, paths, sizes and mtimes of the files.

    Raises:
        ValueError: the sample has no JSON file.
        FileNotFoundError: the image or the JSON file does not exist.
    """
    parts: list[object] = [FORMAT_VERSION, size]
    for path in (Path(sample.image_path), require_json(sample)):
        resolved = path.resolve()
        stat = resolved.stat()
        parts += [str(resolved), stat.st_size, stat.st_mtime_ns]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


class DecodedCache:
    """Decoded images and masks of some samples at one resolution, memory-mapped from disk.

    The constructor builds the missing entries (see the module docstring), so afterwards every
    read is a memory map of one small file.

    Args:
        cache_dir: cache folder, shared by every trial and resolution; created when missing.
        samples: training samples, each with a JSON file.
        size: side S of the square images and masks.
        build_workers: threads that decode missing entries; default ``min(8, os.cpu_count())``.

    Attributes:
        entry_paths: path of each sample's entry file, in sample order.
        built: number of entries this instance decoded (0 when all were present).

    Raises:
        ValueError: invalid size, a sample without JSON, or an unreadable image or JSON file.
        FileNotFoundError: a source file does not exist.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        samples: Sequence[Sample],
        size: int,
        build_workers: int | None = None,
    ):
        self.size = check_size(size)
        self.samples = list(samples)
        self.folder = Path(cache_dir).expanduser().resolve() / f"v{FORMAT_VERSION}" / f"s{self.size}"
        self.entry_paths = [
            self.folder / f"{Path(sample.image_name).stem}-{entry_key(sample, self.size)}.npy"
            for sample in self.samples
        ]
        self.built = 0
        self._build_missing(build_workers or min(8, os.cpu_count() or 1))

    def __len__(self) -> int:
        return len(self.samples)

    def open_entry(self, index: int) -> np.memmap:
        """Return sample ``index``'s (S, S, 5) entry as a read-only memory map of its own file."""
        return np.load(self.entry_paths[index], mmap_mode="r")

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(image, mask)``: (S, S) uint8 and (S, S, 29) uint8 0/1, as :func:`decode_sample`."""
        return unpack_entry(self.open_entry(index))

    def read_packed(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(image, packed)``: (S, S) uint8 and (S, S, 4) mask bits of :func:`pack_masks`."""
        return split_entry(self.open_entry(index))

    def _missing(self) -> list[int]:
        expected_bytes = self.size * self.size * (1 + PACKED_BYTES)
        missing = []
        for index, path in enumerate(self.entry_paths):
            # A complete .npy file is the header plus the data, so a shorter file is damaged.
            if not path.is_file() or path.stat().st_size < expected_bytes:
                missing.append(index)
        return missing

    def _build_missing(self, workers: int) -> None:
        if not self._missing():
            return

        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a+b") as lock:
            if not _try_lock(lock):
                logger.info("waiting for another process building decoded entries in %s", self.folder)
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                missing = self._missing()
                if missing:
                    logger.info(
                        "decoding %d of %d samples at %d px into %s",
                        len(missing), len(self.samples), self.size, self.folder,
                    )
                    with ThreadPoolExecutor(max_workers=workers) as pool:
                        # list() re-raises the first decoding error here.
                        list(pool.map(self._build_entry, missing))
                    self.built = len(missing)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _build_entry(self, index: int) -> None:
        image, mask = decode_sample(self.samples[index], self.size)
        entry = pack_entry(image, mask)
        target = self.entry_paths[index]
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=f".{target.stem}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.save(stream, entry)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _try_lock(lock) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
