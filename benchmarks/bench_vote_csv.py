"""Benchmark hard voting of submission CSVs against decoding every mask.

Usage::

    .venv/bin/python benchmarks/bench_vote_csv.py [--csvs 5] [--images 288] [--size 2048]

Five submission CSVs of 288 images x 29 classes at 2048 x 2048 are made from the bone masks of
four synthetic hands; CSV m shifts every run by 2m pixels, so the members disagree at the bone
edges. All CSVs list their rows in the same order, so that the baseline's positional matching
gives the correct result. Both approaches vote with ``min_votes = 3``:

- ``ensemble.vote_csv.vote_csvs``: rows joined on (image_name, class) through byte-offset
  indexes, voted on runs without decoding, written atomically, then validated.
- baseline: ``pandas.read_csv`` of every CSV, rows matched by position, every mask decoded with
  a per-run Python loop into a 2048 x 2048 array, the votes summed, the result encoded with the
  common NumPy encoder.

Each approach runs in its own subprocess, which reports its wall time, the tracemalloc peak
and its peak resident set size (``ru_maxrss``).
"""

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import csv
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from data.annotations import load_annotations, rasterize
from data.classes import CLASSES
from data.layout import discover
from data.synth import generate_dataset
from ensemble import rle
from ensemble.submission import read_submission
from ensemble.vote_csv import vote_csvs

MIN_VOTES = 3


def naive_decode(text: str, shape: tuple[int, int]) -> np.ndarray:
    values = text.split()
    starts, lengths = [np.asarray(x, dtype=int) for x in (values[0::2], values[1::2])]
    starts -= 1
    ends = starts + lengths
    mask = np.zeros(shape[0] * shape[1], dtype=np.uint8)
    for low, high in zip(starts, ends):
        mask[low:high] = 1
    return mask.reshape(shape)


def naive_encode(mask: np.ndarray) -> str:
    pixels = mask.flatten()
    pixels = np.concatenate([[0], pixels, [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(x) for x in runs)


def run_baseline(inputs: list[Path], out: Path, size: int) -> None:
    frames = [pd.read_csv(path).fillna("") for path in inputs]
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("image_name", "class", "rle"))
        for position in range(len(frames[0])):
            votes = sum(
                naive_decode(frame["rle"].iloc[position], (size, size)).astype(np.int32)
                for frame in frames
            )
            first = frames[0].iloc[position]
            writer.writerow((first["image_name"], first["class"], naive_encode(votes >= MIN_VOTES)))


def write_inputs(folder: Path, csvs: int, images: int, size: int) -> list[Path]:
    """Write the member CSVs from four synthetic hands; return their paths."""
    root = folder / "hands"
    generate_dataset(root, n_train=4, n_test=0, size=size, seed=0)
    hands = [
        [rle.mask_to_runs(channel) for channel in rasterize(load_annotations(s.json_path), (size, size))]
        for s in discover(root).train
    ]
    paths = []
    for member in range(csvs):
        path = folder / f"member{member}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(("image_name", "class", "rle"))
            for image in range(images):
                for class_name, (starts, lengths) in zip(CLASSES, hands[image % len(hands)]):
                    text = rle.format_runs(starts + 2 * member, lengths)
                    writer.writerow((f"image{image:04d}.png", class_name, text))
        paths.append(path)
    return paths


def child(approach: str, inputs: list[Path], out: Path, size: int) -> None:
    tracemalloc.start()
    start = time.perf_counter()
    if approach == "keyed":
        summary = vote_csvs(inputs, out, MIN_VOTES, default_size=(size, size))
        if summary.problems:
            raise SystemExit(f"invalid output: {summary.problems[:3]}")
    else:
        run_baseline(inputs, out, size)
    seconds = time.perf_counter() - start
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({
        "seconds": seconds,
        "traced_peak_mib": traced_peak / 2**20,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csvs", type=int, default=5)
    parser.add_argument("--images", type=int, default=288)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--child", choices=("keyed", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=Path, nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.inputs, args.out, args.size)
        return 0

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        inputs = write_inputs(folder, args.csvs, args.images, args.size)
        megabytes = sum(path.stat().st_size for path in inputs) / 2**20
        results = {}
        for approach in ("keyed", "baseline"):
            out = folder / f"{approach}.csv"
            command = [sys.executable, __file__, "--child", approach, "--size", str(args.size),
                       "--out", str(out), "--inputs", *map(str, inputs)]
            completed = subprocess.run(command, capture_output=True, text=True, check=True)
            results[approach] = json.loads(completed.stdout.strip().splitlines()[-1])
        same = read_submission(folder / "keyed.csv").equals(read_submission(folder / "baseline.csv"))

    print(f"machine: {platform.machine()}, Python {platform.python_version()}, "
          f"NumPy {np.__version__}, pandas {pd.__version__}")
    print(f"{args.csvs} CSVs x {args.images} images x 29 classes at {args.size}x{args.size} "
          f"({megabytes:.0f} MiB of CSV), min votes {MIN_VOTES}; identical outputs: {same}")
    print("| approach | time | traced peak | peak RSS |")
    print("|---|---|---|---|")
    for approach, values in results.items():
        print(f"| {approach} | {values['seconds']:.1f} s | {values['traced_peak_mib']:.0f} MiB | "
              f"{values['max_rss_mib']:.0f} MiB |")
    ours, baseline = results["keyed"], results["baseline"]
    print(f"| baseline / keyed | {baseline['seconds'] / ours['seconds']:.1f}x | "
          f"{baseline['traced_peak_mib'] / ours['traced_peak_mib']:.1f}x | "
          f"{baseline['max_rss_mib'] / ours['max_rss_mib']:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
