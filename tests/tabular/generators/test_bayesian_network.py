"""The bayesian_network generator: structure, marginals, conditioning, persistence."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fedsynth
from fedsynth.exceptions import ConditionError, ConditionWarning
from fedsynth.tabular.generators import _bayesian_conditioning
from fedsynth.tabular.generators._discretize import quantile_bins
from fedsynth.tabular.generators.bayesian_network import (
    learn_structure,
    penalised_mutual_information,
)

GENES = [
    "SF3B1", "TET2", "ASXL1", "SRSF2", "DNMT3A", "RUNX1", "U2AF1", "TP53", "ZRSR2", "STAG2",
    "EZH2", "BCOR", "IDH2", "CBL", "NRAS", "IDH1", "JAK2", "ETV6", "KRAS", "SETBP1",
    "PHF6", "WT1", "NPM1", "GATA2", "PTPN11", "CUX1", "KIT", "FLT3", "MPL", "BCORL1",
]  # fmt: skip
FREQUENCIES = np.r_[0.22, 0.25, 0.18, 0.12, 0.12, 0.09, 0.07, 0.09, 0.05, 0.06, np.full(20, 0.04)]


def simulated_cohort(n: int, seed: int) -> pd.DataFrame:
    """An MDS-like table of 46 columns (45 learned): clinical values with missing entries,
    30 mutation flags (a mutually exclusive spliceosome group, TET2 with SRSF2), survival, site."""
    rng = np.random.default_rng(seed)
    severity = rng.normal(size=n)
    genes = rng.random((n, len(GENES))) < FREQUENCIES
    genes[:, GENES.index("TET2")] |= genes[:, GENES.index("SRSF2")] & (rng.random(n) < 0.6)
    # The spliceosome genes are mutually exclusive: keep the first hit of each row.
    splice = [GENES.index(g) for g in ("SF3B1", "SRSF2", "U2AF1", "ZRSR2")]
    hits = genes[:, splice]
    first = np.argmax(hits, axis=1)
    genes[:, splice] = hits & (np.arange(len(splice)) == first[:, None])
    tp53 = genes[:, GENES.index("TP53")]
    blasts = np.where(rng.random(n) < 0.3, 0.0, np.round(rng.gamma(2, 3, n) * (1 + tp53), 1))
    hb = np.round(10.5 - 0.9 * severity + rng.normal(0, 1, n), 1)
    hb[rng.random(n) < 0.06] = np.nan
    platelets = np.round(np.exp(rng.normal(4.8 - 0.3 * severity, 0.6)))
    platelets[rng.random(n) < 0.04] = np.nan
    risk = np.digitize(severity + 0.08 * blasts + 1.2 * tp53, [-0.8, 0.2, 1.0, 1.8])
    time = np.round(rng.exponential(40 * np.exp(-0.35 * severity - 0.8 * tp53)) + 0.1, 1)
    censor = rng.exponential(60, n)
    table = {
        "patient_id": [f"P{i:05d}" for i in range(n)],
        "site": rng.choice(["site_1", "site_2", "site_3"], size=n, p=[0.5, 0.3, 0.2]),
        "sex": rng.choice(["F", "M"], size=n, p=[0.4, 0.6]),
        "age": np.clip(np.round(72 + 5 * severity + rng.normal(0, 7, n)), 18, 95).astype(int),
        "hb": hb,
        "platelets": platelets,
        "anc": np.round(np.exp(rng.normal(0.5, 0.7, n)), 2),
        "wbc": np.round(np.exp(rng.normal(1.3, 0.5, n)), 1),
        "blasts": blasts,
        "ferritin": np.round(np.exp(rng.normal(6, 1, n))),
        "ldh": np.round(rng.normal(220 + 30 * severity, 40, n)),
        "ring_sideroblasts": np.where(genes[:, 0], rng.uniform(15, 60, n), rng.uniform(0, 5, n)),
        "ipssr": np.array(["very_low", "low", "intermediate", "high", "very_high"])[risk],
        "karyotype": rng.choice(["normal", "del5q", "complex", "other"], n, p=[0.6, 0.1, 0.1, 0.2]),
    }
    table |= {gene: genes[:, j].astype(int) for j, gene in enumerate(GENES)}
    table["os_months"] = np.minimum(time, np.round(censor, 1) + 0.1)
    table["os_status"] = (time <= censor).astype(int)
    return pd.DataFrame(table)


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return simulated_cohort(3000, seed=0)


@pytest.fixture(scope="module")
def fitted(cohort):
    return fedsynth.make("bayesian_network", seed=0).fit(cohort)


def test_rows_columns_and_dtypes(fitted, cohort):
    out = fitted.sample(1234, seed=1)
    expected = cohort.drop(columns="patient_id")
    assert len(out) == 1234
    assert list(out.columns) == list(expected.columns)
    assert out.dtypes.to_dict() == expected.dtypes.to_dict()
    for column in ["age", "hb", "platelets", "blasts", "os_months"]:
        assert out[column].min() >= expected[column].min()
        assert out[column].max() <= expected[column].max()
    assert (out["age"] == out["age"].round()).all()


def test_marginals_missing_values_and_survival(fitted, cohort):
    out = fitted.sample(len(cohort), seed=2)
    gaps = (out[GENES].mean() - cohort[GENES].mean()).abs()
    assert gaps.max() < 0.03, gaps.sort_values().tail()
    assert abs(out["os_status"].mean() - cohort["os_status"].mean()) < 0.03
    for column in ["hb", "platelets"]:
        assert abs(out[column].isna().mean() - cohort[column].isna().mean()) < 0.02
    assert out["age"].notna().all() and out["os_months"].notna().all()
    # The duration distribution comes back: quartiles within a few percent of the range.
    quartiles = np.array([0.25, 0.5, 0.75])
    real_q = cohort["os_months"].quantile(quartiles)
    synthetic_q = out["os_months"].quantile(quartiles)
    assert (abs(real_q - synthetic_q) / cohort["os_months"].max() < 0.02).all()
    # Three blasts values in ten are exactly 0: they stay a point mass, not a smear.
    assert abs((out["blasts"] == 0).mean() - (cohort["blasts"] == 0).mean()) < 0.03


def test_structure_captures_strong_dependencies(fitted, cohort):
    linked = {(c, p) for c, parents in fitted.parents_.items() for p in parents}
    assert ("ring_sideroblasts", "SF3B1") in linked or ("SF3B1", "ring_sideroblasts") in linked
    assert set(fitted.order_) == set(cohort.columns) - {"patient_id"}
    out = fitted.sample(len(cohort), seed=3)
    # Mutual exclusivity of the spliceosome genes survives: co-mutation stays near 0.
    assert ((out["SF3B1"] == 1) & (out["SRSF2"] == 1)).mean() < 0.005
    assert out.loc[out["SF3B1"] == 1, "ring_sideroblasts"].median() > 10
    assert out.loc[out["SF3B1"] == 0, "ring_sideroblasts"].median() < 5


def test_noisy_copies_end_up_parent_and_child():
    rng = np.random.default_rng(0)
    n = 2000
    a = rng.choice(list("abcd"), n)
    noisy = np.where(rng.random(n) < 0.9, a, rng.choice(list("abcd"), n))
    table = pd.DataFrame({"x": rng.normal(size=n), "a": a, "b": noisy, "y": rng.integers(0, 2, n)})
    gen = fedsynth.make("bayesian_network", max_parents=1, seed=1).fit(table)
    assert "a" in gen.parents_["b"] or "b" in gen.parents_["a"]
    out = gen.sample(n, seed=0)
    assert (out["a"] == out["b"]).mean() > 0.85


def test_bias_correction_scores_noise_near_zero():
    rng = np.random.default_rng(0)
    n = 1000
    parent = rng.integers(0, 2, n)
    child = np.where(rng.random(n) < 0.8, parent, 1 - parent)
    codes = np.column_stack([parent, child, rng.integers(0, 20, n), rng.integers(0, 20, n)])
    n_states = np.array([2, 2, 20, 20])
    # Two 20-state noise columns: plug-in MI about 0.2 nats, about 0 once its bias is removed.
    noise = penalised_mutual_information(codes, n_states, (2, 3), np.array([1]))
    signal = penalised_mutual_information(codes, n_states, (0,), np.array([1]))
    assert abs(noise[0]) < 0.05 and signal[0] > 0.15
    _, parents = learn_structure(codes, n_states, 2, np.random.default_rng(0))
    assert 0 in parents[1] or 1 in parents[0]


def test_conditions_on_category_binary_and_number(fitted):
    out = fitted.sample(500, conditions={"ipssr": "high", "TP53": 1, "age": 70}, seed=4)
    assert len(out) == 500
    assert (out["ipssr"] == "high").all()
    assert (out["TP53"] == 1).all()
    assert (out["age"] == 70).all()
    numeric = fitted.sample(200, conditions={"hb": 8.2}, seed=4)
    assert (numeric["hb"] == 8.2).all()


def test_conditions_shift_dependent_columns(fitted):
    mutated = fitted.sample(4000, conditions={"TP53": 1}, seed=5)
    wild = fitted.sample(4000, conditions={"TP53": 0}, seed=5)
    assert mutated["os_months"].median() < wild["os_months"].median()
    assert mutated["blasts"].mean() > wild["blasts"].mean()
    assert (mutated["ipssr"] == "very_high").mean() > (wild["ipssr"] == "very_high").mean()
    # Conditioning on a child reaches its parents too (likelihood weighting of ancestors).
    sf3b1 = fitted.sample(2000, conditions={"SF3B1": 1}, seed=5)
    assert (sf3b1["SRSF2"] == 1).mean() < 0.01


def test_impossible_and_unknown_conditions(cohort):
    metadata = {
        "karyotype": {
            "kind": "categorical",
            "categories": [*sorted(set(cohort.karyotype)), "t(3;3)"],
        }
    }
    gen = fedsynth.make("bayesian_network", seed=0).fit(cohort, metadata=metadata)
    with pytest.raises(ConditionError, match=r"karyotype='t\(3;3\)'.*probability 0"):
        gen.sample(5, conditions={"karyotype": "t(3;3)"})
    with pytest.raises(ConditionError, match="'ipssr' has no category 'extreme'"):
        gen.sample(5, conditions={"ipssr": "extreme"})


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_contradictory_conditions_fail_clearly(seed):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 3000)
    table = pd.DataFrame({"a": a, "b": 1 - a, "c": rng.normal(size=3000)})
    # Whichever column the (seeded, random) first pick makes the root, a = b = 1 never occurs.
    gen = fedsynth.make("bayesian_network", smoothing=0.0, seed=seed).fit(table)
    with pytest.raises(ConditionError, match=r"cannot sample with .*'a': 1, 'b': 1"):
        gen.sample(10, conditions={"a": 1, "b": 1})
    smoothed = fedsynth.make("bayesian_network", smoothing=1.0, seed=seed).fit(table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConditionWarning)
        out = smoothed.sample(10, conditions={"a": 1, "b": 1})
    assert ((out["a"] == 1) & (out["b"] == 1)).all()


def test_concentrated_weights_warn(monkeypatch):
    rng = np.random.default_rng(0)
    labels = np.array([f"c{i}" for i in range(200)])[rng.integers(0, 200, 20_000)]
    table = pd.DataFrame({"label": labels, "flag": (labels == "c0").astype(int)})
    # The first column is drawn at random: take a seed where the flag is the label's child, so
    # that conditioning on the flag weights draws of the label, 1 in 200 of which fits; with
    # pools of 20,000 draws that leaves about 100 effective draws for chunks of 2,000 rows.
    fits = (fedsynth.make("bayesian_network", seed=s).fit(table) for s in range(20))
    gen = next(g for g in fits if g.parents_["flag"] == ["label"])
    monkeypatch.setattr(_bayesian_conditioning, "_LARGE_POOL_SIZE", 20_000)
    with pytest.warns(ConditionWarning, match="importance weights are concentrated"):
        out = gen.sample(3000, conditions={"flag": 1}, seed=0)
    assert (out["flag"] == 1).all() and (out["label"] == "c0").mean() > 0.9
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConditionWarning)  # the larger pool suffices
        gen.sample(3000, conditions={"flag": 1}, seed=0)


def test_save_load_and_seeds(fitted, tmp_path):
    loaded = fedsynth.load(fitted.save(tmp_path / "bn"))
    assert loaded.parents_ == fitted.parents_ and loaded.order_ == fitted.order_
    pd.testing.assert_frame_equal(loaded.sample(500, seed=7), fitted.sample(500, seed=7))
    conditions = {"TP53": 1, "hb": 9.0}
    pd.testing.assert_frame_equal(
        loaded.sample(300, conditions=conditions, seed=7),
        fitted.sample(300, conditions=conditions, seed=7),
    )
    assert not fitted.sample(100, seed=1).equals(fitted.sample(100, seed=2))


def test_same_seed_same_network_and_rows(cohort):
    a = fedsynth.make("bayesian_network", seed=11).fit(cohort)
    b = fedsynth.make("bayesian_network", seed=11).fit(cohort)
    assert a.parents_ == b.parents_
    pd.testing.assert_frame_equal(a.sample(300, seed=0), b.sample(300, seed=0))


def test_independent_columns_with_no_parents(cohort):
    gen = fedsynth.make("bayesian_network", max_parents=0, seed=0).fit(cohort)
    assert all(parents == [] for parents in gen.parents_.values())
    out = gen.sample(len(cohort), seed=0)
    assert abs(out["TP53"].mean() - cohort["TP53"].mean()) < 0.03


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_parents": -1}, "max_parents must be an integer >= 0"),
        ({"max_parents": 1.5}, "max_parents must be an integer >= 0"),
        ({"n_bins": 1}, "n_bins must be an integer >= 2"),
        ({"smoothing": -0.1}, "smoothing must be a finite number >= 0"),
        ({"smoothing": float("nan"), "n_bins": True}, "n_bins.*\n.*smoothing"),
    ],
)
def test_invalid_parameters_fail_at_fit(cohort, params, message):
    gen = fedsynth.make("bayesian_network", **params)
    with pytest.raises(ValueError, match=message):
        gen.fit(cohort.head(50))


def test_quantile_bins_keep_point_masses_and_whole_numbers():
    values = np.r_[np.zeros(40), np.arange(1.0, 61.0), [np.nan] * 5]
    bins = quantile_bins(values, 10, integer=True)
    assert bins.low[0] == bins.high[0] == 0 and bins.has_missing
    codes = bins.codes(values)
    assert codes[-1] == bins.n_states - 1
    sampled = bins.sample(codes, np.random.default_rng(0))
    assert np.isnan(sampled[-5:]).all() and (sampled[:40] == 0).all()
    assert (bins.codes(sampled[:-5]) == codes[:-5]).all()
    assert (sampled[:-5] == np.round(sampled[:-5])).all()
    assert bins.code_of(2.5) in (bins.code_of(2), bins.code_of(3))


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.integers(-50, 50).map(float), st.floats(-1e3, 1e3), st.just(np.nan)),
        min_size=1,
        max_size=300,
    ).filter(lambda v: not all(np.isnan(v))),
    n_bins=st.integers(2, 25),
)
def test_quantile_bins_round_trip_any_values(values, n_bins):
    values = np.array(values)
    integer = bool(np.all(np.mod(values[~np.isnan(values)], 1) == 0))
    bins = quantile_bins(values, n_bins, integer=integer)
    assert len(bins.low) <= n_bins and (bins.low <= bins.high).all()
    codes = bins.codes(values)
    sampled = bins.sample(codes, np.random.default_rng(0))
    assert (np.isnan(sampled) == np.isnan(values)).all()
    present = ~np.isnan(values)
    assert (bins.codes(sampled[present]) == codes[present]).all()
    assert sampled[present].min() >= values[present].min()
    assert sampled[present].max() <= values[present].max()


def test_integer_interval_around_an_atom_never_samples_the_atom():
    # Found by the property test above: 0 is an atom inside the interval [-4, 1] of the rest.
    bins = quantile_bins(np.array([0.0, 0.0, -4.0, np.nan, 1.0]), 2, integer=True)
    assert bins.low.tolist() == [-4.0, 0.0] and bins.high.tolist() == [1.0, 0.0]
    drawn = bins.sample(np.zeros(6000, dtype=np.int64), np.random.default_rng(0))
    values, counts = np.unique(drawn, return_counts=True)
    assert values.tolist() == [-4.0, -3.0, -2.0, -1.0, 1.0]
    assert counts.min() > 0.8 * 6000 / 5  # uniform over the five allowed integers
    assert (bins.codes(drawn) == 0).all()


def test_mds_cohort_frequencies_and_event_rate():
    real, truth = fedsynth.datasets.mds_cohort(n=4427, sites=3, seed=0, return_truth=True)
    metadata = truth.metadata()
    gen = fedsynth.make("bayesian_network", seed=0).fit(real, metadata=metadata)
    synthetic = gen.sample(len(real), seed=0)
    expected = pd.Series(truth.realised_frequencies)
    gaps = (synthetic[list(truth.genomic_columns)].mean() - expected).abs()
    assert gaps.max() < 0.03, gaps.sort_values().tail()
    duration, event = truth.survival
    assert abs(synthetic[event].mean() - real[event].mean()) < 0.03
    assert (
        abs(synthetic[duration].median() - real[duration].median()) < 0.1 * real[duration].median()
    )


def test_structure_search_scores_a_subsample_of_a_large_table():
    rng = np.random.default_rng(0)
    parent = rng.integers(0, 2, 3000)
    codes = np.column_stack([parent, parent ^ (rng.random(3000) < 0.1), rng.integers(0, 3, 3000)])
    n_states = np.array([2, 2, 3])
    scored_rows = []

    def score(codes, n_states, parents, children):
        scored_rows.append(len(codes))
        return penalised_mutual_information(codes, n_states, parents, children)

    _, parents = learn_structure(codes, n_states, 2, rng, score=score, max_rows=500)
    assert set(scored_rows) == {500}
    assert 0 in parents[1] or 1 in parents[0]  # the subsample still finds the dependency
    scored_rows.clear()
    learn_structure(codes, n_states, 2, rng, score=score, max_rows=3000)
    assert set(scored_rows) == {3000}
