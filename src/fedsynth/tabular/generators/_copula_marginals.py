"""The marginals of the Gaussian copula: how each column maps to its latent normal variable(s),
from the rows or, under DP, from noisy histograms over the public or released domain."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from fedsynth.exceptions import ConditionError
from fedsynth.tabular.generators._discrete import category_states
from fedsynth.tabular.privacy.dp_statistics import (
    ColumnDomain,
    grid_cells,
    grid_edges,
    noisy_histogram,
)

EPS = 1e-9
MAX_QUANTILES = 1_000
# Under DP: cells of the noisy histogram of a numeric column over its public range.
DP_CELLS = 64


def ndtri(u: np.ndarray) -> np.ndarray:
    """Standard-normal quantile of ``u``, kept finite (``u`` clipped away from 0 and 1)."""
    return special.ndtri(np.clip(u, EPS, 1 - EPS))


@dataclass
class Marginal:
    """How one column maps to its latent variable(s)."""

    column: str
    discrete: bool
    value_dim: int  # latent dimension of the value
    missing_dim: int | None = None  # latent dimension of "is missing" (numeric columns only)
    order: np.ndarray | None = None  # discrete: category codes in the order laid on the normal line
    cumulative: np.ndarray | None = None  # discrete: upper cumulative probability of each slot
    quantiles: np.ndarray | None = None  # numeric: empirical quantile function on a uniform grid
    missing_rate: float = 0.0

    def category_interval(self, code: int) -> tuple[float, float]:
        """Latent interval of category ``code`` (-1 for missing)."""
        slots = np.flatnonzero(self.order == code)
        if not len(slots):
            raise ConditionError(
                f"{self.column!r}: the category was never seen in the training data, so the "
                "copula cannot generate it"
            )
        slot = int(slots[0])
        low = 0.0 if slot == 0 else self.cumulative[slot - 1]
        return float(ndtri(np.array(low))), float(ndtri(np.array(self.cumulative[slot])))


def discrete_marginal(
    column: str, codes: np.ndarray, dim: int, rng: np.random.Generator
) -> tuple[Marginal, np.ndarray]:
    """Lay the categories (missing as code -1) on the normal line, most frequent first."""
    values, counts = np.unique(codes, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    values, counts = values[order], counts[order]
    cumulative = np.cumsum(counts) / counts.sum()
    cumulative[-1] = 1.0
    low = np.concatenate([[0.0], cumulative[:-1]])
    lookup = np.empty(int(values.max()) + 2, dtype=np.int64)
    lookup[values + 1] = np.arange(len(values))  # codes start at -1 (missing)
    slot = lookup[codes + 1]
    # A random point inside the category's slice, so that ties do not pile on one latent value.
    u = low[slot] + rng.uniform(0.0, 1.0, size=len(codes)) * (cumulative[slot] - low[slot])
    marginal = Marginal(
        column=column, discrete=True, value_dim=dim, order=values, cumulative=cumulative
    )
    return marginal, ndtri(u)


def quantile_grid(values: np.ndarray, n_quantiles: int) -> np.ndarray:
    """At most ``n_quantiles`` points of the quantile function of ``values``, on a uniform grid."""
    if len(values) == 0:
        return np.zeros(2)
    levels = np.linspace(0.0, 1.0, min(n_quantiles, max(len(values), 2)))
    return np.quantile(values, levels)


def quantile_inverse(quantiles: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Values at cumulative probabilities ``u``, interpolated between the quantiles."""
    levels = np.linspace(0.0, 1.0, len(quantiles))
    return np.interp(u, levels, quantiles)


def quantile_cdf(quantiles: np.ndarray, value: float) -> np.ndarray:
    """Cumulative probability of ``value`` under the quantile function (middle of a flat step)."""
    levels = np.linspace(0.0, 1.0, len(quantiles))
    low = np.searchsorted(quantiles, value, side="left")
    high = np.searchsorted(quantiles, value, side="right")
    if high > low:  # the value is a knot (or a run of equal knots): take the middle level
        return np.array(levels[low:high].mean())
    return np.array(np.interp(value, quantiles, levels))


def normal_scores(values: np.ndarray) -> np.ndarray:
    """Normal scores of the present values (average ranks for ties); NaN stays NaN."""
    out = np.full(len(values), np.nan)
    present = ~np.isnan(values)
    if present.any():
        ranks = stats.rankdata(values[present])
        out[present] = ndtri(ranks / (present.sum() + 1))
    return out


def indicator_scores(missing: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Latent scores of a missingness indicator: a thresholded normal, missing below."""
    rate = missing.mean()
    u = np.where(missing, rng.uniform(0, rate, len(missing)), rng.uniform(rate, 1, len(missing)))
    return ndtri(u)


# ---------------------------------------------------------------------- private marginals
def private_discrete(
    column: str,
    values: pd.Series,
    domain: ColumnDomain,
    dim: int,
    scale: float,
    rng: np.random.Generator,
) -> tuple[Marginal, np.ndarray, float]:
    """A discrete marginal from a noisy histogram, the rows' latent scores, the noisy total.

    Values of categories that were not released count as missing (such a column always has
    the missing state).
    """
    k = len(domain.categories)
    cells = category_states(values, domain.categories)
    noisy, proportions = noisy_histogram(cells, k, missing=domain.missing, scale=scale, rng=rng)
    labels = np.append(np.arange(k), -1)[: len(proportions)]
    order = np.argsort(-proportions, kind="stable")
    cumulative = np.cumsum(proportions[order])
    cumulative[-1] = 1.0
    low = np.concatenate([[0.0], cumulative[:-1]])
    slot = np.empty(k + 1, dtype=np.int64)
    slot[np.where(labels[order] < 0, k, labels[order])] = np.arange(len(order))
    row_slot = slot[cells]
    u = low[row_slot] + rng.uniform(size=len(cells)) * (cumulative[row_slot] - low[row_slot])
    marginal = Marginal(
        column=column, discrete=True, value_dim=dim, order=labels[order], cumulative=cumulative
    )
    return marginal, ndtri(u), float(noisy.sum())


def private_numeric(
    column: str,
    values: np.ndarray,
    domain: ColumnDomain,
    integer: bool,
    log: bool,
    dim: int,
    n_quantiles: int,
    scale: float,
    rng: np.random.Generator,
) -> tuple[Marginal, np.ndarray, np.ndarray | None, float]:
    """A numeric marginal from a noisy histogram over the public range, the rows' latent
    scores (value, and missingness when the column may be missing), the noisy total."""
    edges = grid_edges(*domain.bounds, DP_CELLS, integer=integer, log=log)
    n_cells = len(edges) - 1
    missing = np.isnan(values)
    inside = np.clip(values, edges[0], edges[-1])
    noisy, proportions = noisy_histogram(
        grid_cells(values, edges), n_cells, missing=domain.missing, scale=scale, rng=rng
    )
    missing_rate = float(proportions[n_cells]) if domain.missing else 0.0
    cdf = np.concatenate([[0.0], np.cumsum(proportions[:n_cells])])
    cdf /= cdf[-1]
    quantiles = np.interp(np.linspace(0.0, 1.0, n_quantiles), cdf, edges)
    value_z = np.zeros(len(values))
    value_z[~missing] = ndtri(np.interp(inside[~missing], edges, cdf))
    marginal = Marginal(
        column=column,
        discrete=False,
        value_dim=dim,
        quantiles=quantiles,
        missing_rate=missing_rate,
    )
    missing_z = None
    if domain.missing:
        marginal.missing_dim = dim + 1
        u = np.where(
            missing,
            rng.uniform(0, missing_rate, len(values)),
            rng.uniform(missing_rate, 1, len(values)),
        )
        missing_z = ndtri(u)
    return marginal, value_z, missing_z, float(noisy.sum())
