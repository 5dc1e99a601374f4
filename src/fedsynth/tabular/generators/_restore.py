"""Generated values back to the input's dtypes, bounds and whole numbers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.tabular.metadata import ColumnMetadata
from fedsynth.tabular.metadata.columns import ORDERED_CATEGORY
from fedsynth.tabular.metadata.values import (
    encoding_of,
    to_datetimes,
    to_timedeltas,
    write_numbers,
)


def restore_column(values: pd.Series, col: ColumnMetadata, dtype: str) -> pd.Series:
    """Cast generated values back to the input dtype, within bounds and whole where needed."""
    return to_input_dtype(model_column(values, col), col, dtype)


def model_column(values: pd.Series, col: ColumnMetadata) -> pd.Series:
    """Generated values as the model's view of the column (what the copy guard compares):
    numbers within bounds and rounded as recorded, or labels."""
    if not col.is_continuous:
        return values
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    if col.bounds is not None:
        numbers = numbers.clip(col.bounds[0], col.bounds[1])
    if col.integer:
        numbers = numbers.round()
    elif col.decimals is not None:
        numbers = numbers.round(col.decimals)
    return numbers


def to_input_dtype(values: pd.Series, col: ColumnMetadata, dtype: str) -> pd.Series:
    """The model's view of a column (:func:`model_column`) in the input's dtype: numbers read
    from text are written back in the text's encoding, categoricals keep their categories."""
    encoding = encoding_of(col)
    # Only a text column is written back as text: a model fitted on the numbers themselves
    # (auto's candidates, a DP teacher) keeps them as numbers.
    if col.is_continuous and encoding is not None and dtype.startswith("datetime64"):
        return to_datetimes(values, dtype)
    if col.is_continuous and encoding is not None and dtype.startswith("timedelta64"):
        return to_timedeltas(values, dtype)
    if col.is_continuous and encoding is not None and _holds_text(dtype):
        values = write_numbers(values, encoding)
    elif dtype in ("category", ORDERED_CATEGORY):
        categories = col.categories if not col.is_continuous else None
        return values.astype(pd.CategoricalDtype(categories, ordered=dtype == ORDERED_CATEGORY))
    return _cast(values, dtype)


def cast_constant(values: pd.Series, col: ColumnMetadata, dtype: str) -> pd.Series:
    """A constant column (its one value repeated, as the input held it) in the input's dtype."""
    if encoding_of(col) is not None:  # already written as the input writes it
        return _cast(values, dtype)
    return restore_column(values, col, dtype)


def _holds_text(dtype: str) -> bool:
    return dtype in {"object", "str", "string"} or dtype.startswith("string[")


def _cast(values: pd.Series, dtype: str) -> pd.Series:
    if dtype.lower().startswith(("int", "uint")) and pd.api.types.is_float_dtype(values):
        values = _within_integer_range(values, np.dtype(dtype.lower()))
    has_missing = bool(values.isna().any())
    if dtype.startswith(("int", "uint")) and has_missing:
        # A column with no missing values in training can only get NaN here by a generator
        # fault; keep the rows and move to the nullable integer type rather than fail.
        return values.astype(dtype.replace("int", "Int").replace("uInt", "UInt"))
    if dtype == "bool" and has_missing:
        return values.astype("boolean")
    if dtype in {"object", "str", "string"}:
        return values.astype(object).where(values.notna(), np.nan)
    if dtype.startswith("string["):  # a string dtype with pd.NA: keep its storage
        return values.astype(object).where(values.notna(), None).astype(dtype)
    return values.astype(dtype)


def _within_integer_range(values: pd.Series, dtype: np.dtype) -> pd.Series:
    """Floats clipped into what ``dtype`` holds, so a cast never wraps (uint64 of -1 is 2**64-1).

    The top of int64/uint64 is not a float (2**63, 2**64 round up past it): clip to the
    largest float below it instead.
    """
    info = np.iinfo(dtype)
    low = float(info.min)
    high = float(np.nextafter(float(info.max) + 1.0, -np.inf))
    return values.clip(low, high)


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds; anything else unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def json_value(value: Any) -> Any:
    """A constant column's value as JSON holds it (NaN as ``None``)."""
    value = plain(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
