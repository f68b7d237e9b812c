"""Benchmark the ensemble's prediction pass against keeping every member's probability maps.

Usage::

    .venv/bin/python benchmarks/bench_ensemble.py [--members 5] [--images 20] [--size 512]

Five real segmentation models (smp Unet/FPN with resnet18 or mobilenet_v2 encoders, random
weights, input sizes 64 to 128 px) predict 20 synthetic radiographs of ``--size`` pixels, and
both approaches write the same soft-voted submission CSV:

- streaming (``ensemble.build.write_predictions``): one pass over the images. For each image,
  the members' probabilities are resized one channel at a time and added to one running
  (29, H, W) sum, which is then thresholded, encoded and written.
- baseline: every member predicts every image and keeps its full (29, H, W) probability map
  at the image's size. The maps of each image are then averaged, thresholded, encoded and
  written.

Each approach runs in its own subprocess, which reports its wall time, the peak of memory
traced by tracemalloc (NumPy arrays; torch's own allocations are not traced) and its peak
resident set size (``ru_maxrss``, everything including the models).
"""

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
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
import torch

from data.classes import NUM_CLASSES
from data.images import read_image
from data.layout import discover
from data.synth import generate_dataset
from ensemble.build import write_predictions
from ensemble.predict import Member, resize_stack
from ensemble.submission import SubmissionWriter, read_submission
from trainable.models import create_model

MEMBER_MODELS = (
    ("Unet", "resnet18", 64),
    ("FPN", "mobilenet_v2", 96),
    ("Unet", "mobilenet_v2", 128),
    ("FPN", "resnet18", 96),
    ("Unet", "resnet18", 128),
)


def make_members(count: int) -> list[Member]:
    members = []
    for index in range(count):
        architecture, encoder, size = MEMBER_MODELS[index % len(MEMBER_MODELS)]
        torch.manual_seed(index)
        model = create_model(architecture, encoder, None).eval()
        member = Member(f"m{index}", Path("unused"), 0.5, model=model)
        member.config = {"input_size": size, "model": {"architecture": architecture, "encoder": encoder}}
        members.append(member)
    return members


def run_streaming(members, samples, out: Path) -> None:
    thresholds = np.full(NUM_CLASSES, 0.5, np.float32)
    write_predictions(members, samples, out, "soft", thresholds)


def run_baseline(members, samples, out: Path) -> None:
    maps: list[list[np.ndarray]] = []
    for member in members:
        maps.append([])
        for sample in samples:
            image = read_image(sample.image_path)
            maps[-1].append(resize_stack(member.predict(image), image.shape))
    with SubmissionWriter(out) as writer:
        for index, sample in enumerate(samples):
            mean = sum(member_maps[index] for member_maps in maps) / len(members)
            writer.write_image(sample.image_name, mean >= 0.5)


def child(approach: str, root: Path, members: int, out: Path) -> None:
    """Run one approach and print its measurements as JSON."""
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    samples = discover(root).test
    loaded = make_members(members)
    tracemalloc.start()
    start = time.perf_counter()
    (run_streaming if approach == "streaming" else run_baseline)(loaded, samples, out)
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
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--images", type=int, default=20, help="images to predict (even)")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--child", choices=("streaming", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.root, args.members, args.out)
        return 0

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "hands"
        generate_dataset(root, n_train=2, n_test=args.images, size=args.size, seed=0)
        results = {}
        for approach in ("streaming", "baseline"):
            out = Path(folder) / f"{approach}.csv"
            command = [sys.executable, __file__, "--child", approach, "--root", str(root),
                       "--out", str(out), "--members", str(args.members)]
            completed = subprocess.run(command, capture_output=True, text=True, check=True)
            results[approach] = json.loads(completed.stdout.strip().splitlines()[-1])
        same = read_submission(Path(folder) / "streaming.csv").equals(
            read_submission(Path(folder) / "baseline.csv")
        )

    stack_mib = NUM_CLASSES * args.size * args.size * 4 / 2**20
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"Python {platform.python_version()}, torch {torch.__version__}")
    print(f"{args.members} members, {args.images} images of {args.size}x{args.size}; one "
          f"(29, H, W) float32 probability stack is {stack_mib:.1f} MiB; identical CSVs: {same}")
    print("| approach | time | traced peak (NumPy) | peak RSS |")
    print("|---|---|---|---|")
    for approach, values in results.items():
        print(f"| {approach} | {values['seconds']:.1f} s | {values['traced_peak_mib']:.0f} MiB | "
              f"{values['max_rss_mib']:.0f} MiB |")
    ours, baseline = results["streaming"], results["baseline"]
    print(f"| baseline / streaming | {baseline['seconds'] / ours['seconds']:.2f}x | "
          f"{baseline['traced_peak_mib'] / ours['traced_peak_mib']:.1f}x | "
          f"{baseline['max_rss_mib'] / ours['max_rss_mib']:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
