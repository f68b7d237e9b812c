"""Time the data layer's rasterising and the dataset check against simple baselines.

Usage: ``python benchmarks/bench_data_layer.py [--images N] [--size S] [--out-size s]``

1. Rasterising 29 polygons of S x S coordinates to an s x s mask: ``data.annotations.rasterize``
   (polygons scaled, filled at s) against the baseline that fills 29 full-size channels with
   ``cv2.fillPoly`` and resizes each with ``cv2.resize`` (nearest neighbour).
2. ``data.check.check_dataset`` on N images of S x S in a competition layout, reading headers
   against decoding every image (``decode=True``).
3. Reading every real radiograph in ``--real-dir`` (when given): header only against full decode.

Both baselines run in the same process, so the ratios compare like with like.
"""

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import platform
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

from data.annotations import Annotation, AnnotationWarning, rasterize
from data.check import check_dataset
from data.classes import CLASSES, NUM_CLASSES
from data.images import IMAGE_SUFFIXES, read_image, read_image_size


def make_polygons(size: int, seed: int, vertices: int = 200) -> list[Annotation]:
    """Return one wobbly ellipse per class, ``vertices`` points each, inside an S x S image."""
    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    annotations = []
    for label in CLASSES:
        centre = rng.uniform(0.2, 0.8, size=2) * size
        radii = rng.uniform(0.03, 0.12, size=2) * size
        wobble = 1 + 0.05 * np.sin(5 * angles + rng.uniform(0, 2 * np.pi))
        points = np.stack(
            [centre[0] + radii[0] * wobble * np.cos(angles), centre[1] + radii[1] * wobble * np.sin(angles)],
            axis=1,
        )
        annotations.append(Annotation(label, np.rint(points), "benchmark"))
    return annotations


def rasterize_by_resizing(annotations: list[Annotation], size: int, out_size: int) -> np.ndarray:
    """Baseline: fill full-size channels, then resize each channel to ``out_size``."""
    masks = np.zeros((NUM_CLASSES, out_size, out_size), dtype=np.uint8)
    for index, annotation in enumerate(annotations):
        full = np.zeros((size, size), dtype=np.uint8)
        cv2.fillPoly(full, [annotation.points.astype(np.int32)], 1)
        masks[index] = cv2.resize(full, (out_size, out_size), interpolation=cv2.INTER_NEAREST)
    return masks


def best_time(function, repeats: int) -> float:
    """Return the fastest of ``repeats`` wall-clock runs of ``function()``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_rasterize(size: int, out_size: int, repeats: int) -> dict:
    annotations = make_polygons(size, seed=0)
    scaled = best_time(lambda: rasterize(annotations, (size, size), (out_size, out_size)), repeats)
    full = best_time(lambda: rasterize(annotations, (size, size)), repeats)
    baseline = best_time(lambda: rasterize_by_resizing(annotations, size, out_size), repeats)

    # Agreement with an area-downsampled full-size mask (fraction >= 0.5 counts as inside).
    full_mask = rasterize(annotations, (size, size)).astype(np.float32)
    area = np.stack([cv2.resize(c, (out_size, out_size), interpolation=cv2.INTER_AREA) for c in full_mask])
    reference = area >= 0.5
    ours = rasterize(annotations, (size, size), (out_size, out_size)).astype(bool)
    resized = rasterize_by_resizing(annotations, size, out_size).astype(bool)
    return {
        "rasterize_scaled_s": scaled,
        "rasterize_full_size_s": full,
        "fill_full_then_resize_s": baseline,
        "speedup_vs_baseline": baseline / scaled,
        "pixels_differing_from_area_reference": int((ours != reference).sum()),
        "baseline_pixels_differing_from_area_reference": int((resized != reference).sum()),
        "reference_foreground_pixels": int(reference.sum()),
    }


def write_dataset(root: Path, n_images: int, size: int) -> None:
    """Write ``n_images`` smooth S x S PNGs (two per patient) and their JSON files."""
    gradient = np.add.outer(np.arange(size), np.arange(size)) * (255.0 / (2 * size))
    image = gradient.astype(np.uint8)
    for k in range(n_images):
        patient = f"ID{k // 2:03d}"
        stem = f"image{k:04d}"
        image_path = root / "train" / "DCM" / patient / f"{stem}.png"
        json_path = root / "train" / "outputs_json" / patient / f"{stem}.json"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image_path), image)
        entries = [
            {"label": a.label, "points": a.points.astype(int).tolist()}
            for a in make_polygons(size, seed=k)
        ]
        json_path.write_text(json.dumps({"annotations": entries}))


def bench_check(n_images: int, size: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_dataset(root, n_images, size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AnnotationWarning)
            header = best_time(lambda: check_dataset(root), 1)
            decode = best_time(lambda: check_dataset(root, decode=True), 1)
            report = check_dataset(root)
    return {
        "check_headers_s": header,
        "check_decode_s": decode,
        "decode_over_headers": decode / header,
        "check_ok": report.ok,
        "images": report.n_train,
    }


def bench_real_images(folder: Path) -> dict:
    paths = [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    header = best_time(lambda: [read_image_size(p) for p in paths], 1)
    decode = best_time(lambda: [read_image(p) for p in paths], 1)
    return {
        "images": len(paths),
        "read_image_size_s": header,
        "read_image_s": decode,
        "decode_over_headers": decode / header,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="images in the check dataset")
    parser.add_argument("--size", type=int, default=2048, help="image side in pixels")
    parser.add_argument("--out-size", type=int, default=256, help="mask side in pixels")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case (best kept)")
    parser.add_argument("--real-dir", type=Path, help="folder of real radiographs (optional)")
    args = parser.parse_args(argv)

    results = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "rasterize": bench_rasterize(args.size, args.out_size, args.repeats),
        "check": bench_check(args.images, args.size),
    }
    if args.real_dir is not None:
        results["real_images"] = bench_real_images(args.real_dir)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
