"""Reading an uploaded table: its type, its size limit, and messages that say what is wrong.

The upload is streamed to a file with a fixed name (``source.csv``, ``source.tsv`` or
``source.parquet``) in a fresh folder; the name the user gave is kept for display only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path, PurePath

import numpy as np
import pandas as pd

from fedsynth.exceptions import InvalidDataError, Problem
from fedsynth.tabular.io import detect_dialect, read_parquet_table, read_text_table
from fedsynth.web.errors import UnsupportedUploadError, UploadTooLargeError

#: File suffix to stored format.
FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_PARQUET_MAGIC = b"PAR1"
_SNIFF_BYTES = 64 * 1024


def display_name(filename: str | None) -> str:
    """The base name of an uploaded file, for display only (never used as a path)."""
    name = PurePath((filename or "").replace("\\", "/")).name.strip()
    return name[:200] or "upload"


def format_of(filename: str) -> str:
    """The stored format of an upload from its suffix; refuses other types.

    Raises
    ------
    UnsupportedUploadError
        For any suffix but .csv, .txt, .tsv, .parquet and .pq.
    """
    suffix = PurePath(filename).suffix.lower()
    if suffix not in FORMATS:
        raise UnsupportedUploadError(
            f"{filename!r} is not a table fedsynth reads: expected a CSV (.csv, .txt), TSV "
            f"(.tsv) or Parquet (.parquet, .pq) file, got {suffix or 'no extension'!r}"
        )
    return FORMATS[suffix]


def save_upload(chunks: Iterable[bytes], path: Path, *, filename: str, max_bytes: int) -> int:
    """Write the uploaded bytes to ``path``, stopping as soon as they pass ``max_bytes``.

    Returns
    -------
    int
        The size in bytes.

    Raises
    ------
    UploadTooLargeError
        Above ``max_bytes``.
    InvalidDataError
        For an empty file.
    """
    size = 0
    with open(path, "wb") as handle:
        for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise UploadTooLargeError(
                    f"{filename!r} is larger than the upload limit of {megabytes(max_bytes)} "
                    "(start the server with a larger --max-upload-mb to accept it)"
                )
            handle.write(chunk)
    if size == 0:
        raise InvalidDataError([Problem(None, f"{filename!r} is empty (0 bytes)")])
    return size


def check_content(path: Path, file_format: str, *, filename: str) -> None:
    """Refuse a file whose content does not match its type (a binary file named .csv...)."""
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
        if file_format == "parquet":
            handle.seek(-min(len(_PARQUET_MAGIC), path.stat().st_size), 2)
            tail = handle.read()
    if file_format == "parquet":
        if not (head.startswith(_PARQUET_MAGIC) and tail == _PARQUET_MAGIC):
            raise UnsupportedUploadError(
                f"{filename!r} is not a Parquet file (its content lacks the Parquet markers); "
                "save it again as Parquet, or upload it as CSV"
            )
        return
    if b"\x00" in head or head.startswith(_PARQUET_MAGIC):
        raise UnsupportedUploadError(
            f"{filename!r} holds binary data, not CSV text; expected a text table (an Excel "
            "workbook must be saved as CSV first)"
        )


def read_upload(path: Path, file_format: str, *, filename: str) -> tuple[pd.DataFrame, str | None]:
    """Read a stored upload into a DataFrame (the same way every time it is read), with the
    :class:`~fedsynth.tabular.io.TextDialect` of a text table in words (``None`` for Parquet).

    Text tables go through the reader of :mod:`fedsynth.tabular.io`, which the command line
    shares: any delimiter, decimal commas, UTF-8 or Latin-1.

    Raises
    ------
    InvalidDataError
        When the table cannot be parsed, reads as a single column, has ragged lines, no data
        row, or repeats a column name; the message names the file and, where known, the line
        or the column.
    """
    if file_format == "parquet":
        table, dialect = read_parquet_table(path, name=filename), None
    else:
        found = detect_dialect(path, name=filename)
        table, dialect = read_text_table(path, found, name=filename), found.describe()
    nested = [
        Problem(
            c, f"holds lists or other nested values in {filename!r}; expected one value per cell"
        )
        for c in table.columns
        if table[c].dtype == object and not table[c].dropna().map(_is_plain).all()
    ]
    if nested:
        raise InvalidDataError(nested)
    return table, dialect


def _is_plain(value: object) -> bool:
    plain = (str, bytes, int, float, bool, np.generic, Decimal, dt.date, dt.time, dt.timedelta)
    return isinstance(value, plain)


def megabytes(n_bytes: int) -> str:
    """A size in bytes as the megabytes of ``--max-upload-mb`` (``200 MB``)."""
    return f"{n_bytes / (1024 * 1024):g} MB"
