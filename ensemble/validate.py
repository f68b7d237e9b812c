"""Check a submission CSV: header, keys, classes and every RLE.

Usage::

    python ensemble/validate.py submission.csv [--images DIR] [--default-size 2048x2048]

Prints one line per problem, ``row N: ...`` with N the line number in the file (the header is
row 1), and exits with status 1 when there is any problem, 0 when the file is valid.

Checks: the header is ``image_name,class,rle``; each row has three fields, a non-empty image
name and a known class; no ``(image_name, class)`` key appears twice; every image has all 29
classes; every RLE is an even number of integers with starts >= 1, positive lengths, sorted and
non-overlapping runs, inside the image. Image sizes come from the image headers under
``--images`` (which also makes every image of the folder required), or ``--default-size``.
"""

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import difflib
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from data.classes import CLASS_INDEX, CLASSES, NUM_CLASSES
from ensemble.image_folders import find_images, image_sizes, parse_size
from ensemble.rle import RLEError, parse_runs
from ensemble.submission import HEADER, Key, SubmissionError, iter_lines, parse_line

logger = logging.getLogger(__name__)

DEFAULT_SIZE: tuple[int, int] = (2048, 2048)
"""(H, W) of the competition's images, used when no image sizes are given."""


@dataclass(frozen=True)
class Problem:
    """One problem of a submission file.

    Attributes:
        row: line number in the file (header = 1), or None for a problem of the whole file
            (such as an image of the folder with no rows).
        message: what is wrong and what was expected.
    """

    row: int | None
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}" if self.row is not None else self.message


def find_problems(
    path: str | os.PathLike,
    sizes: Mapping[str, tuple[int, int]] | None = None,
    default_size: tuple[int, int] = DEFAULT_SIZE,
) -> list[Problem]:
    """Check a submission CSV and list its problems, reading it one line at a time.

    Args:
        path: the CSV file.
        sizes: image name -> (H, W) of every expected image. When given, each image of the
            CSV must be in it and each image in it must have rows; RLEs are checked against the
            image's own size. When None, RLEs are checked against ``default_size``.
        default_size: (H, W) used when ``sizes`` is None.

    Returns:
        The problems in file order, then the per-image problems, then the images of ``sizes``
        without rows; empty when the file is valid. Per-image problems are missing classes and
        images not in ``sizes``, each reported once, at the image's first row.
    """
    path = Path(path)
    problems: list[Problem] = []
    seen: dict[Key, int] = {}
    classes_of_image: dict[str, set[str]] = {}
    first_row_of_image: dict[str, int] = {}
    rows_outside: dict[str, int] = {}  # image name -> rows, for images not in ``sizes``

    try:
        lines = iter_lines(path)
        header_seen = False
        for line_number, _, raw_line in lines:
            try:
                fields = parse_line(raw_line, path, line_number)
            except SubmissionError as error:
                problems.append(Problem(line_number, str(error).split(": ", 1)[-1]))
                continue
            if fields is None:
                continue
            if not header_seen:
                header_seen = True
                if tuple(fields) != HEADER:
                    problems.append(_header_problem(line_number, fields))
                    if len(fields) != len(HEADER):
                        return problems
                    continue
                continue
            _check_row(line_number, fields, sizes, default_size, seen, problems)
            if len(fields) == len(HEADER) and fields[0]:
                image_name, class_name = fields[0], fields[1]
                classes_of_image.setdefault(image_name, set()).add(class_name)
                first_row_of_image.setdefault(image_name, line_number)
            if sizes is not None and len(fields) == len(HEADER) and fields[0] not in sizes:
                rows_outside[fields[0]] = rows_outside.get(fields[0], 0) + 1
    except SubmissionError as error:
        return [Problem(None, str(error))]

    if not header_seen:
        return [Problem(None, f"{path} is empty; expected the header {','.join(HEADER)}")]
    if not seen:
        problems.append(Problem(None, f"{path} has a header but no rows"))
    problems.extend(_missing_class_problems(classes_of_image, first_row_of_image))
    for name, count in rows_outside.items():
        problems.append(
            Problem(
                first_row_of_image.get(name),
                f"image {name!r} ({count} rows) is not in the image folder; pass the folder "
                "that holds every image of the CSV to --images",
            )
        )
    if sizes is not None:
        missing = [name for name in sizes if name not in classes_of_image]
        for name in missing:
            problems.append(
                Problem(None, f"image {name!r} has no rows (expected {NUM_CLASSES}, one per class)")
            )
    return problems


def _check_row(
    line_number: int,
    fields: list[str],
    sizes: Mapping[str, tuple[int, int]] | None,
    default_size: tuple[int, int],
    seen: dict[Key, int],
    problems: list[Problem],
) -> None:
    """Check one data row and append its problems."""
    if len(fields) != len(HEADER):
        problems.append(
            Problem(line_number, f"{len(fields)} fields, expected 3 (image_name,class,rle)")
        )
        return
    image_name, class_name, text = fields

    if not image_name:
        problems.append(Problem(line_number, "empty image_name"))
    if class_name not in CLASS_INDEX:
        problems.append(Problem(line_number, _unknown_class_message(class_name)))

    key = (image_name, class_name)
    if key in seen:
        problems.append(
            Problem(line_number, f"duplicate key {key}; first seen at row {seen[key]}")
        )
    else:
        seen[key] = line_number

    size = default_size
    if sizes is not None:
        # An image missing from the folder is reported once, by find_problems; its runs are
        # checked without a size.
        size = sizes.get(image_name)
    try:
        parse_runs(text, size=size[0] * size[1] if size is not None else None)
    except RLEError as error:
        where = f" of {size[0]}x{size[1]}" if size is not None else ""
        problems.append(Problem(line_number, f"invalid RLE{where}: {error}"))


def _missing_class_problems(
    classes_of_image: dict[str, set[str]], first_row_of_image: dict[str, int]
) -> list[Problem]:
    problems = []
    for image_name, present in classes_of_image.items():
        missing = [name for name in CLASSES if name not in present]
        if missing:
            problems.append(
                Problem(
                    first_row_of_image[image_name],
                    f"image {image_name!r} has no row for {len(missing)} of the {NUM_CLASSES} "
                    "classes: " + ", ".join(missing),
                )
            )
    return problems


def _header_problem(line_number: int, fields: list[str]) -> Problem:
    return Problem(
        line_number, f"header is {','.join(fields)!r}, expected {','.join(HEADER)!r}"
    )


def _unknown_class_message(class_name: str) -> str:
    message = f"unknown class {class_name!r}"
    close = difflib.get_close_matches(class_name, CLASSES, n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return message + "; expected one of the 29 competition classes"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python ensemble/validate.py",
        description="Check a submission CSV; prints each problem with its row number "
        "(the header is row 1) and exits with status 1 when there is any problem."
    )
    parser.add_argument("submission", type=Path, help="submission CSV to check")
    parser.add_argument(
        "--images",
        type=Path,
        help="folder of the predicted images (a competition root or any folder of images): "
        "RLEs are checked at each image's own size and every image must have rows",
    )
    parser.add_argument(
        "--default-size",
        type=parse_size,
        default=DEFAULT_SIZE,
        metavar="HxW",
        help="image size in pixels used without --images (default: 2048x2048)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        sizes = image_sizes(find_images(args.images)) if args.images is not None else None
    except ValueError as error:  # LayoutError, ImageReadError
        print(f"error: {error}", file=sys.stderr)
        return 2
    problems = find_problems(args.submission, sizes=sizes, default_size=args.default_size)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{args.submission}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{args.submission}: valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
