"""Measure the synthetic hand generator's time per image, by stage.

Usage: ``python benchmarks/bench_synth.py [--images 10] [--size 2048] [--seed 0]``

Rows, all in one process on one core:

- ``synthesize_image``: anatomy, pose, polygons and the rendered uint8 image, per image.
- soft tissue drawn at 1/4 size and upsampled (the generator's way) against the baseline of
  drawing it at full size, on the same posed hands.
- PNG encoding of the rendered images (``cv2.imencode``, OpenCV's default compression).
- ``generate_dataset`` end to end (render, encode, write PNG and JSON), per image.
"""

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from data.synth import _generator, generate_dataset, synthesize_image
from data.synth_anatomy import sample_anatomy
from data.synth_pose import place_hand, sample_pose
from data.synth_render import TISSUE_DOWNSCALE, render_tissue
from data.synth_shapes import build_hand


def time_per_call(function, arguments: list[tuple]) -> float:
    """Return the mean wall time in seconds of ``function(*a)`` over ``arguments``."""
    start = time.perf_counter()
    for args in arguments:
        function(*args)
    return (time.perf_counter() - start) / len(arguments)


def posed_tissue(n: int, size: int, seed: int) -> list[tuple]:
    """Return (tissue, size, scale_px) of ``n`` posed hands, for ``render_tissue``."""
    cases = []
    for patient in range(n):
        anatomy = sample_anatomy(_generator(seed, 1, patient))
        pose = sample_pose(_generator(seed, 2, patient, 0), "L", 0.1)
        bones, tissue = build_hand(anatomy, pose.spread, pose.thumb_abduction, pose.wrist_bend)
        _, tissue, scale_px = place_hand(bones, tissue, pose, size)
        cases.append((tissue, size, scale_px))
    return cases


def run(images: int, size: int, seed: int) -> None:
    """Print a Markdown table of the measurements."""
    n_images = images + images % 2
    calls = [(seed, i // 2, "LR"[i % 2], size, 0.1) for i in range(n_images)]
    synthesize_image(*calls[0])  # warm-up: imports, first allocations
    synth_s = time_per_call(synthesize_image, calls)

    rendered = [synthesize_image(*c)[0] for c in calls[:4]]
    encode_s = time_per_call(lambda image: cv2.imencode(".png", image), [(i,) for i in rendered])

    tissue_cases = posed_tissue(4, size, seed)
    small_s = time_per_call(render_tissue, tissue_cases)
    full_s = time_per_call(lambda t, s, p: render_tissue(t, s, p, downscale=1), tissue_cases)

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        generate_dataset(Path(folder) / "out", n_train=n_images, n_test=0, size=size, seed=seed)
        dataset_s = (time.perf_counter() - start) / n_images

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"OpenCV {cv2.__version__}, NumPy {np.__version__}; {n_images} images at {size} px")
    print("| case | time per image | baseline | ratio |")
    print("|---|---|---|---|")
    print(f"| `synthesize_image` (geometry + rendering) | {synth_s:.3f} s | | |")
    print(f"| soft tissue at 1/{TISSUE_DOWNSCALE} size, upsampled | {small_s * 1000:.0f} ms "
          f"| at full size: {full_s * 1000:.0f} ms | {full_s / small_s:.1f}x faster |")
    print(f"| PNG encoding (`cv2.imencode`) | {encode_s:.3f} s | | |")
    print(f"| `generate_dataset`, end to end | {dataset_s:.3f} s | | |")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10, help="images per timed run")
    parser.add_argument("--size", type=int, default=2048, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    args = parser.parse_args(argv)
    run(args.images, args.size, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
