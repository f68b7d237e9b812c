"""Measure the training Dataset's samples/s: decoded-data cache vs no cache vs a naive pipeline.

Usage: ``python benchmarks/bench_data_cache.py [--images N] [--source-size 2048] [--sizes 512 1024]``

All pipelines read the same N synthetic radiographs (``data.synth``, S x S PNG with polygon JSON)
in one process with one thread, and return torch tensors at each input size:

- naive: the usual competition starter code. It reads the PNG as 3-channel float64, fills every
  class into a (2048, 2048, 29) stack, resizes image and stack to the input size (mask nearest
  neighbour), and converts both to float32 tensors channels-first. No augmentation.
- uncached: ``HandBoneDataset(samples, size)``, decoding each item again.
- cached: ``HandBoneDataset(samples, size, cache_dir=...)`` after the cache is built; the build
  time is reported separately.

The uncached and cached rows are measured without augmentation (like the naive pipeline) and with
the default ``build_transforms({}, train=True)`` pipeline. The last row returns the mask as uint8
(``mask_dtype=torch.uint8``) instead of float32. Files sit in the page cache after the
first pass, so every pipeline reads from memory.
"""

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import logging
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from data.annotations import AnnotationWarning
from data.cache import DecodedCache
from data.classes import CLASS_INDEX, NUM_CLASSES
from data.dataset import HandBoneDataset
from data.layout import Sample, discover
from data.synth import generate_dataset
from data.transforms import build_transforms


SLICE_SECONDS = 0.5


def naive_item(sample: Sample, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Baseline: 3-channel float64 image, full-size 29-channel stack, resize, tensors."""
    image = cv2.imread(str(sample.image_path), cv2.IMREAD_COLOR).astype(np.float64) / 255.0

    stack = np.zeros(image.shape[:2] + (NUM_CLASSES,), dtype=np.uint8)
    with open(sample.json_path, encoding="utf-8") as stream:
        annotations = json.load(stream)["annotations"]
    for annotation in annotations:
        layer = np.zeros(image.shape[:2], dtype=np.uint8)
        cv2.fillPoly(layer, [np.array(annotation["points"], dtype=np.int32)], 1)
        stack[..., CLASS_INDEX[annotation["label"]]] = layer

    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(stack, (size, size), interpolation=cv2.INTER_NEAREST)
    return (
        torch.from_numpy(image.transpose(2, 0, 1)).float(),
        torch.from_numpy(mask.transpose(2, 0, 1)).float(),
    )


def samples_per_second(loaders: dict[str, Callable[[int], object]], count: int, min_seconds: float) -> dict[str, float]:
    """Return items per second of each loader over items 0..count-1, measured interleaved.

    The loaders take turns in slices of at least ``SLICE_SECONDS`` until each has run
    ``min_seconds``, so a change in machine load during the run affects all of them alike.
    """
    for load in loaders.values():
        load(0)  # warm-up: page cache, lazy imports
    loaded = dict.fromkeys(loaders, 0)
    elapsed = dict.fromkeys(loaders, 0.0)
    while min(elapsed.values()) < min_seconds:
        for name, load in loaders.items():
            start = time.perf_counter()
            while time.perf_counter() - start < SLICE_SECONDS:
                for index in range(count):
                    load(index)
                loaded[name] += count
            elapsed[name] += time.perf_counter() - start
    return {name: loaded[name] / elapsed[name] for name in loaders}


def run(samples: Sequence[Sample], sizes: Sequence[int], cache_dir: Path, min_seconds: float) -> list[dict]:
    """Measure every pipeline at every size; return one row per (size, pipeline)."""
    rows = []
    augment = build_transforms({}, train=True)
    for size in sizes:
        start = time.perf_counter()
        DecodedCache(cache_dir, samples, size, build_workers=1)
        build_seconds = time.perf_counter() - start

        datasets = {
            "uncached": HandBoneDataset(samples, size),
            "cached": HandBoneDataset(samples, size, cache_dir=cache_dir),
            "uncached + augmentation": HandBoneDataset(samples, size, transform=augment),
            "cached + augmentation": HandBoneDataset(samples, size, cache_dir=cache_dir, transform=augment),
            "cached + augmentation, uint8 mask": HandBoneDataset(
                samples, size, cache_dir=cache_dir, transform=augment, mask_dtype=torch.uint8
            ),
        }
        loaders = {"naive": lambda index: naive_item(samples[index], size)}
        loaders.update({name: dataset.__getitem__ for name, dataset in datasets.items()})
        rates = samples_per_second(loaders, len(samples), min_seconds)
        for name, rate in rates.items():
            rows.append({"size": size, "pipeline": name, "samples_per_s": rate, "vs_naive": rate / rates["naive"]})
        rows.append({"size": size, "pipeline": "cache build", "seconds_per_sample": build_seconds / len(samples)})
    return rows


def print_table(rows: list[dict]) -> None:
    print("| input | pipeline | samples/s | vs naive |")
    print("|---|---|---|---|")
    for row in rows:
        if row["pipeline"] == "cache build":
            print(f"| {row['size']} | cache build (once) | {row['seconds_per_sample'] * 1000:.0f} ms/sample | |")
        else:
            print(f"| {row['size']} | {row['pipeline']} | {row['samples_per_s']:.1f} | {row['vs_naive']:.1f}x |")


def cpu_description() -> str:
    """Return the CPU model from /proc/cpuinfo (Linux) or platform, and the logical core count."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} logical cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", type=int, default=6, help="number of synthetic images, even (one left and one right hand per patient)"
    )
    parser.add_argument("--source-size", type=int, default=2048, help="side of the source PNGs in pixels")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="input sides to measure")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="minimum timed seconds per pipeline and size")
    args = parser.parse_args(argv)
    if args.images < 2 or args.images % 2:
        parser.error(f"--images {args.images}: expected an even number >= 2")

    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore", AnnotationWarning)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="bench_data_cache_") as folder:
        root = Path(folder) / "dataset"
        generate_dataset(root, n_train=args.images, n_test=0, size=args.source_size, seed=0)
        samples = discover(root).train
        rows = run(samples, args.sizes, Path(folder) / "cache", args.min_seconds)

    print(f"machine: {cpu_description()}, load average {os.getloadavg()[0]:.1f}")
    print(f"Python {platform.python_version()}, OpenCV {cv2.__version__}, torch {torch.__version__}, one thread")
    print(f"{len(samples)} synthetic {args.source_size}x{args.source_size} PNG images with JSON")
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
