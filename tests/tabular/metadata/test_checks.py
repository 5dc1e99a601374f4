"""Every bad input gets one clear error naming each column and what was expected."""

import re

import numpy as np
import pandas as pd
import pytest

from fedsynth.exceptions import DataWarning, InvalidDataError, MetadataError
from fedsynth.tabular.metadata import Metadata


def _problems(df, md=None):
    md = md or Metadata.infer(df)
    with pytest.raises(InvalidDataError) as info:
        md.check(df)
    return str(info.value)


def test_empty_table():
    with pytest.raises(InvalidDataError, match=r"the table is empty \(0 rows x 2 columns\)"):
        Metadata.infer(pd.DataFrame({"a": [], "b": []}))
    md = Metadata({"a": "numeric"})
    assert "the table is empty (0 rows)" in _problems(pd.DataFrame({"a": []}), md)


def test_not_a_dataframe():
    with pytest.raises(InvalidDataError, match="expected a pandas DataFrame, got list"):
        Metadata.infer([[1, 2]])


def test_all_missing_and_constant_columns_warn_and_are_kept(clinical):
    df = clinical.assign(lab=np.nan, centre_code="X")
    md = Metadata.infer(df)
    with pytest.warns(DataWarning) as record:
        md.check(df)
    messages = [str(w.message) for w in record]
    assert "column 'lab': entirely missing; kept as an all-missing column" in messages
    assert "column 'centre_code': constant (every value is 'X'); kept as a constant" in messages


def test_negative_and_missing_durations(clinical):
    df = clinical.copy()
    df.loc[[0, 1, 2], "os_months"] = [-3.0, -1.0, np.nan]
    message = _problems(df)
    assert "column 'os_months': 2 negative survival time(s) (e.g. -3); durations must be >= 0" in (
        message
    )
    assert "column 'os_months': 1 missing value(s) in a survival duration column" in message


def test_event_not_zero_one(clinical):
    df = clinical.copy()
    df["os_status"] = df["os_status"].map({0: 1, 1: 2})
    md = Metadata.infer(df, duration="os_months", event="os_status")
    message = _problems(df, md)
    assert "column 'os_status': unexpected value(s) 2 in an event column; expected only [0, 1]" in (
        message
    )


def test_text_in_a_numeric_column_is_named_with_the_fix(clinical):
    df = clinical.copy()
    df["hb"] = df["hb"].astype(object)
    df.loc[5, "hb"] = "low"
    md = Metadata.infer(clinical)
    message = _problems(df, md)
    assert (
        "column 'hb': expected numbers for a numeric column, found 1 value(s) that are not "
        "numbers, such as 'low'; make them missing or fix them, or declare the column "
        "categorical (overrides={'hb': 'categorical'})"
    ) in message


def test_unseen_category_against_declared_categories(clinical):
    md = Metadata.infer(clinical, overrides={"sex": {"kind": "categorical", "categories": ["F"]}})
    assert "column 'sex': unseen category 'M'; expected one of 'F'" in _problems(clinical, md)


def test_every_problem_is_reported_at_once(clinical):
    df = clinical.copy()
    md = Metadata.infer(df)
    df["os_months"] = -df["os_months"]
    df["os_status"] = 3
    df["TP53"] = df["TP53"] * 5
    df = df.drop(columns=["age"]).assign(extra=1)
    message = _problems(df, md)
    for expected in (
        "column 'os_months'",
        "column 'os_status'",
        "column 'TP53': unexpected value(s) 5 in a binary column",
        "column 'age': described by the metadata but absent from the table",
        "columns not described by the metadata: 'extra'",
    ):
        assert expected in message
    assert message.startswith("5 problem(s) with the data:")


def test_dates_are_numbers_and_refused_as_labels_with_advice():
    df = pd.DataFrame({"diagnosed": pd.date_range("2020-01-01", periods=30), "x": range(30)})
    Metadata({"diagnosed": "numeric", "x": "numeric"}).check(df)
    md = Metadata({"diagnosed": "categorical", "x": "numeric"})
    assert (
        "column 'diagnosed': date/time values cannot be categorical labels: they are modelled "
        "as numbers (days since 1970-01-01); declare the column numeric"
    ) in _problems(df, md)


def test_survival_pair_must_be_complete():
    with pytest.raises(MetadataError, match="a survival column needs its event column"):
        Metadata({"t": "duration", "x": "numeric"})


def test_only_identifiers_means_nothing_to_learn():
    df = pd.DataFrame({"patient_id": [f"p{i}" for i in range(30)], "k": 1})
    assert "nothing to learn" in _problems(df)


def test_one_row_says_more_rows_are_needed():
    df = pd.DataFrame({"age": [61], "sex": ["F"]})
    assert "the table has one row; at least 2 are needed" in _problems(df)


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (["a", "a"], r"the column name\(s\) \['a'\] repeat; rename them"),
        ([0, 1], r"column names must be text, got 0 \(int\), 1 \(int\)"),
        (
            pd.MultiIndex.from_tuples([("lab", "hb"), ("lab", "crp")]),
            r"column names must be text, got \('lab', 'hb'\) \(tuple\)",
        ),
    ],
)
def test_repeated_or_non_text_column_names_are_named(columns, message):
    df = pd.DataFrame(np.arange(8).reshape(4, 2), columns=columns)
    with pytest.raises(InvalidDataError, match=message):
        Metadata.infer(df)
    named = pd.DataFrame({"a": [1, 2], "b": [3, 4]})
    assert re.search(message, _problems(df, Metadata.infer(named)))
