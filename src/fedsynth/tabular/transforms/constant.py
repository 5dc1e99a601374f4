"""Columns holding one value, or none: they take no matrix column and are restored as they were."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.exceptions import Problem
from fedsynth.tabular.metadata import ColumnMetadata
from fedsynth.tabular.transforms.base import Span
from fedsynth.tabular.transforms.dtypes import (
    MISSING_VALUES,
    dtype_from_json,
    dtype_to_json,
    labels_to_dtype,
    missing_value_of,
    plain,
)


@dataclass
class ConstantColumn:
    """A column holding one value, or none: not encoded, restored as that value (or missing)."""

    name: str
    kind: str
    value: Any  # None when the column is entirely missing
    dtype: Any
    missing_value: str | None

    @classmethod
    def fit(cls, name: str, series: pd.Series, col: ColumnMetadata) -> ConstantColumn:
        """Remember the single value of ``series`` (``None`` when all missing)."""
        present = series.dropna()
        return cls(
            name=name,
            kind=col.kind,
            value=plain(present.iloc[0]) if len(present) else None,
            dtype=series.dtype,
            missing_value=missing_value_of(series),
        )

    @property
    def width(self) -> int:
        """0: a constant takes no matrix column."""
        return 0

    def spans(self, start: int) -> list[Span]:
        """None."""
        return []

    def encode(
        self, series: pd.Series, block: np.ndarray, rng: np.random.Generator | None
    ) -> list[Problem]:
        """Nothing to write."""
        return []

    def decode(
        self, block: np.ndarray, *, sample: bool, rng: np.random.Generator | None
    ) -> pd.Series:
        """The constant, once per row of ``block``."""
        fill = MISSING_VALUES[self.missing_value or "nan"] if self.value is None else self.value
        return labels_to_dtype(np.full(block.shape[0], fill, dtype=object), self.dtype)

    def get_state(self, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-ready description (no arrays)."""
        config = {
            "type": "constant",
            "name": self.name,
            "kind": self.kind,
            "value": self.value,
            "dtype": dtype_to_json(self.dtype),
            "missing_value": self.missing_value,
        }
        return config, {}

    @classmethod
    def from_state(
        cls, config: dict[str, Any], arrays: dict[str, np.ndarray], key: str
    ) -> ConstantColumn:
        """Inverse of :meth:`get_state`."""
        return cls(
            name=config["name"],
            kind=config["kind"],
            value=config["value"],
            dtype=dtype_from_json(config["dtype"]),
            missing_value=config["missing_value"],
        )
