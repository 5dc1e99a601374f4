"""The Gaussian copula's latent normal: the pairwise-complete correlation of its scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fedsynth.tabular.generators._copula_normal import correlation, pairwise_complete_correlation


def test_pairwise_complete_correlation_is_pandas_in_chunks():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5000, 5))
    z[:, 1] += z[:, 0]
    z[rng.random(z.shape) < 0.2] = np.nan
    z[:, 4] = np.nan
    z[:2, 4] = [0.5, 1.5]  # two rows: fewer than min_periods with every other column
    z[:, 3] = np.where(np.isnan(z[:, 3]), np.nan, 1.0)  # constant where present: no correlation
    expected = pd.DataFrame(z).corr(min_periods=3).to_numpy()
    for chunk in (333, 10_000):
        got = pairwise_complete_correlation(z, chunk=chunk)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got, expected, atol=1e-12, equal_nan=True)
    assert abs(got[0, 1] - 1 / np.sqrt(2)) < 0.03


def test_correlation_of_scores_with_missing_values_is_a_correlation_matrix():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(400, 3))
    z[rng.random(z.shape) < 0.3] = np.nan
    corr = correlation(z)
    assert np.isfinite(corr).all()
    np.testing.assert_array_equal(np.diag(corr), 1.0)
    np.testing.assert_allclose(corr, corr.T)
