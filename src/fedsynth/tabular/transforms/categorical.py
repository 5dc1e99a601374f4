"""One-hot encoding of discrete columns: categorical, site, binary and event.

A transform is fitted on a column (:meth:`CategoricalColumn.fit`) or built from aggregate
statistics, the rows of each category (:class:`CategoryCounts`,
:meth:`CategoricalColumn.from_counts`), e.g. pooled by a federated server from the sites' counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from fedsynth.exceptions import MetadataError, Problem
from fedsynth.tabular.metadata import ColumnMetadata
from fedsynth.tabular.metadata.columns import ORDERED_CATEGORY
from fedsynth.tabular.transforms.base import Span, choose_slots
from fedsynth.tabular.transforms.dtypes import (
    MISSING_VALUES,
    dtype_from_json,
    dtype_to_json,
    labels_to_dtype,
    missing_value_of,
    plain,
)

_UNSEEN = -2


def category_codes(series: pd.Series, categories: list[Any]) -> tuple[np.ndarray, list[Any]]:
    """Index of each value in ``categories`` (``-1`` for missing), and the values not in them.

    Values equal as numbers (``1``, ``1.0``, ``True``) share a code, as in the metadata checks.
    The lookup runs once per distinct value, not once per row.

    Examples
    --------
    >>> codes, unseen = category_codes(pd.Series(["b", None, "a", "z"]), ["a", "b"])
    >>> codes.tolist(), unseen
    ([1, -1, 0, -2], ['z'])
    """
    codes, distinct = pd.factorize(series, use_na_sentinel=True)
    lookup = {category: i for i, category in enumerate(categories)}
    # The trailing -1 maps factorize's missing sentinel (-1) onto itself.
    table = np.array([lookup.get(value, _UNSEEN) for value in distinct] + [-1], dtype=np.int64)
    unseen = [value for value, code in zip(distinct, table, strict=False) if code == _UNSEEN]
    return table[codes], unseen


def category_order(col: ColumnMetadata) -> list[Any]:
    """The categories of a discrete column in the order of its slots: the metadata's order.

    Examples
    --------
    >>> category_order(ColumnMetadata("binary", categories=[np.int64(0), np.int64(1)]))
    [0, 1]
    """
    return [plain(c) for c in col.categories]


@dataclass(frozen=True)
class CategoryCounts:
    """The aggregate statistics a discrete column's transform is built from.

    Parameters
    ----------
    counts : array-like of shape (n_categories,)
        Rows holding each category, in :func:`category_order`; fractional counts (e.g. a total
        shared evenly among categories) are rounded when the transform is built.
    missing : float, default 0
        Rows with a missing value; when positive, "missing" is one more slot, the last.

    Examples
    --------
    >>> stats = CategoryCounts.from_codes(np.array([0, 1, 1, -1]), n_categories=3)
    >>> stats.slot_counts().tolist(), stats.has_missing
    ([1, 2, 0, 1], True)
    """

    counts: ArrayLike
    missing: float = 0.0

    @classmethod
    def from_codes(cls, codes: np.ndarray, n_categories: int) -> CategoryCounts:
        """Count :func:`category_codes` output: codes ``>= 0`` per category, ``-1`` missing."""
        counts = np.bincount(codes[codes >= 0], minlength=n_categories)
        return cls(counts, int((codes == -1).sum()))

    @property
    def has_missing(self) -> bool:
        """Whether the column has missing values (and so a "missing" slot)."""
        return bool(self.missing > 0)

    def slot_counts(self) -> np.ndarray:
        """Whole rows of each slot of the span: the categories, then "missing" if any."""
        counts = np.asarray(self.counts)
        if self.has_missing:
            counts = np.append(counts, self.missing)
        return np.round(counts).astype(np.int64)


@dataclass
class CategoricalColumn:
    """Transform of a discrete column: one softmax span over its categories.

    When the fitted column had missing values, "missing" is one more category, the last slot of
    the span: it is learned like any other value (with its frequency for CTGAN's conditional
    vector) and decoded to the missing value the input used.
    """

    name: str
    kind: str
    categories: list[Any]
    counts: np.ndarray
    has_missing: bool
    dtype: Any
    missing_value: str | None

    @classmethod
    def fit(
        cls, name: str, series: pd.Series, col: ColumnMetadata
    ) -> tuple[CategoricalColumn | None, list[Problem]]:
        """Fit on ``series`` over ``col.categories``; ``None`` and problems when invalid."""
        categories = category_order(col)
        codes, unseen = category_codes(series, categories)
        if unseen:
            return None, [_unseen_problem(name, unseen, categories)]
        column = cls.from_counts(
            name,
            col,
            CategoryCounts.from_codes(codes, len(categories)),
            dtype=series.dtype,
            missing_value=missing_value_of(series),
        )
        return column, []

    @classmethod
    def from_counts(
        cls,
        name: str,
        col: ColumnMetadata,
        statistics: CategoryCounts,
        *,
        dtype: Any = None,
        missing_value: str | None = None,
    ) -> CategoricalColumn:
        """Build the transform of column ``name`` from its category counts, without its values.

        Parameters
        ----------
        name : str
            The column.
        col : ColumnMetadata
            Its metadata: kind, categories, and the dtype unless given.
        statistics : CategoryCounts
            Rows of each category and missing rows.
        dtype : optional
            Dtype of decoded values; by default ``col.dtype`` (``object`` when unset; a
            ``"category"`` dtype takes the metadata's categories).
        missing_value : {"nan", "none", "na"}, optional
            How an object column writes missing values (NaN by default).

        Raises
        ------
        MetadataError
            When ``col`` has no categories, or not as many as ``statistics`` counts.

        Examples
        --------
        >>> col = ColumnMetadata("categorical", categories=["F", "M"], dtype="category")
        >>> column = CategoricalColumn.from_counts("sex", col, CategoryCounts([7, 5], missing=2))
        >>> column.counts.tolist(), column.width, list(column.dtype.categories)
        ([7, 5, 2], 3, ['F', 'M'])
        """
        counts = np.asarray(statistics.counts)
        if not col.categories or len(col.categories) != counts.shape[0]:
            expected = len(col.categories or [])
            raise MetadataError(
                [
                    Problem(
                        name,
                        f"{counts.shape[0]} category count(s) for {expected} categor"
                        f"{'y' if expected == 1 else 'ies'} in the metadata",
                    )
                ]
            )
        categories = category_order(col)
        if dtype is None:
            dtype = _metadata_dtype(col.dtype, categories)
        return cls(
            name=name,
            kind=col.kind,
            categories=categories,
            counts=statistics.slot_counts(),
            has_missing=statistics.has_missing,
            dtype=dtype,
            missing_value=missing_value,
        )

    @property
    def width(self) -> int:
        """Number of matrix columns: the categories, and "missing" when the column had any."""
        return len(self.categories) + self.has_missing

    def spans(self, start: int) -> list[Span]:
        """The one category span of the block starting at ``start``."""
        return [Span(self.name, start, self.width, "softmax", "category")]

    def encode(
        self, series: pd.Series, block: np.ndarray, rng: np.random.Generator | None
    ) -> list[Problem]:
        """Write the one-hot encoding of ``series`` into ``block``."""
        codes, unseen = category_codes(series, self.categories)
        if unseen:
            return [_unseen_problem(self.name, unseen, self.categories)]
        missing = int((codes == -1).sum())
        if missing and not self.has_missing:
            return [
                Problem(
                    self.name,
                    f"{missing} missing value(s), but the column had none when the encoder was "
                    "fitted (it has no missing category)",
                )
            ]
        block[np.arange(len(codes)), _slots(codes, self.categories)] = 1.0
        return []

    def decode(
        self, block: np.ndarray, *, sample: bool, rng: np.random.Generator | None
    ) -> pd.Series:
        """The column read back from ``block`` (argmax, or drawn when ``sample``), in its dtype."""
        typed = self._slot_values
        return pd.Series(typed.take(choose_slots(block, sample=sample, rng=rng)), dtype=typed.dtype)

    @cached_property
    def _slot_values(self) -> pd.api.extensions.ExtensionArray:
        """The value of each slot in the column's dtype (the missing slot's last), cast once:
        decoding takes from it, where casting each row's label would hash every row (decoding
        a block of 4,096 rows took 2.3 to 6 times as long that way on SUPPORT2's columns)."""
        table = np.empty(self.width, dtype=object)
        table[: len(self.categories)] = self.categories
        if self.has_missing:
            table[-1] = MISSING_VALUES[self.missing_value or "nan"]
        return labels_to_dtype(table, self.dtype).array

    def get_state(self, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-ready description, and the category counts as the array ``{key}.counts``."""
        config = {
            "type": "categorical",
            "name": self.name,
            "kind": self.kind,
            "categories": self.categories,
            "has_missing": self.has_missing,
            "dtype": dtype_to_json(self.dtype),
            "missing_value": self.missing_value,
        }
        return config, {f"{key}.counts": self.counts}

    @classmethod
    def from_state(
        cls, config: dict[str, Any], arrays: dict[str, np.ndarray], key: str
    ) -> CategoricalColumn:
        """Inverse of :meth:`get_state`."""
        return cls(
            name=config["name"],
            kind=config["kind"],
            categories=list(config["categories"]),
            counts=np.asarray(arrays[f"{key}.counts"], dtype=np.int64),
            has_missing=bool(config["has_missing"]),
            dtype=dtype_from_json(config["dtype"]),
            missing_value=config["missing_value"],
        )


def _metadata_dtype(dtype: str | None, categories: list[Any]) -> Any:
    """The dtype a metadata names, a ``"category"`` one over the metadata's categories."""
    if dtype in ("category", ORDERED_CATEGORY):
        return pd.CategoricalDtype(categories, ordered=dtype == ORDERED_CATEGORY)
    return pd.api.types.pandas_dtype(dtype or "object")


def _slots(codes: np.ndarray, categories: list[Any]) -> np.ndarray:
    """Slot of each code in the span: missing (-1) is the slot after the categories."""
    return np.where(codes == -1, len(categories), codes)


def _unseen_problem(name: str, unseen: list[Any], categories: list[Any]) -> Problem:
    return Problem(
        name,
        f"unseen categor{'y' if len(unseen) == 1 else 'ies'} {_some(unseen)}; "
        f"expected one of {_some(categories)}",
    )


def _some(values: list[Any], shown: int = 5) -> str:
    text = ", ".join(repr(plain(v)) for v in values[:shown])
    return text + (f" and {len(values) - shown} more" if len(values) > shown else "")
