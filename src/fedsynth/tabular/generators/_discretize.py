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
            return self._sample_integers(codes, low, high, u)
        values = low + u * (high - low)
        # The upper edge of a half-open bin belongs to the next one; rounding in low + u * width
        # can land on it when the bin is very narrow.
        half_open = (codes < len(self.low) - 1) & (low < high)
        values[half_open] = np.minimum(values[half_open], np.nextafter(high[half_open], -np.inf))
        return values

    def _sample_integers(
        self, codes: np.ndarray, low: np.ndarray, high: np.ndarray, u: np.ndarray
    ) -> np.ndarray:
        """Whole numbers drawn uniformly within each bin, skipping the atoms inside it.

        An atom may sit inside an interval (a frequent value among rarer ones): a value of the
        interval's state must not be the atom, whose own state it would then read back as. The
        ``k``-th allowed integer is ``low + k`` shifted up by one for each atom at or below it.
        """
        atoms = np.sort(self.low[self.low == self.high])
        interval = (codes < len(self.low)) & (low < high)
        covers = [interval & (low <= a) & (a <= high) for a in atoms]
        allowed = high - low + 1 - sum(covers, np.zeros(len(codes)))
        values = low + np.floor(u * allowed)
        for atom, covered in zip(atoms, covers, strict=True):  # ascending: shifts compound
            values += covered & (values >= atom)
        return np.minimum(values, high)


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


def public_bins(
    low: float, high: float, n_bins: int, *, integer: bool, log: bool, has_missing: bool
) -> Bins:
    """At most ``n_bins`` bins of equal width covering the public range ``[low, high]``.

    Used under differential privacy, where the edges may not depend on the data. ``log``
    spaces them evenly in ``log1p`` (durations: most survival times are short, a few very long).
    A whole-number column gets whole-number bins ``[a, b - 1]``, one per value when its range
    holds at most ``n_bins`` values.

    Examples
    --------
    >>> bins = public_bins(0, 100, 4, integer=False, log=False, has_missing=True)
    >>> bins.low.tolist(), bins.high.tolist(), bins.n_states
    ([0.0, 25.0, 50.0, 75.0], [25.0, 50.0, 75.0, 100.0], 5)
    >>> public_bins(1, 3, 10, integer=True, log=False, has_missing=False).low.tolist()
    [1.0, 2.0, 3.0]
    """
    if integer:
        low, high = float(np.ceil(low)), float(np.floor(high))
    if high <= low:
        edges = np.array([low, low])
    elif log and low >= 0:
        edges = np.expm1(np.linspace(np.log1p(low), np.log1p(high), n_bins + 1))
    else:
        edges = np.linspace(low, high, n_bins + 1)
    if integer:
        if high - low + 1 <= n_bins:  # no more values than bins: one atom per value
            values = np.arange(low, high + 1)
            return Bins(values, values.copy(), True, has_missing)
        edges = np.unique(np.round(edges))
        upper = edges[1:].copy()
        upper[:-1] -= 1
        return Bins(edges[:-1], upper, True, has_missing)
    edges = np.unique(edges)
    if len(edges) == 1:
        return Bins(edges, edges.copy(), False, has_missing)
    return Bins(edges[:-1], edges[1:], False, has_missing)
