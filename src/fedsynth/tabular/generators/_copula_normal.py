"""The latent normal of the Gaussian copula: its correlation (from the rows, or released by the
Gaussian mechanism under DP), and the conditional and truncated normals that conditions need."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from fedsynth.core.privacy.accounting import PrivacyLedger
from fedsynth.core.privacy.mechanisms import gaussian_sigma
from fedsynth.exceptions import ConditionError, ConditionWarning
from fedsynth.tabular.generators._copula_marginals import EPS

# Under DP: the prior variance of a correlation that shrinks the noisy ones (a normal prior with
# standard deviation 0.3: most correlations between clinical variables are weak).
CORRELATION_PRIOR_VARIANCE = 0.09
# Quantile of the chi-square distribution at which a row's latent vector is clipped (norm), so
# that one row's contribution to the correlation is bounded without clipping typical rows.
ROW_NORM_QUANTILE = 0.99


def private_correlation(
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
    bound = float(stats.chi2.ppf(ROW_NORM_QUANTILE, k))  # C^2
    norms = np.sqrt(np.sum(z**2, axis=1, keepdims=True))
    clipped = z * np.minimum(1.0, np.sqrt(bound) / np.maximum(norms, EPS))
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
    corr *= CORRELATION_PRIOR_VARIANCE / (CORRELATION_PRIOR_VARIANCE + noise_variance)
    corr = np.clip(corr, -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    return nearest_correlation(corr)


def correlation(z: np.ndarray) -> np.ndarray:
    d = z.shape[1]
    if d == 0:
        return np.empty((0, 0))
    if not np.isnan(z).any():
        corr = np.corrcoef(z, rowvar=False) if d > 1 else np.ones((1, 1))
    else:  # pairwise-complete, since missing values have no latent score
        corr = pairwise_complete_correlation(z)
    corr = np.nan_to_num(np.atleast_2d(corr), nan=0.0)
    np.fill_diagonal(corr, 1.0)
    return corr


def pairwise_complete_correlation(
    z: np.ndarray, min_periods: int = 3, chunk: int = 65_536
) -> np.ndarray:
    """Pearson correlation of each pair of columns over the rows where both are present
    (pandas' ``DataFrame.corr(min_periods=3)``); NaN for pairs with fewer rows than that.

    Sums over chunks of rows, as matrix products: pandas loops over the pairs and rows in
    scalar code, 4 CPU s of a 100,000-row copula fit (and 40 of a 1,000,000-row one); chunks
    keep the masks and squares to a few MB whatever the rows. The one-pass sums are exact
    enough here: normal scores have mean about 0 and variance about 1.
    """
    d = z.shape[1]
    n, sx, sxx, sxy = (np.zeros((d, d)) for _ in range(4))
    for start in range(0, len(z), chunk):
        block = z[start : start + chunk]
        present = (~np.isnan(block)).astype(np.float64)
        values = np.where(present > 0, block, 0.0)
        n += present.T @ present
        sx += values.T @ present  # [i, j]: sum of column i where both i and j are present
        sxx += (values * values).T @ present
        sxy += values.T @ values
    with np.errstate(divide="ignore", invalid="ignore"):
        covariance = sxy - sx * sx.T / n
        spread = sxx - sx**2 / n
        # A column constant over a pair's rows has no correlation (pandas: NaN); its one-pass
        # spread is a rounding error, not 0.
        spread[spread <= 1e-10 * sxx] = np.nan
        corr = covariance / np.sqrt(spread * spread.T)
    corr[n < min_periods] = np.nan
    return np.clip(corr, -1.0, 1.0)


def nearest_correlation(corr: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """Clip eigenvalues so the matrix is positive definite, then rescale to a unit diagonal."""
    if corr.size == 0:
        return corr
    vals, vecs = np.linalg.eigh((corr + corr.T) / 2)
    fixed = (vecs * np.maximum(vals, floor)) @ vecs.T
    scale = np.sqrt(np.diag(fixed))
    fixed = fixed / np.outer(scale, scale)
    np.fill_diagonal(fixed, 1.0)
    return fixed


def condition_normal(
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


def condition_normal_rows(
    sigma: np.ndarray, given: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise conditional means (n x rest) and the shared covariance, given ``values`` (n x g)."""
    rest = np.setdiff1d(np.arange(len(sigma)), given)
    s_rg = sigma[np.ix_(rest, given)]
    weights = np.linalg.solve(sigma[np.ix_(given, given)], s_rg.T)  # g x rest
    cov = sigma[np.ix_(rest, rest)] - s_rg @ weights
    return values @ weights, (cov + cov.T) / 2


def truncated_normal(
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
    return np.vstack([accepted, gibbs_box(mean, cov, low, high, n - found, rng, gibbs_sweeps)])


def gibbs_box(mean, cov, low, high, n, rng, sweeps) -> np.ndarray:
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
