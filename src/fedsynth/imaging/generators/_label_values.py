"""Label values as an image generator's schema keeps them: which label columns are conditioned
on by default, and each value as the JSON value it is saved as (so that it reads back equal)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Label columns with at most this many distinct values are conditioned on by default.
MAX_LABEL_VALUES = 10


def default_label_columns(labels: pd.DataFrame) -> list[str]:
    n = len(labels)
    chosen = []
    for column in labels.columns:
        values = labels[column]
        if values.isna().any() or pd.api.types.is_float_dtype(values):
            continue
        distinct = values.nunique()
        if 2 <= distinct <= MAX_LABEL_VALUES and distinct < n:
            chosen.append(str(column))
    return chosen


def label_json(value: Any) -> Any:
    """A label value as a JSON value (numpy scalars to Python ones), so that it reads back
    equal from ``model.json``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    return str(value)
