"""Hard-vote existing submission CSVs into one.

Usage::

    python ensemble/vote_csv.py a.csv b.csv c.csv --out vote.csv [--min-votes 2]
        [--images DIR | --default-size 2048x2048]

A pixel of a class is in the result when at least ``--min-votes`` of the CSVs (default: a
majority) have it. Rows are matched on ``(image_name, class)``, never by position, so the CSVs
may list rows in any order. The vote works on runs, without decoding masks to pixels, and reads
one row of each CSV at a time. A row that one CSV lacks counts as an empty mask from that CSV.
Image sizes (to check that every run lies inside its image) come from the image headers under
``--images`` or from ``--default-size``. The result is written atomically, then validated.
"""

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from data.classes import CLASS_INDEX, CLASSES
from ensemble.image_folders import find_images, image_sizes, parse_size
from ensemble.rle import RLEError, format_runs, parse_runs
from ensemble.submission import SubmissionIndex, SubmissionWriter
from ensemble.validate import DEFAULT_SIZE, Problem, find_problems
from ensemble.voting import vote_runs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoteSummary:
    """Result of :func:`vote_csvs`.

    Attributes:
        images: images written.
        rows: rows written (29 per image).
        missing_rows: (input, key) pairs absent from an input and counted as empty masks.
        problems: validation problems of the written CSV (empty when valid).
    """

    images: int
    rows: int
    missing_rows: int
    problems: list[Problem]


def vote_csvs(
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    min_votes: int | None = None,
    sizes: Mapping[str, tuple[int, int]] | None = None,
    default_size: tuple[int, int] = DEFAULT_SIZE,
) -> VoteSummary:
    """Hard-vote submission CSVs row by row and write the result atomically.

    Args:
        inputs: two or more submission CSVs.
        out: output CSV path.
        min_votes: CSVs needed to keep a pixel, 1..len(inputs); None is a majority
            (``len(inputs) // 2 + 1``).
        sizes: image name -> (H, W); None uses ``default_size`` for every image.
        default_size: (H, W) used without ``sizes``.

    Raises:
        ValueError: on fewer than two inputs, a bad ``min_votes``, ``out`` naming one of the
            inputs (checked before anything is written), an unreadable input (bad
            header, duplicate key) or an invalid RLE, naming the file and line.
    """
    if len(inputs) < 2:
        raise ValueError(f"hard voting needs at least 2 submission CSVs, got {len(inputs)}")
    min_votes = len(inputs) // 2 + 1 if min_votes is None else min_votes
    if not 1 <= min_votes <= len(inputs):
        raise ValueError(f"--min-votes must be between 1 and {len(inputs)}, got {min_votes}")
    _check_out_is_new(inputs, out)

    with ExitStack() as stack:
        indexes = [stack.enter_context(SubmissionIndex(path)) for path in inputs]
        images = _union_of_images(indexes)
        _warn_unknown_classes(indexes)
        missing = 0
        with SubmissionWriter(out) as writer:
            for image_name in images:
                size = _size_of(image_name, sizes, default_size)
                for class_name in CLASSES:
                    votes, absent = _read_votes(indexes, (image_name, class_name), size)
                    missing += absent
                    starts, lengths = vote_runs(votes, min_votes)
                    writer.write_row(image_name, class_name, format_runs(starts, lengths))
            rows = writer.rows_written

    if missing:
        logger.warning("%d rows were absent from an input and counted as empty masks", missing)
    problems = find_problems(out, sizes=sizes, default_size=default_size)
    return VoteSummary(len(images), rows, missing, problems)


def _check_out_is_new(inputs: Sequence[str | os.PathLike], out: str | os.PathLike) -> None:
    """Raise ValueError when ``out`` is one of the inputs (same file through any path or link)."""
    target = Path(out).resolve()
    for path in inputs:
        source = Path(path)
        same = source.resolve() == target
        if not same and source.exists() and target.exists():
            same = os.path.samefile(source, target)  # hard links
        if same:
            raise ValueError(
                f"--out {out} is the input {path}; writing it would replace a CSV that is "
                "being voted on; give another --out path"
            )


def _union_of_images(indexes: list[SubmissionIndex]) -> list[str]:
    """Return every image name of the inputs: the first input's order, then new ones."""
    seen: dict[str, None] = {}
    for index in indexes:
        for name in index.images:
            seen.setdefault(name, None)
    return list(seen)


def _warn_unknown_classes(indexes: list[SubmissionIndex]) -> None:
    for index in indexes:
        unknown = sorted({key[1] for key in index.offsets if key[1] not in CLASS_INDEX})
        if unknown:
            logger.warning("%s: rows of unknown classes ignored: %s", index.path, ", ".join(unknown))


def _size_of(
    image_name: str, sizes: Mapping[str, tuple[int, int]] | None, default: tuple[int, int]
) -> tuple[int, int]:
    if sizes is None:
        return default
    if image_name not in sizes:
        raise ValueError(
            f"image {image_name!r} of the input CSVs is not in the image folder; pass the "
            "folder that contains every predicted image, or use --default-size"
        )
    return sizes[image_name]


def _read_votes(indexes: list[SubmissionIndex], key: tuple[str, str], size: tuple[int, int]):
    """Return each input's runs for ``key`` (absent rows are empty) and the count of absent rows."""
    votes = []
    absent = 0
    for index in indexes:
        text = index.read(key)
        if text is None:
            absent += 1
            text = ""
        try:
            votes.append(parse_runs(text, size=size[0] * size[1]))
        except RLEError as error:
            raise ValueError(
                f"{index.path} line {index.lines[key]}: invalid RLE for {key} at "
                f"{size[0]}x{size[1]}: {error}"
            ) from None
    return votes, absent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python ensemble/vote_csv.py",
        description="Hard-vote submission CSVs: a pixel is kept when at least --min-votes CSVs "
        "have it. Rows are matched on (image_name, class)."
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="two or more submission CSVs")
    parser.add_argument("--out", type=Path, required=True, help="output submission CSV")
    parser.add_argument("--min-votes", type=int,
                        help="CSVs needed to keep a pixel (default: a majority)")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--images", type=Path,
                       help="folder of the predicted images; their headers give each size")
    sizes.add_argument("--default-size", type=parse_size, default=DEFAULT_SIZE, metavar="HxW",
                       help="size of every image in pixels without --images (default: 2048x2048)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        sizes = image_sizes(find_images(args.images)) if args.images is not None else None
        summary = vote_csvs(args.inputs, args.out, args.min_votes, sizes, args.default_size)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {summary.images} images, {summary.rows} rows")
    for problem in summary.problems:
        print(problem)
    return 1 if summary.problems else 0


if __name__ == "__main__":
    sys.exit(main())
