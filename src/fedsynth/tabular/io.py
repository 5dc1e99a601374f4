"""Reading and writing tables (CSV, TSV, Parquet), with messages a user can act on.

Text tables are read by one reader, shared by the Python API, the command line and the web app:
:func:`detect_dialect` looks at a bounded sample of the file for its encoding (UTF-8, with or
without a byte-order mark, else Windows-1252/Latin-1), its delimiter (``,`` ``;`` tab ``|``, the
one that splits every sampled line into the header's number of fields, quotes respected) and its
decimal mark (a comma when the numbers of a non-comma file are written ``12,5``), as European
hospital exports are; :func:`read_text_table` reads the file with that dialect and refuses what
would be silently wrong: a single column (no delimiter found), ragged rows, repeated names.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fedsynth.core.io import atomic_path
from fedsynth.exceptions import InvalidDataError, Problem

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")
PARQUET_SUFFIXES = (".parquet", ".pq")
#: Delimiters tried, in the order that wins a tie.
DELIMITERS = (",", ";", "\t", "|")
#: Bytes of the file the dialect is detected on.
SAMPLE_BYTES = 64 * 1024
_SAMPLE_LINES = 200
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+$")
_DECIMAL_POINT = re.compile(r"^[-+]?\d*\.\d+$")
_BAD_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


@dataclass(frozen=True)
class TextDialect:
    """How a text table is written: its encoding, delimiter and decimal mark.

    Examples
    --------
    >>> TextDialect(encoding="utf-8", delimiter=";", decimal=",").describe()
    'semicolon-separated, decimal comma, utf-8'
    """

    encoding: str
    delimiter: str
    decimal: str = "."

    def describe(self) -> str:
        """The dialect in words, as the command line and the web app show it."""
        mark = "decimal comma" if self.decimal == "," else "decimal point"
        return f"{_DELIMITER_NAMES[self.delimiter]}-separated, {mark}, {self.encoding}"


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV/TSV (any delimiter and decimal mark, see :func:`detect_dialect`) or Parquet
    file into a DataFrame.

    Raises
    ------
    InvalidDataError
        When the file is missing, empty, of an unknown type or cannot be parsed; the message
        names the file and, where known, the line or the column.
    """
    path = check_table_file(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return read_parquet_table(path, name=path.name)
    return read_text_table(path, detect_dialect(path, name=path.name), name=path.name)


def check_table_file(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`~pathlib.Path` once it is known to be a non-empty table file.

    Raises
    ------
    InvalidDataError
        When the file is missing, of an unknown type or empty.
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidDataError(
            [Problem(None, f"{str(path)!r} is a folder; expected a table file (.csv, .parquet...)")]
        )
    if not path.is_file():
        raise InvalidDataError([Problem(None, f"file {str(path)!r} does not exist")])
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise InvalidDataError(
            [Problem(None, f"{path.name!r}: expected one of {', '.join(TABLE_SUFFIXES)} files")]
        )
    if path.stat().st_size == 0:
        raise InvalidDataError([Problem(None, f"{path.name!r} is empty (0 bytes)")])
    return path


def read_parquet_table(path: Path, *, name: str) -> pd.DataFrame:
    """Read a Parquet file, refusing one without data rows."""
    try:
        table = pd.read_parquet(path)
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise InvalidDataError(
            [Problem(None, f"{name!r} is not a well-formed Parquet table: {message}")]
        ) from exc
    return _with_rows(table, name)


def detect_dialect(path: str | os.PathLike, *, name: str | None = None) -> TextDialect:
    """The encoding, delimiter and decimal mark of a text table, from its first 64 KiB.

    The delimiter is the one of ``,`` ``;`` tab ``|`` that splits the header and the sampled
    lines into the same number (> 1) of fields, quoted fields kept whole; a comma wins a tie.
    The decimal mark is a comma when the delimiter is not one and the sampled numbers are
    written ``12,5`` but never ``12.5``.

    Raises
    ------
    InvalidDataError
        When no delimiter splits the header: the table would read as one column.
    """
    path = Path(path)
    name = name or path.name
    encoding = _encoding(path)
    with open(path, "rb") as handle:
        raw = handle.read(SAMPLE_BYTES)
    text = raw.decode(encoding, errors="replace")
    if len(raw) == SAMPLE_BYTES and "\n" in text:  # drop the line the sample cut
        text = text[: text.rindex("\n")]
    lines = [line for line in text.splitlines() if line.strip()][:_SAMPLE_LINES]
    if not lines:
        raise InvalidDataError([Problem(None, f"{name!r} holds no header line, only blanks")])
    delimiter = _delimiter(lines)
    if delimiter is None:
        header = lines[0][:80] + ("..." if len(lines[0]) > 80 else "")
        raise InvalidDataError(
            [
                Problem(
                    None,
                    f"{name!r} reads as a single column (header {header!r}): none of the "
                    "delimiters comma, semicolon, tab or pipe splits its header line into "
                    "columns; save it with one of them between the columns",
                )
            ]
        )
    return TextDialect(encoding=encoding, delimiter=delimiter, decimal=_decimal(lines, delimiter))


def read_text_table(path: str | os.PathLike, dialect: TextDialect, *, name: str) -> pd.DataFrame:
    """Read a text table written in ``dialect``.

    Raises
    ------
    InvalidDataError
        When a column name repeats, a line has more or fewer fields than the header, or the
        table has no data rows.
    """
    path = Path(path)
    _check_fields(path, dialect, name)
    try:
        table = pd.read_csv(
            path,
            sep=dialect.delimiter,
            decimal=dialect.decimal,
            encoding=dialect.encoding,
            low_memory=False,
        )
    except pd.errors.ParserError as exc:
        message = " ".join(str(exc).split())
        found = _BAD_FIELDS.search(message)
        if found:
            expected, line, seen = found.groups()
            message = f"line {line} has {seen} fields where the header has {expected}"
        raise InvalidDataError([Problem(None, f"cannot read {name!r}: {message}")]) from exc
    except pd.errors.EmptyDataError as exc:
        raise InvalidDataError([Problem(None, f"{name!r} has no header line")]) from exc
    table.columns = [str(c) for c in table.columns]
    return _with_rows(table, name)


def _with_rows(table: pd.DataFrame, name: str) -> pd.DataFrame:
    if table.shape[1] == 0 or len(table) == 0:
        raise InvalidDataError(
            [
                Problem(
                    None,
                    f"{name!r} has no data rows ({table.shape[1]} columns, {len(table)} rows); "
                    "expected a header line and one line per patient",
                )
            ]
        )
    return table


def _encoding(path: Path) -> str:
    """UTF-8 (``utf-8-sig`` with a byte-order mark) when the whole file decodes as such, else
    Windows-1252 when it does (the Latin-1 superset Excel writes), else Latin-1 (every byte)."""
    with open(path, "rb") as handle:
        bom = handle.read(3) == codecs.BOM_UTF8
    for encoding in ("utf-8-sig" if bom else "utf-8", "cp1252"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1024 * 1024), b""):
                    decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return encoding
    return "latin-1"


def _field_counts(lines: list[str], delimiter: str) -> list[int]:
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)
    return [len(row) for row in reader]


def _delimiter(lines: list[str]) -> str | None:
    """The delimiter that splits the most sampled lines into the header's (> 1) fields."""
    best, best_share = None, 0.0
    for delimiter in DELIMITERS:
        counts = _field_counts(lines, delimiter)
        if not counts or counts[0] < 2:
            continue
        share = sum(count == counts[0] for count in counts) / len(counts)
        if share > best_share:
            best, best_share = delimiter, share
    return best


def _decimal(lines: list[str], delimiter: str) -> str:
    if delimiter == ",":
        return "."
    reader = csv.reader(io.StringIO("\n".join(lines[1:])), delimiter=delimiter)
    fields = [field.strip() for row in reader for field in row]
    commas = sum(bool(_DECIMAL_COMMA.match(field)) for field in fields)
    points = sum(bool(_DECIMAL_POINT.match(field)) for field in fields)
    return "," if commas and not points else "."


def _check_fields(path: Path, dialect: TextDialect, name: str) -> None:
    """Refuse repeated column names (pandas would rename them ``a.1``) and lines with another
    number of fields than the header (pandas would fill short lines with missing values)."""
    problems: list[Problem] = []
    with open(path, encoding=dialect.encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=dialect.delimiter)
        header = next(reader, [])
        names = [column.strip() for column in header]
        repeated = sorted({n for n in names if names.count(n) > 1 and n})
        if repeated:
            problems.append(
                Problem(None, f"{name!r} repeats the column name(s) {repeated}; rename them")
            )
        for row in reader:
            if row and len(row) != len(header) and any(field.strip() for field in row):
                problems.append(
                    Problem(
                        None,
                        f"{name!r} line {reader.line_num} has {len(row)} field(s) where the "
                        f"header has {len(header)} ({dialect.describe()}); fix the line or its "
                        "quoting",
                    )
                )
                if len(problems) >= 5:
                    break
    if problems:
        raise InvalidDataError(problems)


def check_output_file(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`~pathlib.Path` once it is known to be a table file that can be
    written: a .csv, .tsv, .parquet or .pq name that is not a folder.

    Raises
    ------
    InvalidDataError
        For a folder, or another suffix (a table written as CSV under an .xlsx name would not
        open).

    Examples
    --------
    >>> check_output_file("synthetic.xlsx")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fedsynth.exceptions.InvalidDataError: 1 problem(s) with the data:
      - output file 'synthetic.xlsx': expected a name ending in .csv, .tsv, .parquet or .pq
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidDataError(
            [Problem(None, f"output file {str(path)!r} is a folder; expected a file name")]
        )
    if path.suffix.lower() not in (".csv", ".tsv", *PARQUET_SUFFIXES):
        raise InvalidDataError(
            [
                Problem(
                    None,
                    f"output file {path.name!r}: expected a name ending in .csv, .tsv, "
                    ".parquet or .pq",
                )
            ]
        )
    return path


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` as CSV or Parquet (by suffix), atomically: no half-written file is left."""
    path = check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix in PARQUET_SUFFIXES:
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False, sep="\t" if suffix == ".tsv" else ",")
    return path


def write_table_blocks(blocks: Iterable[pd.DataFrame], path: str | os.PathLike) -> int:
    """Write successive tables with the same columns as one CSV or Parquet file (by suffix),
    block by block, so only one block is in memory; atomically, like :func:`write_table`.

    Parameters
    ----------
    blocks : iterable of DataFrame
        The blocks in order; the first sets the header (CSV) or the schema (Parquet).
    path : str or path
        Output file (.csv, .tsv or .parquet).

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    InvalidDataError
        When ``path`` is not a table file name that can be written (:func:`check_output_file`).

    Examples
    --------
    >>> write_table_blocks(gen.sample_blocks(10**7, seed=0), "synthetic.csv")  # doctest: +SKIP
    10000000
    """
    path = check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    rows = 0
    with atomic_path(path) as tmp:
        if suffix in PARQUET_SUFFIXES:
            import pyarrow as pa
            import pyarrow.parquet as pq

            writer = None
            try:
                for block in blocks:
                    if writer is None:
                        table = pa.Table.from_pandas(block, preserve_index=False)
                        writer = pq.ParquetWriter(tmp, table.schema)
                    else:
                        table = pa.Table.from_pandas(
                            block, schema=writer.schema, preserve_index=False
                        )
                    writer.write_table(table)
                    rows += len(block)
            finally:
                if writer is not None:
                    writer.close()
        else:
            sep = "\t" if suffix == ".tsv" else ","
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                for block in blocks:
                    block.to_csv(handle, index=False, header=rows == 0, sep=sep)
                    rows += len(block)
    return rows
