"""Every generator fits under DP on the built-in cohort, small or full, with nothing declared."""

import warnings

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.exceptions import DataWarning

DELTA = 1e-5
STATISTICAL = ("gaussian_copula", "bayesian_network")
NEURAL = ("ctgan", "tvae", "vae_bgm")
# Neural generators as small as a test allows: one epoch of pretraining and of DP-SGD.
TINY = {"epochs": 1, "batch_size": 200}


@pytest.fixture(scope="module")
def cohort():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fedsynth.datasets.mds_cohort()


def _rows(cohort, n):
    return cohort if n == len(cohort) else cohort.sample(n, random_state=0).reset_index(drop=True)


def _fit(name, data, epsilon):
    dp = {"epsilon": epsilon, "delta": DELTA}
    params = {}
    if name in NEURAL:
        dp["pretrain_epochs"] = 1
        params = TINY
    gen = fedsynth.make(name, dp=dp, seed=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the identifier column's warning
        return gen.fit(data)


def _check_ledger(gen, epsilon, numeric_columns):
    ledger = gen.privacy_spent_
    domain = [s for s in ledger.spends if s.what.startswith("domain of")]
    # Only the numeric columns' bounds are private: the category columns have a pandas
    # category dtype (declared categories), the flags and the event a public 0/1.
    assert sorted(s.what for s in domain) == sorted(
        f"domain of {c!r} (bounds)" for c in numeric_columns
    )
    assert sum(s.epsilon for s in domain) == pytest.approx(0.1 * epsilon)
    assert all(s.delta == 0.0 for s in domain)
    assert ledger.delta <= DELTA * (1 + 1e-9)
    return ledger


@pytest.mark.parametrize("n", [800, 4427])
@pytest.mark.parametrize("epsilon", [0.5, 1.0, 5.0])
@pytest.mark.parametrize("name", STATISTICAL)
def test_statistical_generators_fit_the_cohort_under_dp(name, epsilon, n, cohort):
    data = _rows(cohort, n)
    gen = _fit(name, data, epsilon)
    numeric = ["age", "hb", "plt", "anc", "bm_blasts", "ipssm_score", "os_months"]
    ledger = _check_ledger(gen, epsilon, numeric)
    assert ledger.epsilon == pytest.approx(epsilon, rel=1e-9)
    synthetic = gen.sample(300, seed=0)
    assert list(synthetic.columns) == list(data.columns.drop("patient_id"))
    assert set(synthetic["sex"].dropna()) <= {"F", "M"}
    assert (synthetic["os_months"] >= 0).all()


@pytest.mark.parametrize(
    ("name", "n", "epsilon"),
    [(name, 800, epsilon) for name in NEURAL for epsilon in (0.5, 1.0, 5.0)]
    + [("vae_bgm", 4427, 1.0)],
)
def test_neural_generators_fit_the_cohort_under_dp(name, n, epsilon, cohort):
    gen = _fit(name, _rows(cohort, n), epsilon)
    numeric = ["age", "hb", "plt", "anc", "bm_blasts", "ipssm_score", "os_months"]
    ledger = _check_ledger(gen, epsilon, numeric)
    # DP-SGD's noise is calibrated to at most its share: the total is within 1 % below.
    assert epsilon * 0.99 <= ledger.epsilon <= epsilon * (1 + 1e-9)
    synthetic = gen.sample(200, seed=0)
    assert len(synthetic) == 200 and np.isfinite(synthetic["age"].to_numpy(float)).all()


def test_category_lists_taken_from_a_category_dtype_are_named_in_a_warning():
    data = pd.DataFrame(
        {
            "stage": pd.Categorical(["I", "II", "III"] * 100),
            "grade": ["low", "high", "high"] * 100,
            "age": np.arange(300.0) % 90,
        }
    )
    gen = fedsynth.make("gaussian_copula", dp={"epsilon": 1, "delta": DELTA}, seed=0)
    with pytest.warns(DataWarning, match=r"\['stage'\].*declare_public") as caught:
        gen.fit(data)
    # The text column's list is released with DP, so only the dtype's list is named.
    assert all("grade" not in str(w.message) for w in caught if "dtype" in str(w.message))
