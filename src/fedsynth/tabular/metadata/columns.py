"""What fedsynth knows about one column: its kind and the facts a generator needs to restore it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: The column kinds, in the order they are documented.
KINDS: tuple[str, ...] = (
    "numeric",  # float or integer measurement, with bounds
    "categorical",  # unordered labels
    "binary",  # two values, 0/1 or False/True (gene mutation flags are binary, group "genomic")
    "duration",  # survival time, >= 0, paired with an event column
    "event",  # survival event: 0 = censored, 1 = event (or 1..K = competing causes)
    "identifier",  # unique per patient: excluded from learning, never emitted
    "site",  # the hospital or centre a row comes from
)

#: Kinds whose values are labels drawn from a finite set of categories.
DISCRETE_KINDS: frozenset[str] = frozenset({"categorical", "binary", "event", "site"})
#: Kinds whose values are numbers on a continuous scale.
CONTINUOUS_KINDS: frozenset[str] = frozenset({"numeric", "duration"})


#: How an ordered categorical's dtype is named in metadata and a generator's column dtypes
#: (``str(dtype)`` says only ``"category"``, which would lose the order).
ORDERED_CATEGORY = "category[ordered]"


def dtype_name(series: pd.Series) -> str:
    """The name fedsynth records for a column's dtype: ``str(dtype)``, except that an ordered
    categorical keeps its order (:data:`ORDERED_CATEGORY`).

    Examples
    --------
    >>> dtype_name(pd.Series(["a"], dtype=pd.CategoricalDtype(["a", "b"], ordered=True)))
    'category[ordered]'
    """
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) and dtype.ordered:
        return ORDERED_CATEGORY
    if isinstance(dtype, pd.StringDtype) and dtype.na_value is pd.NA:
        return f"string[{dtype.storage}]"  # str(dtype) says only "string", losing the storage
    return str(dtype)


@dataclass
class ColumnMetadata:
    """Kind and restoration facts of one column.

    Fields other than ``kind`` may be left as ``None`` in a hand-written description: they are
    filled from the data when a generator is fitted (see :meth:`Metadata.resolve`).

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    dtype : str, optional
        The pandas dtype of the input column, restored on the synthetic output.
    integer : bool, optional
        Numeric values are whole numbers (synthetic values are rounded).
    decimals : int, optional
        Numeric values are recorded to this many decimals (synthetic values are rounded to it).
    bounds : tuple of float, optional
        ``(low, high)`` of numeric values; synthetic values are kept within them.
    categories : list, optional
        The allowed values of a discrete column, in a stable order.
    group : str, optional
        A named group of columns, e.g. ``"genomic"`` for mutation flags.
    """

    kind: str
    dtype: str | None = None
    integer: bool | None = None
    decimals: int | None = None
    bounds: tuple[float, float] | None = None
    categories: list[Any] | None = None
    group: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_discrete(self) -> bool:
        """Whether values are labels from :attr:`categories`."""
        return self.kind in DISCRETE_KINDS

    @property
    def is_continuous(self) -> bool:
        """Whether values are numbers on a continuous scale."""
        return self.kind in CONTINUOUS_KINDS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description; ``None`` fields are left out."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.dtype is not None:
            out["dtype"] = self.dtype
        if self.integer is not None:
            out["integer"] = bool(self.integer)
        if self.decimals is not None:
            out["decimals"] = int(self.decimals)
        if self.bounds is not None:
            out["bounds"] = [_plain(self.bounds[0]), _plain(self.bounds[1])]
        if self.categories is not None:
            out["categories"] = [_plain(c) for c in self.categories]
        if self.group is not None:
            out["group"] = self.group
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | str) -> ColumnMetadata:
        """Inverse of :meth:`to_dict`; a bare string is read as the kind."""
        if isinstance(data, str):
            return cls(kind=data)
        bounds = data.get("bounds")
        return cls(
            kind=data["kind"],
            dtype=data.get("dtype"),
            integer=data.get("integer"),
            decimals=data.get("decimals"),
            bounds=None if bounds is None else (float(bounds[0]), float(bounds[1])),
            categories=None if data.get("categories") is None else list(data["categories"]),
            group=data.get("group"),
            extra=dict(data.get("extra") or {}),
        )


def _plain(value: Any) -> Any:
    """Numpy scalars to Python scalars, so that JSON and YAML can hold them."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value
