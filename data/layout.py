"""Find the images and annotation files of a dataset in the competition layout.

Expected layout (``IDxxx`` is a patient folder, usually holding both hands)::

    ROOT/
      train/DCM/IDxxx/<stem>.png              training images
      train/outputs_json/IDxxx/<stem>.json    their polygons, paired by patient folder and stem
      test/DCM/IDxxx/<stem>.png               images to predict (optional)

A training image pairs with the JSON file of the same stem in the same patient folder. An
orphan (an image without JSON, a JSON without image) is left out of ``train`` and reported in
``DatasetIndex.problems``, as is any other file or folder that does not fit the layout. Image
suffixes are those of ``data.images.IMAGE_SUFFIXES``, in any letter case; hidden files (name
starting with ".") are skipped without a report.

``image_name`` is the file name, the key of the submission CSV, so two images with the same
file name anywhere in one dataset raise an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from data.images import IMAGE_SUFFIXES


class LayoutError(ValueError):
    """A dataset folder does not have the expected layout, or two images share a name."""


@dataclass(frozen=True)
class Sample:
    """One image, with its annotation file when it has one.

    Attributes:
        image_name: file name of the image (``image1661319116107.png``); unique in a dataset.
        image_path: absolute path of the image.
        json_path: absolute path of its annotation JSON, or None for images to predict.
        patient_id: patient folder name (``ID001``); "" for an image outside patient folders.
    """

    image_name: str
    image_path: Path
    json_path: Path | None
    patient_id: str


@dataclass
class DatasetIndex:
    """Samples of a competition-layout dataset, sorted by patient and image name.

    Attributes:
        train: training images paired with their JSON files.
        test: images of ``test/DCM`` (``json_path`` is None); empty when there is no test folder.
        problems: one readable sentence per file that was left out or ignored, naming the file.
    """

    train: list[Sample]
    test: list[Sample]
    problems: list[str] = field(default_factory=list)


def is_image_file(path: Path) -> bool:
    """Return whether ``path`` has an image suffix (case-insensitive) and is not hidden."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def discover(root: str | os.PathLike) -> DatasetIndex:
    """Index a dataset in the competition layout (see the module docstring).

    Args:
        root: dataset folder containing ``train/DCM`` and ``train/outputs_json``, and/or
            ``test/DCM``.

    Returns:
        A :class:`DatasetIndex` with absolute paths, sorted by ``(patient_id, image_name)``.

    Raises:
        LayoutError: ``root`` is not a folder of this layout, an image stem is ambiguous
            (``a.png`` and ``a.jpg`` in one patient folder), or two images share a file name.
    """
    root_path = Path(root).expanduser().resolve()
    train_images_dir = root_path / "train" / "DCM"
    train_json_dir = root_path / "train" / "outputs_json"
    test_images_dir = root_path / "test" / "DCM"
    _check_root(root_path, train_images_dir, train_json_dir, test_images_dir)

    problems: list[str] = []
    train: list[Sample] = []
    if train_images_dir.is_dir():
        train = _pair_train(train_images_dir, train_json_dir, problems)
    test: list[Sample] = []
    if test_images_dir.is_dir():
        images = _scan_patient_folders(
            test_images_dir, is_image_file, "image", problems, key_by_stem=False
        )
        test = [Sample(path.name, path, None, patient) for (patient, _), path in images.items()]

    train.sort(key=_sort_key)
    test.sort(key=_sort_key)
    raise_on_duplicate_names(train + test)
    return DatasetIndex(train, test, problems)


def _check_root(root: Path, train_images: Path, train_json: Path, test_images: Path) -> None:
    expected = (
        "expected a competition-layout folder with train/DCM/<patient>/*.png and "
        "train/outputs_json/<patient>/*.json, and/or test/DCM/<patient>/*.png"
    )
    if not root.is_dir():
        reason = "does not exist" if not root.exists() else "is not a folder"
        raise LayoutError(f"dataset root {root} {reason}; {expected}")
    if not train_images.is_dir() and not test_images.is_dir():
        raise LayoutError(f"dataset root {root} has neither train/DCM nor test/DCM; {expected}")
    if train_images.is_dir() and not train_json.is_dir():
        raise LayoutError(
            f"dataset root {root} has train/DCM but no train/outputs_json folder with the "
            f"annotations; {expected}"
        )


def _pair_train(images_dir: Path, json_dir: Path, problems: list[str]) -> list[Sample]:
    images = _scan_patient_folders(images_dir, is_image_file, "image", problems)
    jsons = _scan_patient_folders(
        json_dir, lambda path: path.suffix.lower() == ".json", "annotation", problems
    )

    samples = []
    for key, image_path in images.items():
        json_path = jsons.get(key)
        if json_path is None:
            problems.append(
                f"image without annotation: {image_path} has no "
                f"{json_dir / key[0] / (key[1] + '.json')}; left out of train"
            )
            continue
        samples.append(Sample(image_path.name, image_path, json_path, key[0]))
    for key, json_path in jsons.items():
        if key not in images:
            problems.append(
                f"annotation without image: {json_path} has no image "
                f"{images_dir / key[0] / key[1]}.*; ignored"
            )
    return samples


def _scan_patient_folders(
    top: Path,
    accept: Callable[[Path], bool],
    kind: str,
    problems: list[str],
    key_by_stem: bool = True,
) -> dict[tuple[str, str], Path]:
    """Map ``(patient, stem)`` to each accepted file in ``top/<patient>/``; report the rest.

    With ``key_by_stem`` False the key is ``(patient, file name)``, for images without JSON.
    """
    found: dict[tuple[str, str], Path] = {}
    for entry in sorted(top.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            problems.append(f"{entry} lies outside a patient folder of {top}; ignored")
            continue
        for path in sorted(entry.iterdir()):
            if path.name.startswith("."):
                continue
            if path.is_dir():
                problems.append(f"{path} is a folder inside patient folder {entry}; ignored")
                continue
            if not accept(path):
                problems.append(f"{path} is not an {kind} file (by its suffix); ignored")
                continue
            key = (entry.name, path.stem if key_by_stem else path.name)
            if key in found:
                raise LayoutError(
                    f"two {kind} files share the stem {path.stem!r} in {entry}: {found[key]} "
                    f"and {path}; keep one so each image pairs with one annotation file"
                )
            found[key] = path
    return found


def list_images(folder: str | os.PathLike) -> list[Sample]:
    """List the images under ``folder`` (flat or nested) as samples to predict.

    Args:
        folder: folder searched recursively for files with an ``IMAGE_SUFFIXES`` suffix;
            hidden files and folders are skipped.

    Returns:
        Samples with absolute paths, ``json_path`` None and ``patient_id`` the name of the
        first sub-folder below ``folder`` ("" for files directly in it), sorted by relative
        path.

    Raises:
        LayoutError: ``folder`` is not a folder, contains no image, or two images share a name.
    """
    top = Path(folder).expanduser().resolve()
    if not top.is_dir():
        raise LayoutError(f"image folder {top} does not exist or is not a folder")

    samples = []
    visited: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        # Linked folders are followed, but each real folder only once, so a link cycle ends.
        real = Path(dirpath).resolve()
        if real in visited:
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        for filename in filenames:
            path = Path(dirpath) / filename
            if not is_image_file(path):
                continue
            relative = path.relative_to(top)
            patient = relative.parts[0] if len(relative.parts) > 1 else ""
            samples.append(Sample(path.name, path, None, patient))

    if not samples:
        raise LayoutError(
            f"no image found under {top}; expected files ending in " + ", ".join(IMAGE_SUFFIXES)
        )
    samples.sort(key=lambda sample: sample.image_path.relative_to(top).parts)
    raise_on_duplicate_names(samples)
    return samples


def raise_on_duplicate_names(samples: Iterable[Sample]) -> None:
    """Raise LayoutError naming both paths when two samples share an ``image_name``."""
    seen: dict[str, Path] = {}
    for sample in samples:
        other = seen.setdefault(sample.image_name, sample.image_path)
        if other != sample.image_path:
            raise LayoutError(
                f"two images share the file name {sample.image_name!r}: {other} and "
                f"{sample.image_path}; image names must be unique because they key the "
                "submission CSV, so rename one"
            )


def _sort_key(sample: Sample) -> tuple[str, str]:
    return sample.patient_id, sample.image_name
