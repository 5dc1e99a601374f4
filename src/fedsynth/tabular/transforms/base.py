"""The contract between :class:`~fedsynth.tabular.transforms.TableEncoder` and its transforms.

An encoded table is one float32 matrix. Each input column owns a contiguous run of its columns,
cut into :class:`Span` s; a neural generator reads the spans to know which activation to put on
each part of its output (``tanh`` for a normalised value, ``softmax`` for a one-hot choice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from fedsynth.exceptions import Problem

Activation = Literal["tanh", "softmax"]
Role = Literal["value", "mode", "category", "missing"]


@dataclass(frozen=True)
class Span:
    """A block of matrix columns ``[start, start + width)`` that encodes part of one column.

    Parameters
    ----------
    column : str
        The input column it encodes.
    start : int
        Index of its first matrix column.
    width : int
        Number of matrix columns (1 for a ``value`` span).
    activation : {"tanh", "softmax"}
        What a generator applies to its output here: ``tanh`` for a value in [-1, 1],
        ``softmax`` for a choice among ``width`` slots.
    role : {"value", "mode", "category", "missing"}
        ``value``: the normalised offset of a continuous value within its mode; ``mode``: the
        mixture mode of a continuous value; ``category``: the category of a discrete column
        (its last slot means "missing" when the column had missing values); ``missing``: the
        ``[present, missing]`` indicator of a continuous column with missing values.

    Examples
    --------
    >>> span = Span("age", start=0, width=1, activation="tanh", role="value")
    >>> span.stop
    1
    """

    column: str
    start: int
    width: int
    activation: Activation
    role: Role

    @property
    def stop(self) -> int:
        """Index one past its last matrix column."""
        return self.start + self.width

    @property
    def slice(self) -> slice:
        """``slice(start, stop)``, to index the matrix with."""
        return slice(self.start, self.stop)


class ColumnTransform(Protocol):
    """What the table encoder asks of the transform of one column."""

    name: str

    @property
    def width(self) -> int:
        """Number of matrix columns it writes (0 for a column restored as a constant)."""

    def spans(self, start: int) -> list[Span]:
        """Its spans when its block starts at matrix column ``start``."""

    def encode(
        self, series: pd.Series, block: np.ndarray, rng: np.random.Generator | None
    ) -> list[Problem]:
        """Write the encoding of ``series`` into ``block`` (zeros on entry); return problems."""

    def decode(
        self, block: np.ndarray, *, sample: bool, rng: np.random.Generator | None
    ) -> pd.Series:
        """The column, in its fitted dtype, read back from ``block``."""

    def get_state(self, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-ready description and arrays (named ``{key}.<name>``) to rebuild it."""


def choose_slots(
    block: np.ndarray, *, sample: bool = False, rng: np.random.Generator | None = None
) -> np.ndarray:
    """The slot chosen in each row of a softmax span: its argmax, or a draw from it.

    Parameters
    ----------
    block : ndarray of shape (n, width)
        Rows of non-negative weights, typically softmax probabilities.
    sample : bool, default False
        Draw each row's slot with probability proportional to its weight instead of taking
        the largest. Rows whose weights are all zero (or not finite) draw uniformly.
    rng : numpy.random.Generator, optional
        Source of the draws when ``sample`` is true.

    Returns
    -------
    ndarray of int64, shape (n,)

    Examples
    --------
    >>> choose_slots(np.array([[0.2, 0.8], [0.9, 0.1]]))
    array([1, 0])
    """
    n, width = block.shape
    if width == 1:
        return np.zeros(n, dtype=np.int64)
    if not sample:
        return block.argmax(axis=1).astype(np.int64)
    rng = np.random.default_rng(rng)
    # Single precision is plenty for a draw among a few slots and halves the memory traffic;
    # the cleaning passes run only when the block needs them (softmax output does not).
    weights = np.asarray(block, dtype=np.float32)
    if not np.isfinite(weights).all():
        weights = np.nan_to_num(weights, nan=0.0, posinf=0.0, neginf=0.0)
    if (weights < 0).any():
        weights = np.clip(weights, 0.0, None)
    u = rng.random(n)  # double: u * total stays below total, so empty slots are never drawn
    if width == 2:  # the common case (missingness, two modes): one comparison
        total = weights[:, 0] + weights[:, 1]
        slots = (weights[:, 0] <= u * total).astype(np.int64)
    else:
        cumulative = np.cumsum(weights, axis=1)
        total = cumulative[:, -1]
        # The first slot whose cumulative weight passes u; zero-weight slots are never chosen.
        slots = (cumulative <= (u * total)[:, None]).sum(axis=1)
    empty = ~(total > 0)
    if empty.any():
        slots[empty] = rng.integers(width, size=int(empty.sum()))
    return np.minimum(slots, width - 1).astype(np.int64)
