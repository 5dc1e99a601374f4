"""The checks that show the framework tells good synthetic data from bad (issue #6)."""

from __future__ import annotations

import numpy as np
import pytest

from fedsynth.tabular.validation import validate
from fedsynth.tabular.validation.survival import fit_cox

from .conftest import independent_noise, shuffle_columns

STRUCTURE = ("fidelity", "diversity", "survival", "genomic")


@pytest.fixture(scope="module")
def real_split_report(split, metadata):
    train, other, holdout = split
    return validate(train, other, holdout=holdout, metadata=metadata, n_attacks=60, seed=0)


def test_real_vs_real_split_scores_high(real_split_report):
    scores = real_split_report.scores
    assert scores["csf"] > 0.9
    assert scores["gsf"] > 0.85
    assert scores["utility"] > 0.7
    assert scores["privacy"] > 0.85
    assert scores["overall"] > 0.85
    flags = {f.name: f.status for f in real_split_report.flags}
    assert flags["privacy.exact_copies"] == "pass"
    assert flags["privacy.membership_inference_auc"] == "pass"
    # cif_gap is for competing risks only; this cohort has one cause.
    ran = [r for r in real_split_report.results.values() if r.name != "cif_gap"]
    assert all(r.skipped is None for r in ran), [(r.name, r.skipped) for r in ran if r.skipped]


def test_shuffled_columns_keep_marginals_but_lose_structure(split, metadata, real_split_report):
    train, _, holdout = split
    shuffled = validate(
        train, shuffle_columns(train), holdout=holdout, metadata=metadata, families=STRUCTURE
    )
    reference = real_split_report
    assert shuffled.results["column_shapes"].score > 0.99
    assert shuffled.results["column_shapes"].score >= reference.results["column_shapes"].score
    assert shuffled.results["mutation_frequency"].score > 0.99
    for metric in ("pairwise_association", "pearson_difference", "spearman_difference"):
        assert shuffled.results[metric].score < reference.results[metric].score - 0.04, metric
    assert shuffled.scores["survival"] < reference.scores["survival"] - 0.25
    assert shuffled.scores["gsf"] < reference.scores["gsf"] - 0.3
    assert shuffled.results["mutual_exclusivity"].score == 0.0


def test_copy_of_training_rows_fails_privacy(split, metadata):
    train, _, holdout = split
    report = validate(
        train, train.copy(), holdout=holdout, metadata=metadata, families=["privacy"], n_attacks=60
    )
    results = report.results
    assert results["exact_copies"].value == 1.0
    assert results["exact_copies"].details["copies_of_rare_rows"] == len(train)
    assert results["dcr"].details["share_zero_distance"] == 1.0
    assert results["dcr"].value > 0.95
    assert results["membership_inference_distance"].value > 0.95
    assert results["membership_inference_density"].value > 0.95
    assert results["linkability_risk"].value > 0.5
    assert report.scores["privacy"] < 0.2
    flags = {f.name: f.status for f in report.flags}
    assert flags["privacy.exact_copies"] == "fail"
    assert flags["privacy.membership_inference_auc"] == "fail"
    assert flags["privacy"] == "fail"
    assert report.status == "fail"


def test_independent_noise_scores_low_on_fidelity(split, metadata, real_split_report):
    train, _, holdout = split
    noise = validate(
        train, independent_noise(train), holdout=holdout, metadata=metadata, families=STRUCTURE
    )
    assert noise.results["column_shapes"].score < 0.75
    assert noise.scores["csf"] < 0.75
    assert noise.scores["gsf"] < 0.5
    assert noise.scores["csf"] < real_split_report.scores["csf"] - 0.2
    assert {f.name: f.status for f in noise.flags}["csf"] == "fail"


def test_hazard_ratios_from_real_mds_cohort_match_ground_truth():
    import fedsynth

    df, truth = fedsynth.datasets.mds_cohort(n=4427, sites=3, seed=0, return_truth=True)
    cph, _ = fit_cox(truth.survival_covariates(df), "os_months", "os_status", penalizer=0.0)
    summary = cph.summary
    for covariate, true_hr in truth.hazard_ratios.items():
        low = np.exp(summary.loc[covariate, "coef lower 95%"])
        high = np.exp(summary.loc[covariate, "coef upper 95%"])
        assert low <= true_hr <= high, (covariate, true_hr, low, high)
        assert abs(np.exp(summary.loc[covariate, "coef"]) / true_hr - 1) < 0.1
