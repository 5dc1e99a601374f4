"""Checks of a table against its metadata: every problem is collected, none stops the search."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fedsynth.exceptions import Problem
from fedsynth.tabular.metadata.columns import KINDS
from fedsynth.tabular.metadata.inference import EXACT_FLOAT_INTEGER, big_integers
from fedsynth.tabular.metadata.values import (
    as_text,
    encoding_of,
    read_numbers,
    read_text,
    text_labels,
)

if TYPE_CHECKING:
    from fedsynth.tabular.metadata.table import Metadata

_MAX_EXAMPLES = 3


def _examples(values) -> str:
    shown = [repr(v.item() if hasattr(v, "item") else v) for v in list(values)[:_MAX_EXAMPLES]]
    more = "" if len(values) <= _MAX_EXAMPLES else f" and {len(values) - _MAX_EXAMPLES} more"
    return ", ".join(shown) + more


def check_metadata(metadata: Metadata) -> list[Problem]:
    """Problems with the metadata on its own (kinds, survival pair, groups)."""
    problems = []
    for name, col in metadata.columns.items():
        if col.kind not in KINDS:
            problems.append(
                Problem(name, f"unknown kind {col.kind!r}; expected one of {', '.join(KINDS)}")
            )
        if col.kind == "binary" and col.categories is not None and len(col.categories) != 2:
            problems.append(
                Problem(name, f"a binary column has exactly 2 values, got {col.categories!r}")
            )
        if col.bounds is not None and col.bounds[0] > col.bounds[1]:
            problems.append(Problem(name, f"bounds {col.bounds!r} have low > high"))
    durations = metadata.columns_of_kind("duration")
    events = metadata.columns_of_kind("event")
    if len(durations) > 1 or len(events) > 1:
        problems.append(
            Problem(
                None,
                "only one survival pair is supported; found duration columns "
                f"{durations} and event columns {events}",
            )
        )
    elif len(durations) != len(events):
        missing = "event" if durations else "duration"
        have = durations or events
        problems.append(
            Problem(
                have[0],
                f"a survival column needs its {missing} column; name it with "
                f"{missing}=... or set one column's kind to {missing!r}",
            )
        )
    sites = metadata.columns_of_kind("site")
    if len(sites) > 1:
        problems.append(Problem(None, f"only one site column is supported; found {sites}"))
    return problems


def check_column_names(df: pd.DataFrame) -> list[Problem]:
    """Problems with the column names themselves: repeated names, and names that are not text
    (metadata, model files and the CSV a sample is written to name columns by text).

    Examples
    --------
    >>> check_column_names(pd.DataFrame([[1, 2]], columns=["a", "a"]))[0].message
    "the column name(s) ['a'] repeat; rename them so that each column has its own name"
    """
    problems = []
    duplicated = df.columns[df.columns.duplicated()].unique().tolist()
    if duplicated:
        problems.append(
            Problem(
                None,
                f"the column name(s) {duplicated} repeat; rename them so that each column has "
                "its own name",
            )
        )
    not_text = [c for c in df.columns if not isinstance(c, str)]
    if not_text:
        shown = ", ".join(f"{c!r} ({type(c).__name__})" for c in not_text[:_MAX_EXAMPLES])
        if len(not_text) > _MAX_EXAMPLES:
            shown += f" and {len(not_text) - _MAX_EXAMPLES} more"
        problems.append(
            Problem(
                None,
                f"column names must be text, got {shown}; rename the columns, e.g. "
                "df.columns = [str(c) for c in df.columns]",
            )
        )
    return problems


def check_table(df: pd.DataFrame, metadata: Metadata) -> tuple[list[Problem], list[Problem]]:
    """Check ``df`` against ``metadata``.

    Returns
    -------
    problems : list of Problem
        Errors: the table cannot be used as it is.
    warnings : list of Problem
        Things that are handled but worth telling (constant or all-missing columns).
    """
    problems = check_metadata(metadata)
    warnings: list[Problem] = []
    if not isinstance(df, pd.DataFrame):
        return [
            *problems,
            Problem(None, f"expected a pandas DataFrame, got {type(df).__name__}"),
        ], []
    if df.shape[1] == 0:
        problems.append(Problem(None, "the table has no columns"))
    if len(df) == 0:
        problems.append(Problem(None, "the table is empty (0 rows); at least one row is needed"))
    name_problems = check_column_names(df)
    if name_problems:  # names that are not text would all read as absent below
        return [*problems, *name_problems], []
    extra = [c for c in df.columns if c not in metadata.columns]
    if extra:
        problems.append(Problem(None, f"columns not described by the metadata: {_examples(extra)}"))
    for name, col in metadata.columns.items():
        if name not in df.columns:
            problems.append(Problem(name, "described by the metadata but absent from the table"))
            continue
        if len(df) == 0:
            continue
        col_problems, col_warnings = _check_column(name, df[name], col)
        problems += col_problems
        warnings += col_warnings
    if len(df) and not problems and not metadata.learnable_columns(df):
        one_row = " (the table has one row; at least 2 are needed)" if len(df) == 1 else ""
        problems.append(
            Problem(
                None,
                f"nothing to learn: every column is an identifier, constant or missing{one_row}",
            )
        )
    return problems, warnings


def _check_column(name, series: pd.Series, col) -> tuple[list[Problem], list[Problem]]:
    problems: list[Problem] = []
    warnings: list[Problem] = []
    if col.kind == "identifier":
        return problems, warnings
    if isinstance(series.dtype, pd.PeriodDtype):
        problems.append(
            Problem(
                name,
                "period values are not supported; convert them to dates (.dt.to_timestamp()) or "
                "to a number, or set the kind to 'identifier' to exclude the column",
            )
        )
        return problems, warnings
    if pd.api.types.is_datetime64_any_dtype(series) and not col.is_continuous:
        problems.append(
            Problem(
                name,
                f"date/time values cannot be {col.kind} labels: they are modelled as numbers "
                f"(days since 1970-01-01); declare the column numeric "
                f"(overrides={{{name!r}: 'numeric'}}), or 'identifier' to exclude it",
            )
        )
        return problems, warnings
    values = series.dropna()
    if col.kind in {"duration", "event"} and len(values) < len(series):
        problems.append(
            Problem(
                name,
                f"{len(series) - len(values)} missing value(s) in a survival {col.kind} column; "
                "every row needs a value",
            )
        )
    if len(values) == 0:
        if col.kind not in {"duration", "event"}:
            warnings.append(Problem(name, "entirely missing; kept as an all-missing column"))
        return problems, warnings
    if col.is_continuous:
        numbers, problem, note = _read_continuous(name, series, col)
        if problem is not None:
            problems.append(problem)
            return problems, warnings
        if note is not None:
            warnings.append(note)
        unread = int(numbers.isna().sum()) - (len(series) - len(values))
        if col.kind == "duration" and unread:  # "n/a" written as text is missing too
            problems.append(
                Problem(
                    name,
                    f"{unread} missing value(s) in a survival duration column; "
                    "every row needs a value",
                )
            )
        big = big_integers(series)
        if big is not None:
            largest = max(big, key=abs)
            problems.append(
                Problem(
                    name,
                    f"integers too large to model exactly (largest {largest}, {len(big)} "
                    f"distinct); float64 holds integers exactly only up to 2**53 "
                    f"({EXACT_FLOAT_INTEGER}); declare the column categorical if it is a code, "
                    "or rescale it",
                )
            )
            return problems, warnings
        finite = np.isfinite(numbers.dropna())
        if not finite.all():
            problems.append(
                Problem(name, f"{int((~finite).sum())} infinite value(s); expected finite numbers")
            )
        if col.kind == "duration":
            negative = int((numbers < 0).sum())
            if negative:
                problems.append(
                    Problem(
                        name,
                        f"{negative} negative survival time(s) "
                        f"(e.g. {numbers[numbers < 0].iloc[0]:g}); durations must be >= 0",
                    )
                )
    elif col.kind in {"binary", "event"}:
        allowed = col.categories if col.categories is not None else [0, 1]
        bad = _not_in(text_labels(values), allowed)
        if bad:
            problems.append(
                Problem(
                    name,
                    f"unexpected value(s) {_examples(bad)} in "
                    f"{'an' if col.kind == 'event' else 'a'} {col.kind} column; expected "
                    f"only {allowed}"
                    + (
                        f" ({allowed[0]!r} = censored, "
                        + (f"{allowed[-1]!r} = event)" if len(allowed) == 2 else "others = causes)")
                        if col.kind == "event"
                        else ""
                    ),
                )
            )
    elif col.categories is not None:
        bad = _not_in(text_labels(values), col.categories)
        if bad:
            problems.append(
                Problem(
                    name,
                    f"unseen categor{'y' if len(bad) == 1 else 'ies'} {_examples(bad)}; "
                    f"expected one of {_examples(col.categories)}",
                )
            )
    if not problems and values.nunique() == 1 and col.kind not in {"duration", "event"}:
        warnings.append(
            Problem(
                name, f"constant (every value is {_examples([values.iloc[0]])}); kept as a constant"
            )
        )
    return problems, warnings


def _not_in(values: pd.Series, allowed) -> list:
    """Distinct values of ``values`` that are not in ``allowed`` (1 == 1.0 == True)."""
    allowed_set = set(allowed)
    return [v for v in pd.unique(values) if v not in allowed_set]


def _read_continuous(
    name, series: pd.Series, col
) -> tuple[pd.Series, Problem | None, Problem | None]:
    """The numbers of a numeric or duration column as generators will read them
    (:func:`~fedsynth.tabular.metadata.values.model_values`), with the problem that stops it
    (values that are not numbers) or the note worth telling (censored values read as bounds)."""
    reading = read_text(series, encoding_of(col))
    if reading is None:
        numbers = read_numbers(series)
        if numbers is not None:
            return numbers, None, None
        values = series.dropna().astype(object).map(as_text)
        unreadable, rows = list(pd.unique(values)), len(values)
    else:
        numbers, unreadable, rows = reading.numbers, reading.unreadable, reading.unreadable_rows
    if unreadable:
        read = "dates" if reading is not None and reading.is_date else "numbers"
        problem = Problem(
            name,
            f"expected {read} for a {col.kind} column, found {rows} value(s) that are not "
            f"{read}, such as {_examples(unreadable)}; make them missing or fix them, or "
            f"declare the column categorical (overrides={{{name!r}: 'categorical'}})",
        )
        return numbers, problem, None
    if reading.censored:
        note = Problem(
            name,
            f"{reading.censored_rows} censored value(s) such as {_examples(reading.censored)} "
            "are read as their bound (the limit of detection); synthetic values are plain "
            f"numbers. To keep the marks, declare the column categorical "
            f"(overrides={{{name!r}: 'categorical'}})",
        )
        return numbers, None, note
    return numbers, None, None
