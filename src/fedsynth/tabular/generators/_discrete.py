"""Conversions between column values and the integer codes or floats that the statistical
generators count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.tabular.privacy.dp_domains import category_codes


def from_codes(codes: np.ndarray, categories: Sequence[Any]) -> pd.Series:
    """Inverse of :func:`~fedsynth.tabular.privacy.dp_domains.category_codes`: ``-1`` (or
    ``len(categories)``, the missing state of :func:`category_states`) becomes missing.

    Numeric labels (0/1 flags) without missing codes come back as a typed array rather than
    Python objects, which keeps dtype restoration and the copy guard fast.
    """
    codes = np.asarray(codes, dtype=np.int64)
    numeric = all(
        isinstance(c, (int, float, np.integer, np.floating)) and not isinstance(c, bool)
        for c in categories
    )
    complete = len(codes) == 0 or (codes.min() >= 0 and codes.max() < len(categories))
    if numeric and len(categories) and complete:
        typed = np.asarray(list(categories))
        # Integer codes beyond 2**53 (or beyond int64) would become floats: keep them exact.
        if typed.tolist() == list(categories):
            return pd.Series(typed[codes])
    table = np.empty(len(categories) + 1, dtype=object)
    table[: len(categories)] = list(categories)
    table[-1] = np.nan
    return pd.Series(table[codes])


def category_states(values: pd.Series, categories: Sequence[Any]) -> np.ndarray:
    """State of each value as a discrete model counts it: its category's index, and
    ``len(categories)`` (the missing state) for a missing value or one of no category.

    Examples
    --------
    >>> category_states(pd.Series(["b", None, "a", "z"]), ["a", "b"]).tolist()
    [1, 2, 0, 2]
    """
    codes = category_codes(values, categories)
    codes[codes < 0] = len(categories)
    return codes


def numeric_values(values: pd.Series) -> np.ndarray:
    """A numeric column as floats, missing (or unreadable) values as NaN."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
