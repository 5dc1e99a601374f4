"""Read clinical notes: a folder of ``.txt`` files, or a column of a CSV or Parquet table.

Both loaders return the same frame: one row per note, with ``note_id`` (the file name without
its suffix, or the table's patient id / row number), ``patient_id`` (``None`` where unknown) and
``text``. Problems raise :class:`~fedsynth.exceptions.NoteDataError` naming the file or column.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from fedsynth.exceptions import NoteDataError

NOTE_COLUMNS: tuple[str, ...] = ("note_id", "patient_id", "text")


def read_notes_folder(
    folder: str | os.PathLike, *, pattern: str = "*.txt", encoding: str = "utf-8"
) -> pd.DataFrame:
    """One note per text file of a folder (not its subfolders), in file-name order.

    Parameters
    ----------
    folder : path
        The folder.
    pattern : str
        Glob of the note files.
    encoding : str
        Their text encoding.

    Returns
    -------
    DataFrame
        ``note_id`` (file name without suffix), ``patient_id`` (``None``), ``text``.

    Raises
    ------
    NoteDataError
        The folder is missing or holds no matching file, or a file is empty or not text in
        ``encoding`` (every such file is named).

    Examples
    --------
    >>> notes = read_notes_folder("notes/")  # doctest: +SKIP
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NoteDataError(f"notes folder {str(folder)!r} does not exist or is not a folder")
    files = sorted(p for p in folder.glob(pattern) if p.is_file())
    if not files:
        raise NoteDataError(f"notes folder {str(folder)!r} holds no file matching {pattern!r}")
    records, problems = [], []
    for path in files:
        try:
            text = path.read_text(encoding=encoding)
        except UnicodeDecodeError as error:
            problems.append(
                f"{path.name}: not {encoding} text ({error.reason}, byte {error.start})"
            )
            continue
        if not text.strip():
            problems.append(f"{path.name}: empty")
            continue
        records.append((path.stem, None, text))
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise NoteDataError(f"{len(problems)} unreadable note file(s) in {folder}:\n{listed}")
    return pd.DataFrame(records, columns=list(NOTE_COLUMNS))


def notes_from_frame(
    frame: pd.DataFrame,
    *,
    text_column: str = "text",
    id_column: str | None = None,
    source: str = "the table",
) -> pd.DataFrame:
    """The notes held in a column of a DataFrame.

    Parameters
    ----------
    frame : DataFrame
        A table with one note per row.
    text_column : str
        The column of the notes.
    id_column : str, optional
        A column of patient ids; without one, notes are numbered by row.
    source : str
        What to call the table in error messages (a file name).

    Returns
    -------
    DataFrame
        ``note_id``, ``patient_id``, ``text``; rows whose note is missing or blank are refused.

    Raises
    ------
    NoteDataError
        A named column is missing, the table has no rows, or notes are missing, blank or not
        text (rows named).
    """
    missing = [c for c in (text_column, id_column) if c is not None and c not in frame.columns]
    if missing:
        raise NoteDataError(
            f"{source}: no column {', '.join(map(repr, missing))}; "
            f"its columns are {list(frame.columns)}"
        )
    if len(frame) == 0:
        raise NoteDataError(f"{source}: holds no notes (no rows under column {text_column!r})")
    texts = frame[text_column]
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        raise NoteDataError(
            f"{source}: column {text_column!r} has {len(bad)} missing, blank or non-text note(s) "
            f"(rows {shown})"
        )
    patients = frame[id_column].tolist() if id_column is not None else [None] * len(frame)
    ids = [str(p) if p is not None else str(i) for i, p in enumerate(patients)]
    return pd.DataFrame({"note_id": ids, "patient_id": patients, "text": texts.tolist()})


def read_notes_table(
    path: str | os.PathLike, *, text_column: str = "text", id_column: str | None = None
) -> pd.DataFrame:
    """The notes of a column of a CSV (``.csv``, ``.tsv``) or Parquet (``.parquet``, ``.pq``) file.

    Parameters
    ----------
    path : path
        The file.
    text_column, id_column : str
        As in :func:`notes_from_frame`.

    Returns
    -------
    DataFrame
        ``note_id``, ``patient_id``, ``text``.

    Raises
    ------
    NoteDataError
        The file is missing, of another format or unreadable, or its columns do not fit.

    Examples
    --------
    >>> notes = read_notes_table("notes.csv", text_column="note", id_column="patient_id")
    ... # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        raise NoteDataError(
            f"notes file {str(path)!r} is a folder; expected a .csv or .parquet file"
        )
    if not path.is_file():
        raise NoteDataError(f"notes file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            frame = pd.read_parquet(path)
        elif suffix in {".csv", ".tsv"}:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        else:
            raise NoteDataError(
                f"notes file {str(path)!r}: unknown format {suffix!r} "
                "(use .csv, .tsv, .parquet or .pq)"
            )
    except UnicodeDecodeError as error:
        raise NoteDataError(
            f"notes file {str(path)!r} is not UTF-8 text (byte {error.object[error.start]:#04x} "
            f"at position {error.start}); save it as UTF-8"
        ) from error
    except (ValueError, OSError) as error:
        if isinstance(error, NoteDataError):
            raise
        raise NoteDataError(f"notes file {str(path)!r} could not be read: {error}") from error
    return notes_from_frame(
        frame, text_column=text_column, id_column=id_column, source=repr(str(path))
    )
