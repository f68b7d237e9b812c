"""Benchmark RLE encoding and decoding on the 29 bone masks of synthetic 2048 x 2048 hands.

Usage::

    .venv/bin/python benchmarks/bench_rle.py [--images 2] [--size 2048] [--repeats 7]

Baselines, measured in the same process:

- encode: the common NumPy encoder: flatten, pad with a zero on both ends (``np.concatenate``
  with Python lists, which makes an int64 copy), compare neighbours, join the numbers.
- decode: split the string, convert with ``np.asarray(dtype=int)``, then one Python loop
  iteration per run that sets ``mask[start:end] = 1`` in a fresh zero array.

- decode of one image's 29 masks into a (29, H, W) stack, as evaluation reads a submission.
  The baseline decodes each mask and stacks them with ``np.stack``, while
  ``ensemble.submission.masks_from_rles`` fills one preallocated stack.

Each time is the best of ``--repeats`` runs over all masks, divided by the number of masks.
The floor row is the time to allocate and zero one output mask, which no decoder avoids.
"""

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from data.annotations import load_annotations, rasterize
from data.layout import discover
from data.synth import generate_dataset
from data.classes import CLASSES
from ensemble import rle
from ensemble.submission import masks_from_rles


def naive_encode(mask: np.ndarray) -> str:
    pixels = mask.flatten()
    pixels = np.concatenate([[0], pixels, [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(x) for x in runs)


def naive_decode(text: str, shape: tuple[int, int]) -> np.ndarray:
    values = text.split()
    starts, lengths = [np.asarray(x, dtype=int) for x in (values[0::2], values[1::2])]
    starts -= 1
    ends = starts + lengths
    mask = np.zeros(shape[0] * shape[1], dtype=np.uint8)
    for low, high in zip(starts, ends):
        mask[low:high] = 1
    return mask.reshape(shape)


def best_time(function, items, repeats: int) -> float:
    """Return the best total time of ``function`` over ``items`` in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            function(*item)
        best = min(best, time.perf_counter() - start)
    return best


def bone_masks(count: int, size: int) -> list[np.ndarray]:
    """Rasterize the (29, size, size) masks of ``count`` synthetic hands."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "hands"
        generate_dataset(root, n_train=count, n_test=0, size=size, seed=0)
        stacks = [
            rasterize(load_annotations(sample.json_path), (size, size))
            for sample in discover(root).train
        ]
    return stacks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2, help="synthetic hands (even number)")
    parser.add_argument("--size", type=int, default=2048, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=7, help="runs per measurement; best kept")
    args = parser.parse_args(argv)

    stacks = bone_masks(args.images, args.size)
    masks = [channel for stack in stacks for channel in stack if channel.any()]
    shape = masks[0].shape
    texts = [rle.encode(mask) for mask in masks]
    for mask, text in zip(masks, texts):
        if text != naive_encode(mask):
            raise SystemExit("encoder output differs from the baseline")
        if not np.array_equal(rle.decode(text, shape), mask):
            raise SystemExit("decoder output differs from the mask")

    runs = [len(text.split()) // 2 for text in texts]
    area = [int(mask.sum()) for mask in masks]
    count = len(masks)
    rows = [
        ("encode", best_time(naive_encode, [(m,) for m in masks], args.repeats),
         best_time(rle.encode, [(m,) for m in masks], args.repeats)),
        ("decode", best_time(naive_decode, [(t, shape) for t in texts], args.repeats),
         best_time(rle.decode, [(t, shape) for t in texts], args.repeats)),
    ]
    image_rles = [
        {name: rle.encode(channel) for name, channel in zip(CLASSES, stack)} for stack in stacks
    ]
    image_rows = ("decode 29 masks of an image into one stack",
                  best_time(lambda r: np.stack([naive_decode(t, shape) for t in r.values()]),
                            [(r,) for r in image_rles], args.repeats),
                  best_time(masks_from_rles, [(r, shape) for r in image_rles], args.repeats))
    floor = best_time(lambda: np.zeros(shape, np.uint8), [()] * count, args.repeats)

    print(f"machine: {platform.machine()}, {platform.processor() or 'unknown CPU'}, "
          f"Python {platform.python_version()}, NumPy {np.__version__}")
    print(f"{count} bone masks of {args.images} synthetic hands at {shape[0]}x{shape[1]}: "
          f"runs per mask median {int(np.median(runs))} (max {max(runs)}), "
          f"area median {int(np.median(area))} px")
    print("| operation | baseline per mask | ensemble.rle per mask | speed-up |")
    print("|---|---|---|---|")
    for name, baseline, ours in rows:
        print(f"| {name} | {baseline / count * 1e6:.0f} us | {ours / count * 1e6:.0f} us | "
              f"{baseline / ours:.1f}x |")
    name, baseline, ours = image_rows
    print(f"| {name} | {baseline / len(stacks) * 1e3:.1f} ms per image | "
          f"{ours / len(stacks) * 1e3:.1f} ms per image | {baseline / ours:.1f}x |")
    print(f"| allocate and zero one {shape[0]}x{shape[1]} uint8 mask (decode floor) | | "
          f"{floor / count * 1e6:.0f} us | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
