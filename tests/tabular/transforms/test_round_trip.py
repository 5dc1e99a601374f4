"""Property: random mixed clinical tables survive transform -> inverse_transform."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.transforms import TableEncoder

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SAMPLED_ROWS = 4_000


@st.composite
def tables(draw) -> tuple[pd.DataFrame, Metadata]:
    """A small table of every kind, with missing values where the kind allows them."""
    n = draw(st.integers(2, 25))

    def values(elements):
        return draw(st.lists(elements, min_size=n, max_size=n))

    def with_holes(column, missing=None):
        if not draw(st.booleans()):
            return column
        holes = values(st.booleans())
        return [missing if hole else v for v, hole in zip(column, holes, strict=True)]

    floats = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)
    measurement = with_holes(values(floats))
    count = with_holes(values(st.integers(-500, 500)))
    count_dtype = "Int64" if None in count or draw(st.booleans()) else "int64"
    grade = with_holes(
        values(st.sampled_from(["a", "b", "c"])), draw(st.sampled_from([None, np.nan]))
    )
    grade_dtype = draw(
        st.sampled_from(["object", pd.CategoricalDtype(["c", "b", "a", "unused"], ordered=True)])
    )
    flag_is_bool = draw(st.booleans())
    flag = values(st.booleans()) if flag_is_bool else with_holes(values(st.sampled_from([0, 1])))
    df = pd.DataFrame(
        {
            "pid": [f"p{i}" for i in range(n)],
            "measurement": pd.Series(measurement, dtype="float64"),
            "count": pd.Series(count, dtype=count_dtype),
            "grade": pd.Series(grade, dtype=object).astype(grade_dtype),
            "flag": pd.Series(flag, dtype=bool if flag_is_bool else "float64"),
            "time": values(st.floats(0, 1e4, allow_subnormal=False)),
            "status": values(st.sampled_from([0, 1])),
            "site": values(st.sampled_from(["A", "B", "C"])),
        }
    )
    metadata = Metadata(
        {
            "pid": "identifier",
            "measurement": "numeric",
            "count": "numeric",
            "grade": "categorical",
            "flag": {"kind": "binary", "categories": [False, True] if flag_is_bool else [0, 1]},
            "time": "duration",
            "status": "event",
            "site": "site",
        }
    )
    return df, metadata


CONTINUOUS = ["measurement", "count", "time"]
DISCRETE = ["grade", "flag", "status", "site"]


@SETTINGS
@given(table=tables(), max_modes=st.sampled_from([3, 10]))
def test_deterministic_round_trip(table, max_modes):
    df, metadata = table
    encoder = TableEncoder(max_modes=max_modes).fit(df, metadata)
    matrix = encoder.transform(df)
    assert matrix.dtype == np.float32 and matrix.shape == (len(df), encoder.output_dim_)
    out = encoder.inverse_transform(matrix)
    expected = df.drop(columns="pid")
    assert list(out.columns) == list(expected.columns)
    assert out.dtypes.equals(expected.dtypes)
    for column in DISCRETE:
        categories = encoder.metadata_.columns[column].categories
        assert set(expected[column].dropna()) <= set(categories)
        pd.testing.assert_series_equal(out[column], expected[column])
        # Missing values come back as the input wrote them (None or NaN).
        assert list(map(type, out[column])) == list(map(type, expected[column]))
    for column in CONTINUOUS:
        assert (out[column].isna() == expected[column].isna()).all()
        present = out[column].dropna().to_numpy(dtype=np.float64)
        if len(present):
            low, high = encoder.metadata_.columns[column].bounds
            assert ((present >= low) & (present <= high)).all()
        if column == "count":
            assert (present == np.round(present)).all()
        if expected[column].nunique() <= max_modes:  # point masses: exact
            pd.testing.assert_series_equal(out[column], expected[column])
    # A one-hot matrix leaves nothing to chance: sampling decodes it the same way.
    pd.testing.assert_frame_equal(encoder.inverse_transform(matrix, sample=True, rng=0), out)


@SETTINGS
@given(table=tables())
def test_sampling_reproduces_the_missing_rate(table):
    df, metadata = table
    encoder = TableEncoder(max_modes=3).fit(df, metadata)
    # Every softmax span holds the fitted frequencies, as from a generator that learned the
    # marginals; decoding draws the indicators from them.
    frequencies = encoder.transform(df).mean(axis=0, keepdims=True)
    out = encoder.inverse_transform(
        np.repeat(frequencies, SAMPLED_ROWS, axis=0), sample=True, rng=np.random.default_rng(0)
    )
    assert out.dtypes.equals(df.drop(columns="pid").dtypes)
    for column in out.columns:
        rate = df[column].isna().mean()
        tolerance = 5 * np.sqrt(rate * (1 - rate) / SAMPLED_ROWS) + 1e-12
        assert abs(out[column].isna().mean() - rate) <= tolerance
        if column in DISCRETE:
            assert set(out[column].dropna()) <= set(encoder.metadata_.columns[column].categories)
        elif out[column].notna().any():
            low, high = encoder.metadata_.columns[column].bounds
            present = out[column].dropna().to_numpy(dtype=np.float64)
            assert ((present >= low) & (present <= high)).all()
