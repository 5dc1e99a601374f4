"""Column summaries: what the pages show of an uploaded table instead of its rows.

A summary holds aggregates only: counts of missing and distinct values, the range and median of
a number, and the most frequent categories. A category held by fewer than
:data:`MIN_COUNT` patients is not named (it could single one out), and identifier columns show
counts only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.metadata.inference import numeric_view

#: Smallest count of a category named in a summary.
MIN_COUNT = 5
#: Most categories named per column.
TOP_CATEGORIES = 5


def column_summaries(table: pd.DataFrame, metadata: Metadata) -> list[dict[str, Any]]:
    """One summary per column, in table order.

    Returns
    -------
    list of dict
        ``name``, ``dtype``, ``missing`` (count), ``distinct`` (count) and ``details`` (one
        line of text: range and median, or the most frequent categories).

    Examples
    --------
    >>> df = pd.DataFrame({"age": [61, 70, 55, 80, 66], "sex": list("FMFFM")})
    >>> column_summaries(df, Metadata.infer(df))[0]["details"]
    'range 55 to 80, median 66'
    """
    summaries = []
    for name in table.columns:
        series = table[name]
        column = metadata.columns.get(name)
        kind = column.kind if column is not None else ""
        summaries.append(
            {
                "name": name,
                "dtype": str(series.dtype),
                "missing": int(series.isna().sum()),
                "distinct": int(series.nunique(dropna=True)),
                "details": _details(series, kind),
            }
        )
    return summaries


def _details(series: pd.Series, kind: str) -> str:
    if kind == "identifier":
        return "identifier: values not shown"
    numbers = numeric_view(series)
    if kind in {"numeric", "duration"} and numbers is not None:
        finite = numbers[np.isfinite(numbers)]
        if finite.empty:
            return "no numeric value"
        return (
            f"range {_number(finite.min())} to {_number(finite.max())}, "
            f"median {_number(finite.median())}"
        )
    counts = series.value_counts(dropna=True)
    shown = [f"{value} ({count})" for value, count in counts.items() if count >= MIN_COUNT]
    hidden = len(counts) - len(shown)
    parts = shown[:TOP_CATEGORIES]
    if len(shown) > TOP_CATEGORIES:
        parts.append(f"{len(shown) - TOP_CATEGORIES} more")
    if hidden:
        parts.append(f"{hidden} value(s) held by fewer than {MIN_COUNT} rows not shown")
    return ", ".join(parts) or "no value"


def _number(value: float) -> str:
    return f"{value:.4g}"
