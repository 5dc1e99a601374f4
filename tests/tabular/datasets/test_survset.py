"""SurvSet's real datasets load offline as plain frames with metadata read from the prefixes."""

from __future__ import annotations

import socket
import warnings

import pandas as pd
import pytest
from SurvSet.data import SurvLoader

from fedsynth.datasets import list_survset, load_survset
from fedsynth.tabular.metadata import Metadata


def _raw(name: str) -> pd.DataFrame:
    """SurvSet's own frame, with its numpy.core pickle warning silenced as the loader does."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return SurvLoader().load_dataset(name)["df"]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a SurvSet loader tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize(
    ("name", "shape"), [("support2", (9105, 36)), ("flchain", (7874, 11)), ("GBSG2", (686, 10))]
)
def test_datasets_load_as_plain_frames(name, shape):
    df, metadata = load_survset(name, return_metadata=True)
    assert df.shape == shape
    assert list(df.columns[:2]) == ["time", "event"]
    raw = _raw(name)
    assert not set(df.columns) & (set(raw.columns) - {"time", "event"})  # prefixes and pid gone
    for column in df.columns:
        assert not (df[column].astype(str) == "missing").any(), column
    assert metadata.survival == ("time", "event")
    metadata.check(df)
    inferred = Metadata.infer(df)
    assert inferred.survival == ("time", "event")
    assert inferred.kinds == metadata.kinds


def test_missing_level_becomes_nan_and_factors_are_string_categories():
    raw = _raw("support2")
    df = load_survset("support2")
    assert df["dnr"].isna().sum() == (raw["fac_dnr"] == "missing").sum() > 0
    assert isinstance(df["dnr"].dtype, pd.CategoricalDtype)
    assert "missing" not in df["dnr"].cat.categories
    assert all(isinstance(level, str) for level in df["dzgroup"].cat.categories)
    # 0/1 factors are numbers, read as binary.
    assert set(df["diabetes"].dropna()) == {0, 1}
    assert Metadata.infer(df).columns["diabetes"].kind == "binary"


def test_duplicated_factor_columns_are_dropped():
    support2 = load_survset("support2")
    assert list(support2.columns).count("num_co") == 1
    assert pd.api.types.is_integer_dtype(support2["num_co"])
    flchain = load_survset("flchain")
    assert list(flchain.columns).count("sample_yr") == 1
    assert pd.api.types.is_integer_dtype(flchain["sample_yr"])


def test_names_are_case_insensitive_and_ids_can_be_kept():
    pd.testing.assert_frame_equal(load_survset("gbsg2"), load_survset("GBSG2"))
    df, metadata = load_survset("GBSG2", keep_id=True, return_metadata=True)
    assert df.columns[0] == "pid"
    assert metadata.identifiers == ["pid"]


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"unknown SurvSet dataset 'gbsg'.*'GBSG2'.*list_survset"):
        load_survset("gbsg")
    with pytest.raises(ValueError, match="list_survset"):
        load_survset("no_such_dataset_xyz")


def test_time_dependent_datasets_are_refused():
    with pytest.raises(ValueError, match="time-dependent"):
        load_survset("heart")


def test_competing_risks_load_as_an_event_with_two_causes():
    df, metadata = load_survset("follic", return_metadata=True)
    assert metadata.survival == ("time", "event")
    assert metadata.columns["event"].categories == [0, 1, 2]
    assert sorted(df["event"].unique()) == [0, 1, 2]


def test_list_survset():
    table = list_survset()
    assert list(table.columns) == ["name", "n_rows", "n_numeric", "n_factor", "time_dependent"]
    assert len(table) == len(SurvLoader().df_ds)
    row = table.set_index("name").loc["GBSG2"]
    assert (row["n_rows"], row["n_numeric"], row["n_factor"]) == (686, 5, 3)
    assert table.set_index("name").loc["heart", "time_dependent"]
