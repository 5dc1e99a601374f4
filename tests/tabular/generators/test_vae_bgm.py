"""VAE-BGM on the simulated MDS cohort after a short training (the same tolerances as TVAE), its
latent mixture, and its persistence without pickle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import fedsynth
from fedsynth.tabular.datasets.mds import SPLICING_FACTORS
from tests.tabular.generators.conftest import (
    EXCLUSIVITY,
    SHORT,
    check_fidelity,
    check_missing_not_at_random,
    check_survival_curve,
    co_occurrence,
    independent_co_occurrence,
    mds,
    nmar_table,
)


@pytest.fixture(scope="module")
def cohort():
    return mds()


@pytest.fixture(scope="module")
def model(cohort):
    real, metadata = cohort
    return fedsynth.make("vae_bgm", seed=0, **SHORT).fit(real, metadata=metadata)


@pytest.fixture(scope="module")
def synthetic(model):
    return model.sample(6000, seed=0)


def test_marginals_mutations_and_missing_values(cohort, synthetic):
    check_fidelity(*cohort, synthetic)


def test_splicing_factors_stay_mutually_exclusive(cohort, synthetic):
    independent = independent_co_occurrence(cohort[0], SPLICING_FACTORS)
    assert co_occurrence(synthetic, SPLICING_FACTORS) < EXCLUSIVITY * independent


def test_survival_curve(cohort, synthetic):
    check_survival_curve(*cohort, synthetic)


def test_the_mixture_follows_the_training_codes(model, cohort):
    real, _ = cohort
    k = model.latent_dim
    assert model.mixture_weights_.shape == (k,) and np.isclose(model.mixture_weights_.sum(), 1)
    assert model.mixture_means_.shape == (k, k)
    assert model.mixture_covariances_.shape == (k, k, k)
    codes = model.encode_latent(real)
    # The sampled means spread like the training means, which N(0, I) does not match.
    drawn = model._latent(20_000, torch.Generator().manual_seed(0)).numpy()
    spread = np.sqrt(np.exp(model.latent_log_var_))
    np.testing.assert_allclose(drawn.mean(axis=0), codes.mean(axis=0), atol=0.05)
    np.testing.assert_allclose(
        drawn.std(axis=0), np.sqrt(codes.var(axis=0) + spread**2), rtol=0.1, atol=0.02
    )


def test_conditions(model):
    out = model.sample(500, conditions={"TP53": 1, "sex": "F"}, seed=1)
    assert (out["TP53"] == 1).all() and (out["sex"] == "F").all()
    free = model.sample(5000, seed=1)
    assert out["complex_karyotype"].mean() > free["complex_karyotype"].mean() + 0.2
    assert (model.sample(50, conditions={"age": 80}, seed=1)["age"] == 80).all()


def test_missing_not_at_random_is_kept():
    table = nmar_table()
    gen = fedsynth.make("vae_bgm", epochs=200, batch_size=200, seed=0).fit(table)
    check_missing_not_at_random(gen.sample(5000, seed=0))


def test_saved_without_pickle_and_samples_identically(model, tmp_path):
    path = model.save(tmp_path / "model")
    with np.load(path / "arrays.npz", allow_pickle=False) as arrays:
        np.testing.assert_array_equal(arrays["extra/means"], model.mixture_means_)
        np.testing.assert_array_equal(arrays["extra/covariances"], model.mixture_covariances_)
    loaded = fedsynth.load(path)
    pd.testing.assert_frame_equal(loaded.sample(500, seed=5), model.sample(500, seed=5))
    pd.testing.assert_frame_equal(
        loaded.sample(100, conditions={"TP53": 1}, seed=5),
        model.sample(100, conditions={"TP53": 1}, seed=5),
    )


def test_zero_epoch_warm_start_refits_the_mixture_only(cohort):
    real, metadata = cohort
    gen = fedsynth.make("vae_bgm", epochs=3, seed=0).fit(real.iloc[:500], metadata=metadata)
    weights = gen.get_weights()
    means = gen.mixture_means_.copy()
    gen.fit(real.iloc[500:1500], epochs=0, warm_start=True)
    for got, want in zip(gen.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)
    assert not np.allclose(gen.mixture_means_, means)


def test_mixture_of_a_large_table_is_fitted_on_a_subsample(monkeypatch):
    from fedsynth.tabular.generators import vae_bgm

    real, metadata = mds(n=600)
    monkeypatch.setattr(vae_bgm, "_MIXTURE_ROWS", 200)
    encoded = []
    posterior = vae_bgm.VAEBGM._posterior

    def spy(self, matrix):
        encoded.append(len(matrix))
        return posterior(self, matrix)

    monkeypatch.setattr(vae_bgm.VAEBGM, "_posterior", spy)
    gen = fedsynth.make("vae_bgm", epochs=2, hidden_dims=(16,), latent_dim=4, seed=0)
    gen.fit(real, metadata=metadata)
    assert encoded == [200]
    assert gen.mixture_weights_.sum() == pytest.approx(1.0)
    assert len(gen.sample(50)) == 50
