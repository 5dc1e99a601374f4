"""``auto``: candidate selection, delegation to the winner, save/load and its score."""

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.exceptions import (
    FedsynthError,
    InvalidDataError,
    ParameterError,
    UnknownGeneratorError,
)
from fedsynth.tabular.generators import auto as auto_module
from fedsynth.tabular.generators.auto import DEFAULT_CANDIDATES, CandidateWarning, selection_score
from fedsynth.tabular.metadata import Metadata

STATISTICAL = ("gaussian_copula", "bayesian_network")
# A few epochs keep a deep candidate in the race at test speed (it is expected to lose).
FAST_DEEP = {"tvae": {"epochs": 3}}
COHORT_COLUMNS = [
    "site", "age", "sex", "hb", "plt", "anc", "bm_blasts", "cyto_ipssr", "complex_karyotype",
    "TP53", "SF3B1", "SRSF2", "ASXL1", "RUNX1", "ipssm_score", "ipssm_risk", "os_months",
    "os_status",
]  # fmt: skip


@pytest.fixture
def fitted(clinical):
    return fedsynth.make("auto", candidates=STATISTICAL, seed=1).fit(clinical)


def test_reports_candidates_and_keeps_the_best(fitted, clinical):
    scores = fitted.candidate_scores_
    assert list(scores.columns) == [
        "score",
        "score_sd",
        "marginal",
        "pairwise",
        "missing",
        "utility",
        "fit_s",
        "error",
    ]
    assert set(scores.index) == set(STATISTICAL)
    assert scores["score"].is_monotonic_decreasing
    assert fitted.best_ == scores.index[0]
    assert fitted.best_generator_.name == fitted.best_
    assert fitted.best_generator_.n_rows_ == len(clinical)  # refitted on all the rows
    parts = ["score", "marginal", "pairwise", "missing", "utility"]
    assert scores[parts].stack().between(0, 1).all()
    assert (scores["error"] == "").all()
    assert fitted.get_info()["best"] == fitted.best_


def test_samples_like_its_winner(fitted, clinical):
    winner = fedsynth.make(fitted.best_, seed=1).fit(clinical)
    pd.testing.assert_frame_equal(fitted.sample(300, seed=5), winner.sample(300, seed=5))
    out = fitted.sample(120, conditions={"TP53": 1, "sex": "F"}, seed=2)
    assert len(out) == 120 and (out["TP53"] == 1).all() and (out["sex"] == "F").all()
    assert fitted.native_conditioning
    assert list(out.columns) == [c for c in clinical.columns if c != "patient_id"]


def test_save_and_load_sample_identically(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    loaded = fedsynth.load(tmp_path / "model")
    assert type(loaded) is type(fitted) and loaded.best_ == fitted.best_
    pd.testing.assert_frame_equal(loaded.candidate_scores_, fitted.candidate_scores_)
    pd.testing.assert_frame_equal(loaded.sample(200, seed=3), fitted.sample(200, seed=3))
    assert not list(tmp_path.glob("**/*.pkl"))


def test_default_candidates_skip_deep_generators_that_do_not_import(monkeypatch):
    real_lookup = auto_module.get_generator_class

    def lookup(name):
        if name not in STATISTICAL:
            raise ModuleNotFoundError(f"No module named 'fedsynth.tabular.generators.{name}'")
        return real_lookup(name)

    monkeypatch.setattr(auto_module, "get_generator_class", lookup)
    assert fedsynth.make("auto")._resolve_candidates() == list(STATISTICAL)
    with pytest.raises(ModuleNotFoundError, match="ctgan"):  # named explicitly: loud
        fedsynth.make("auto", candidates=("gaussian_copula", "ctgan"))._resolve_candidates()
    assert DEFAULT_CANDIDATES[:2] == STATISTICAL


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"candidates": ("copula",)}, UnknownGeneratorError, "unknown generator 'copula'"),
        ({"candidates": ()}, ParameterError, "non-empty tuple"),
        ({"candidates": ("auto",)}, ParameterError, "its own candidates"),
        (
            {"candidates": STATISTICAL, "candidate_params": {"ctgan": {"epochs": 1}}},
            ParameterError,
            r"candidate_params names \['ctgan'\], which are not candidates",
        ),
        (
            {"candidates": STATISTICAL, "candidate_params": {"gaussian_copula": {"epochs": 1}}},
            TypeError,
            "gaussian_copula got unknown parameter",
        ),
        (
            {"candidates": STATISTICAL, "validation_fraction": 0.9},
            ParameterError,
            "in \\[0.05, 0.5\\]",
        ),
        ({"candidates": STATISTICAL, "n_splits": 0}, ParameterError, "n_splits must be a positive"),
    ],
)
def test_bad_settings_fail_before_fitting(clinical, params, error, message):
    with pytest.raises(error, match=message):
        fedsynth.make("auto", **params).fit(clinical)


def test_too_few_rows_to_compare_is_a_data_error(clinical):
    with pytest.raises(InvalidDataError, match="auto needs at least 10 validation and 20"):
        fedsynth.make("auto", candidates=STATISTICAL).fit(clinical.head(25))


def test_a_failing_candidate_is_reported_and_left_out(clinical):
    gen = fedsynth.make(
        "auto", candidates=STATISTICAL, candidate_params={"gaussian_copula": {"n_quantiles": 1}}
    )
    with pytest.warns(CandidateWarning, match="'gaussian_copula' failed and is left out"):
        gen.fit(clinical)
    assert gen.best_ == "bayesian_network"
    assert np.isnan(gen.candidate_scores_.loc["gaussian_copula", "score"])
    assert "n_quantiles" in gen.candidate_scores_.loc["gaussian_copula", "error"]
    only_broken = fedsynth.make(
        "auto",
        candidates=("gaussian_copula",),
        candidate_params={"gaussian_copula": {"n_quantiles": 1}},
    )
    with pytest.raises(FedsynthError, match="every candidate failed"), pytest.warns(Warning):
        only_broken.fit(clinical)


def test_survival_pair_with_a_constant_event(clinical):
    everyone_died = clinical.assign(os_status=1)
    gen = fedsynth.make("auto", candidates=STATISTICAL).fit(everyone_died)
    out = gen.sample(50, seed=0)
    assert (out["os_status"] == 1).all() and (out["os_months"] >= 0).all()
    assert np.isnan(gen.candidate_scores_["utility"]).all()  # no event to predict


@pytest.mark.parametrize("seed", [0, 1])
def test_not_worse_than_the_best_single_candidate(seed):
    """On a few hundred rows, auto's choice scores within noise of the best candidate, judged on
    a large simulated holdout so that the judgement itself is nearly free of noise."""
    # A third of the cohort's columns: SAFE's utility models (and their permutation
    # importances) cost in proportion to the columns, and these keep its structure.
    cohort = fedsynth.datasets.mds_cohort(n=2400, seed=seed)[COHORT_COLUMNS]
    train, holdout = cohort.iloc[:400], cohort.iloc[400:]
    candidates = (*STATISTICAL, "tvae")
    gen = fedsynth.make("auto", candidates=candidates, candidate_params=FAST_DEEP, seed=seed)
    gen.fit(train)
    metadata = gen.metadata_
    held_out = {}
    for name in candidates:
        single = fedsynth.make(name, seed=seed, **FAST_DEEP.get(name, {})).fit(train)
        synthetic = single.sample(len(train), seed=seed)
        held_out[name] = selection_score(train, synthetic, holdout, metadata, seed=seed)["score"]
    chosen = selection_score(train, gen.sample(len(train), seed=seed), holdout, metadata, seed=seed)
    assert chosen["score"] == pytest.approx(held_out[gen.best_])  # it samples as its winner
    # Noise: on 400 rows the mean score over auto's 3 splits varies by about 0.02 (sd).
    assert chosen["score"] >= max(held_out.values()) - 0.03, (gen.best_, held_out)
    assert gen.candidate_scores_["score_sd"].notna().all()


def test_selection_score_ranks_structure_above_shuffled_columns():
    # Columns with known dependencies (most mutation pairs of the cohort are independent).
    related = ["ipssm_score", "ipssm_risk", "bm_blasts", "TP53", "complex_karyotype", "hb"]
    cohort = fedsynth.datasets.mds_cohort(n=1200, seed=0)[[*related, "os_months", "os_status"]]
    metadata = Metadata.infer(cohort).resolve(cohort)
    train, like_real, holdout = (
        cohort.iloc[i : i + 400].reset_index(drop=True) for i in (0, 400, 800)
    )
    rng = np.random.default_rng(0)
    shuffled = like_real.apply(lambda col: col.sample(frac=1, random_state=rng).to_numpy())
    good = selection_score(train, like_real, holdout, metadata)
    bad = selection_score(train, shuffled, holdout, metadata)
    assert good["marginal"] == pytest.approx(bad["marginal"])  # same values, other rows
    assert good["pairwise"] > bad["pairwise"] + 0.05
    assert good["utility"] > bad["utility"] and good["score"] > bad["score"]
    same = selection_score(train, holdout, holdout, metadata)
    assert same["marginal"] == 1.0 and same["pairwise"] == 1.0 and same["utility"] == 1.0
    assert set(good) == {"score", "marginal", "pairwise", "missing", "utility"}


def test_dp_is_refused_with_the_generators_that_support_it(clinical):
    from fedsynth.core.privacy import PrivacyConfigError

    gen = fedsynth.make("auto", dp={"epsilon": 1.0, "delta": 1e-5})
    with pytest.raises(PrivacyConfigError, match=r"auto does not support dp.*'vae_bgm', dp="):
        gen.fit(clinical)
