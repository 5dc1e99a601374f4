"""Gaussian copula: each column's own distribution, joined by a correlation of normal scores.

Every column is mapped to a standard-normal latent variable through its marginal distribution
(numerics through their empirical quantile function, categories through the cumulative
probabilities of their categories, each category a slice of the normal line). Missingness of a
numeric column is one more latent variable, a thresholded normal, so that a value missing
together with another column (not at random) keeps that relation. The latent variables share one
correlation matrix; sampling draws them jointly and maps each back through its marginal.

With ``dp=`` the marginals are noisy histograms over public or released domains and the
correlation is released by the Gaussian mechanism (see :class:`GaussianCopula`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from fedsynth.core.privacy.accounting import PrivacyLedger
from fedsynth.core.privacy.config import DPConfig, DPSettings, resolve_dp
from fedsynth.core.privacy.mechanisms import gaussian_sigma
from fedsynth.core.registry import register
from fedsynth.exceptions import ConditionError, ConditionWarning
from fedsynth.tabular.generators._discrete import from_codes, to_codes
from fedsynth.tabular.generators.base import BaseGenerator
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.privacy.dp_statistics import (
    ColumnDomain,
    grid_edges,
    noisy_counts,
    release_domains,
    to_proportions,
)

_EPS = 1e-9
_MAX_QUANTILES = 1_000
# Under DP: cells of the noisy histogram of a numeric column over its public range, and the
# prior variance of a correlation that shrinks the noisy ones (a normal prior with standard
# deviation 0.3: most correlations between clinical variables are weak).
_DP_CELLS = 64
_CORRELATION_PRIOR_VARIANCE = 0.09
# Quantile of the chi-square distribution at which a row's latent vector is clipped (norm), so
# that one row's contribution to the correlation is bounded without clipping typical rows.
_ROW_NORM_QUANTILE = 0.99


def _ndtri(u: np.ndarray) -> np.ndarray:
    return special.ndtri(np.clip(u, _EPS, 1 - _EPS))


@dataclass
class _Marginal:
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
        return float(_ndtri(np.array(low))), float(_ndtri(np.array(self.cumulative[slot])))


@register("gaussian_copula")
class GaussianCopula(BaseGenerator):
    """Gaussian copula with empirical marginals.

    With ``dp=`` the copula is (epsilon, delta)-differentially private for add/remove
    neighbours; each part of the budget is recorded in ``privacy_spent_``:

    1. the domain: when some numeric bounds or category lists are not declared public (see
       :func:`fedsynth.tabular.privacy.declare_public`), ``domain_fraction`` of epsilon and delta
       releases them (:mod:`fedsynth.tabular.privacy.dp_statistics`); nothing otherwise;
    2. half of the rest of epsilon: the marginals, one histogram per column (the categories, or
       64 cells of equal width over the bounds, in ``log1p`` for durations, plus a missing
       cell where the dtype can hold one), with Laplace noise of scale ``m / epsilon_m`` for
       ``m`` columns (each row adds 1 to one cell of each). Negative counts become 0 and each
       cell gets the noise scale as pseudo-count, so a drowned histogram is uniform;
    3. the other half of epsilon and the rest of delta: the correlation. Each row is mapped to
       normal scores through the *released* marginals (not through ranks, which every row
       shifts), its latent vector clipped to the norm ``C`` with ``C^2`` the 99% quantile of a
       chi-square with one degree per latent dimension, and the sum of the rows' outer products
       released with the Gaussian mechanism (Frobenius sensitivity ``C^2``, "Analyze Gauss",
       Dwork et al. 2014). The noisy correlations are shrunk towards 0 by their noise (the
       posterior mean under a normal prior of standard deviation 0.3), corrected for missing
       values (scores of missing values are 0) and projected onto the correlation matrices.

    The total is the sum of the parts (basic composition): the epsilon and delta asked for.
    Outside the guarantee, from the shared base class: the exact row count ``n_rows_``, which
    columns are constant and their value, and the copy guard (fingerprints of training rows
    saved with the model, and refusing synthetic rows equal to a training row).

    Parameters
    ----------
    n_quantiles : int, default 1000
        Points of each numeric column's quantile function that are kept; sampled values are
        interpolated between them, so no training value needs to be stored beyond these.
    dp : dict, optional
        Differential privacy, e.g. ``{"epsilon": 1.0, "delta": 1e-5}`` (see
        :class:`~fedsynth.core.privacy.DPConfig`); ``None`` for none.
    seed : int or None, default 0
        Seed of fitting (tie-breaking of categories, noise) and of the sample stream.

    Attributes
    ----------
    correlation_ : ndarray of shape (n_latent, n_latent)
        Correlation of the latent normal scores (positive definite).
    latent_names_ : list of str
        What each latent dimension stands for (``column`` or ``column:missing``).
    privacy_spent_ : PrivacyLedger or None
        With ``dp``: every spend and their total (``.epsilon``, ``.delta``); ``None`` without.

    Notes
    -----
    Conditions are met natively: a categorical condition restricts its latent variable to the
    category's interval and a numeric one fixes it; the other variables are drawn from the
    conditional normal. Several interval conditions are drawn by bounded rejection in their own
    low-dimensional space, then by Gibbs sampling of the truncated normal when they are rare.

    Examples
    --------
    >>> import fedsynth
    >>> real = fedsynth.datasets.mds_cohort(n=1000, seed=0)
    >>> gen = fedsynth.make("gaussian_copula").fit(real)  # doctest: +SKIP
    >>> synthetic = gen.sample(1000)  # doctest: +SKIP
    """

    native_conditioning = True

    def __init__(
        self,
        *,
        n_quantiles: int = _MAX_QUANTILES,
        dp: DPConfig | None = None,
        seed: int | None = 0,
    ):
        self.n_quantiles = n_quantiles
        self.dp = dp
        self.seed = seed

    # ------------------------------------------------------------------ fit
    def _fit(self, data: pd.DataFrame, metadata: Metadata, rng: np.random.Generator) -> None:
        if not isinstance(self.n_quantiles, int) or self.n_quantiles < 2:
            raise ValueError(f"n_quantiles must be an integer >= 2, got {self.n_quantiles!r}")
        settings = resolve_dp(self.dp)
        if settings is not None:
            self._fit_private(data, metadata, rng, settings)
            return
        self.privacy_spent_ = None
        n = len(data)
        marginals: list[_Marginal] = []
        latent_names: list[str] = []
        columns: list[np.ndarray] = []
        for column in data.columns:
            col = metadata.columns[column]
            if col.is_discrete:
                codes = to_codes(data[column], col.categories)
                marginal, z = _fit_discrete(column, codes, len(latent_names), rng)
                marginals.append(marginal)
                latent_names.append(column)
                columns.append(z)
                continue
            values = data[column].to_numpy(dtype="float64")
            missing = np.isnan(values)
            marginal = _Marginal(
                column=column,
                discrete=False,
                value_dim=len(latent_names),
                quantiles=_quantile_grid(values[~missing], self.n_quantiles),
                missing_rate=float(missing.mean()),
            )
            latent_names.append(column)
            columns.append(_normal_scores(values))
            if missing.any():
                marginal.missing_dim = len(latent_names)
                latent_names.append(f"{column}:missing")
                columns.append(_indicator_scores(missing, rng))
            marginals.append(marginal)
        z = np.column_stack(columns) if columns else np.empty((n, 0))
        self.correlation_ = _nearest_correlation(_correlation(z))
        self.marginals_ = marginals
        self.latent_names_ = latent_names

    def _fit_private(
        self,
        data: pd.DataFrame,
        metadata: Metadata,
        rng: np.random.Generator,
        settings: DPSettings,
    ) -> None:
        """The copula under DP: the budget spent as the class docstring lists."""
        ledger = PrivacyLedger(settings.max_epsilon)
        ledger.check("Gaussian copula fit", "domain, marginals, correlation", settings.epsilon)
        domains, share = release_domains(data, metadata, settings, ledger=ledger, rng=rng)
        epsilon_marginals = (1.0 - share) * settings.epsilon / 2
        scale = data.shape[1] / epsilon_marginals
        ledger.charge(
            "marginals", "laplace", epsilon_marginals, columns=data.shape[1], noise_scale=scale
        )
        marginals: list[_Marginal] = []
        latent_names: list[str] = []
        columns: list[np.ndarray] = []
        present_rates: list[float] = []
        totals: list[float] = []
        for name in data.columns:
            col, domain = metadata.columns[name], domains[name]
            if col.is_discrete:
                marginal, z, total = _private_discrete(
                    name, data[name], domain, len(latent_names), scale, rng
                )
                marginals.append(marginal)
                latent_names.append(name)
                columns.append(z)
                present_rates.append(1.0)
                totals.append(total)
                continue
            marginal, value_z, missing_z, total = _private_numeric(
                name,
                pd.to_numeric(data[name], errors="coerce").to_numpy(dtype=float),
                domain,
                bool(col.integer),
                col.kind == "duration",
                len(latent_names),
                self.n_quantiles,
                scale,
                rng,
            )
            marginals.append(marginal)
            latent_names.append(name)
            columns.append(value_z)
            present_rates.append(1.0 - marginal.missing_rate)
            totals.append(total)
            if missing_z is not None:
                latent_names.append(f"{name}:missing")
                columns.append(missing_z)
                present_rates.append(1.0)
        # Each column's noisy total estimates n; their mean is far less noisy than any one.
        n_noisy = max(float(np.mean(totals)), 1.0)
        z = np.column_stack(columns)
        self.correlation_ = _private_correlation(
            z,
            np.array(present_rates),
            n_noisy,
            epsilon=(1.0 - share) * settings.epsilon / 2,
            delta=(1.0 - share) * settings.delta,
            ledger=ledger,
            rng=rng,
        )
        self.marginals_ = marginals
        self.latent_names_ = latent_names
        self.privacy_spent_ = ledger

    # ------------------------------------------------------------------ sample
    def _sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        z = rng.multivariate_normal(
            np.zeros(len(self.latent_names_)), self.correlation_, size=n, method="cholesky"
        )
        return self._decode(z)

    def _sample_conditioned(
        self, n: int, conditions: dict[str, Any], rng: np.random.Generator
    ) -> pd.DataFrame:
        fixed: dict[int, float] = {}
        boxes: dict[int, tuple[float, float]] = {}
        by_column = {m.column: m for m in self.marginals_}
        for column, value in conditions.items():
            marginal = by_column[column]
            col = self.metadata_.columns[column]
            if marginal.discrete:
                code = int(to_codes(pd.Series([value]), col.categories)[0])
                boxes[marginal.value_dim] = marginal.category_interval(code)
                continue
            fixed[marginal.value_dim] = float(_ndtri(_quantile_cdf(marginal.quantiles, value)))
            if marginal.missing_dim is not None:  # a given value is not missing
                boxes[marginal.missing_dim] = (
                    float(_ndtri(np.array(marginal.missing_rate))),
                    np.inf,
                )
        z = self._conditional_latents(n, fixed, boxes, rng)
        out = self._decode(z)
        for column, value in conditions.items():
            if not by_column[column].discrete:
                out[column] = float(value)  # the exact value, not its quantile round trip
        return out

    def _conditional_latents(
        self,
        n: int,
        fixed: dict[int, float],
        boxes: dict[int, tuple[float, float]],
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Latent rows with ``fixed`` dimensions set and ``boxes`` dimensions inside their box."""
        sigma = self.correlation_
        d = len(sigma)
        fixed_idx = np.array(sorted(fixed), dtype=int)
        box_idx = np.array(sorted(boxes), dtype=int)
        free_given_fixed = np.setdiff1d(np.arange(d), fixed_idx)
        mean, cov = _condition_normal(sigma, fixed_idx, np.array([fixed[i] for i in fixed_idx]))
        z = np.empty((n, d))
        z[:, fixed_idx] = [fixed[i] for i in fixed_idx]
        if len(box_idx):
            pos = np.searchsorted(free_given_fixed, box_idx)
            low = np.array([boxes[i][0] for i in box_idx])
            high = np.array([boxes[i][1] for i in box_idx])
            z[:, box_idx] = _truncated_normal(mean[pos], cov[np.ix_(pos, pos)], low, high, n, rng)
        given_idx = np.concatenate([fixed_idx, box_idx]).astype(int)
        rest = np.setdiff1d(np.arange(d), given_idx)
        if len(rest):
            rest_mean, rest_cov = _condition_normal_rows(sigma, given_idx, z[:, given_idx])
            noise = rng.multivariate_normal(
                np.zeros(len(rest)), rest_cov, size=n, method="cholesky"
            )
            z[:, rest] = rest_mean + noise
        return z

    def _decode(self, z: np.ndarray) -> pd.DataFrame:
        u = special.ndtr(z)
        out = {}
        for marginal in self.marginals_:
            col = self.metadata_.columns[marginal.column]
            values = u[:, marginal.value_dim]
            if marginal.discrete:
                slots = np.searchsorted(marginal.cumulative, values, side="right")
                slots = np.minimum(slots, len(marginal.order) - 1)
                out[marginal.column] = from_codes(marginal.order[slots], col.categories)
                continue
            numbers = _quantile_inverse(marginal.quantiles, values)
            if marginal.missing_dim is not None:
                numbers[u[:, marginal.missing_dim] < marginal.missing_rate] = np.nan
            out[marginal.column] = pd.Series(numbers)
        return pd.DataFrame(out)

    # ------------------------------------------------------------------ state
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays: dict[str, np.ndarray] = {"correlation": self.correlation_}
        specs = []
        for i, m in enumerate(self.marginals_):
            specs.append(
                {
                    "column": m.column,
                    "discrete": m.discrete,
                    "value_dim": m.value_dim,
                    "missing_dim": m.missing_dim,
                    "missing_rate": m.missing_rate,
                }
            )
            if m.discrete:
                arrays[f"order_{i}"] = m.order
                arrays[f"cumulative_{i}"] = m.cumulative
            else:
                arrays[f"quantiles_{i}"] = m.quantiles
        state = {"marginals": specs, "latent_names": self.latent_names_}
        if self.privacy_spent_ is not None:
            state["privacy"] = self.privacy_spent_.to_dict()
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        privacy = state.get("privacy")
        self.privacy_spent_ = None if privacy is None else PrivacyLedger.from_dict(privacy)
        self.correlation_ = arrays["correlation"]
        self.latent_names_ = list(state["latent_names"])
        self.marginals_ = []
        for i, spec in enumerate(state["marginals"]):
            self.marginals_.append(
                _Marginal(
                    column=spec["column"],
                    discrete=spec["discrete"],
                    value_dim=spec["value_dim"],
                    missing_dim=spec["missing_dim"],
                    missing_rate=spec["missing_rate"],
                    order=arrays.get(f"order_{i}"),
                    cumulative=arrays.get(f"cumulative_{i}"),
                    quantiles=arrays.get(f"quantiles_{i}"),
                )
            )


# ---------------------------------------------------------------------- marginals
def _fit_discrete(
    column: str, codes: np.ndarray, dim: int, rng: np.random.Generator
) -> tuple[_Marginal, np.ndarray]:
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
    marginal = _Marginal(
        column=column, discrete=True, value_dim=dim, order=values, cumulative=cumulative
    )
    return marginal, _ndtri(u)


def _quantile_grid(values: np.ndarray, n_quantiles: int) -> np.ndarray:
    if len(values) == 0:
        return np.zeros(2)
    levels = np.linspace(0.0, 1.0, min(n_quantiles, max(len(values), 2)))
    return np.quantile(values, levels)


def _quantile_inverse(quantiles: np.ndarray, u: np.ndarray) -> np.ndarray:
    levels = np.linspace(0.0, 1.0, len(quantiles))
    return np.interp(u, levels, quantiles)


def _quantile_cdf(quantiles: np.ndarray, value: float) -> np.ndarray:
    """Cumulative probability of ``value`` under the quantile function (middle of a flat step)."""
    levels = np.linspace(0.0, 1.0, len(quantiles))
    low = np.searchsorted(quantiles, value, side="left")
    high = np.searchsorted(quantiles, value, side="right")
    if high > low:  # the value is a knot (or a run of equal knots): take the middle level
        return np.array(levels[low:high].mean())
    return np.array(np.interp(value, quantiles, levels))


def _normal_scores(values: np.ndarray) -> np.ndarray:
    """Normal scores of the present values (average ranks for ties); NaN stays NaN."""
    out = np.full(len(values), np.nan)
    present = ~np.isnan(values)
    if present.any():
        ranks = stats.rankdata(values[present])
        out[present] = _ndtri(ranks / (present.sum() + 1))
    return out


def _indicator_scores(missing: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rate = missing.mean()
    u = np.where(missing, rng.uniform(0, rate, len(missing)), rng.uniform(rate, 1, len(missing)))
    return _ndtri(u)


# ---------------------------------------------------------------------- private marginals
def _private_discrete(
    column: str,
    values: pd.Series,
    domain: ColumnDomain,
    dim: int,
    scale: float,
    rng: np.random.Generator,
) -> tuple[_Marginal, np.ndarray, float]:
    """A discrete marginal from a noisy histogram, the rows' latent scores, the noisy total.

    Values of categories that were not released count as missing (such a column always has
    the missing state).
    """
    k = len(domain.categories)
    codes = to_codes(values, domain.categories)
    cells = np.where(codes < 0, k, codes)
    noisy = noisy_counts(cells, k + 1, epsilon=1.0 / scale, rng=rng)[: k + int(domain.missing)]
    proportions = to_proportions(noisy, scale)
    labels = np.append(np.arange(k), -1)[: len(proportions)]
    order = np.argsort(-proportions, kind="stable")
    cumulative = np.cumsum(proportions[order])
    cumulative[-1] = 1.0
    low = np.concatenate([[0.0], cumulative[:-1]])
    slot = np.empty(k + 1, dtype=np.int64)
    slot[np.where(labels[order] < 0, k, labels[order])] = np.arange(len(order))
    row_slot = slot[cells]
    u = low[row_slot] + rng.uniform(size=len(codes)) * (cumulative[row_slot] - low[row_slot])
    marginal = _Marginal(
        column=column, discrete=True, value_dim=dim, order=labels[order], cumulative=cumulative
    )
    return marginal, _ndtri(u), float(noisy.sum())


def _private_numeric(
    column: str,
    values: np.ndarray,
    domain: ColumnDomain,
    integer: bool,
    log: bool,
    dim: int,
    n_quantiles: int,
    scale: float,
    rng: np.random.Generator,
) -> tuple[_Marginal, np.ndarray, np.ndarray | None, float]:
    """A numeric marginal from a noisy histogram over the public range, the rows' latent
    scores (value, and missingness when the column may be missing), the noisy total."""
    edges = grid_edges(*domain.bounds, _DP_CELLS, integer=integer, log=log)
    n_cells = len(edges) - 1
    missing = np.isnan(values)
    inside = np.clip(values, edges[0], edges[-1])
    cells = np.where(missing, n_cells, np.clip(np.searchsorted(edges, inside) - 1, 0, n_cells - 1))
    noisy = noisy_counts(cells, n_cells + 1, epsilon=1.0 / scale, rng=rng)
    noisy = noisy[: n_cells + int(domain.missing)]
    proportions = to_proportions(noisy, scale)
    missing_rate = float(proportions[n_cells]) if domain.missing else 0.0
    cdf = np.concatenate([[0.0], np.cumsum(proportions[:n_cells])])
    cdf /= cdf[-1]
    quantiles = np.interp(np.linspace(0.0, 1.0, n_quantiles), cdf, edges)
    value_z = np.zeros(len(values))
    value_z[~missing] = _ndtri(np.interp(inside[~missing], edges, cdf))
    marginal = _Marginal(
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
        missing_z = _ndtri(u)
    return marginal, value_z, missing_z, float(noisy.sum())


def _private_correlation(
    z: np.ndarray,
    present_rates: np.ndarray,
    n_noisy: float,
    *,
    epsilon: float,
    delta: float,
    ledger: PrivacyLedger,
    rng: np.random.Generator,
) -> np.ndarray:
    """The latent correlation released by the Gaussian mechanism (see :class:`GaussianCopula`)."""
    k = z.shape[1]
    bound = float(stats.chi2.ppf(_ROW_NORM_QUANTILE, k))  # C^2
    norms = np.sqrt(np.sum(z**2, axis=1, keepdims=True))
    clipped = z * np.minimum(1.0, np.sqrt(bound) / np.maximum(norms, _EPS))
    sigma = gaussian_sigma(bound, epsilon, delta)
    ledger.charge("correlation", "gaussian", epsilon, delta, sensitivity=bound, sigma=sigma)
    upper = np.triu_indices(k)
    noisy = (clipped.T @ clipped)[upper] + rng.normal(0.0, sigma, size=len(upper[0]))
    products = np.zeros((k, k))
    products[upper] = noisy
    products = products + np.triu(products, 1).T
    # Scores of missing values are 0: a pair's sum runs over the rows where both are present.
    # Missingness taken as independent of the other column, that is n times both present rates.
    norm = n_noisy * np.sqrt(np.outer(present_rates, present_rates))
    corr = products / norm
    noise_variance = (sigma / norm) ** 2
    corr *= _CORRELATION_PRIOR_VARIANCE / (_CORRELATION_PRIOR_VARIANCE + noise_variance)
    corr = np.clip(corr, -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    return _nearest_correlation(corr)


# ---------------------------------------------------------------------- correlation
def _correlation(z: np.ndarray) -> np.ndarray:
    d = z.shape[1]
    if d == 0:
        return np.empty((0, 0))
    if not np.isnan(z).any():
        corr = np.corrcoef(z, rowvar=False) if d > 1 else np.ones((1, 1))
    else:  # pairwise-complete, since missing values have no latent score
        corr = pd.DataFrame(z).corr(min_periods=3).to_numpy()
    corr = np.nan_to_num(np.atleast_2d(corr), nan=0.0)
    np.fill_diagonal(corr, 1.0)
    return corr


def _nearest_correlation(corr: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """Clip eigenvalues so the matrix is positive definite, then rescale to a unit diagonal."""
    if corr.size == 0:
        return corr
    vals, vecs = np.linalg.eigh((corr + corr.T) / 2)
    fixed = (vecs * np.maximum(vals, floor)) @ vecs.T
    scale = np.sqrt(np.diag(fixed))
    fixed = fixed / np.outer(scale, scale)
    np.fill_diagonal(fixed, 1.0)
    return fixed


def _condition_normal(
    sigma: np.ndarray, given: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the other dimensions of N(0, sigma) given fixed ``values``."""
    d = len(sigma)
    rest = np.setdiff1d(np.arange(d), given)
    if len(given) == 0:
        return np.zeros(d), sigma
    s_rg = sigma[np.ix_(rest, given)]
    solve = np.linalg.solve(sigma[np.ix_(given, given)], np.column_stack([values, s_rg.T]))
    mean = s_rg @ solve[:, 0]
    cov = sigma[np.ix_(rest, rest)] - s_rg @ solve[:, 1:]
    return mean, (cov + cov.T) / 2


def _condition_normal_rows(
    sigma: np.ndarray, given: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise conditional means (n x rest) and the shared covariance, given ``values`` (n x g)."""
    rest = np.setdiff1d(np.arange(len(sigma)), given)
    s_rg = sigma[np.ix_(rest, given)]
    weights = np.linalg.solve(sigma[np.ix_(given, given)], s_rg.T)  # g x rest
    cov = sigma[np.ix_(rest, rest)] - s_rg @ weights
    return values @ weights, (cov + cov.T) / 2


def _truncated_normal(
    mean: np.ndarray,
    cov: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    max_draws: int = 2_000_000,
    gibbs_sweeps: int = 100,
) -> np.ndarray:
    """``n`` draws of N(mean, cov) restricted to the box [low, high).

    Rejection first (exact; the box has few dimensions, so a draw is cheap), bounded by
    ``max_draws``; what is still missing comes from a Gibbs sampler of the truncated normal.
    """
    k = len(mean)
    kept: list[np.ndarray] = []
    found = drawn = 0
    while found < n and drawn < max_draws:
        size = min(max_draws - drawn, max(10_000, 4 * (n - found)))
        draws = rng.multivariate_normal(mean, cov, size=size, method="cholesky")
        drawn += size
        inside = np.all((draws >= low) & (draws < high), axis=1)
        kept.append(draws[inside])
        found += int(inside.sum())
    accepted = np.concatenate(kept)[:n] if kept else np.empty((0, k))
    if found >= n:
        return accepted
    warnings.warn(
        f"the conditions hold for {found / drawn:.5%} of the generator's rows; the remaining "
        f"{n - found} rows come from Gibbs sampling ({gibbs_sweeps} sweeps)",
        ConditionWarning,
        stacklevel=5,
    )
    return np.vstack([accepted, _gibbs_box(mean, cov, low, high, n - found, rng, gibbs_sweeps)])


def _gibbs_box(mean, cov, low, high, n, rng, sweeps) -> np.ndarray:
    precision = np.linalg.inv(cov)
    start = np.where(np.isfinite(low) & np.isfinite(high), (low + high) / 2, np.nan)
    start = np.where(np.isnan(start), np.where(np.isfinite(low), low + 0.5, high - 0.5), start)
    x = np.tile(start, (n, 1))
    for _ in range(sweeps):
        for i in range(len(mean)):
            others = np.arange(len(mean)) != i
            sd = 1.0 / np.sqrt(precision[i, i])
            centre = (
                mean[i] - (x[:, others] - mean[others]) @ precision[i, others] / precision[i, i]
            )
            a, b = (low[i] - centre) / sd, (high[i] - centre) / sd
            x[:, i] = stats.truncnorm.rvs(a, b, loc=centre, scale=sd, random_state=rng)
    if not np.all((x >= low) & (x <= high)):
        raise ConditionError("could not draw rows inside the conditions' region")
    return x
