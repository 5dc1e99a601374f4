"""The shared encoder: built from aggregate statistics, nothing about a single patient sent."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.exceptions import DataWarning, MetadataError
from fedsynth.federated import encoder_stats as es
from fedsynth.federated import shared_metadata
from fedsynth.federated.errors import SiteRefusedError
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.transforms import TableEncoder

#: Shared encoders and site statistics written by the hand-built encoder_stats of commit
#: 7c254d3 (which wrote the encoder's state dicts itself) for the scenarios of
#: :func:`scenario`: the refactored path must give the very same.
GOLDEN = Path(__file__).parents[1] / "fixtures" / "shared_encoder"
SCENARIOS = ["clinic", "tiny", "strict", "mixed", "mds"]
CLINIC_KINDS = {
    "patient": "identifier",
    "os_months": "duration",
    "os_event": "event",
    "center": "site",
}


def clinic_sites() -> dict[str, pd.DataFrame]:
    """Three sites: an identifier, a survival pair, categories (one rare, one of category dtype),
    missing values, whole numbers (nullable and few-valued), a site column and a constant."""
    rng = np.random.default_rng(11)
    sites = {}
    for i, (name, n) in enumerate({"a": 140, "b": 95, "c": 60}.items()):
        age = rng.integers(30, 90, n).astype(float)
        age[rng.random(n) < 0.1] = np.nan
        sex = rng.choice(np.array(["F", "M", None], dtype=object), n, p=[0.5, 0.45, 0.05])
        stage = pd.Categorical(
            rng.choice(["I", "II", "III", "IV"], n, p=[0.4, 0.35, 0.23, 0.02]),
            categories=["I", "II", "III", "IV"],
        )
        hb = np.round(rng.normal(11 + i, 1.5, n), 1)
        hb[rng.random(n) < 0.15] = np.nan
        sites[name] = pd.DataFrame(
            {
                "patient": [f"{name}{k}" for k in range(n)],
                "age": pd.array(age, dtype="Int64"),
                "sex": sex,
                "stage": stage,
                "hb": hb,
                "lesions": rng.choice([0, 1, 2, 3], n, p=[0.4, 0.3, 0.2, 0.1]),
                "os_months": np.round(rng.lognormal(2.5 + 0.2 * i, 0.8, n), 2),
                "os_event": rng.integers(0, 2, n),
                "center": name,
                "cohort": "mds",
            }
        )
    return sites


def scenario(name: str) -> tuple[dict[str, pd.DataFrame], Metadata, int]:
    """Sites, shared metadata and ``min_count`` of a golden scenario."""
    if name == "mds":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            mds = fedsynth.datasets.mds_cohort(n=600, sites=2, seed=3)
        sizes = {"north": ("site_1", 111), "south": ("site_2", 97)}
        sites = {
            site: mds[mds["site"] == label].head(n).reset_index(drop=True)
            for site, (label, n) in sizes.items()
        }
        return sites, shared_metadata(sites), 5
    clinic = clinic_sites()
    metadata = shared_metadata(clinic, CLINIC_KINDS)
    if name == "tiny":  # every count and mode suppressed
        return {k: d.head(4) for k, d in clinic.items() if k != "c"}, metadata, 5
    if name == "strict":  # most mixture modes carry too few rows to be sent
        return clinic, metadata, 20
    if name == "mixed":  # one site sends exact values, the other modes, of the same column
        hb = np.clip(np.round(clinic["a"]["hb"]), 10, 12)
        return {"a": clinic["a"].assign(hb=hb), "b": clinic["b"]}, metadata, 5
    return clinic, metadata, 5


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


_RTOL = 1e-12


def _assert_close(got, expected, path: str = "") -> None:
    """Nested JSON values equal, floats within a relative ``_RTOL``."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), path
        for key in expected:
            _assert_close(got[key], expected[key], f"{path}/{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), path
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            _assert_close(a, b, f"{path}[{i}]")
    elif isinstance(expected, float) and isinstance(got, float):
        assert got == pytest.approx(expected, rel=_RTOL, abs=0), path
    else:
        assert got == expected, path


@pytest.mark.parametrize("name", SCENARIOS)
def test_statistics_and_shared_encoder_are_those_of_the_hand_built_path(name):
    sites, metadata, min_count = scenario(name)
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    with np.load(GOLDEN / f"{name}.npz", allow_pickle=False) as saved:
        golden_arrays = dict(saved)
    stats = {s: es.site_statistics(d, metadata, min_count=min_count) for s, d in sites.items()}
    # The references were recorded with scikit-learn 1.8; its mixtures' floats may differ in
    # the last bits between releases (1.9.1: relative 3e-15 at most), never more.
    _assert_close(json.loads(json.dumps(stats)), golden["statistics"])
    schema = es.build_schema(metadata, stats)
    config, arrays = schema.to_payload()
    config = json.loads(json.dumps(config))
    config["encoder"].pop("fedsynth_version")
    _assert_close(config, golden["schema"])
    assert arrays.keys() == golden_arrays.keys()
    for key, array in arrays.items():
        np.testing.assert_allclose(array, golden_arrays[key], rtol=_RTOL, atol=0, err_msg=key)
    # And so the same matrices and the same decoded tables.
    old = es.SharedSchema.from_payload(golden["schema"], golden_arrays).encoder
    pooled = pd.concat(sites.values(), ignore_index=True)[schema.learned_columns]
    matrix = schema.encoder.transform(pooled)
    np.testing.assert_allclose(matrix, old.transform(pooled), rtol=1e-6, atol=1e-9)
    pd.testing.assert_frame_equal(
        schema.encoder.inverse_transform(matrix), old.inverse_transform(matrix), rtol=1e-9
    )
    drawn = np.random.default_rng(0).random(matrix.shape).astype(np.float32)
    pd.testing.assert_frame_equal(
        schema.encoder.inverse_transform(drawn, sample=True, rng=1),
        old.inverse_transform(drawn, sample=True, rng=1),
    )


def test_one_site_statistics_give_the_encoder_fitted_on_that_site():
    """Fitting on a table and building from its statistics share their rules: the same spans,
    log scale for the duration, categories, counts, missing slots and whole numbers."""
    site = clinic_sites()["a"]
    metadata = shared_metadata({"a": site}, CLINIC_KINDS)
    fitted = TableEncoder().fit(site, metadata)
    stats = es.site_statistics(site, metadata, min_count=1)
    built = es.build_schema(metadata, {"a": stats}).encoder
    assert built.output_info_ == fitted.output_info_
    # The fitted encoder keeps the site's constant columns as zero-width transforms; the shared
    # schema keeps them aside, as constants.
    encoded = [t for t in fitted.transforms_ if t.width]
    assert (
        built.columns_
        == [t.name for t in encoded]
        == [c for c in site.columns if c not in ("patient", "center", "cohort")]
    )
    for ours, theirs in zip(built.transforms_, encoded, strict=True):
        ours_config, ours_arrays = ours.get_state("t")
        theirs_config, theirs_arrays = theirs.get_state("t")
        # What differs by design: a built encoder writes missing values as NaN.
        theirs_config["missing_value"] = None
        assert ours_config == theirs_config, ours.name
        for key, array in ours_arrays.items():
            np.testing.assert_allclose(array, theirs_arrays[key], rtol=1e-9, err_msg=key)
    assert built.transforms_[built.columns_.index("os_months")].log
    data = site[built.columns_]
    matrix = fitted.transform(data)
    np.testing.assert_allclose(built.transform(data), matrix, atol=1e-5)
    decoded, expected = built.inverse_transform(matrix), fitted.inverse_transform(matrix)
    for name in built.columns_:
        if metadata.columns[name].is_continuous:
            np.testing.assert_allclose(
                decoded[name].astype(float), expected[name].astype(float), rtol=1e-6
            )
        else:
            assert decoded[name].astype(object).equals(expected[name].astype(object)), name
