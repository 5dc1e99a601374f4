"""PrivBayes and the private Gaussian copula: accounting, budget cap, persistence, and behaviour
at the two ends of the epsilon range."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import fedsynth
from fedsynth.core.privacy import PrivacyBudgetError, PrivacyConfigError
from fedsynth.core.privacy.mechanisms import gaussian_sigma
from tests.tabular.generators.conftest import public_metadata

DELTA = 1e-5


@pytest.fixture
def table(clinical):
    return clinical.drop(columns=["patient_id"])


def test_privbayes_ledger_is_the_documented_split(table):
    epsilon = 20.0
    gen = fedsynth.make("bayesian_network", dp={"epsilon": epsilon, "delta": DELTA})
    gen.fit(table, metadata=public_metadata(table))
    spends = {s.what: s for s in gen.privacy_spent_.spends}
    assert list(spends) == ["row count", "structure", "conditional tables"]
    count = 0.01 * epsilon
    assert spends["row count"].epsilon == pytest.approx(count)
    assert spends["structure"].epsilon == pytest.approx(0.3 * (epsilon - count))
    assert spends["structure"].details["selections"] == table.shape[1] - 1
    tables = 0.7 * (epsilon - count)
    assert spends["conditional tables"].epsilon == pytest.approx(tables)
    assert spends["conditional tables"].details["noise_scale"] == pytest.approx(
        table.shape[1] / tables
    )
    assert gen.privacy_spent_.epsilon == pytest.approx(epsilon)
    assert gen.privacy_spent_.delta == 0  # every domain declared: Laplace only, pure DP


def test_privbayes_without_useful_parents_spends_all_on_the_tables(table):
    gen = fedsynth.make("bayesian_network", dp={"epsilon": 0.05, "delta": DELTA})
    gen.fit(table, metadata=public_metadata(table))
    assert [s.what for s in gen.privacy_spent_.spends] == ["row count", "conditional tables"]
    assert gen.privacy_spent_.epsilon == pytest.approx(0.05)
    assert not any(gen.parents_.values())


def test_released_domain_costs_its_share_and_replaces_data_facts(table):
    epsilon, share = 60.0, 0.1
    gen = fedsynth.make("bayesian_network", dp={"epsilon": epsilon, "delta": DELTA}, seed=1)
    gen.fit(table.assign(stage=["rare", *["I"] * 200, *["II"] * 199]))
    ledger = gen.privacy_spent_
    domain = [s for s in ledger.spends if s.what.startswith("domain of")]
    private = ["age", "sex", "hb", "os_months", "site", "stage"]  # 0/1 flags are public
    assert [s.what.split("'")[1] for s in domain] == private
    assert sum(s.epsilon for s in domain) == pytest.approx(share * epsilon)
    assert sum(s.delta for s in domain) == pytest.approx(share * DELTA)
    assert (ledger.epsilon, ledger.delta) == pytest.approx((epsilon, share * DELTA))
    # The fitted metadata (saved with the model, used to clip) holds released facts only.
    assert gen.metadata_.columns["stage"].categories == ["I", "II"]
    low, high = gen.metadata_.columns["hb"].bounds
    # Released bounds lie on the public grid of quarter octaves, not at the data's extremes.
    assert all((4 * math.log2(abs(b))).is_integer() for b in (low, high) if b)
    assert set(gen.sample(300)["stage"].dropna()) <= {"I", "II"}


def test_copula_ledger_is_the_documented_split(table):
    epsilon = 4.0
    gen = fedsynth.make("gaussian_copula", dp={"epsilon": epsilon, "delta": DELTA})
    gen.fit(table, metadata=public_metadata(table))
    marginals, correlation = gen.privacy_spent_.spends
    assert (marginals.what, marginals.mechanism) == ("marginals", "laplace")
    assert marginals.epsilon == pytest.approx(epsilon / 2)
    assert marginals.details["noise_scale"] == pytest.approx(table.shape[1] / (epsilon / 2))
    assert (correlation.what, correlation.mechanism) == ("correlation", "gaussian")
    assert (correlation.epsilon, correlation.delta) == pytest.approx((epsilon / 2, DELTA))
    bound = stats.chi2.ppf(0.99, len(gen.latent_names_))
    assert correlation.details["sensitivity"] == pytest.approx(bound)
    assert correlation.details["sigma"] == pytest.approx(gaussian_sigma(bound, epsilon / 2, DELTA))
    assert (gen.privacy_spent_.epsilon, gen.privacy_spent_.delta) == pytest.approx((4.0, DELTA))


@pytest.mark.parametrize("name", ["bayesian_network", "gaussian_copula"])
def test_budget_cap_refuses_the_fit_with_a_clear_message(name, table):
    gen = fedsynth.make(name, dp={"epsilon": 2.0, "delta": DELTA, "max_epsilon": 1.0})
    with pytest.raises(PrivacyBudgetError, match=r"refused: .* above the budget cap max_epsilon=1"):
        gen.fit(table, metadata=public_metadata(table))
    assert not gen.is_fitted


@pytest.mark.parametrize("name", ["bayesian_network", "gaussian_copula"])
def test_invalid_dp_setting_fails_at_fit(name, table):
    gen = fedsynth.make(name, dp={"epsilon": 1.0})
    with pytest.raises(PrivacyConfigError, match="delta is required"):
        gen.fit(table)


@pytest.mark.parametrize("name", ["bayesian_network", "gaussian_copula"])
def test_save_and_load_keep_the_accounting(name, table, tmp_path):
    dp = {"epsilon": 3.0, "delta": DELTA, "max_epsilon": 5.0}
    gen = fedsynth.make(name, dp=dp).fit(table, metadata=public_metadata(table))
    gen.save(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "model.json").read_text())
    assert saved["params"]["dp"] == dp
    assert saved["state"]["privacy"]["epsilon"] == pytest.approx(3.0)
    loaded = fedsynth.load(tmp_path / "model")
    assert loaded.privacy_spent_.spends == gen.privacy_spent_.spends
    assert loaded.privacy_spent_.max_epsilon == 5.0
    pd.testing.assert_frame_equal(loaded.sample(200, seed=4), gen.sample(200, seed=4))


@pytest.mark.parametrize("name", ["bayesian_network", "gaussian_copula"])
def test_without_dp_nothing_is_accounted(name, table, tmp_path):
    gen = fedsynth.make(name).fit(table)
    assert gen.privacy_spent_ is None and gen.get_params()["dp"] is None
    gen.save(tmp_path / "model")
    assert fedsynth.load(tmp_path / "model").privacy_spent_ is None


def total_variation_to_uniform(values: pd.Series) -> float:
    shares = values.value_counts(normalize=True, dropna=False)
    return 0.5 * np.abs(shares.to_numpy() - 1 / len(shares)).sum()


@pytest.mark.parametrize("name", ["bayesian_network", "gaussian_copula"])
def test_tiny_epsilon_gives_near_uniform_marginals(name, table):
    metadata = public_metadata(table)
    shares = []
    # A share spreads by about 0.12 from seed to seed at this epsilon: over 30 seeds the mean
    # is within 0.1 of uniform by more than four of its standard deviations.
    for seed in range(30):
        gen = fedsynth.make(name, dp={"epsilon": 1e-3, "delta": DELTA}, seed=seed)
        out = gen.fit(table, metadata=metadata).sample(600, seed=seed)
        # TP53 is 0/1 (no missing state), sex is F/M plus a missing state (object dtype).
        shares.append([(out["TP53"] == 1).mean(), (out["sex"] == "F").mean()])
    mean = np.mean(shares, axis=0)
    assert table["TP53"].mean() < 0.2 and mean[0] == pytest.approx(0.5, abs=0.1)
    assert mean[1] == pytest.approx(1 / 3, abs=0.1)


def test_tiny_epsilon_copula_has_near_zero_correlations(table):
    gen = fedsynth.make("gaussian_copula", dp={"epsilon": 1e-3, "delta": DELTA})
    gen.fit(table, metadata=public_metadata(table))
    off_diagonal = gen.correlation_[~np.eye(len(gen.correlation_), dtype=bool)]
    assert np.abs(off_diagonal).max() < 0.05


def test_tiny_epsilon_output_barely_depends_on_the_data(table):
    metadata = public_metadata(table)
    flipped = table.assign(TP53=1 - table["TP53"], sex=table["sex"].map({"F": "M", "M": "F"}))
    outputs = [
        fedsynth.make("bayesian_network", dp={"epsilon": 1e-4, "delta": DELTA}, seed=5)
        .fit(data, metadata=metadata)
        .sample(2000, seed=6)
        for data in (table, flipped)
    ]
    for column in ("TP53", "sex", "site"):
        a, b = (o[column].value_counts(normalize=True, dropna=False) for o in outputs)
        assert np.abs(a.sub(b, fill_value=0)).max() < 0.05


def test_large_epsilon_privbayes_approaches_the_data(table):
    gen = fedsynth.make("bayesian_network", dp={"epsilon": 1e4, "delta": DELTA}, seed=2)
    out = gen.fit(table, metadata=public_metadata(table)).sample(4000, seed=0)
    for column in ("sex", "TP53", "SF3B1", "site", "os_status"):
        real = table[column].value_counts(normalize=True)
        synthetic = out[column].value_counts(normalize=True).reindex(real.index, fill_value=0)
        assert np.abs(real - synthetic).max() < 0.04, column
    assert out["age"].mean() == pytest.approx(table["age"].mean(), abs=1.0)
    assert out["hb"].isna().mean() == pytest.approx(table["hb"].isna().mean(), abs=0.02)
    # The strongest dependency of the data (TP53 raises with severity, which lowers hb) is kept.
    assert gen.parents_["TP53"] or any("TP53" in p for p in gen.parents_.values())


def test_large_epsilon_copula_approaches_the_non_private_one(table):
    metadata = public_metadata(table)
    private = fedsynth.make("gaussian_copula", dp={"epsilon": 1e5, "delta": DELTA})
    private.fit(table, metadata=metadata)
    plain = fedsynth.make("gaussian_copula").fit(table)
    # The numeric columns' correlations (age-hb -0.4, age-time -0.26, hb-time 0.19); those of
    # categories rest on random points inside their slices, noise of 1/sqrt(n) in both models.
    names = ["age", "hb", "os_months"]
    ours = [private.latent_names_.index(n) for n in names]
    theirs = [plain.latent_names_.index(n) for n in names]
    difference = (
        private.correlation_[np.ix_(ours, ours)] - plain.correlation_[np.ix_(theirs, theirs)]
    )
    assert np.abs(difference).max() < 0.05
    out, real = private.sample(4000, seed=1), table
    assert out["age"].mean() == pytest.approx(real["age"].mean(), abs=1.0)
    assert (out["sex"] == "F").mean() == pytest.approx((real["sex"] == "F").mean(), abs=0.03)


@pytest.mark.parametrize("name", ["bayesian_network", "gaussian_copula"])
def test_tiny_epsilon_never_emits_missing_survival_values(name, table):
    # Survival columns hold no missing values by the metadata's rule (public), so no noise may
    # give them a missing state, even where their float dtype could hold one.
    table = table.assign(os_months=table["os_months"].astype(float))
    for seed in range(5):
        gen = fedsynth.make(name, dp={"epsilon": 1e-3, "delta": DELTA}, seed=seed)
        out = gen.fit(table, metadata=public_metadata(table)).sample(500, seed=seed)
        assert out[["os_months", "os_status"]].notna().all().all()
        assert (out["os_months"] > 0).all()
