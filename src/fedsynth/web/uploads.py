"""Reading an uploaded table: its type, its size limit, and messages that say what is wrong.

The upload is streamed to a file with a fixed name (``source.csv``, ``source.tsv`` or
``source.parquet``) in a fresh folder; the name the user gave is kept for display only.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path, PurePath

import numpy as np
import pandas as pd

from fedsynth.exceptions import InvalidDataError, Problem
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
                    f"{filename!r} is larger than the upload limit of {_megabytes(max_bytes)} "
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
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise InvalidDataError(
            [
                Problem(
                    None,
                    f"{filename!r} is not UTF-8 text (byte {exc.start} cannot be decoded); "
                    "save the table as UTF-8 CSV",
                )
            ]
        ) from exc


def read_upload(path: Path, file_format: str, *, filename: str) -> pd.DataFrame:
    """Read a stored upload into a DataFrame (the same way every time it is read).

    Raises
    ------
    InvalidDataError
        When the table cannot be parsed, has no data row, or repeats a column name; the
        message names the file and, where known, the line or the column.
    """
    try:
        if file_format == "parquet":
            table = pd.read_parquet(path)
        else:
            separator = "\t" if file_format == "tsv" else _separator(path)
            _check_header(path, separator, filename)
            table = pd.read_csv(path, sep=separator, low_memory=False, encoding="utf-8-sig")
    except InvalidDataError:
        raise
    except UnicodeDecodeError as exc:
        raise InvalidDataError(
            [Problem(None, f"{filename!r} is not UTF-8 text; save the table as UTF-8 CSV")]
        ) from exc
    except Exception as exc:
        kind = "Parquet" if file_format == "parquet" else file_format.upper()
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise InvalidDataError(
            [Problem(None, f"{filename!r} is not a well-formed {kind} table: {message}")]
        ) from exc
    table.columns = [str(c) for c in table.columns]
    nested = [
        Problem(
            c, f"holds lists or other nested values in {filename!r}; expected one value per cell"
        )
        for c in table.columns
        if table[c].dtype == object and not table[c].dropna().map(_is_plain).all()
    ]
    if nested:
        raise InvalidDataError(nested)
    if table.shape[1] == 0 or len(table) == 0:
        raise InvalidDataError(
            [
                Problem(
                    None,
                    f"{filename!r} has no data rows ({table.shape[1]} columns, "
                    f"{len(table)} rows); expected a header line and one line per patient",
                )
            ]
        )
    return table


def _is_plain(value: object) -> bool:
    plain = (str, bytes, int, float, bool, np.generic, Decimal, dt.date, dt.time, dt.timedelta)
    return isinstance(value, plain)


def _separator(path: Path) -> str:
    """The delimiter of a CSV file: the one of , ; | and tab the header line uses most (comma
    when tied or when there is none), so that European CSV files (``;``) read as well."""
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        header = handle.readline()
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] > counts[","] else ","


def _check_header(path: Path, separator: str, filename: str) -> None:
    """Refuse repeated column names (pandas would silently rename them ``a.1``)."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        first = handle.readline()
    header = next(csv.reader(io.StringIO(first), delimiter=separator), [])
    names = [name.strip() for name in header]
    repeated = sorted({n for n in names if names.count(n) > 1 and n})
    if repeated:
        raise InvalidDataError(
            [Problem(None, f"{filename!r} repeats the column name(s) {repeated}; rename them")]
        )


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / (1024 * 1024):g} MB"
