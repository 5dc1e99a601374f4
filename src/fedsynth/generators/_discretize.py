"""Quantile bins that turn a numeric column into states of a discrete model, and back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Bins:
    """The bins of one numeric column: closed intervals ``[low[i], high[i]]``, sorted.

    A bin with ``low == high`` is an atom: a single value frequent enough to be a state of its
    own (a point mass such as a duration of 0, or each value of a column with few distinct
    values). Missing values get the state ``len(low)`` when ``has_missing`` is true.

    Parameters
    ----------
    low, high : ndarray of float
        Bounds of each bin. For an ``integer`` column the bounds are whole numbers and both ends
        belong to the bin; otherwise a value equal to ``high[i] == low[i + 1]`` goes to bin
        ``i + 1``.
    integer : bool
        Values are whole numbers: sampled values are drawn among the integers of their bin.
    has_missing : bool
        Whether missing values were seen and so have a state.
    """

    low: np.ndarray
    high: np.ndarray
    integer: bool
    has_missing: bool

    @property
    def n_states(self) -> int:
        """Number of states: the bins, plus one for missing values when they occur."""
        return len(self.low) + int(self.has_missing)

    def codes(self, values: np.ndarray) -> np.ndarray:
        """State of each value (missing values get the missing state)."""
        values = np.asarray(values, dtype=float)
        codes = np.full(len(values), len(self.low), dtype=np.int64)
        present = ~np.isnan(values)
        codes[present] = self._bin_of(values[present])
        return codes

    def code_of(self, value: float) -> int:
        """State of one non-missing value; a value between bins goes to the nearest bin."""
        return int(self._bin_of(np.array([float(value)]))[0])

    def _bin_of(self, values: np.ndarray) -> np.ndarray:
        x = values[:, None]
        atom = self.low == self.high
        last = np.arange(len(self.low)) == len(self.low) - 1
        closed = atom | last | self.integer
        inside = (self.low <= x) & ((x < self.high) | (closed & (x == self.high)))
        # An atom may sit inside an interval built from the other values: the atom wins.
        rank = np.where(inside, np.where(atom, 2, 1), 0)
        found = rank.argmax(axis=1)
        outside = rank.max(axis=1) == 0
        if outside.any():
            # A value in a gap between bins (a condition such as 2.5 on a whole-number column)
            # goes to the nearest bin.
            y = x[outside]
            distance = np.maximum(self.low - y, 0) + np.maximum(y - self.high, 0)
            found[outside] = distance.argmin(axis=1)
        return found

    def sample(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A value drawn uniformly within the bin of each state (NaN for the missing state)."""
        codes = np.asarray(codes, dtype=np.int64)
        low = np.append(self.low, np.nan)[codes]
        high = np.append(self.high, np.nan)[codes]
        u = rng.random(len(codes))
        if self.integer:
            return np.minimum(low + np.floor(u * (high - low + 1)), high)
        values = low + u * (high - low)
        # The upper edge of a half-open bin belongs to the next one; rounding in low + u * width
        # can land on it when the bin is very narrow.
        half_open = (codes < len(self.low) - 1) & (low < high)
        values[half_open] = np.minimum(values[half_open], np.nextafter(high[half_open], -np.inf))
        return values


def quantile_bins(values: np.ndarray, n_bins: int, *, integer: bool) -> Bins:
    """Bins of the observed ``values`` (NaN = missing), at most ``n_bins`` of them.

    Values holding at least ``1 / n_bins`` of the data become atoms (all of them when there are
    no more than ``n_bins`` distinct values); the remaining values are cut at their quantiles,
    taken among observed values (``inverted_cdf``) so that edges of whole-number columns are whole.

    Examples
    --------
    >>> import numpy as np
    >>> bins = quantile_bins(np.array([0.0, 0.0, 0.0, 1.5, 2.0, 7.0, np.nan]), 3, integer=False)
    >>> bins.low.tolist(), bins.high.tolist(), bins.n_states
    ([0.0, 1.5, 2.0], [0.0, 2.0, 7.0], 4)
    """
    values = np.asarray(values, dtype=float)
    observed = values[~np.isnan(values)]
    has_missing = len(observed) < len(values)
    distinct, counts = np.unique(observed, return_counts=True)
    frequent = counts * n_bins >= len(observed)
    atoms = distinct if len(distinct) <= n_bins else distinct[frequent]
    rest = observed[~np.isin(observed, atoms)]
    low, high = [atoms], [atoms]
    if len(rest):
        n_intervals = n_bins - len(atoms)
        edges = np.unique(
            np.quantile(rest, np.linspace(0, 1, n_intervals + 1), method="inverted_cdf")
        )
        if len(edges) == 1:
            low.append(edges)
            high.append(edges)
        else:
            upper = edges[1:].copy()
            if integer:
                upper[:-1] -= 1  # whole-number bins [a, b - 1]; the last one keeps its top
            low.append(edges[:-1])
            high.append(upper)
    low_all, high_all = np.concatenate(low), np.concatenate(high)
    order = np.lexsort((high_all, low_all))
    return Bins(low_all[order], high_all[order], integer, has_missing)
