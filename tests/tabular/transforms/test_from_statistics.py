"""An encoder built from aggregate statistics (category counts, mixture modes), without rows."""

import json

import numpy as np
import pandas as pd
import pytest

from fedsynth.exceptions import MetadataError
from fedsynth.tabular.metadata import ColumnMetadata, Metadata
from fedsynth.tabular.transforms import (
    CategoryCounts,
    ModeNormalizer,
    NumericModes,
    TableEncoder,
    uses_log_scale,
)
from fedsynth.tabular.transforms.categorical import CategoricalColumn
from fedsynth.tabular.transforms.numeric import ContinuousColumn


def survival_table(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, Metadata]:
    """A survival pair, categories with missing values (category dtype, so that missing values
    are written one way only), whole numbers with and without missing values."""
    rng = np.random.default_rng(seed)
    hb = rng.normal(11, 2, n)
    hb[rng.random(n) < 0.2] = np.nan
    age = rng.integers(20, 90, n).astype(float)
    age[rng.random(n) < 0.1] = np.nan
    stage = rng.choice(np.array(["I", "II", "III", None], dtype=object), n)
    df = pd.DataFrame(
        {
            "age": pd.array(age, dtype="Int64"),
            "hb": hb,
            "lesions": rng.integers(0, 4, n),
            "stage": pd.Categorical(stage, categories=["I", "II", "III"]),
            "TP53": rng.random(n) < 0.2,
            "os_months": rng.exponential(30, n),
            "os_status": rng.integers(0, 2, n),
        }
    )
    metadata = Metadata.infer(df, duration="os_months", event="os_status").resolve(df)
    return df, metadata


def statistics_of(encoder: TableEncoder) -> dict:
    """The statistics each fitted transform was built from."""
    stats = {}
    for t in encoder.transforms_:
        if isinstance(t, CategoricalColumn):
            n = len(t.categories)
            stats[t.name] = CategoryCounts(t.counts[:n], t.counts[n] if t.has_missing else 0)
        else:
            stats[t.name] = NumericModes(t.normalizer, t.log, t.has_missing)
    return stats


def test_encoder_from_the_statistics_of_a_fitted_one_is_that_encoder():
    df, metadata = survival_table()
    fitted = TableEncoder(max_modes=6).fit(df, metadata)
    built = TableEncoder.from_statistics(
        fitted.metadata_, statistics_of(fitted), n_rows=len(df), max_modes=6
    )
    assert json.dumps(built.get_state()[0]) == json.dumps(fitted.get_state()[0])
    for key, array in fitted.get_state()[1].items():
        assert np.array_equal(built.get_state()[1][key], array), key
    matrix = fitted.transform(df)
    assert np.array_equal(built.transform(df), matrix)
    pd.testing.assert_frame_equal(built.inverse_transform(matrix), df)
    assert built.category_probabilities().keys() == {"stage", "TP53", "os_status"}


def test_the_duration_rule_is_one_rule():
    df, metadata = survival_table()
    fitted = TableEncoder().fit(df, metadata)
    duration = fitted.transforms_[fitted.columns_.index("os_months")]
    assert duration.log == uses_log_scale("duration", df["os_months"].nunique(), 10) is True
    # Few distinct durations are point masses on the input scale, in both paths.
    few = df.assign(os_months=df["os_months"].round(-2))
    assert not TableEncoder().fit(few, metadata).transforms_[5].log
    assert not uses_log_scale("duration", few["os_months"].nunique(), 10)


def test_category_counts_layout_and_metadata_dtype():
    col = ColumnMetadata("categorical", categories=["F", "M"], dtype="category")
    column = CategoricalColumn.from_counts("sex", col, CategoryCounts([7.4, 4.6], missing=2.5))
    assert column.counts.tolist() == [7, 5, 2]  # rounded, "missing" last
    assert column.has_missing and column.width == 3
    assert column.dtype == pd.CategoricalDtype(["F", "M"])
    plain = CategoricalColumn.from_counts(
        "flag", ColumnMetadata("binary", categories=[0, 1]), CategoryCounts([3, 9])
    )
    assert not plain.has_missing and plain.dtype == np.dtype(object)


def test_numeric_modes_take_bounds_dtype_and_whole_numbers_from_metadata():
    modes = NumericModes(ModeNormalizer([1.0, 3.0], [0.5, 0.5], [1, 1]), log=True, has_missing=True)
    col = ColumnMetadata("duration", bounds=(0.0, 50.0), dtype="Int64")
    column = ContinuousColumn.from_modes("os", col, modes)
    assert column.whole and column.log and column.bounds == (0.0, 50.0)
    assert [s.role for s in column.spans(0)] == ["value", "mode", "missing"]
    decoded = column.decode(np.array([[0.0, 1.0, 0.0, 1.0, 0.0]]), sample=False, rng=None)
    assert decoded.dtype == pd.Int64Dtype() and decoded[0] == round(np.expm1(1.0))


def test_statistics_that_do_not_fit_the_metadata_are_refused_naming_each_column():
    metadata = Metadata(
        {
            "id": "identifier",
            "sex": {"kind": "categorical", "categories": ["F", "M"]},
            "age": "numeric",  # no bounds
            "hb": {"kind": "numeric", "bounds": [0, 20]},
        }
    )
    modes = NumericModes(ModeNormalizer([1.0], [1.0], [1.0]), False, False)
    with pytest.raises(MetadataError) as caught:
        TableEncoder.from_statistics(
            metadata,
            {
                "id": CategoryCounts([1]),
                "sex": CategoryCounts([1, 2, 3]),
                "age": modes,
                "hb": CategoryCounts([4]),
                "weight": modes,
            },
            n_rows=10,
        )
    problems = {p.column: p.message for p in caught.value.problems}
    assert problems.keys() == {"id", "sex", "age", "hb", "weight"}
    assert "3 category count(s) for 2 categories" in problems["sex"]
    assert "bounds" in problems["age"]
    assert "'numeric'" in problems["hb"] and "'identifier'" in problems["id"]
    assert "not described" in problems["weight"]


def test_invalid_hyperparameters_are_refused():
    with pytest.raises(ValueError, match="max_modes"):
        TableEncoder.from_statistics(Metadata({}), {}, n_rows=0, max_modes=0)
