import warnings

import numpy as np
import pandas as pd
import pytest

from fedsynth.exceptions import DataWarning, FedsynthError
from fedsynth.tabular.privacy import CopyGuard


@pytest.fixture
def training():
    # one common profile (6 patients) and three unique patients
    return pd.DataFrame(
        {
            "age": [70, 70, 70, 70, 70, 70, 55, 81, 64],
            "sex": ["M"] * 6 + ["F", "M", "F"],
            "TP53": [0] * 6 + [1, 0, 1],
        }
    )


def test_unique_rows_are_refused_common_profiles_allowed(training):
    guard = CopyGuard.from_training(training, ["age", "sex", "TP53"], ["age"])
    synthetic = pd.DataFrame(
        {"age": [70.0, 55.0, 81.0, 66.0], "sex": ["M", "F", "M", "F"], "TP53": [0, 1, 0, 1]}
    )
    # dtypes differ from training (float age): equal values still match
    assert guard.copies(synthetic).tolist() == [False, True, True, False]


def test_enforce_redraws_until_no_copy(training):
    guard = CopyGuard.from_training(training, ["age", "sex", "TP53"], ["age"])
    synthetic = training.iloc[[6, 7, 0]].reset_index(drop=True)
    draws = iter([training.iloc[[8, 6]], pd.DataFrame({"age": [40, 41], "sex": "F", "TP53": 0})])
    # Two rows of three were copies: a distortion worth a warning.
    with pytest.warns(DataWarning, match="67% of the synthetic rows equalled a training"):
        out = guard.enforce(synthetic.copy(), lambda k: next(draws).iloc[:k].reset_index(drop=True))
    assert not guard.copies(out).any()
    assert out.iloc[2].tolist() == [70, "M", 0]  # the common profile was kept


def test_enforce_is_silent_when_few_rows_are_redrawn(training):
    guard = CopyGuard.from_training(training, ["age", "sex", "TP53"], ["age"])
    fresh = pd.DataFrame({"age": range(20, 40), "sex": "F", "TP53": 0})
    synthetic = pd.concat([training.iloc[[6]], fresh.iloc[:19]], ignore_index=True)  # 1 in 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = guard.enforce(synthetic, lambda k: fresh.iloc[19:].iloc[:k].reset_index(drop=True))
    assert not guard.copies(out).any()


def test_enforce_gives_up_with_a_clear_message(training):
    guard = CopyGuard.from_training(training, ["age", "sex", "TP53"], ["age"])
    unique = training.iloc[[6]].reset_index(drop=True)
    with pytest.raises(FedsynthError, match="still equal training rows after 3 redraws"):
        guard.enforce(unique.copy(), lambda k: unique.iloc[:k].copy(), max_rounds=3)


def test_fingerprints_are_keyed(training):
    a = CopyGuard.from_training(training, ["age", "sex", "TP53"], ["age"])
    b = CopyGuard.from_training(training, ["age", "sex", "TP53"], ["age"])
    assert a.key != b.key
    assert not np.array_equal(np.sort(a.fingerprints), np.sort(b.fingerprints))


def _canonical_row_by_row(frame, columns, numeric):
    """The representation the fingerprints of saved models were made with (parsed per row)."""
    out = {}
    for column in columns:
        values = frame[column]
        if column in numeric or pd.api.types.is_bool_dtype(values):
            out[column] = pd.to_numeric(values, errors="coerce").astype("float64")
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.notna().sum() == values.notna().sum():
            out[column] = numbers.astype("float64")
        else:
            out[column] = values.astype(object).where(values.notna(), "\x00missing").astype(str)
    return pd.DataFrame(out)


def test_fingerprints_are_those_of_saved_models():
    # Labels are now parsed once per distinct value; every saved model's fingerprints must
    # still match, whatever the dtypes: text, numbers as text, flags, categories, missing.
    from fedsynth.tabular.privacy.guards import _canonical, row_fingerprints

    frame = pd.DataFrame(
        {
            "sex": ["F", "M", None, "F", "M", "F"],
            "flag": pd.array([0, 1, 1, None, 0, 1], dtype="Int64"),
            "flag_text": ["0", "1", "1", "0", None, "1"],
            "mixed": ["1", "a", 2.5, None, "a", "1"],
            "grade": pd.Categorical(["a", "b", "a", None, "c", "b"]),
            "coded": pd.Categorical([1, 2, 1, 2, None, 1]),
            "none": [None] * 6,
            "age": [70.0, 65.5, np.nan, 80.0, 70.0, 55.0],
            "alive": [True, False, True, True, False, True],
        }
    )
    columns, numeric = list(frame.columns), ["age"]
    expected = _canonical_row_by_row(frame, columns, numeric)
    hashed = pd.util.hash_pandas_object(expected, index=False, hash_key="0123456789abcdef")
    assert np.array_equal(
        row_fingerprints(frame, columns, numeric, "0123456789abcdef"), hashed.to_numpy(np.uint64)
    )
    pd.testing.assert_frame_equal(_canonical(frame, columns, numeric), expected, check_dtype=False)
