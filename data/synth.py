"""Synthetic hand radiographs with per-bone polygons, in the competition's folder layout.

The project's default dataset when no real data is at hand: every image shows one hand (left or
right, two images per patient ID) with all 29 bones of ``data.classes.CLASSES`` outlined.

Layout written under ``OUT``::

    OUT/train/DCM/ID000/image<13 digits>.png          8-bit grayscale, size x size
    OUT/train/outputs_json/ID000/image<13 digits>.json
    OUT/test/DCM/ID<k>/image<13 digits>.png           no annotations

Each JSON file is ``{"annotations": [{"label": "finger-1", "points": [[x, y], ...]}, ...]}``: one
polygon per class in ``CLASSES`` order, vertices in the image's pixel coordinates (x right,
y down, floats with two decimals). Patient IDs run on from the training into the test split, and
image names are unique across the dataset.

Output is a function of the arguments alone: the same seed gives byte-identical files, whatever
the number of worker processes.

Command line::

    python -m data.synth OUT --train 800 --test 300 --size 2048 --seed 0
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from data.synth_anatomy import sample_anatomy
from data.synth_pose import place_hand, sample_pose
from data.synth_render import render_radiograph
from data.synth_shapes import build_hand

logger = logging.getLogger(__name__)

# Share of images with a clearly bent wrist (radial or ulnar deviation of 18-35 degrees). The
# competition's data is reported to have about 10% such training images and about half such test
# images.
WRIST_BEND_PROBABILITY: dict[str, float] = {"train": 0.1, "test": 0.5}
MIN_SIZE = 64
MAX_SIZE = 8192
# Image names are 13-digit numbers, like millisecond timestamps, increasing through the dataset.
_FIRST_IMAGE_NUMBER = 1_661_000_000_000

# Independent random streams per purpose, so that adding draws to one never shifts another.
_STREAM_ANATOMY = 1
_STREAM_IMAGE = 2
_STREAM_NAMES = 3


@dataclass(frozen=True)
class ImageTask:
    """One image to synthesise: where it goes and what decides its content."""

    split: str
    patient_index: int
    side: str
    image_name: str
    size: int
    seed: int


def _generator(*entropy: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(entropy))))


def synthesize_image(
    seed: int, patient_index: int, side: str, size: int, wrist_bend_probability: float
) -> tuple[np.ndarray, list[dict[str, object]]]:
    """Draw one hand radiograph and its bone polygons.

    The anatomy depends only on ``(seed, patient_index)``, so both hands of a patient share
    proportions; the pose and appearance depend on the side as well.

    Args:
        seed: dataset seed (non-negative int).
        patient_index: patient number within the dataset.
        side: "L" or "R".
        size: image side in pixels.
        wrist_bend_probability: chance that the wrist is clearly bent.

    Returns:
        The (size, size) uint8 image and its annotations, one
        ``{"label": str, "points": [[x, y], ...]}`` per class in ``CLASSES`` order.
    """
    anatomy = sample_anatomy(_generator(seed, _STREAM_ANATOMY, patient_index))
    rng = _generator(seed, _STREAM_IMAGE, patient_index, 0 if side == "L" else 1)
    pose = sample_pose(rng, side, wrist_bend_probability)

    bones, tissue = build_hand(anatomy, pose.spread, pose.thumb_abduction, pose.wrist_bend)
    bones, tissue, scale_px = place_hand(bones, tissue, pose, size)
    image = render_radiograph(bones, tissue, scale_px, size, side, rng)

    annotations = [
        {"label": bone.label, "points": np.round(bone.polygon, 2).tolist()} for bone in bones
    ]
    return image, annotations


def _write_image_task(task: ImageTask, root: Path) -> None:
    """Synthesise one image and write its PNG (and its JSON for the training split)."""
    image, annotations = synthesize_image(
        task.seed, task.patient_index, task.side, task.size, WRIST_BEND_PROBABILITY[task.split]
    )
    patient = f"ID{task.patient_index:03d}"
    image_dir = root / task.split / "DCM" / patient
    image_dir.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"PNG encoding failed for {image_dir / task.image_name}.png")
    (image_dir / f"{task.image_name}.png").write_bytes(encoded.tobytes())

    if task.split == "train":
        json_dir = root / task.split / "outputs_json" / patient
        json_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"annotations": annotations}, separators=(",", ":"))
        (json_dir / f"{task.image_name}.json").write_text(text, encoding="utf-8")


def plan_images(n_train: int, n_test: int, size: int, seed: int) -> list[ImageTask]:
    """List the images of a dataset: patients in order, left hand before right hand."""
    n_images = n_train + n_test
    names_rng = _generator(seed, _STREAM_NAMES)
    gaps = names_rng.integers(60_000, 3_600_000, size=n_images)
    numbers = _FIRST_IMAGE_NUMBER + int(names_rng.integers(0, 10**9)) + np.cumsum(gaps)

    tasks = []
    for index in range(n_images):
        split = "train" if index < n_train else "test"
        tasks.append(
            ImageTask(
                split=split,
                patient_index=index // 2,
                side="L" if index % 2 == 0 else "R",
                image_name=f"image{int(numbers[index]):013d}",
                size=size,
                seed=seed,
            )
        )
    return tasks


def _check_arguments(
    out_dir: Path, n_train: int, n_test: int, size: int, seed: int, workers: int
) -> None:
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(value, (int, np.integer)) or value < 0 or value % 2:
            raise ValueError(
                f"invalid {name}={value!r}: expected an even number of images >= 0, because "
                "every patient ID has two images (left and right hand)"
            )
    if n_train + n_test == 0:
        raise ValueError("n_train and n_test are both 0; ask for at least two images")
    if not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"invalid size={size!r}: expected an int in [{MIN_SIZE}, {MAX_SIZE}] px")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"invalid seed={seed!r}: expected an int >= 0")
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"invalid workers={workers!r}: expected an int >= 1 (1 draws in-process)")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ValueError(f"output path {out_dir} exists and is not a folder; choose another")
        if any(out_dir.iterdir()):
            raise ValueError(
                f"output folder {out_dir} is not empty; choose a new folder or delete this one"
            )


def generate_dataset(
    out_dir: str | os.PathLike[str],
    n_train: int,
    n_test: int,
    size: int = 2048,
    seed: int = 0,
    workers: int = 1,
) -> None:
    """Write a synthetic dataset in the competition layout (see the module docstring).

    The files go into a temporary folder beside ``out_dir``, which is renamed to ``out_dir``
    only when every file is written, so an interrupted run never leaves a partial dataset there.

    Args:
        out_dir: destination folder; must be absent or empty.
        n_train: number of training images (even: two per patient ID), with annotations.
        n_test: number of test images (even), without annotations.
        size: side of the square images in pixels, 64 to 8192.
        seed: non-negative seed; equal arguments give byte-identical files.
        workers: processes to draw images in parallel (1 draws in this process).

    Raises:
        ValueError: on an odd or negative image count, a bad size, seed or worker count, or an
            output folder that exists and is not empty.
    """
    out_dir = Path(out_dir)
    _check_arguments(out_dir, n_train, n_test, size, seed, workers)
    tasks = plan_images(n_train, n_test, size, seed)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                list(pool.map(_write_image_task, tasks, [partial] * len(tasks), chunksize=4))
        else:
            for done, task in enumerate(tasks, start=1):
                _write_image_task(task, partial)
                logger.debug("wrote image %d/%d (%s)", done, len(tasks), task.image_name)
        if out_dir.exists():
            out_dir.rmdir()
        partial.rename(out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    logger.info(
        "wrote %d training and %d test images (%d px, seed %d) to %s",
        n_train, n_test, size, seed, out_dir,
    )


def main(argv: list[str] | None = None) -> int:
    """Parse command-line arguments and write the dataset; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m data.synth",
        description="Write synthetic hand radiographs with bone polygons in the competition layout.",
    )
    parser.add_argument("out", type=Path, help="output folder (must be absent or empty)")
    parser.add_argument("--train", type=int, required=True, help="training images (even number)")
    parser.add_argument("--test", type=int, default=0, help="test images (even number)")
    parser.add_argument("--size", type=int, default=2048, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        generate_dataset(args.out, args.train, args.test, args.size, args.seed, args.workers)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
