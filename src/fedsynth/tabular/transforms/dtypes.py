"""Pandas dtypes written as JSON, and decoded values cast back to them exactly.

``str(dtype)`` loses what a categorical dtype (its categories and order) and a string dtype (its
storage) carry, so those two are written as small mappings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: How a missing value is written in an object column: the one seen at fit time is restored.
MISSING_VALUES: dict[str, Any] = {"nan": np.nan, "none": None, "na": pd.NA}

DtypeJSON = str | dict[str, Any]


def dtype_to_json(dtype: Any) -> DtypeJSON:
    """A JSON-ready description of a pandas or numpy dtype.

    Examples
    --------
    >>> dtype_to_json(pd.CategoricalDtype(["b", "a"], ordered=True))
    {'name': 'category', 'categories': ['b', 'a'], 'ordered': True}
    >>> dtype_to_json(np.dtype("int64"))
    'int64'
    """
    if isinstance(dtype, pd.CategoricalDtype):
        return {
            "name": "category",
            "categories": [plain(c) for c in dtype.categories.tolist()],
            "ordered": bool(dtype.ordered),
        }
    if isinstance(dtype, pd.StringDtype):
        return {
            "name": "string",
            "storage": dtype.storage,
            "na_value": "nan" if isinstance(dtype.na_value, float) else "na",
        }
    return str(dtype)


def dtype_from_json(spec: DtypeJSON) -> Any:
    """Inverse of :func:`dtype_to_json`.

    Examples
    --------
    >>> dtype_from_json("Int64")
    Int64Dtype()
    """
    if isinstance(spec, str):
        return pd.api.types.pandas_dtype(spec)
    if spec["name"] == "category":
        return pd.CategoricalDtype(spec["categories"], ordered=spec["ordered"])
    return pd.StringDtype(spec["storage"], na_value=MISSING_VALUES[spec["na_value"]])


def missing_value_of(series: pd.Series) -> str | None:
    """Key in :data:`MISSING_VALUES` of how an object column writes missing values, else ``None``.

    Other dtypes have a single missing value, which casting restores by itself.
    """
    if not pd.api.types.is_object_dtype(series.dtype):
        return None
    missing = series[series.isna()]
    if not len(missing):
        return None
    first = missing.iloc[0]
    if first is None:
        return "none"
    return "na" if first is pd.NA else "nan"


def numbers_to_dtype(
    values: np.ndarray, dtype: Any, *, whole: bool, missing_value: str | None
) -> pd.Series:
    """Cast floats (NaN = missing) to ``dtype``; whole numbers become ints in object columns."""
    if not pd.api.types.is_object_dtype(dtype):
        return pd.Series(values).astype(dtype)
    missing = np.isnan(values)
    present = values[~missing]
    out = np.empty(len(values), dtype=object)
    # Assigning a numpy array into an object array stores Python ints/floats, as in the input.
    out[~missing] = present.astype(np.int64) if whole else present
    out[missing] = MISSING_VALUES[missing_value or "nan"]
    return pd.Series(out, dtype=object)


def labels_to_dtype(values: np.ndarray, dtype: Any) -> pd.Series:
    """Cast an object array of category values (missing written as in the input) to ``dtype``."""
    labels = pd.Series(values, dtype=object)
    if pd.api.types.is_object_dtype(dtype):
        return labels
    return labels.astype(dtype)


def plain(value: Any) -> Any:
    """A numpy scalar as the Python scalar JSON can hold; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value
