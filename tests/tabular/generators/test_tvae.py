"""TVAE on the simulated MDS cohort after a short training: marginals, mutations, exclusivity of
the splicing factors, the survival curve, missing values, conditions, persistence.

The helpers (in ``conftest.py``) are shared with ``test_vae_bgm.py``, which holds VAE-BGM to the
same tolerances.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import fedsynth
from fedsynth.exceptions import ConditionError, ConditionWarning
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
    return fedsynth.make("tvae", seed=0, **SHORT).fit(real, metadata=metadata)


@pytest.fixture(scope="module")
def synthetic(model):
    return model.sample(6000, seed=0)


def test_marginals_mutations_and_missing_values(cohort, synthetic):
    # TVAE draws its codes from N(0, I), where the training codes do not all lie, and its
    # discrete context then draws the IPSS-M risk group (six groups, a function of the score)
    # after the score's mode: TVD 0.064-0.070 over seeds 0 and 1 (0.041 without the context;
    # VAE-BGM, whose codes follow the training ones, meets 0.05).
    check_fidelity(*cohort, synthetic, category_tvd=0.08)


def test_splicing_factors_stay_mutually_exclusive(cohort, synthetic):
    real, _ = cohort
    assert co_occurrence(real, SPLICING_FACTORS) == 0
    independent = independent_co_occurrence(real, SPLICING_FACTORS)
    assert co_occurrence(synthetic, SPLICING_FACTORS) < EXCLUSIVITY * independent


def test_survival_curve(cohort, synthetic):
    check_survival_curve(*cohort, synthetic)


def test_latent_codes_come_from_the_standard_normal(model):
    z = model._latent(20_000, torch.Generator().manual_seed(0))
    assert z.shape == (20_000, model.latent_dim)
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02


def test_conditions_match_rejection_from_the_model(model):
    conditioned = model.sample(2000, conditions={"TP53": 1}, seed=1)
    assert (conditioned["TP53"] == 1).all() and len(conditioned) == 2000
    free = model.sample(20_000, seed=2)
    accepted = free[free["TP53"] == 1]
    # Likelihood weighting draws from the same conditional as rejection (within sampling error)
    for column in ["complex_karyotype", "SF3B1"]:
        assert abs(conditioned[column].mean() - accepted[column].mean()) < 0.06, column
    assert conditioned["complex_karyotype"].mean() > free["complex_karyotype"].mean() + 0.2


def test_numeric_and_survival_conditions(model):
    old = model.sample(300, conditions={"age": 85, "sex": "M"}, seed=3)
    assert (old["age"] == 85).all() and (old["sex"] == "M").all()
    dead = model.sample(1000, conditions={"os_status": 1}, seed=4)
    alive = model.sample(1000, conditions={"os_status": 0}, seed=4)
    assert dead["os_months"].median() < alive["os_months"].median()


def test_impossible_and_rare_conditions():
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {"dose": rng.choice([0.5, 1.5, 3.0], 300), "group": rng.choice(["a", "b"], 300)}
    )
    gen = fedsynth.make("tvae", epochs=5, seed=0).fit(table)
    with pytest.raises(ConditionError, match="never occurs in the training data"):
        gen.sample(5, conditions={"dose": 1.0})
    assert (gen.sample(20, conditions={"dose": 1.5})["dose"] == 1.5).all()


def test_concentrated_weights_are_measured_and_warned(model, monkeypatch):
    # A condition that one latent code per drawn pool satisfies: the effective sample size
    # falls to the number of pools, far below the rows asked for.
    def one_code_per_pool(raw: torch.Tensor, slots) -> torch.Tensor:
        weights = torch.full((len(raw),), -math.inf)
        weights[0] = 0.0
        return weights

    generator = torch.Generator().manual_seed(0)
    raw, drawn, ess = model._weighted_rows(200, [one_code_per_pool], {}, {"TP53": 1}, generator)
    assert raw.shape == (200, model.encoder_.output_dim_) and 1 <= ess <= 10
    # Resampled candidates repeat: their codes and their drawn discrete spans alike.
    assert len(torch.unique(torch.cat([raw, drawn[1]], 1), dim=0)) <= round(ess)
    # Such a pool makes sampling warn (the real conditions of the MDS cohort are not rare
    # enough under the model to concentrate its weights).
    measured = model._weighted_rows
    monkeypatch.setattr(
        model, "_weighted_rows", lambda rows, *a: (*measured(rows, *a)[:2], 0.05 * rows)
    )
    with pytest.warns(ConditionWarning, match="latent weights are concentrated"):
        out = model.sample(200, conditions={"SF3B1": 1, "SRSF2": 1}, seed=0)
    assert ((out["SF3B1"] == 1) & (out["SRSF2"] == 1)).all()


def test_missing_not_at_random_is_kept():
    table = nmar_table()
    gen = fedsynth.make("tvae", epochs=200, batch_size=200, seed=0).fit(table)
    check_missing_not_at_random(gen.sample(5000, seed=0))


def test_save_load_samples_identically(model, tmp_path):
    loaded = fedsynth.load(model.save(tmp_path / "model"))
    pd.testing.assert_frame_equal(loaded.sample(500, seed=5), model.sample(500, seed=5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pd.testing.assert_frame_equal(
            loaded.sample(100, conditions={"TP53": 1}, seed=5),
            model.sample(100, conditions={"TP53": 1}, seed=5),
        )
