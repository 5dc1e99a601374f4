"""The space TabDDPM diffuses in: one normal score per continuous value, one-hot spans after.

TabDDPM (Kotelnikov et al. 2023) maps each number to a standard normal by its quantiles and
diffuses that one input per number. fedsynth's :class:`~fedsynth.tabular.transforms.TableEncoder`
gives a number two parts instead, its mixture mode (one-hot, up to 10 slots) and its offset
within the mode; diffusing those would put a multinomial process on every mode span, and the
modes are most of the matrix (194 of SUPPORT2's 327 columns). So a number ``x`` (on the
encoder's scale: ``log1p`` of a duration) is mapped to a normal score ``z = Phi^-1(F(x))``,
with one of two maps ``F``:

* **quantiles** (:func:`quantile_knots`), TabDDPM's own transform, wherever rows may be read
  when the model is built: the training rows of a fit, or under DP the private proxy the
  encoder is fitted on (post-processing). ``F`` interpolates ``K`` quantiles linearly (``K`` =
  rows / 30 within [10, 1000], TabDDPM's choice), so the scores are normal whatever the shape
  of the column, from its smallest value to its largest. A value held by many rows (ages, a
  lab value recorded to one decimal, a common dose: at least a ``K - 1``-th of them) gets its
  share of the probabilities as a flat of the quantile function: the map sends that whole
  range of scores back to the value, and a training row gets a score drawn uniformly (in
  probability) within it, so that the network learns a continuous density rather than point
  masses.
* **the encoder's mixture** where no row is at hand: a federated model built from the sites'
  statistics, or a private fit with no proxy table. ``F`` is the cumulative distribution of
  the encoder's mixture for the column, interpolated on a grid of :data:`_GRID` points over
  the modes' reach (4 standard deviations, where the encoder clips).

On FLCHAIN, split seed 1, the mixture's reach ended at kappa 9.5 while 10 training rows lay
between 9.5 and 16.4: the encoder clips them to 9.5, and no generated kappa came above 7.9.
The quantiles keep the whole range (SDMetrics' pair scores of kappa, which bin each table
over its own range, moved most).

New scores are read back by the same map straight to values (:meth:`ModelSpace.values_of`),
which the column's transform finishes (bounds, rounding, dtype): not through the encoder's
mode and offset, whose offset is clipped at 4 standard deviations.

The model-space row is ``[z of each continuous value] [softmax spans grouped by width]``: the
spans (categories, missingness indicators, modes of point-mass columns) are reordered so that
those of one width are contiguous, which lets the diffusion view them as a
``(rows, spans, width)`` block without copying. Point-mass columns (few distinct values) keep
their mode span, a category.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from fedsynth.tabular.metadata.values import read_numbers
from fedsynth.tabular.transforms.numeric import to_model_scale

if TYPE_CHECKING:
    from fedsynth.tabular.transforms import TableEncoder

#: Grid points of the mixture's map of each column.
_GRID = 2049
#: Probabilities are kept within [1e-6, 1 - 1e-6], so normal scores within this.
Z_MAX = float(ndtri(1 - 1e-6))
#: Quantiles per column: rows / _ROWS_PER_QUANTILE, within [_MIN_QUANTILES, _MAX_QUANTILES]
#: (TabDDPM's ``n_quantiles = max(min(n // 30, 1000), 10)``).
_ROWS_PER_QUANTILE = 30
_MIN_QUANTILES = 10
_MAX_QUANTILES = 1000


def quantile_knots(values: np.ndarray) -> np.ndarray:
    """The knots of one column's quantile function: ``(2, m)``, probabilities then values.

    The quantiles of the present values (``NaN`` = missing) at ``K`` evenly spaced
    probabilities from 0 to 1 (the smallest value, ..., the largest) and at ``K`` probabilities
    evenly spaced in normal score (fine steps in the tails), and for every value held
    by at least one ``K - 1``-th of the rows, the two ends of its share, ``(F(v-), v)`` and
    ``(F(v), v)``: interpolated linearly, the quantile function is flat over exactly that
    share, so all its scores read back as the value.

    Examples
    --------
    >>> knots = quantile_knots(np.arange(100.0))
    >>> knots.shape, knots[1, [0, 1, -2, -1]].round(2).tolist()
    ((2, 20), [0.0, 0.5, 98.5, 99.0])
    >>> quantile_knots(np.array([1.0] * 60 + [2.0] * 240 + [3.0] * 300)).tolist()
    [[0.0, 0.0, 0.1, 0.1, 0.5, 0.5, 1.0, 1.0], [1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0]]
    """
    present = np.asarray(values, dtype=np.float64)
    present = present[np.isfinite(present)]
    if not len(present):
        raise ValueError("quantile_knots needs at least one present value")
    n = len(present)
    k = int(np.clip(n // _ROWS_PER_QUANTILE, _MIN_QUANTILES, _MAX_QUANTILES))
    # Evenly spaced in probability (TabDDPM's) and in normal score out to the scores of the
    # first and last rows: interpolated between probability knots alone, the last 1 / K of
    # the scores spread evenly between the (1 - 1 / K)-quantile and the largest value, which
    # on a heavy tail (FLCHAIN's lambda: 6 to 26.6) gave 5 times too many values above the
    # 99.9th percentile and broke the numbers' correlations.
    edge = float(ndtri(1 - 0.5 / n)) if n > 1 else 0.0
    at = np.union1d(np.linspace(0.0, 1.0, k), ndtr(np.linspace(-edge, edge, k)))
    knots = np.quantile(present, at)
    distinct, counts = np.unique(present, return_counts=True)
    held_up_to = np.cumsum(counts)
    upper, lower = held_up_to / n, (held_up_to - counts) / n
    common = counts * (k - 1) >= n
    lower, upper, held = lower[common], upper[common], distinct[common]
    # Evenly spaced knots inside a common value's share would only repeat it.
    inside = ((at[:, None] > lower) & (at[:, None] < upper)).any(axis=1)
    p = np.concatenate([at[~inside], lower, upper])
    x = np.concatenate([knots[~inside], held, held])
    order = np.lexsort((x, p))
    # np.quantile's interpolation between neighbours may cross a share's end by a hair.
    return np.stack([p[order], np.maximum.accumulate(x[order])])


class ModelSpace:
    """Maps an encoder's matrix to the model space of the module docstring and back.

    Parameters
    ----------
    encoder : TableEncoder
        The fitted encoder.
    quantiles : mapping of str to ndarray, optional
        :func:`quantile_knots` of continuous columns on the encoder's scale (probabilities and
        values, ``(2, m)``); the other
        continuous columns use the encoder's mixture.

    Attributes
    ----------
    n_values : int
        Continuous columns (the first ``n_values`` model columns).
    value_columns : list of str
        Their names, in model order.
    quantiles : dict of str to ndarray
        The quantiles used, by column.
    widths : list of (int, int)
        ``(width, count)`` of each group of softmax spans, in model order after the values.
    dim : int
        Model columns.
    """

    def __init__(self, encoder: TableEncoder, quantiles: Mapping[str, np.ndarray] | None = None):
        quantiles = dict(quantiles or {})
        by_column: dict[str, dict[str, object]] = {}
        for span in encoder.output_info_:
            by_column.setdefault(span.column, {})[span.role] = span
        self._values = []  # (value column, mode slice or None, transform)
        self._forward = []  # (x knots, probabilities or normal scores at them, quantiles?)
        categorical: list[object] = []
        for column, roles in by_column.items():
            if "value" in roles:
                transform = encoder.transforms_[encoder.columns_.index(column)]
                mode = roles.get("mode")
                self._values.append(
                    (roles["value"].start, None if mode is None else mode.slice, transform)
                )
                if column in quantiles:
                    at, knots = np.asarray(quantiles[column], dtype=np.float64)
                    self._forward.append((knots, at, True))
                else:
                    normalizer = transform.normalizer
                    x, z = _grid(normalizer.means, normalizer.stds, normalizer.weights)
                    self._forward.append((x, z, False))
                rest = [roles[r] for r in ("missing",) if r in roles]
            else:
                rest = [roles[r] for r in ("mode", "category", "missing") if r in roles]
            categorical += rest
        unknown = set(quantiles) - {entry[2].name for entry in self._values}
        if unknown:
            raise ValueError(f"quantiles given for column(s) without values: {sorted(unknown)}")
        self.value_columns = [entry[2].name for entry in self._values]
        self.quantiles = {c: np.asarray(q, dtype=np.float64) for c, q in quantiles.items()}
        categorical.sort(key=lambda span: span.width)  # stable: the table's order within a width
        self._sources = np.array(
            [i for span in categorical for i in range(span.start, span.stop)], dtype=np.int64
        )
        counts: dict[int, int] = {}
        for span in categorical:
            counts[span.width] = counts.get(span.width, 0) + 1
        self.n_values = len(self._values)
        self.widths = sorted(counts.items())
        self.dim = self.n_values + len(self._sources)
        self.encoder_dim = int(encoder.output_dim_)

    def values(self, data: pd.DataFrame) -> np.ndarray:
        """The continuous columns of ``data`` (checked rows), unclipped, on the encoder's
        scale: ``(rows, n_values)`` floats, ``NaN`` where missing or not in ``data``."""
        out = np.full((len(data), self.n_values), np.nan)
        for i, (_, _, transform) in enumerate(self._values):
            if transform.name not in data:
                continue
            numbers = read_numbers(data[transform.name])
            if numbers is None:  # the encoder has read the same column: a checked table
                raise ValueError(f"column {transform.name!r} holds values that are not numbers")
            out[:, i] = to_model_scale(numbers.to_numpy(dtype=np.float64), transform.log)
        return out

    def to_model(
        self,
        matrix: np.ndarray,
        values: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Model-space rows (float32) of an encoder matrix.

        ``values`` (from :meth:`values`) gives the numbers themselves; without it they are read
        off the matrix (mode and offset, so within the modes' reach). With ``rng``, a value
        that spans a range of quantiles gets a score drawn within it; without, its middle.
        """
        matrix = np.asarray(matrix, dtype=np.float32)
        out = np.empty((len(matrix), self.dim), dtype=np.float32)
        for i, ((value, mode, transform), forward) in enumerate(
            zip(self._values, self._forward, strict=True)
        ):
            if values is None:
                normalizer = transform.normalizer
                modes = (
                    np.zeros(len(matrix), dtype=np.int64)
                    if mode is None
                    else (matrix[:, mode].argmax(1))
                )
                alpha = np.clip(matrix[:, value].astype(np.float64), -1.0, 1.0)
                x = normalizer.means[modes] + 4.0 * normalizer.stds[modes] * alpha
            else:
                # Missing rows: any valid score (the indicator says they are missing), the
                # middle one.
                x = values[:, i]
                x = np.where(np.isnan(x), forward[0][len(forward[0]) // 2], x)
            out[:, i] = _scores(x, forward, rng)
        out[:, self.n_values :] = matrix[:, self._sources]
        return out

    def values_of(self, model: np.ndarray) -> np.ndarray:
        """The continuous values of model-space rows, on the encoder's scale (float64): the
        quantile function at ``Phi(z)``, or the mixture's grid read backwards."""
        model = np.asarray(model)
        out = np.empty((len(model), self.n_values), dtype=np.float64)
        for i, (knots, at, quantiles) in enumerate(self._forward):
            z = np.clip(model[:, i].astype(np.float64), -Z_MAX, Z_MAX)
            out[:, i] = np.interp(ndtr(z), at, knots) if quantiles else np.interp(z, at, knots)
        return out

    def to_encoder(self, model: np.ndarray) -> np.ndarray:
        """An encoder matrix of model-space rows' spans (categories, missingness, modes of
        point-mass columns); the continuous values' own columns are left 0, their values come
        from :meth:`values_of` (see :meth:`column_of`)."""
        model = np.asarray(model)
        out = np.zeros((len(model), self.encoder_dim), dtype=np.float32)
        out[:, self._sources] = model[:, self.n_values :]
        return out

    def column_of(self, i: int, values: np.ndarray, missing: np.ndarray | None) -> pd.Series:
        """Continuous column ``i`` (of :attr:`value_columns`) holding ``values`` (encoder's
        scale), missing where ``missing``: bounds, rounding and dtype as its transform has
        them."""
        return self._values[i][2].column_of(values, missing)

    def mask_to_model(self, mask: np.ndarray) -> np.ndarray:
        """Which model columns come from the encoder columns marked in ``mask`` (rows x
        encoder columns, boolean)."""
        values = mask[:, [entry[0] for entry in self._values]]
        return np.concatenate([values, mask[:, self._sources]], axis=1)


def _scores(
    x: np.ndarray,
    forward: tuple[np.ndarray, np.ndarray, bool],
    rng: np.random.Generator | None,
) -> np.ndarray:
    """Normal scores of values ``x`` under one column's map (see :meth:`ModelSpace.to_model`)."""
    knots, at, quantiles = forward
    if not quantiles:
        return np.interp(x, knots, at)
    # The probabilities whose quantile is x run from the left-most to the right-most
    # crossing of x by the interpolated quantile function: one point, or the range of the
    # knots equal to x.
    low = _crossing(x, knots, at, "left")
    high = _crossing(x, knots, at, "right")
    u = low + (high - low) * (0.5 if rng is None else rng.random(len(x)))
    return ndtri(np.clip(u, 1e-6, 1 - 1e-6))


def _crossing(x: np.ndarray, knots: np.ndarray, at: np.ndarray, side: str) -> np.ndarray:
    """The probability at which the piecewise linear quantile function through ``(at,
    knots)`` first (``side="left"``) or last (``"right"``) equals ``x`` (clamped to the
    ends)."""
    j = np.clip(np.searchsorted(knots, x, side=side), 1, len(knots) - 1)
    lo, hi = knots[j - 1], knots[j]
    width = hi - lo
    share = np.divide(x - lo, width, out=np.zeros_like(x), where=width > 0)
    # Two equal knots (a run of them, at the ends): their left end for x equal to them from
    # the left, their right end from the right.
    past = x > lo if side == "left" else x >= lo
    share = np.where(width > 0, share, past.astype(np.float64))
    return at[j - 1] + np.clip(share, 0.0, 1.0) * (at[j] - at[j - 1])


def _grid(
    means: np.ndarray, stds: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Values spanning the modes' reach and their normal scores under the mixture."""
    low = float(np.min(means - 4.0 * stds))
    high = float(np.max(means + 4.0 * stds))
    x = np.linspace(low, high, _GRID)
    weights = weights / weights.sum()
    cdf = (weights[None, :] * ndtr((x[:, None] - means[None, :]) / stds[None, :])).sum(1)
    z = ndtri(np.clip(cdf, 1e-6, 1 - 1e-6))
    # Strictly increasing, as inverting by interpolation needs (flat where the cdf is clipped).
    z = z + np.arange(_GRID) * 1e-9
    return x, z
