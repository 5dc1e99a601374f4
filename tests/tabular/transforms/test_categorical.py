"""Decoding of discrete columns: values and dtypes as a row-by-row cast would give them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.transforms import TableEncoder

N = 300
rng = np.random.default_rng(0)
WITH_GAPS = rng.random(N) < 0.2

COLUMNS = {
    "category": pd.Series(rng.choice(["low", "high", "mid"], N), dtype="category"),
    "ordered category with missing": pd.Series(
        pd.Categorical(
            np.where(WITH_GAPS, None, rng.choice(["I", "II", "III"], N)),
            categories=["I", "II", "III"],
            ordered=True,
        )
    ),
    "int": pd.Series(rng.integers(0, 2, N)),
    "bool": pd.Series(rng.random(N) < 0.3),
    "object with None": pd.Series(
        np.where(WITH_GAPS, None, rng.choice(["a", "b"], N)).astype(object)
    ),
    "string with NA": pd.Series(
        np.where(WITH_GAPS, None, rng.choice(["x", "y", "z"], N)), dtype="string"
    ),
    "nullable int": pd.Series(np.where(WITH_GAPS, None, rng.integers(1, 4, N)), dtype="Int64"),
}


def row_by_row(transform, slots: np.ndarray) -> pd.Series:
    """The decoding the fast path replaced: every row's label cast on its own."""
    from fedsynth.tabular.transforms.dtypes import MISSING_VALUES, labels_to_dtype

    table = np.empty(transform.width, dtype=object)
    table[: len(transform.categories)] = transform.categories
    if transform.has_missing:
        table[-1] = MISSING_VALUES[transform.missing_value or "nan"]
    return labels_to_dtype(table[slots], transform.dtype)


@pytest.mark.parametrize("name", list(COLUMNS))
def test_decoding_matches_a_row_by_row_cast(name):
    series = COLUMNS[name].rename("c")
    encoder = TableEncoder(seed=0).fit(series.to_frame(), Metadata({"c": "categorical"}))
    transform, _ = encoder._blocks()[0]
    # Every slot, the missing one included, in random order.
    slots = np.random.default_rng(1).integers(0, transform.width, 500)
    one_hot = np.eye(transform.width, dtype=np.float32)[slots]
    decoded = transform.decode(one_hot, sample=False, rng=None)
    pd.testing.assert_series_equal(decoded, row_by_row(transform, slots))
    assert decoded.dtype == series.dtype
    # And the whole table comes back as it was.
    back = encoder.inverse_transform(encoder.transform(series.to_frame()))
    pd.testing.assert_series_equal(back["c"], series, check_index=False)
