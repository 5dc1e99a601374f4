import numpy as np
import pandas as pd
import pytest

from fedsynth.exceptions import DataWarning, MetadataError
from fedsynth.tabular.metadata import Metadata


def test_kinds_roles_and_groups(clinical):
    with pytest.warns(DataWarning, match="'patient_id' looks like an identifier"):
        md = Metadata.infer(clinical)
    assert md.kinds == {
        "patient_id": "identifier",
        "age": "numeric",
        "sex": "categorical",
        "hb": "numeric",
        "TP53": "binary",
        "SF3B1": "binary",
        "os_months": "duration",
        "os_status": "event",
        "site": "site",
    }
    assert md.survival == ("os_months", "os_status")
    assert md.genomic_columns == ["TP53", "SF3B1"]
    assert md.columns["age"].integer is True
    assert md.columns["hb"].integer is False
    assert md.columns["age"].bounds == (clinical.age.min(), clinical.age.max())
    assert md.columns["sex"].categories == ["F", "M"]
    assert md.learnable_columns() == [c for c in clinical.columns if c != "patient_id"]


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("mrn", [f"{i:07d}" for i in range(50)], "identifier"),
        ("PatientID", list(range(1000, 1050)), "identifier"),
        ("dob", [f"19{i % 60 + 30}-01-{i % 28 + 1:02d}" for i in range(50)], "identifier"),
        ("drug_name", ["aza", "len", "dec", "none", "aza"] * 10, "categorical"),
        ("weight", np.linspace(50, 90, 50), "numeric"),  # unique floats are measurements
        ("visit_count", np.arange(50) * 2, "numeric"),  # unique but not a row counter
        ("row", np.arange(50), "identifier"),  # a row counter
        ("flag", [True, False] * 25, "binary"),
        # Specimen codes with a few repeats (47 distinct in 50 rows) would be emitted verbatim.
        (
            "specimen",
            [f"S{i * 7919 % 9973:04d}X" for i in range(47)] + ["S0000X"] * 3,
            "identifier",
        ),
        ("ward", [f"W{i % 40:02d}" for i in range(50)], "categorical"),  # 40 of 50: a category
    ],
)
def test_identifier_and_value_rules(name, values, expected):
    df = pd.DataFrame({name: values, "x": np.random.default_rng(0).normal(size=50)})
    with pytest.warns() if expected == "identifier" else _no_warning():
        md = Metadata.infer(df)
    assert md.kinds[name] == expected


class _no_warning:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", DataWarning)

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def test_explicit_roles_override_names():
    df = pd.DataFrame(
        {"fu": [1.0, 2.0, 3.5, 4.0], "dead": [1, 0, 1, 1], "ctr": ["a", "b", "a", "b"]}
    )
    md = Metadata.infer(df, duration="fu", event="dead", site="ctr")
    assert md.survival == ("fu", "dead")
    assert md.site == "ctr"


def test_genomic_argument_and_overrides(clinical, tmp_path):
    md = Metadata.infer(
        clinical,
        genomic=["TP53"],
        overrides={"age": "categorical", "hb": {"kind": "numeric", "bounds": [4, 18]}},
    )
    assert md.genomic_columns == ["TP53"]
    assert md.kinds["age"] == "categorical"
    assert md.columns["age"].categories == sorted(clinical.age.unique().tolist())
    assert md.columns["hb"].bounds == (4.0, 18.0)

    path = tmp_path / "over.yaml"
    path.write_text("columns:\n  site: categorical\n  os_status: binary\n  os_months: numeric\n")
    md = Metadata.infer(clinical, overrides=path)
    assert md.site is None and md.survival is None
    assert md.columns["site"].categories == ["site_1", "site_2", "site_3"]

    with pytest.raises(
        MetadataError, match=r"only one site column is supported; found \['sex', 'site'\]"
    ):
        Metadata.infer(clinical, overrides={"sex": "site"})


def test_unknown_kind_and_absent_column_in_override(clinical):
    with pytest.raises(MetadataError) as info:
        Metadata.infer(clinical, overrides={"age": "continuous", "nope": "numeric"})
    message = str(info.value)
    assert "column 'age': unknown kind 'continuous'; expected one of numeric" in message
    assert "column 'nope': has an override but is not in the table" in message


def test_save_load_json_and_yaml(clinical, tmp_path):
    md = Metadata.infer(clinical)
    for name in ("meta.json", "meta.yaml"):
        path = md.save(tmp_path / name)
        assert Metadata.load(path) == md


def test_hand_written_partial_metadata_is_resolved_from_data(clinical):
    md = Metadata({c: "numeric" for c in ("age", "hb")} | {"sex": "categorical"})
    resolved = md.resolve(clinical)
    assert resolved.columns["sex"].categories == ["F", "M"]
    assert resolved.columns["age"].integer is True


def test_update_column(clinical):
    md = Metadata.infer(clinical)
    md.update_column("age", kind="categorical")
    assert md.kinds["age"] == "categorical" and md.columns["age"].categories is None
    with pytest.raises(MetadataError, match="unknown kind 'foo'"):
        md.update_column("sex", kind="foo")
    with pytest.raises(MetadataError, match="'nope': not in the metadata"):
        md.update_column("nope", kind="numeric")


def test_numbers_read_as_text_are_numeric_with_a_clear_error():
    values = [str(v) for v in np.linspace(8, 14, 40)] + ["haemolysed", "see note"]
    df = pd.DataFrame({"hb": values, "x": range(42)})
    md = Metadata.infer(df, overrides={"x": "numeric"})
    assert md.kinds["hb"] == "numeric"
    with pytest.raises(
        Exception,
        match=r"column 'hb': expected numbers .* found 2 value\(s\) that are not numbers, such "
        r"as 'haemolysed', 'see note'; make them missing",
    ):
        md.check(df)


def test_missing_markers_and_censored_values_in_numbers_read_as_text():
    values = [str(v) for v in np.linspace(8, 14, 40)] + ["n/a", "<5"]
    df = pd.DataFrame({"hb": values, "x": range(42)})
    md = Metadata.infer(df, overrides={"x": "numeric"})
    assert md.kinds["hb"] == "numeric" and md.columns["hb"].bounds == (5.0, 14.0)
    with pytest.warns(Warning, match=r"column 'hb': 1 censored value\(s\) such as '<5'"):
        md.check(df)


def test_repr_mentions_roles(clinical):
    md = Metadata.infer(clinical)
    assert "survival: os_months/os_status" in repr(md)
    assert "1 identifier(s) excluded" in repr(md)


@pytest.mark.parametrize(
    ("columns", "pair"),
    [
        ({"time": "t", "status": "e", "yearsSmoking": "t"}, ("time", "status")),
        ({"time": "t", "status": "e", "NodalStatus": "e"}, ("time", "status")),
        ({"os_months": "t", "os_status": "e", "pfs_months": "t"}, ("os_months", "os_status")),
        ({"survival_days": "t", "death": "e", "age_years": "t"}, ("survival_days", "death")),
        ({"yearsSmoking": "t", "status": "e"}, None),
    ],
)
def test_survival_pair_by_name(columns, pair):
    rng = np.random.default_rng(0)
    data = {
        name: rng.exponential(10, 60) if role == "t" else rng.integers(0, 2, 60)
        for name, role in columns.items()
    }
    assert Metadata.infer(pd.DataFrame(data)).survival == pair


def test_time_spans_are_numeric_days_not_identifiers():
    rng = np.random.default_rng(0)
    stay = pd.Series(pd.to_timedelta(rng.exponential(5, 40), unit="D").round("s"))
    md = Metadata.infer(pd.DataFrame({"stay": stay, "age": rng.integers(20, 90, 40)}))
    col = md.columns["stay"]
    assert col.kind == "numeric" and col.extra["text"] == {"as": "timedelta"}
    assert col.bounds == pytest.approx(
        (stay.min() / pd.Timedelta(days=1), stay.max() / pd.Timedelta(days=1))
    )
