"""The shared encoder: built from aggregate statistics, nothing about a single patient sent."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fedsynth.exceptions import MetadataError
from fedsynth.federated import encoder_stats as es
from fedsynth.federated import shared_metadata
from fedsynth.federated.errors import SiteRefusedError
from fedsynth.tabular.metadata import Metadata


@pytest.fixture
def sites(two_sites):
    return two_sites


@pytest.fixture
def metadata(sites):
    return shared_metadata(sites)


def test_statistics_hold_no_count_value_or_mode_below_min_count(sites, metadata):
    for data in sites.values():
        stats = es.site_statistics(data, metadata, min_count=5)
        assert stats["n_rows"] == len(data)
        for name, summary in stats["columns"].items():
            if summary["type"] == "discrete":
                assert all(c is None or c >= 5 for c in summary["counts"])
                hidden = [i for i, c in enumerate(summary["counts"]) if c is None]
                codes = data[name].astype(object)
                # The rare total is exactly what the hidden categories hold, no more.
                categories = metadata.columns[name].categories
                held = sum(int((codes == categories[i]).sum()) for i in hidden)
                assert summary["rare"] == held
            else:
                if summary["values"] is not None:
                    assert min(summary["values"]["counts"]) >= 5
                if summary["modes"] is not None:
                    carried = np.array(summary["modes"]["weights"]) * summary["n_present"]
                    assert carried.min() >= 5 - 1e-9
            missing = summary["missing"]
            assert missing["count"] is None or missing["count"] >= 5


def test_statistics_are_json_and_reveal_no_rare_value():
    df = pd.DataFrame(
        {
            "drug": ["a"] * 20 + ["b"] * 2 + ["c"],
            "dose": [1.0] * 12 + [2.0] * 10 + [99.0],  # one patient with a unique dose
        }
    )
    md = Metadata(
        {
            "drug": {"kind": "categorical", "categories": ["a", "b", "c", "d"]},
            "dose": {"kind": "numeric", "bounds": [0.0, 100.0]},
        }
    )
    stats = json.loads(json.dumps(es.site_statistics(df, md, min_count=5)))
    drug = stats["columns"]["drug"]
    assert drug["counts"] == [20, None, None, None]
    assert drug["rare"] == 3
    dose = stats["columns"]["dose"]
    assert dose["values"] is None  # the unique dose cannot be listed...
    assert 99.0 not in dose["modes"]["means"]  # ...nor be a mode of its own
    assert dose["n_present"] == 23


def test_shared_encoder_encodes_every_site_like_a_central_one(sites, metadata):
    stats = {name: es.site_statistics(data, metadata) for name, data in sites.items()}
    schema = es.build_schema(metadata, stats)
    assert schema.site_rows == {name: len(d) for name, d in sites.items()}
    pooled = pd.concat(sites.values(), ignore_index=True)
    for data in sites.values():
        matrix = schema.encoder.transform(data[schema.learned_columns])
        assert matrix.shape == (len(data), schema.encoder.output_dim_)
    decoded = schema.encoder.inverse_transform(
        schema.encoder.transform(pooled[schema.learned_columns])
    )
    for name in ["age", "hb", "os_months", "sex", "TP53"]:
        if name in schema.learned_columns:
            real, back = pooled[name], decoded[name]
            if metadata.columns[name].is_continuous:
                assert np.nanmax(np.abs(back.astype(float) - real.astype(float))) < 0.06
            else:
                assert (back.astype(object) == real.astype(object)).mean() == 1.0
    # Every site's missing values are encodable: the missing indicator is the union.
    assert schema.encoder.transforms_[schema.encoder.columns_.index("hb")].has_missing


def test_schema_payload_round_trip_through_json(sites, metadata):
    stats = {name: es.site_statistics(data, metadata) for name, data in sites.items()}
    schema = es.build_schema(metadata, stats)
    config, arrays = schema.to_payload()
    copy = es.SharedSchema.from_payload(json.loads(json.dumps(config)), arrays)
    data = sites["north"][schema.learned_columns]
    assert np.array_equal(copy.encoder.transform(data), schema.encoder.transform(data))
    assert copy.learned_columns == schema.learned_columns
    assert copy.n_rows == schema.n_rows


def test_constants_and_all_missing_columns():
    a = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0] * 2, "k": [7] * 12, "gone": np.nan})
    b = a.copy()
    md = Metadata(
        {
            "x": {"kind": "numeric", "bounds": [0, 10]},
            "k": {"kind": "numeric", "bounds": [0, 10], "integer": True},
            "gone": {"kind": "numeric", "bounds": [0, 1]},
        }
    )
    stats = {s: es.site_statistics(d, md, min_count=2) for s, d in {"a": a, "b": b}.items()}
    schema = es.build_schema(md, stats)
    assert schema.constants["k"] == 7
    assert np.isnan(schema.constants["gone"])
    assert schema.learned_columns == ["x"]


def test_merge_modes_keeps_mean_and_variance():
    rng = np.random.default_rng(0)
    means, stds, weights = rng.normal(size=12), rng.uniform(0.5, 2, 12), rng.uniform(1, 3, 12)
    m, s, w = es.merge_modes(means, stds, weights, 3)
    assert len(m) == 3 and np.isclose(w.sum(), 1)
    p = weights / weights.sum()
    mean = (p * means).sum()
    variance = (p * (stds**2 + means**2)).sum() - mean**2
    assert np.isclose((w * m).sum(), mean)
    assert np.isclose((w * (s**2 + m**2)).sum() - mean**2, variance)


def test_site_that_does_not_fit_is_refused_naming_site_and_columns(sites, metadata):
    bad = sites["south"].copy()
    bad["sex"] = bad["sex"].astype(object)
    bad.loc[0, "sex"] = "unknown"
    bad["hb"] = bad["hb"].astype(object)
    bad.loc[1, "hb"] = "high"
    bad["age"] = bad["age"] + 200
    bad = bad.drop(columns="TP53")
    with pytest.raises(SiteRefusedError) as caught:
        es.check_site(bad, metadata, "south")
    error = caught.value
    assert error.site == "south"
    assert set(error.columns) >= {"sex", "hb", "age", "TP53"}
    assert "site 'south' refused" in str(error) and "'unknown'" in str(error)


def test_shared_metadata_must_give_categories_and_bounds():
    with pytest.raises(MetadataError) as caught:
        es.check_shared_metadata(Metadata({"sex": "categorical", "age": "numeric"}))
    assert {p.column for p in caught.value.problems} == {"sex", "age"}
