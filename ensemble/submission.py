"""Submission CSV files: atomic streaming writer, key-joined readers.

Format (UTF-8, one header line, ``\\n`` line ends)::

    image_name,class,rle
    image1661319116107.png,finger-1,1034 5 3082 9
    image1661319116107.png,finger-2,

``image_name`` is the image's file name, ``class`` one of ``data.classes.CLASSES``, and ``rle``
the competition RLE at the image's own size (see :mod:`ensemble.rle`). An empty mask is an empty
field, never ``nan``. A complete submission has one row per image and class (29 per image).
Rows are identified by the key ``(image_name, class)``; no code here relies on row order.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from data.classes import CLASS_INDEX, CLASSES, NUM_CLASSES
from ensemble import rle as rle_codec

logger = logging.getLogger(__name__)

HEADER: tuple[str, str, str] = ("image_name", "class", "rle")
Key = tuple[str, str]
"""Row key ``(image_name, class)``."""


class SubmissionError(ValueError):
    """A submission CSV cannot be read or written as requested; the message names the file."""


class SubmissionWriter:
    """Stream submission rows to a temporary file and move it over ``path`` on success.

    The temporary file lives in the folder of ``path`` and replaces it with ``os.replace``, so
    a reader sees the old file or the complete new one, never a partial file. When the ``with``
    block raises, the temporary file is removed and ``path`` keeps its old content. A process
    killed mid-way can leave a ``.<name>.*.tmp`` file beside ``path``, but never a partial
    ``path``.

    Example::

        with SubmissionWriter("submission.csv") as writer:
            for name, masks in predictions:          # masks: (29, H, W)
                writer.write_image(name, masks)

    Raises:
        SubmissionError: on a duplicate ``(image_name, class)`` row or an unknown class.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.rows_written = 0
        self._keys: set[Key] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            newline="",
            dir=self.path.parent,
            prefix=f".{self.path.name}.",
            suffix=".tmp",
            delete=False,
        )
        self._file: io.TextIOWrapper | None = handle
        self._temp_path = Path(handle.name)
        self._csv = csv.writer(handle, lineterminator="\n")
        self._csv.writerow(HEADER)

    def __enter__(self) -> SubmissionWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def write_row(self, image_name: str, class_name: str, rle: str | None) -> None:
        """Write one row; ``rle`` None, ``""`` or NaN is written as an empty field."""
        if self._file is None:
            raise SubmissionError(f"writer for {self.path} is already closed")
        if class_name not in CLASS_INDEX:
            raise SubmissionError(
                f"unknown class {class_name!r} for image {image_name!r}; expected one of "
                + ", ".join(CLASSES)
            )
        key = (image_name, class_name)
        if key in self._keys:
            raise SubmissionError(f"duplicate row {key} written to {self.path}")
        self._keys.add(key)
        self._csv.writerow((image_name, class_name, _rle_field(rle, key)))
        self.rows_written += 1

    def write_image_rles(self, image_name: str, rles: Sequence[str]) -> None:
        """Write the 29 rows of one image from RLE strings in ``CLASSES`` order."""
        if len(rles) != NUM_CLASSES:
            raise SubmissionError(
                f"image {image_name!r}: got {len(rles)} RLE strings, expected {NUM_CLASSES} "
                "(one per class, in CLASSES order)"
            )
        for class_name, text in zip(CLASSES, rles):
            self.write_row(image_name, class_name, text)

    def write_image(self, image_name: str, masks: np.ndarray) -> None:
        """Encode and write the 29 rows of one image.

        Args:
            image_name: file name of the image.
            masks: (29, H, W) binary masks at the image's own size, ``CLASSES`` order; any
                non-zero value is foreground.
        """
        if masks.ndim != 3 or masks.shape[0] != NUM_CLASSES:
            raise SubmissionError(
                f"image {image_name!r}: masks have shape {masks.shape}, expected "
                f"({NUM_CLASSES}, H, W)"
            )
        self.write_image_rles(image_name, [rle_codec.encode(channel) for channel in masks])

    def commit(self) -> None:
        """Flush the rows to disk and move the temporary file over ``path``."""
        if self._file is None:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        # Temporary files are private (0600); give the submission the old file's mode or 0644.
        mode = self.path.stat().st_mode & 0o777 if self.path.exists() else 0o644
        os.chmod(self._temp_path, mode)
        os.replace(self._temp_path, self.path)
        logger.info("wrote %d rows to %s", self.rows_written, self.path)

    def abort(self) -> None:
        """Close and delete the temporary file; ``path`` is left as it was."""
        if self._file is None:
            return
        self._file.close()
        self._file = None
        self._temp_path.unlink(missing_ok=True)
        logger.warning("discarded the partial submission for %s", self.path)


def write_submission(path: str | os.PathLike, rows: Iterable[tuple[str, str, str]]) -> int:
    """Write ``(image_name, class, rle)`` rows atomically; return the number of rows."""
    with SubmissionWriter(path) as writer:
        for image_name, class_name, text in rows:
            writer.write_row(image_name, class_name, text)
    return writer.rows_written


def read_submission(path: str | os.PathLike) -> pd.DataFrame:
    """Read a submission CSV into a DataFrame of strings.

    Returns:
        DataFrame with columns ``image_name``, ``class``, ``rle``, all ``str``; an empty mask
        is ``""`` (pandas' NaN conversion is switched off).

    Raises:
        SubmissionError: when the file is missing or its header is not ``image_name,class,rle``.
    """
    path = Path(path)
    _check_header(path)
    return pd.read_csv(
        path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig"
    )


def submission_table(frame: pd.DataFrame) -> dict[Key, str]:
    """Map each ``(image_name, class)`` key of a read submission to its RLE string.

    Raises:
        SubmissionError: on a duplicate key.
    """
    table: dict[Key, str] = {}
    for image_name, class_name, text in frame[list(HEADER)].itertuples(index=False):
        key = (image_name, class_name)
        if key in table:
            raise SubmissionError(f"duplicate row {key}; each image and class needs one row")
        table[key] = text
    return table


def masks_from_rles(rles: dict[str, str], shape: tuple[int, int]) -> np.ndarray:
    """Decode the RLE strings of one image into a (29, H, W) uint8 stack.

    Args:
        rles: class name -> RLE; a class that is missing is an empty mask.
        shape: (H, W) of the image.
    """
    height, width = shape
    masks = np.zeros((NUM_CLASSES, height * width), dtype=np.uint8)
    for class_name, text in rles.items():
        starts, lengths = rle_codec.parse_runs(text, size=height * width)
        rle_codec.fill_runs(masks[CLASS_INDEX[class_name]], starts, lengths)
    return masks.reshape(NUM_CLASSES, height, width)


@dataclass(frozen=True)
class Record:
    """One CSV record: its line number (the header is line 1), fields and byte offset."""

    line: int
    fields: list[str]
    offset: int


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(line_number, byte_offset, raw_line)`` for every line of a file.

    Raises:
        SubmissionError: when the file cannot be opened.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as error:
        raise SubmissionError(f"cannot open submission {path}: {error.strerror}") from None
    with handle:
        offset = 0
        for line_number, raw_line in enumerate(handle, start=1):
            yield line_number, offset, raw_line
            offset += len(raw_line)


def iter_records(path: str | os.PathLike) -> Iterator[Record]:
    """Yield the records of a CSV one at a time, the header included, with line numbers.

    Lines are read as bytes, so each record's byte offset can be stored and the record read
    again later with :func:`read_record_at`. Blank lines are skipped.

    Raises:
        SubmissionError: on a line that is not UTF-8 or has unbalanced quotes (a quoted field
            with a line break is not supported).
    """
    path = Path(path)
    for line_number, offset, raw_line in iter_lines(path):
        fields = parse_line(raw_line, path, line_number)
        if fields is not None:
            yield Record(line_number, fields, offset)


def read_record_at(handle: BinaryIO, offset: int, path: Path) -> list[str]:
    """Read the CSV record that starts at ``offset`` of an open binary file."""
    handle.seek(offset)
    fields = parse_line(handle.readline(), path, None)
    return fields if fields is not None else []


class SubmissionIndex:
    """Byte offsets of every ``(image_name, class)`` row of a submission, for reads by key.

    Scanning a file keeps only the keys and offsets in memory, not the RLE strings, so a vote
    over several large CSVs keeps one image's rows in memory at a time.

    Attributes:
        path: the CSV file.
        images: image names in order of first appearance.
        offsets: key -> byte offset of its row.
        lines: key -> line number of its row (the header is line 1).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.offsets: dict[Key, int] = {}
        self.lines: dict[Key, int] = {}
        self.images: list[str] = []
        seen_images: set[str] = set()

        records = iter_records(self.path)
        header = next(records, None)
        if header is None or tuple(header.fields) != HEADER:
            raise SubmissionError(_header_message(self.path, header.fields if header else None))
        for record in records:
            if len(record.fields) != len(HEADER):
                raise SubmissionError(
                    f"{self.path} line {record.line}: {len(record.fields)} fields, expected 3 "
                    "(image_name,class,rle); run ensemble/validate.py on it"
                )
            key = (record.fields[0], record.fields[1])
            if key in self.offsets:
                raise SubmissionError(
                    f"{self.path} line {record.line}: duplicate row {key} (first at line "
                    f"{self.lines[key]}); run ensemble/validate.py on it"
                )
            self.offsets[key] = record.offset
            self.lines[key] = record.line
            if key[0] not in seen_images:
                seen_images.add(key[0])
                self.images.append(key[0])
        self._handle: BinaryIO | None = None

    def __enter__(self) -> SubmissionIndex:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Close the file handle used by :meth:`read`."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def read(self, key: Key) -> str | None:
        """Return the RLE string of ``key``, or None when the file has no such row."""
        offset = self.offsets.get(key)
        if offset is None:
            return None
        if self._handle is None:
            self._handle = self.path.open("rb")
        return read_record_at(self._handle, offset, self.path)[2]

    def read_image(self, image_name: str) -> dict[str, str]:
        """Return class name -> RLE for the rows of one image that the file contains."""
        rles = {}
        for class_name in CLASSES:
            text = self.read((image_name, class_name))
            if text is not None:
                rles[class_name] = text
        return rles


def _rle_field(rle: str | float | None, key: Key) -> str:
    if rle is None:
        return ""
    if isinstance(rle, float) and math.isnan(rle):
        return ""
    if not isinstance(rle, str):
        raise SubmissionError(f"row {key}: RLE must be a string, got {type(rle).__name__}")
    return rle


def parse_line(raw_line: bytes, path: Path, line_number: int | None) -> list[str] | None:
    """Parse one CSV line into its fields; return None for a blank line.

    Raises:
        SubmissionError: when the line is not UTF-8 or has unbalanced quotes.
    """
    where = f"{path} line {line_number}" if line_number is not None else str(path)
    try:
        text = raw_line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SubmissionError(f"{where}: not UTF-8 ({error.reason})") from None
    if line_number == 1:
        text = text.removeprefix("\ufeff")
    text = text.rstrip("\r\n")
    if not text:
        return None
    if '"' not in text:
        return text.split(",")
    if text.count('"') % 2:
        raise SubmissionError(
            f"{where}: unbalanced quotes; quoted fields with line breaks are not supported"
        )
    return next(csv.reader([text]))


def _check_header(path: Path) -> None:
    records = iter_records(path)
    header = next(records, None)
    records.close()
    if header is None or tuple(header.fields) != HEADER:
        raise SubmissionError(_header_message(path, header.fields if header else None))


def _header_message(path: Path, fields: list[str] | None) -> str:
    found = "an empty file" if fields is None else ",".join(fields)
    return f"{path}: header is {found!r}, expected {','.join(HEADER)!r}"
