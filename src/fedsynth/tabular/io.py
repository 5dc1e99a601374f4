"""Reading and writing tables (CSV, TSV, Parquet), with messages a user can act on."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from fedsynth.core.io import atomic_path
from fedsynth.exceptions import InvalidDataError, Problem

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV/TSV or Parquet file into a DataFrame.

    Raises
    ------
    InvalidDataError
        When the file is missing, empty, of an unknown type or cannot be parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidDataError([Problem(None, f"file {str(path)!r} does not exist")])
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InvalidDataError(
            [Problem(None, f"{path.name!r}: expected one of {', '.join(TABLE_SUFFIXES)} files")]
        )
    if path.stat().st_size == 0:
        raise InvalidDataError([Problem(None, f"{path.name!r} is empty (0 bytes)")])
    try:
        if suffix in {".parquet", ".pq"}:
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except Exception as exc:
        raise InvalidDataError([Problem(None, f"cannot read {path.name!r}: {exc}")]) from exc
    if df.empty:
        raise InvalidDataError(
            [Problem(None, f"{path.name!r} has no data rows ({df.shape[1]} columns, 0 rows)")]
        )
    return df


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` as CSV or Parquet (by suffix), atomically: no half-written file is left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix in {".parquet", ".pq"}:
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False, sep="\t" if suffix == ".tsv" else ",")
    return path
