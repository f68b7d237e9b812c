"""Check a competition-layout dataset and print a summary: ``python -m data.check ROOT``.

The check indexes the folder with ``data.layout.discover``, reads every annotation JSON with
``data.annotations.load_annotations``, reads each image's size from its file header (or
decodes every image with ``--decode``), and sorts what it finds into errors and warnings.

Errors (exit status 1): a root that is not a competition layout, duplicate image names, an
unreadable image or JSON, an invalid annotation entry (unknown label, bad coordinates).
Warnings (exit status 0, listed): orphan images or JSON files and other stray files, annotation
defects that are corrected (see ``data.annotations``), points outside their image, a class that
no training image contains, an empty train set.
"""

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import os
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from data.annotations import AnnotationError, AnnotationWarning, load_annotations, points_outside
from data.classes import CLASSES
from data.images import ImageReadError, read_image, read_image_size
from data.layout import LayoutError, Sample, discover


@dataclass
class CheckReport:
    """Findings of :func:`check_dataset`.

    Attributes:
        root: the dataset folder as given.
        n_train_patients, n_test_patients: distinct patient folders with at least one image.
        n_train, n_test: training images paired with a JSON file, and test images.
        image_sizes: number of images per ``(H, W)`` size, train and test together.
        class_counts: per class, the number of training images whose JSON has a polygon of it.
        errors: one sentence per error, naming the file.
        warnings: one sentence per warning, naming the file.
    """

    root: str
    n_train_patients: int = 0
    n_test_patients: int = 0
    n_train: int = 0
    n_test: int = 0
    image_sizes: Counter = field(default_factory=Counter)
    class_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there is no error; warnings are allowed."""
        return not self.errors


def check_dataset(root: str | os.PathLike, decode: bool = False) -> CheckReport:
    """Check the dataset at ``root`` and return the findings.

    Dataset defects, including folders the process cannot list, become report errors
    instead of exceptions.

    Args:
        root: competition-layout folder (see ``data.layout``).
        decode: decode every image fully instead of reading its header; slower, but it also
            finds truncated pixel data.

    Returns:
        A :class:`CheckReport`; ``report.ok`` is False when it lists errors.
    """
    report = CheckReport(root=str(root))
    try:
        index = discover(root)
    except LayoutError as error:
        report.errors.append(str(error))
        return report
    except OSError as error:
        report.errors.append(f"cannot list dataset folder {error.filename}: {error.strerror}")
        return report
    report.warnings.extend(index.problems)

    report.n_train = len(index.train)
    report.n_test = len(index.test)
    report.n_train_patients = len({sample.patient_id for sample in index.train})
    report.n_test_patients = len({sample.patient_id for sample in index.test})

    for sample in index.train + index.test:
        size = _image_size(sample, decode, report)
        if sample.json_path is not None:
            _check_annotations(sample, size, report)

    if not index.train:
        report.warnings.append(f"no training image with annotations under {root}")
    else:
        absent = [label for label, count in report.class_counts.items() if count == 0]
        if absent:
            report.warnings.append(
                f"{len(absent)} class(es) appear in none of the training images: "
                + ", ".join(absent)
            )
    return report


def _image_size(sample: Sample, decode: bool, report: CheckReport) -> tuple[int, int] | None:
    try:
        size = read_image(sample.image_path).shape if decode else read_image_size(sample.image_path)
    except ImageReadError as error:
        report.errors.append(str(error))
        return None
    size = (int(size[0]), int(size[1]))
    report.image_sizes[size] += 1
    return size


def _check_annotations(sample: Sample, size: tuple[int, int] | None, report: CheckReport) -> None:
    # NOTE: catch_warnings changes the process-wide warning filters while it runs, so this
    # check is not safe to run in several threads at once.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AnnotationWarning)
        try:
            annotations = load_annotations(sample.json_path)
        except AnnotationError as error:
            report.errors.append(str(error))
            return
    for record in caught:
        if issubclass(record.category, AnnotationWarning):
            report.warnings.append(str(record.message))
        else:
            warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)

    for label in sorted({annotation.label for annotation in annotations}):
        report.class_counts[label] += 1
    if size is None:
        return
    for annotation in annotations:
        outside = points_outside(annotation, size)
        if outside:
            report.warnings.append(
                f"annotation file {sample.json_path}, label {annotation.label!r}: {outside} of "
                f"{len(annotation.points)} points lie outside the {size[1]}x{size[0]} image"
            )


def format_report(report: CheckReport) -> str:
    """Render ``report`` as the text the CLI prints."""
    lines = [
        f"dataset: {report.root}",
        f"patients: {report.n_train_patients} train, {report.n_test_patients} test",
        f"images: {report.n_train} train (with annotations), {report.n_test} test",
    ]
    if report.image_sizes:
        lines.append("image sizes (H x W): " + ", ".join(
            f"{h}x{w}: {count}" for (h, w), count in sorted(report.image_sizes.items())
        ))
    if report.n_train:
        lines.append(f"class presence (training images containing each class, of {report.n_train}):")
        width = max(len(label) for label in CLASSES)
        for label, count in report.class_counts.items():
            lines.append(f"  {label:<{width}}  {count}")
    for title, items in (("warnings", report.warnings), ("errors", report.errors)):
        if items:
            lines.append(f"{title} ({len(items)}):")
            lines.extend(f"  - {item}" for item in items)

    if report.errors:
        lines.append(f"result: FAILED with {len(report.errors)} error(s)")
    elif report.warnings:
        lines.append(f"result: OK with {len(report.warnings)} warning(s)")
    else:
        lines.append("result: OK")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, check the dataset, print the summary; return 1 on errors, else 0."""
    parser = argparse.ArgumentParser(
        prog="python -m data.check",
        description="Check a competition-layout hand X-ray dataset and print a summary.",
    )
    parser.add_argument("root", help="dataset folder with train/DCM, train/outputs_json, test/DCM")
    parser.add_argument(
        "--decode",
        action="store_true",
        help="decode every image instead of reading only its header (slower, finds truncated files)",
    )
    args = parser.parse_args(argv)

    report = check_dataset(args.root, decode=args.decode)
    print(format_report(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
