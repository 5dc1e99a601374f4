"""TableEncoder: layout, kinds, missing values, errors, persistence and memory."""

import io
import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from fedsynth.exceptions import DataWarning, InvalidDataError, ModelFileError, NotFittedError
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.transforms import Span, TableEncoder
from fedsynth.tabular.transforms.dtypes import dtype_from_json, dtype_to_json


def clinical(n: int = 1_000, seed: int = 0) -> tuple[pd.DataFrame, Metadata]:
    rng = np.random.default_rng(seed)
    hb = np.where(rng.random(n) < 0.5, rng.normal(9, 1, n), rng.normal(14, 1, n))
    hb[rng.random(n) < 0.2] = np.nan
    df = pd.DataFrame(
        {
            "patient_id": [f"P{i:05d}" for i in range(n)],
            "age": rng.integers(20, 90, n),
            "hb": hb,
            "blasts": pd.array(
                np.where(rng.random(n) < 0.1, None, rng.integers(0, 30, n)), "Int64"
            ),
            "sex": pd.Categorical(rng.choice(["F", "M"], n)),
            "risk": pd.Series(rng.choice(["low", "int", "high", None], n), dtype=object),
            "TP53": rng.random(n) < 0.2,
            "os_months": rng.exponential(30, n),
            "os_status": rng.integers(0, 2, n),
            "site": rng.choice(["A", "B", "C"], n),
        }
    )
    metadata = Metadata(
        {
            "patient_id": "identifier",
            "age": "numeric",
            "hb": "numeric",
            "blasts": "numeric",
            "sex": "categorical",
            "risk": "categorical",
            "TP53": "binary",
            "os_months": "duration",
            "os_status": "event",
            "site": "site",
        }
    )
    return df, metadata


@pytest.fixture(scope="module")
def fitted():
    df, metadata = clinical()
    return df, TableEncoder().fit(df, metadata)


def spans_of(encoder: TableEncoder, column: str) -> dict[str, Span]:
    return {s.role: s for s in encoder.output_info_ if s.column == column}


def test_hyperparameters_are_stored_unchanged_and_shown():
    encoder = TableEncoder(max_modes=4, weight_threshold=0.01, seed=None)
    assert encoder.get_params() == {
        "max_modes": 4,
        "weight_threshold": 0.01,
        "max_fit_rows": 20_000,
        "mode_assignment": "argmax",
        "seed": None,
    }
    assert repr(encoder) == "TableEncoder(max_modes=4, weight_threshold=0.01, seed=None)"


@pytest.mark.parametrize(
    "params",
    [{"max_modes": 0}, {"weight_threshold": 1.0}, {"max_fit_rows": 2.5}, {"mode_assignment": "x"}],
)
def test_invalid_hyperparameters_fail_at_fit(params):
    df, metadata = clinical(50)
    encoder = TableEncoder(**params)  # stored unchanged, checked by fit
    with pytest.raises(ValueError, match=next(iter(params))):
        encoder.fit(df, metadata)


def test_use_before_fit_raises_not_fitted():
    encoder = TableEncoder()
    df, _ = clinical(10)
    for call in (
        lambda: encoder.transform(df),
        lambda: encoder.inverse_transform(np.zeros((1, 3))),
        encoder.get_state,
        encoder.discrete_spans,
        encoder.category_probabilities,
    ):
        with pytest.raises(NotFittedError, match="fit"):
            call()


def test_output_info_covers_the_matrix_without_gaps(fitted):
    df, encoder = fitted
    position = 0
    for span in encoder.output_info_:
        assert span.start == position and span.width >= 1
        assert span.activation == ("tanh" if span.role == "value" else "softmax")
        position = span.stop
    assert position == encoder.output_dim_
    matrix = encoder.transform(df)
    assert matrix.dtype == np.float32 and matrix.shape == (len(df), encoder.output_dim_)
    for span in encoder.output_info_:
        block = matrix[:, span.slice]
        if span.activation == "softmax":
            assert set(np.unique(block)) <= {0.0, 1.0}
            assert (block.sum(axis=1) == 1).all()
        else:
            assert np.abs(block).max() <= 1


def test_identifier_is_excluded_and_order_and_dtypes_restored(fitted):
    df, encoder = fitted
    assert "patient_id" not in {s.column for s in encoder.output_info_}
    out = encoder.inverse_transform(encoder.transform(df))
    expected = df.drop(columns="patient_id")
    assert list(out.columns) == encoder.columns_ == list(expected.columns)
    assert out.dtypes.equals(expected.dtypes)
    for column in ["sex", "risk", "TP53", "os_status", "site", "age"]:
        pd.testing.assert_series_equal(out[column], expected[column])


def test_multimodal_numeric_column_gets_several_modes(fitted):
    df, encoder = fitted
    spans = spans_of(encoder, "hb")
    assert set(spans) == {"value", "mode", "missing"}
    assert spans["mode"].width > 1
    out = encoder.inverse_transform(encoder.transform(df))
    present = df["hb"].notna()
    assert (out["hb"].isna() == ~present).all()
    close = np.isclose(out["hb"][present], df["hb"][present], rtol=1e-5)
    assert close.mean() > 0.99


def test_durations_are_modelled_on_the_log_scale(fitted):
    df, encoder = fitted
    duration = encoder.transforms_[encoder.columns_.index("os_months")]
    assert duration.log
    # Exponential times span several orders of magnitude; their logs stay below log1p(max).
    assert duration.normalizer.means.max() < np.log1p(df["os_months"].max())
    out = encoder.inverse_transform(encoder.transform(df))["os_months"]
    assert out.min() >= df["os_months"].min() and out.max() <= df["os_months"].max()
    assert np.isclose(out, df["os_months"], rtol=1e-4).mean() > 0.99


def test_whole_numbers_stay_whole_and_within_bounds(fitted):
    df, encoder = fitted
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, (500, encoder.output_dim_))
    out = encoder.inverse_transform(np.abs(noise), sample=True, rng=1)
    for column in ["age", "blasts"]:
        values = out[column].dropna().to_numpy(dtype=float)
        assert (values == np.round(values)).all()
        assert values.min() >= df[column].min() and values.max() <= df[column].max()
    assert out["age"].dtype == np.int64 and out["blasts"].dtype == "Int64"


def test_whole_numbers_rounded_to_zero_are_never_negative_zero():
    # A float column of whole numbers from 0: values decoded just below 0 round to -0.0, which
    # a CSV shows as "-0.0" unless the sign is cleared.
    df = pd.DataFrame({"years": np.r_[np.zeros(50), np.arange(1.0, 51.0), [np.nan] * 5]})
    encoder = TableEncoder().fit(df, Metadata({"years": {"kind": "numeric", "integer": True}}))
    matrix = encoder.transform(df)
    span = next(s for s in encoder.output_info_ if s.role == "value")
    matrix[:, span.start] -= 0.01  # every value pushed a little down
    out = encoder.inverse_transform(matrix)["years"].dropna().to_numpy()
    assert (out == 0).any() and not np.signbit(out).any()


def test_missing_values_get_an_indicator_or_a_category_and_only_when_present(fitted):
    _, encoder = fitted
    assert spans_of(encoder, "hb")["missing"].width == 2
    assert "missing" not in spans_of(encoder, "age")
    risk = spans_of(encoder, "risk")["category"]
    assert risk.width == 4  # high, int, low, missing
    assert encoder.category_slot("risk", None) == risk.stop - 1
    assert spans_of(encoder, "sex")["category"].width == 2


def test_missing_rate_is_learned_when_sampling(fitted):
    df, encoder = fitted
    matrix = encoder.transform(df)
    # Every row holds the fitted frequencies of each softmax span, as a generator that learned
    # only the marginals would output.
    frequencies = np.repeat(matrix.mean(axis=0, keepdims=True), 20_000, axis=0)
    out = encoder.inverse_transform(frequencies, sample=True, rng=0)
    for column in ["hb", "blasts", "risk"]:
        assert out[column].isna().mean() == pytest.approx(df[column].isna().mean(), abs=0.015)


def test_constant_and_all_missing_columns_are_restored_without_dimensions():
    df = pd.DataFrame(
        {
            "x": [1.5, 2.5, 3.5, 4.0],
            "dose": [5, 5, 5, 5],
            "unit": pd.Categorical(["mg"] * 4, categories=["g", "mg"]),
            "note": [None] * 4,
            "lab": [np.nan] * 4,
            "half": [7.0, np.nan, 7.0, np.nan],
        }
    )
    metadata = Metadata(
        {
            "x": "numeric",
            "dose": "numeric",
            "unit": "categorical",
            "note": "categorical",
            "lab": "numeric",
            "half": "numeric",
        }
    )
    encoder = TableEncoder().fit(df, metadata)
    assert {s.column for s in encoder.output_info_} == {"x", "half"}
    # One value and some missing: only the missing indicator carries information.
    assert [s.role for s in encoder.output_info_ if s.column == "half"] == ["missing"]
    out = encoder.inverse_transform(encoder.transform(df[["x", "half"]]))
    pd.testing.assert_frame_equal(out, df)
    sampled = encoder.inverse_transform(np.tile([1, 0, 0, 0, 0.5, 0.5], (3, 1)))
    assert sampled["dose"].tolist() == [5, 5, 5] and sampled["note"].tolist() == [None] * 3


def test_fit_does_not_mutate_its_input():
    df, metadata = clinical(200)
    before, metadata_before = df.copy(deep=True), metadata.copy()
    TableEncoder().fit_transform(df, metadata)
    pd.testing.assert_frame_equal(df, before)
    assert metadata == metadata_before


def test_metadata_may_describe_columns_the_table_does_not_hold():
    df, metadata = clinical(200)
    learned = df.drop(columns=["patient_id", "site"])  # as a generator passes learned columns
    encoder = TableEncoder().fit(learned, metadata)
    assert encoder.columns_ == list(learned.columns)


def test_transform_reports_every_problem_at_once(fitted):
    df, encoder = fitted
    bad = df.copy()
    bad.loc[0, "age"] = -1  # out of bounds: fine, it is clipped on decode
    bad["sex"] = bad["sex"].cat.add_categories("X")
    bad.loc[1, "sex"] = "X"
    bad["site"] = bad["site"].astype(object)
    bad.loc[2, "site"] = None
    bad["os_months"] = bad["os_months"].astype(object)
    bad.loc[3, "os_months"] = "soon"
    with pytest.raises(InvalidDataError) as caught:
        encoder.transform(bad)
    assert {p.column for p in caught.value.problems} == {"sex", "site", "os_months"}
    assert "'X'" in str(caught.value)
    with pytest.raises(InvalidDataError, match="absent"):
        encoder.transform(df.drop(columns="hb"))
    with pytest.raises(InvalidDataError, match="shape"):
        encoder.inverse_transform(np.zeros((2, encoder.output_dim_ + 1)))
    diverged = np.zeros((2, encoder.output_dim_))
    diverged[1, spans_of(encoder, "hb")["value"].start] = np.nan
    with pytest.raises(InvalidDataError, match="'hb': 1 non-finite"):
        encoder.inverse_transform(diverged)


def test_metadata_is_inferred_when_omitted():
    df, _ = clinical(100)
    with pytest.warns(DataWarning, match="patient_id"):
        encoder = TableEncoder().fit(df.drop(columns=["os_months", "os_status"]))
    assert "patient_id" not in encoder.columns_
    assert encoder.metadata_.columns["TP53"].kind == "binary"


def test_fit_reports_every_column_it_cannot_encode():
    df = pd.DataFrame({"t": [1.0, -2.0, 3.0], "e": [1, 0, 1], "g": ["a", "b", "c"], "x": [1, 2, 3]})
    metadata = Metadata(
        {
            "t": "duration",
            "e": "event",
            "g": "numeric",
            "x": {"kind": "categorical", "categories": [1, 2]},
        }
    )
    with pytest.raises(InvalidDataError) as caught:
        TableEncoder().fit(df, metadata)
    assert {p.column for p in caught.value.problems} == {"t", "g", "x"}
    assert "negative" in str(caught.value) and "unseen category 3" in str(caught.value)
    with pytest.raises(InvalidDataError, match="not described"):
        TableEncoder().fit(df.assign(y=1), metadata)


def test_discrete_spans_and_conditional_vector_frequencies(fitted):
    df, encoder = fitted
    spans = encoder.discrete_spans()
    assert [s.column for s in spans] == ["sex", "risk", "TP53", "os_status", "site"]
    counts = encoder.category_counts_["risk"]
    assert counts.tolist() == [
        int((df["risk"] == "high").sum()),
        int((df["risk"] == "int").sum()),
        int((df["risk"] == "low").sum()),
        int(df["risk"].isna().sum()),
    ]
    plain = encoder.category_probabilities(log_frequency=False)["TP53"]
    assert plain == pytest.approx(np.bincount(df["TP53"]) / len(df))
    logged = encoder.category_probabilities()["TP53"]
    assert logged.sum() == pytest.approx(1) and logged[1] > plain[1]  # rare category boosted
    assert encoder.category_slot("TP53", True) == spans[2].start + 1
    assert encoder.category_slot("os_status", 1.0) == spans[3].start + 1
    with pytest.raises(InvalidDataError, match="expected one of"):
        encoder.category_slot("sex", "X")
    with pytest.raises(InvalidDataError, match="not an encoded discrete column"):
        encoder.category_slot("hb", 1.0)


def test_sampled_mode_assignment_is_reproducible():
    df, metadata = clinical(300)
    encoder = TableEncoder(mode_assignment="sample", seed=3).fit(df, metadata)
    first, second = encoder.transform(df), encoder.transform(df)
    np.testing.assert_array_equal(first, second)
    argmax = TableEncoder(seed=3).fit(df, metadata).transform(df)
    assert first.shape == argmax.shape and not np.array_equal(first, argmax)


def save_and_load(encoder: TableEncoder) -> TableEncoder:
    config, arrays = encoder.get_state()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as loaded:
        arrays = dict(loaded)
    return TableEncoder.from_state(json.loads(json.dumps(config)), arrays)


@pytest.mark.parametrize("mode_assignment", ["argmax", "sample"])
def test_state_round_trip_encodes_and_decodes_identically(mode_assignment):
    df, metadata = clinical(400)
    df["flag"] = pd.array([True, None, False, True] * 100, dtype="boolean")
    df["const"] = "x"
    df["empty"] = np.nan
    metadata = Metadata(
        {**metadata.columns, "flag": "binary", "const": "categorical", "empty": "numeric"}
    )
    encoder = TableEncoder(mode_assignment=mode_assignment).fit(df, metadata)
    copy = save_and_load(encoder)
    assert copy.get_params() == encoder.get_params()
    assert copy.output_info_ == encoder.output_info_
    assert copy.metadata_ == encoder.metadata_
    matrix = encoder.transform(df)
    np.testing.assert_array_equal(copy.transform(df), matrix)
    noisy = np.abs(np.random.default_rng(0).normal(size=matrix.shape)).astype(np.float32)
    for sample in (False, True):
        pd.testing.assert_frame_equal(
            copy.inverse_transform(noisy, sample=sample, rng=5),
            encoder.inverse_transform(noisy, sample=sample, rng=5),
        )


def test_state_from_something_else_is_refused(fitted):
    _, encoder = fitted
    config, arrays = encoder.get_state()
    with pytest.raises(ModelFileError):
        TableEncoder.from_state({"format": "other"}, arrays)
    with pytest.raises(ModelFileError, match="newer format"):
        TableEncoder.from_state({**config, "format_version": 99}, arrays)


@pytest.mark.parametrize(
    "dtype",
    [
        np.dtype("float64"),
        np.dtype("float32"),
        np.dtype("int64"),
        np.dtype("int16"),
        np.dtype("bool"),
        np.dtype("object"),
        pd.Int64Dtype(),
        pd.Float64Dtype(),
        pd.BooleanDtype(),
        pd.StringDtype(),
        pd.StringDtype("python", na_value=np.nan),
        pd.CategoricalDtype(["b", "a"], ordered=True),
        pd.CategoricalDtype([3, 1, 2]),
    ],
)
def test_dtypes_survive_json(dtype):
    restored = dtype_from_json(json.loads(json.dumps(dtype_to_json(dtype))))
    assert restored == dtype and type(restored) is type(dtype)
    if isinstance(dtype, pd.StringDtype):
        assert restored.na_value is dtype.na_value or np.isnan(restored.na_value)


def test_fit_holds_a_fraction_of_the_table_in_memory():
    # Measured on 200_000 x 20 mixed columns (62 MB), default max_fit_rows: fit peaks at
    # 19 MB traced; transform adds 24 MB of temporaries to its 115 MB float32 matrix.
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(25_000, 20)), columns=[f"x{i}" for i in range(20)])
    metadata = Metadata(dict.fromkeys(df.columns, "numeric"))
    encoder = TableEncoder(max_modes=3, max_fit_rows=500)
    tracemalloc.start()
    try:
        encoder.fit(df, metadata)
        _, fit_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        matrix = encoder.transform(df)
        _, transform_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    table = df.memory_usage().sum()
    # Columns are processed one at a time: the peak is a few copies of one column.
    assert fit_peak < 0.75 * table
    # Beyond its matrix, transform scores mode posteriors in chunks of rows.
    assert transform_peak < matrix.nbytes + table


def test_zero_rows_encode_and_decode(fitted):
    df, encoder = fitted
    assert encoder.transform(df.iloc[:0]).shape == (0, encoder.output_dim_)
    for sample in (False, True):
        out = encoder.inverse_transform(np.empty((0, encoder.output_dim_)), sample=sample)
        assert out.shape == (0, len(encoder.columns_))
        assert out.dtypes.equals(df.drop(columns="patient_id").dtypes)


def test_blocks_decode_as_their_stacked_matrix(fitted):
    df, encoder = fitted
    matrix = encoder.transform(df)
    # Perturbed so that argmax has work to do on every softmax span.
    matrix = matrix + np.random.default_rng(0).uniform(0, 0.4, matrix.shape).astype(matrix.dtype)
    blocks = (matrix[start : start + 300] for start in range(0, len(matrix), 300))
    pd.testing.assert_frame_equal(
        encoder.inverse_transform_blocks(blocks), encoder.inverse_transform(matrix)
    )
    # Draws come from one source through the blocks: seeded, they repeat.
    drawn = [
        encoder.inverse_transform_blocks(
            (matrix[start : start + 300] for start in range(0, len(matrix), 300)),
            sample=True,
            rng=np.random.default_rng(5),
        )
        for _ in range(2)
    ]
    pd.testing.assert_frame_equal(*drawn)
    assert list(drawn[0].index) == list(range(len(df)))
    empty = encoder.inverse_transform_blocks(iter([]))
    assert len(empty) == 0 and list(empty.columns) == encoder.columns_
    pd.testing.assert_series_equal(empty.dtypes, encoder.inverse_transform(matrix[:0]).dtypes)
    bad = matrix[:10].copy()
    bad[3, spans_of(encoder, "hb")["value"].start] = np.inf
    with pytest.raises(InvalidDataError, match="'hb': 1 non-finite"):
        encoder.inverse_transform_blocks([matrix[:10], bad])
