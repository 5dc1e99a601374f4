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

from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from fedsynth.core.privacy.accounting import PrivacyLedger
from fedsynth.core.privacy.config import DPConfig
from fedsynth.core.registry import register
from fedsynth.exceptions import InvalidDataError
from fedsynth.tabular.generators._copula_marginals import (
    MAX_QUANTILES,
    Marginal,
    discrete_marginal,
    indicator_scores,
    ndtri,
    normal_scores,
    private_discrete,
    private_numeric,
    quantile_cdf,
    quantile_grid,
    quantile_inverse,
)
from fedsynth.tabular.generators._copula_normal import (
    condition_normal,
    condition_normal_rows,
    correlation,
    nearest_correlation,
    private_correlation,
    truncated_normal,
)
from fedsynth.tabular.generators._discrete import from_codes, numeric_values
from fedsynth.tabular.generators.statistical import StatisticalGenerator
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.privacy.dp_statistics import ColumnDomain, category_codes

#: Memory the correlation matrix's working copies may take at fit time (read at each call, so
#: it can be raised: ``fedsynth.tabular.generators.gaussian_copula.CORRELATION_MEMORY_LIMIT``).
CORRELATION_MEMORY_LIMIT = 2 * 1024**3
#: Matrices of the latent dimension squared alive at once while fitting: the correlation, the
#: eigenvectors, their product and its rescaled copy (``nearest_correlation``), and one spare.
_WORKING_COPIES = 5


def check_width(data: pd.DataFrame, metadata: Metadata) -> None:
    """Refuse a table whose correlation matrix would not fit in memory, before any work.

    A copula holds one correlation over every latent dimension (a column, and one more for a
    numeric column with missing values): memory grows with their square (an expression array of
    15,000 genes needs about 1.8 GB per copy and an eigen-decomposition of hours).

    Raises
    ------
    InvalidDataError
        Naming the number of columns and latent dimensions, the memory needed and the limit.
    """
    dims = sum(
        1 + int(not metadata.columns[c].is_discrete and bool(data[c].isna().any()))
        for c in data.columns
    )
    need = dims * dims * 8 * _WORKING_COPIES
    if need > CORRELATION_MEMORY_LIMIT:
        raise InvalidDataError(
            [
                f"gaussian_copula: {data.shape[1]} columns give {dims} latent dimensions; their "
                f"correlation needs about {need / 1024**3:.1f} GiB while fitting, above the "
                f"limit of {CORRELATION_MEMORY_LIMIT / 1024**3:.1f} GiB "
                "(CORRELATION_MEMORY_LIMIT in fedsynth.tabular.generators.gaussian_copula). "
                "Select the columns to synthesise (e.g. the genes of interest), or raise the "
                "limit on a machine with the memory."
            ]
        )


@register("gaussian_copula")
class GaussianCopula(StatisticalGenerator):
    """Gaussian copula with empirical marginals.

    With ``dp=`` the copula is (epsilon, delta)-differentially private for add/remove
    neighbours; each part of the budget is recorded in ``privacy_spent_``:

    1. the domain: when some numeric bounds or category lists are not declared public (see
       :func:`fedsynth.tabular.privacy.declare_public`), ``domain_fraction`` of epsilon (and
       of delta for category lists) releases them
       (:mod:`fedsynth.tabular.privacy.dp_statistics`); nothing otherwise;
    2. half of the rest of epsilon: the marginals, one histogram per column (the categories, or
       64 cells of equal width over the bounds, in ``log1p`` for durations, plus a missing
       cell where the dtype can hold one), with Laplace noise of scale ``m / epsilon_m`` for
       ``m`` columns (each row adds 1 to one cell of each). Negative counts become 0 and each
       cell gets a pseudo-count near the noise scale when noise drowns the histogram (which
       is then uniform) and near 0 when the counts stand far above it (``denoised_counts``);
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

    privacy_parts = "domain, marginals, correlation"

    def __init__(
        self,
        *,
        n_quantiles: int = MAX_QUANTILES,
        dp: DPConfig | None = None,
        seed: int | None = 0,
    ):
        self.n_quantiles = n_quantiles
        self.dp = dp
        self.seed = seed

    # ------------------------------------------------------------------ fit
    def _param_problems(self) -> list[str]:
        if not isinstance(self.n_quantiles, int) or self.n_quantiles < 2:
            return [f"n_quantiles must be an integer >= 2, got {self.n_quantiles!r}"]
        return []

    def _fit(self, data: pd.DataFrame, metadata: Metadata, rng: np.random.Generator) -> None:
        check_width(data, metadata)
        n = len(data)
        marginals: list[Marginal] = []
        latent_names: list[str] = []
        columns: list[np.ndarray] = []
        for column in data.columns:
            col = metadata.columns[column]
            if col.is_discrete:
                codes = category_codes(data[column], col.categories)
                marginal, z = discrete_marginal(column, codes, len(latent_names), rng)
                marginals.append(marginal)
                latent_names.append(column)
                columns.append(z)
                continue
            values = data[column].to_numpy(dtype="float64")
            missing = np.isnan(values)
            marginal = Marginal(
                column=column,
                discrete=False,
                value_dim=len(latent_names),
                quantiles=quantile_grid(values[~missing], self.n_quantiles),
                missing_rate=float(missing.mean()),
            )
            latent_names.append(column)
            columns.append(normal_scores(values))
            if missing.any():
                marginal.missing_dim = len(latent_names)
                latent_names.append(f"{column}:missing")
                columns.append(indicator_scores(missing, rng))
            marginals.append(marginal)
        z = np.column_stack(columns) if columns else np.empty((n, 0))
        self.correlation_ = nearest_correlation(correlation(z))
        self.marginals_ = marginals
        self.latent_names_ = latent_names

    def _fit_released(
        self,
        data: pd.DataFrame,
        metadata: Metadata,
        domains: dict[str, ColumnDomain],
        epsilon: float,
        delta: float,
        ledger: PrivacyLedger,
        rng: np.random.Generator,
    ) -> None:
        """The copula under DP: the budget spent as the class docstring lists."""
        check_width(data, metadata)
        epsilon_marginals = epsilon / 2
        scale = data.shape[1] / epsilon_marginals
        ledger.charge(
            "marginals", "laplace", epsilon_marginals, columns=data.shape[1], noise_scale=scale
        )
        marginals: list[Marginal] = []
        latent_names: list[str] = []
        columns: list[np.ndarray] = []
        present_rates: list[float] = []
        totals: list[float] = []
        for name in data.columns:
            col, domain = metadata.columns[name], domains[name]
            if col.is_discrete:
                marginal, z, total = private_discrete(
                    name, data[name], domain, len(latent_names), scale, rng
                )
                marginals.append(marginal)
                latent_names.append(name)
                columns.append(z)
                present_rates.append(1.0)
                totals.append(total)
                continue
            marginal, value_z, missing_z, total = private_numeric(
                name,
                numeric_values(data[name]),
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
        self.correlation_ = private_correlation(
            z,
            np.array(present_rates),
            n_noisy,
            epsilon=epsilon / 2,
            delta=delta,
            ledger=ledger,
            rng=rng,
        )
        self.marginals_ = marginals
        self.latent_names_ = latent_names

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
                code = int(category_codes(pd.Series([value]), col.categories)[0])
                boxes[marginal.value_dim] = marginal.category_interval(code)
                continue
            fixed[marginal.value_dim] = float(ndtri(quantile_cdf(marginal.quantiles, value)))
            if marginal.missing_dim is not None:  # a given value is not missing
                boxes[marginal.missing_dim] = (
                    float(ndtri(np.array(marginal.missing_rate))),
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
        mean, cov = condition_normal(sigma, fixed_idx, np.array([fixed[i] for i in fixed_idx]))
        z = np.empty((n, d))
        z[:, fixed_idx] = [fixed[i] for i in fixed_idx]
        if len(box_idx):
            pos = np.searchsorted(free_given_fixed, box_idx)
            low = np.array([boxes[i][0] for i in box_idx])
            high = np.array([boxes[i][1] for i in box_idx])
            z[:, box_idx] = truncated_normal(mean[pos], cov[np.ix_(pos, pos)], low, high, n, rng)
        given_idx = np.concatenate([fixed_idx, box_idx]).astype(int)
        rest = np.setdiff1d(np.arange(d), given_idx)
        if len(rest):
            rest_mean, rest_cov = condition_normal_rows(sigma, given_idx, z[:, given_idx])
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
            numbers = quantile_inverse(marginal.quantiles, values)
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
        return {"marginals": specs, "latent_names": self.latent_names_}, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.correlation_ = arrays["correlation"]
        self.latent_names_ = list(state["latent_names"])
        k = len(self.latent_names_)
        if self.correlation_.shape != (k, k):  # checked here: sampling would fail far later
            raise ValueError(
                f"array 'correlation' has shape {self.correlation_.shape}, not ({k}, {k})"
            )
        self.marginals_ = []
        for i, spec in enumerate(state["marginals"]):
            self.marginals_.append(
                Marginal(
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
            order, cumulative = arrays.get(f"order_{i}"), arrays.get(f"cumulative_{i}")
            if order is not None and (cumulative is None or len(order) != len(cumulative)):
                raise ValueError(f"arrays 'order_{i}' and 'cumulative_{i}' differ in length")
