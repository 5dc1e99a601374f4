"""Metric contracts, input checks and the building blocks (labels, Gower, genomic pairs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedsynth.exceptions import InvalidDataError
from fedsynth.tabular.validation import FAMILIES, METRICS, validate
from fedsynth.tabular.validation.data import label, prepare
from fedsynth.tabular.validation.distances import GowerEmbedding, nearest
from fedsynth.tabular.validation.genomic import exclusive_pairs


def test_every_metric_declares_a_unique_name_a_family_and_a_direction():
    names = [m.name for family in METRICS.values() for m in family]
    assert len(names) == len(set(names))
    for family, metrics in METRICS.items():
        assert family in FAMILIES
        for metric in metrics:
            assert metric.family == family
            assert metric.direction in {"higher", "lower"}
            assert metric.description


def test_results_are_typed_and_scores_lie_in_unit_interval(clinical):
    real, synthetic, holdout = clinical.iloc[:150], clinical.iloc[150:300], clinical.iloc[300:]
    report = validate(
        real,
        synthetic,
        holdout=holdout,
        families=["fidelity", "diversity", "utility", "survival", "genomic"],
    )
    assert set(report.results) == {
        m.name
        for f in ("fidelity", "diversity", "utility", "survival", "genomic")
        for m in METRICS[f]
    }
    for result in report.results.values():
        if result.score is not None:
            assert 0.0 <= result.score <= 1.0, result.name
        assert result.skipped is None or (result.value is None and result.score is None)
    for name, value in report.scores.items():
        assert value is None or 0.0 <= value <= 1.0, name
    # Two genes only: too few pairs for a co-occurrence correlation, and the report says so.
    assert "fewer than 3 gene pairs" in report.results["co_occurrence"].skipped


def test_without_holdout_holdout_metrics_are_skipped_with_a_reason(clinical):
    report = validate(clinical.iloc[:200], clinical.iloc[200:], families=["utility", "privacy"])
    for name in ("tstr_performance", "membership_inference_distance", "linkability_risk"):
        assert "holdout" in report.results[name].skipped
    assert report.results["dcr"].details["baseline"].startswith("training rows")
    assert report.scores["utility"] is None
    assert report.scores["privacy"] is not None


def test_subsampling_is_stated(clinical):
    report = validate(
        clinical, clinical.sample(frac=1, random_state=1), max_rows=100, families=["fidelity"]
    )
    assert any("pairwise associations: 100 of 400 real rows" in n for n in report.notes)
    assert report.to_dict()["notes"] == report.notes


def test_bad_inputs_raise_one_error_naming_every_problem(clinical):
    synthetic = clinical.drop(columns=["hb", "sex"])
    with pytest.raises(InvalidDataError) as caught:
        validate(clinical, synthetic, target="no_such_column", group="age")
    message = str(caught.value)
    assert "lacks column(s) ['sex', 'hb']" in message
    assert "'no_such_column': named as the target" in message
    assert "'age': the group must be a discrete column" in message
    text = clinical.assign(hb=clinical["hb"].astype(object))
    text.loc[3, "hb"] = "high"
    with pytest.raises(InvalidDataError, match="column 'hb': synthetic table: 1 value"):
        validate(clinical, text)


def test_labels_match_whatever_the_dtype():
    assert label(1) == label(1.0) == label("1") == label(True) == label("true") == "1"
    assert label("F") == "F"
    assert np.isnan(label(None))


def test_synthetic_read_back_from_csv_compares_equal(clinical, tmp_path):
    path = tmp_path / "syn.csv"
    clinical.to_csv(path, index=False)
    synthetic = pd.read_csv(path).astype({"TP53": float, "os_status": str})
    data = prepare(
        clinical,
        synthetic,
        holdout=None,
        metadata=None,
        target=None,
        group=None,
        max_rows=5000,
        n_attacks=500,
        seed=0,
    )
    pd.testing.assert_frame_equal(data.real, data.synthetic)


def test_gower_embedding_gives_gower_distance():
    real = pd.DataFrame({"x": [0.0, 10.0, 5.0, np.nan], "c": ["a", "b", "a", np.nan]})
    embedding = GowerEmbedding(["x"], ["c"]).fit(real)
    points = embedding.transform(real)
    distances = nearest(points, points, 4, embedding.n_columns)
    # Row 0 (0, a) to row 2 (5, a): (0.5 + 0) / 2; to row 1 (10, b): (1 + 1) / 2.
    d = np.abs(points[:, None, :] - points[None, :, :]).sum(axis=2) / 2
    assert d[0, 2] == pytest.approx(0.25)
    assert d[0, 1] == pytest.approx(1.0)
    assert d[3, 3] == 0.0 and d[0, 3] == pytest.approx((0.5 + 0.5 + 1.0) / 2)
    assert np.allclose(np.sort(d, axis=1), distances)


def test_real_exclusive_gene_pairs_are_found(mds):
    df, truth = mds
    data = prepare(
        df,
        df,
        holdout=None,
        metadata=truth.metadata(),
        target=None,
        group=None,
        max_rows=5000,
        n_attacks=500,
        seed=0,
    )
    found = {tuple(sorted(p)) for p in exclusive_pairs(data)}
    frequencies = df[list(truth.genomic_columns)].mean()
    expected = {
        tuple(sorted(p))
        for p in truth.exclusive_pairs
        if frequencies[p[0]] * frequencies[p[1]] * len(df) >= 10
    }
    assert expected and expected <= found
