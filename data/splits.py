"""Patient-grouped K-fold splits and the split file.

Both hands of a patient land in the same fold, so no hand in a validation fold has its other hand
in the training folds. Folds are balanced by image count.

Split file (JSON, written by :func:`write_splits`)::

    {
      "format_version": 1,
      "n_folds": 5,
      "seed": 0,
      "patients": {"ID001": 3, ...},      # patient_id -> fold in 0..n_folds-1
      "images": {"image1.png": 3, ...}    # image_name -> fold of its patient
    }

Fold ``k`` validates on the images whose fold is ``k`` and trains on all others.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data.layout import Sample, raise_on_duplicate_names

FORMAT_VERSION = 1
"""Version of the split-file format written by this module."""


class SplitError(ValueError):
    """A split cannot be made, or a split file or split dict is invalid."""


def make_splits(samples: Sequence[Sample], n_folds: int = 5, seed: int = 0) -> dict:
    """Assign each patient to one of ``n_folds`` folds, balancing the image count per fold.

    Patients are shuffled with ``seed``, then taken from most to fewest images, each going to
    the fold with the fewest images so far (ties: fewest patients, then lowest fold index).
    The result depends only on the samples' patient ids, image names and the seed, not on
    their order.

    Args:
        samples: training samples; ``patient_id`` groups them.
        n_folds: number of folds, at least 2 and at most the number of patients.
        seed: seed of the patient shuffle.

    Returns:
        The split dict described in the module docstring.

    Raises:
        SplitError: ``n_folds`` is out of range, or there are no samples.
        data.layout.LayoutError: two samples share an image name.
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise SplitError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    raise_on_duplicate_names(samples)
    images_of: dict[str, list[str]] = defaultdict(list)
    for sample in samples:
        images_of[sample.patient_id].append(sample.image_name)
    if not images_of:
        raise SplitError("cannot split an empty list of samples; discover the dataset first")
    if n_folds > len(images_of):
        raise SplitError(
            f"n_folds={n_folds} is larger than the number of patients ({len(images_of)}); "
            f"use at most {len(images_of)} folds"
        )

    patients = sorted(images_of)
    order = np.random.default_rng(seed).permutation(len(patients))
    shuffled = [patients[i] for i in order]
    # A stable sort keeps the shuffled order among patients with equal image counts.
    shuffled.sort(key=lambda patient: -len(images_of[patient]))

    fold_images = [0] * n_folds
    fold_patients = [0] * n_folds
    patient_fold: dict[str, int] = {}
    for patient in shuffled:
        fold = min(range(n_folds), key=lambda k: (fold_images[k], fold_patients[k], k))
        patient_fold[patient] = fold
        fold_images[fold] += len(images_of[patient])
        fold_patients[fold] += 1

    image_fold = {
        name: patient_fold[patient] for patient in patients for name in images_of[patient]
    }
    return {
        "format_version": FORMAT_VERSION,
        "n_folds": int(n_folds),
        "seed": int(seed),
        "patients": dict(sorted(patient_fold.items())),
        "images": dict(sorted(image_fold.items())),
    }


def write_splits(path: str | os.PathLike, splits: dict) -> Path:
    """Validate ``splits`` and write it as JSON to ``path`` atomically.

    The file is written to a temporary file in the same folder and moved over ``path`` with
    ``os.replace``, so a reader never sees a half-written file. Parent folders are created.

    Returns:
        The path written.

    Raises:
        SplitError: ``splits`` is not a valid split dict.
    """
    validate_splits(splits, source="split dict to write")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(splits, indent=2, sort_keys=False) + "\n"

    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target


def read_splits(path: str | os.PathLike) -> dict:
    """Read and validate a split file written by :func:`write_splits`.

    Raises:
        SplitError: the file is missing, is not JSON, has another ``format_version``, or its
            fields do not have the documented shape.
    """
    split_path = Path(path)
    try:
        text = split_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SplitError(
            f"split file {split_path} not found; create it with data.splits.write_splits"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise SplitError(f"cannot read split file {split_path}: {error}") from None
    try:
        splits = json.loads(text)
    except json.JSONDecodeError as error:
        raise SplitError(f"split file {split_path} is not valid JSON: {error}") from None
    validate_splits(splits, source=f"split file {split_path}")
    return splits


def validate_splits(splits: object, source: str = "split dict") -> None:
    """Raise SplitError naming ``source`` unless ``splits`` has the documented shape.

    Checks the version, that ``n_folds`` is an integer >= 2, that ``seed`` is an integer, that
    every fold number in ``patients`` and ``images`` is in ``0..n_folds-1``, and that every fold
    contains at least one image.
    """
    if not isinstance(splits, dict):
        raise SplitError(f"{source}: expected a JSON object, found {type(splits).__name__}")
    version = splits.get("format_version")
    if version != FORMAT_VERSION:
        raise SplitError(
            f"{source}: format_version is {version!r}, expected {FORMAT_VERSION}; "
            "make the split again with data.splits.make_splits"
        )
    missing = [key for key in ("n_folds", "seed", "patients", "images") if key not in splits]
    if missing:
        raise SplitError(f"{source}: missing keys {missing}")
    n_folds = splits["n_folds"]
    if not _is_int(n_folds) or n_folds < 2:
        raise SplitError(f"{source}: n_folds must be an integer >= 2, found {n_folds!r}")
    if not _is_int(splits["seed"]):
        raise SplitError(f"{source}: seed must be an integer, found {splits['seed']!r}")

    for key in ("patients", "images"):
        mapping = splits[key]
        if not isinstance(mapping, dict) or not mapping:
            raise SplitError(f"{source}: {key!r} must be a non-empty object of name -> fold")
        for name, fold in mapping.items():
            if not isinstance(name, str) or not _is_int(fold) or not 0 <= fold < n_folds:
                raise SplitError(
                    f"{source}: {key}[{name!r}] = {fold!r}; expected a fold in 0..{n_folds - 1}"
                )

    empty = sorted(set(range(n_folds)) - set(splits["images"].values()))
    if empty:
        raise SplitError(f"{source}: folds {empty} hold no image; make the split again")


def fold_image_names(splits: dict, fold: int) -> tuple[list[str], list[str]]:
    """Return ``(train_names, val_names)`` of ``fold``: sorted image names.

    Raises:
        SplitError: ``fold`` is not in ``0..n_folds-1``.
    """
    n_folds = splits["n_folds"]
    if not _is_int(fold) or not 0 <= fold < n_folds:
        raise SplitError(f"fold must be an integer in 0..{n_folds - 1}, got {fold!r}")
    images = splits["images"]
    train_names = sorted(name for name, k in images.items() if k != fold)
    val_names = sorted(name for name, k in images.items() if k == fold)
    return train_names, val_names


def select_fold(
    samples: Sequence[Sample], splits: dict, fold: int
) -> tuple[list[Sample], list[Sample]]:
    """Split ``samples`` into ``(train, val)`` for ``fold``, keeping their order.

    Raises:
        SplitError: ``fold`` is out of range, or a sample is not in the split file (the split
            was made for another dataset: make it again).
    """
    _, val_names = fold_image_names(splits, fold)
    missing = [sample.image_name for sample in samples if sample.image_name not in splits["images"]]
    if missing:
        raise SplitError(
            f"{len(missing)} image(s) missing from the split (first: {missing[:3]}); the split "
            "was made for another dataset, so make it again with data.splits.make_splits"
        )
    val_set = set(val_names)
    train = [sample for sample in samples if sample.image_name not in val_set]
    val = [sample for sample in samples if sample.image_name in val_set]
    return train, val


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
