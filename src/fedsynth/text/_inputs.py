"""The inputs of the ``dp_icl`` generator: private notes (with their rows) and condition rows."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.exceptions import NoteDataError


def positive_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1


def read_notes(data: Any, text_column: str) -> tuple[list[str], list[dict[str, Any]] | None]:
    """The notes of ``data`` and, for a DataFrame with other columns, their rows."""
    if isinstance(data, pd.DataFrame):
        if text_column not in data.columns:
            raise NoteDataError(
                f"the notes table has no column {text_column!r}; its columns are "
                f"{list(data.columns)} (pass text_column=...)"
            )
        notes = data[text_column].tolist()
        others = [c for c in data.columns if c != text_column]
        rows = data[others].to_dict("records") if others else None
        where = f"column {text_column!r}"
    elif isinstance(data, str) or not isinstance(data, Sequence | np.ndarray | pd.Series):
        raise NoteDataError(
            f"notes must be a list of strings or a DataFrame with a {text_column!r} column, "
            f"got {type(data).__name__}"
        )
    else:
        notes, rows, where = list(data), None, "the list"
    if not notes:
        raise NoteDataError(f"no notes to learn from: {where} is empty")
    bad = [i for i, t in enumerate(notes) if not isinstance(t, str) or not t.strip()]
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        kinds = sorted({type(notes[i]).__name__ for i in bad})
        raise NoteDataError(
            f"{where} has {len(bad)} note(s) that are not non-blank strings (positions {shown}; "
            f"types {', '.join(kinds)})"
        )
    return notes, rows


def condition_rows(n: int, conditions: Any) -> list[dict[str, Any] | None]:
    """One condition row (or ``None``) per note, from a row or a frame of ``n`` rows."""
    if conditions is None:
        return [None] * n
    if isinstance(conditions, pd.DataFrame):
        if len(conditions) != n:
            raise ValueError(
                f"conditions has {len(conditions)} row(s) for n={n} notes; give one row per "
                "note, or a single row (dict or Series) for all of them"
            )
        return conditions.to_dict("records")
    if isinstance(conditions, pd.Series | Mapping):
        return [dict(conditions)] * n
    raise TypeError(
        f"conditions must be a dict, a Series or a DataFrame, got {type(conditions).__name__}"
    )


def report_progress(
    done: int,
    total: int,
    counts: dict[str, int],
    progress: Callable[[int, int, dict[str, int]], None] | None,
    *,
    verbose: bool,
) -> None:
    """Call ``progress(done, total, counts)`` and, if ``verbose``, print one line to stderr."""
    if progress is not None:
        progress(done, total, dict(counts))
    if verbose:
        print(
            f"[dp_icl] note {done}/{total}: {counts['prompts']} generations, "
            f"{counts['words']} words",
            file=sys.stderr,
            flush=True,
        )
