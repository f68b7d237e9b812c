"""Training Dataset: (image, 29-channel mask) tensors at one square resolution.

Preprocessing is shared with prediction. :func:`preprocess_image` is the exact resize and scaling
of a training image without augmentation, so a model gets the same input at prediction time.

Random augmentation streams. Before each sample, :class:`HandBoneDataset` installs a fresh random
generator in its pipeline, seeded from ``SeedSequence([seed, epoch, index])``. So:

- a sample's augmentation depends only on the dataset seed, the epoch and its index, not on the
  DataLoader worker that loads it, the number of workers, or the order of loading;
- validation never consumes the training stream, because each dataset seeds only its own
  pipeline object and no stream is shared. A validation dataset usually has the identity
  pipeline of ``build_transforms(aug, train=False)``;
- the training loop calls :meth:`HandBoneDataset.set_epoch` before each epoch, before iterating
  the DataLoader, so that epochs differ. The epoch sits in shared memory, so it also reaches
  workers kept alive by ``persistent_workers=True``.

Global ``random``, ``numpy.random`` and ``torch`` random states are neither read nor changed.

Masks stay bit-packed, (S, S, 4) uint8 from ``data.cache.pack_masks``, from the cache through the
augmentation pipeline, and are unpacked only into the output tensor. Every step of
``build_transforms`` accepts packed masks, because it samples masks by nearest neighbour (whole
bytes) or leaves them alone. A custom transform must do the same.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from data.cache import (
    PACKED_BYTES,
    DecodedCache,
    check_size,
    decode_sample,
    pack_masks,
    require_json,
    resize_image,
    unpack_masks,
)
from data.classes import NUM_CLASSES
from data.layout import Sample
from data.transforms import seed_transforms


MASK_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.uint8, torch.bool)
"""Valid ``mask_dtype`` values of :class:`HandBoneDataset`."""

# Bits of the last packed byte after channel 29 (32 bits hold 29 channels).
_UNUSED_BITS = np.uint8((1 << (8 * PACKED_BYTES - NUM_CLASSES)) - 1)


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """Scale a uint8 image to float32 in [0, 1] (``value / 255``), keeping its shape."""
    return image.astype(np.float32) / np.float32(255.0)


def preprocess_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize and scale an image exactly as training does before augmentation.

    Args:
        image: (H, W) uint8 grayscale, as ``data.images.read_image`` returns it, any size and
            aspect ratio.
        size: the model's input side S.

    Returns:
        (S, S) float32 in [0, 1]. A non-square image is stretched to S x S. Predictions at
        (S, S) map back to (H, W) by resizing with the same stretch.

    Raises:
        ValueError: ``image`` is not (H, W) uint8, or ``size`` is not a positive integer.
    """
    return to_unit_float(resize_image(image, size))


class HandBoneDataset(Dataset):
    """Training or validation samples as ``(image, mask)`` tensors of side ``size``.

    Each item is ``image`` float32 (1, S, S) in [0, 1] and ``mask`` (29, S, S) in {0, 1} of
    ``mask_dtype`` (float32 by default), channels in ``data.classes.CLASSES`` order. Multi-label: channels overlap where
    bones overlap. Without a transform, ``image[0]`` equals :func:`preprocess_image` of the
    source image.

    Args:
        samples: samples with annotation JSON files (``data.layout.discover(root).train``).
        size: side S of the square output.
        cache_dir: folder of the decoded-data cache (``data.cache.default_cache_dir()`` for the
            machine-wide one). With None, every item decodes its image and JSON again.
        transform: albumentations pipeline from ``data.transforms.build_transforms``, called as
            ``transform(image=(S, S) uint8, mask=(S, S, 4) packed uint8)``. It must keep the
            shapes and sample masks by nearest neighbour. None skips augmentation.
        seed: non-negative int. With the epoch and the item index it seeds the transform (see
            the module docstring).
        mask_dtype: ``torch.float32``, ``torch.uint8`` or ``torch.bool``. A float32 mask at
            1024 px takes 121 MB per sample. Filling that much fresh memory costs more than the
            rest of a cached item (docs/benchmarks.md), so a training loop may take uint8 and
            convert on the device.

    Raises:
        ValueError: invalid size or seed, a sample without JSON, an unreadable source file
            (when building the cache), or, per item, a transform that changes shapes.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        size: int,
        cache_dir: str | os.PathLike | None = None,
        transform: A.BaseCompose | A.BasicTransform | None = None,
        *,
        seed: int = 0,
        mask_dtype: torch.dtype = torch.float32,
    ):
        self.samples = list(samples)
        self.size = check_size(size)
        for sample in self.samples:
            require_json(sample)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"invalid seed {seed!r}: expected a non-negative integer")

        if mask_dtype not in MASK_DTYPES:
            raise ValueError(
                f"invalid mask_dtype {mask_dtype}: expected one of " + ", ".join(map(str, MASK_DTYPES))
            )

        self.seed = int(seed)
        self.mask_dtype = mask_dtype
        # A shared-memory scalar, so DataLoader workers that outlive an epoch see set_epoch.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self.transform = transform
        self.cache = None if cache_dir is None else DecodedCache(cache_dir, self.samples, self.size)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (a non-negative int) for later items."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"invalid epoch {epoch!r}: expected a non-negative integer")
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        """Epoch whose augmentation stream the items use (0 until :meth:`set_epoch`)."""
        return int(self._epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def load_packed(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return sample ``index`` before augmentation: (S, S) uint8 image, (S, S, 4) mask bits."""
        if self.cache is not None:
            return self.cache.read_packed(index)
        image, mask = decode_sample(self.samples[index], self.size)
        return image, pack_masks(mask)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return sample ``index`` before augmentation: (S, S) uint8 and (S, S, 29) uint8 0/1."""
        image, packed = self.load_packed(index)
        return image, unpack_masks(packed)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, packed = self.load_packed(index)
        if self.transform is not None:
            image, packed = self._augment(index, image, packed)
        return _image_tensor(image), unpack_to_tensor(packed, self.mask_dtype)

    def _augment(self, index: int, image: np.ndarray, packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seed_transforms(self.transform, np.random.SeedSequence([self.seed, self.epoch, index]))
        out = self.transform(image=image, mask=packed)

        shape = (self.size, self.size)
        name = self.samples[index].image_name
        if out["image"].shape != shape or out["mask"].shape != shape + (PACKED_BYTES,):
            raise ValueError(
                f"transform changed the shapes of sample {name}: image {out['image'].shape}, "
                f"mask {out['mask'].shape}, expected {shape} and {shape + (PACKED_BYTES,)}; use "
                "transforms that keep the size (no crop or resize)"
            )
        # NOTE: this catches only some transforms that interpolate or compute on mask values:
        # those that happen to set one of the 3 unused bits after channel 29.
        if np.any(out["mask"][..., -1] & _UNUSED_BITS):
            raise ValueError(
                f"transform changed the bit-packed mask of sample {name} by more than moving "
                "pixels; masks must be sampled by nearest neighbour (mask_interpolation=0)"
            )
        return out["image"], out["mask"]


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    if image.dtype != np.uint8:
        raise ValueError(
            f"transform returned a {image.dtype} image, expected uint8; keep the pipeline on uint8 "
            "images (data.transforms.build_transforms does)"
        )
    return torch.from_numpy(to_unit_float(image)).unsqueeze(0)


def unpack_to_tensor(packed: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Unpack (H, W, 4) mask bits into a channels-first (29, H, W) tensor of 0/1 in ``dtype``.

    Each channel is shifted out of its byte plane and written straight into the output, so no
    (H, W, 29) intermediate or transpose is needed.
    """
    planes = np.ascontiguousarray(packed.transpose(2, 0, 1))
    out = torch.empty((NUM_CLASSES,) + planes.shape[1:], dtype=dtype)
    out_array = out.numpy()
    bits = np.empty(planes.shape[1:], dtype=np.uint8)
    for channel in range(NUM_CLASSES):
        np.right_shift(planes[channel // 8], 7 - channel % 8, out=bits)
        np.bitwise_and(bits, 1, out=bits)
        out_array[channel] = bits
    return out
