import numpy as np
import pandas as pd
import pytest

from fedsynth.exceptions import FedsynthError
from fedsynth.privacy import CopyGuard


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
    out = guard.enforce(synthetic.copy(), lambda k: next(draws).iloc[:k].reset_index(drop=True))
    assert not guard.copies(out).any()
    assert out.iloc[2].tolist() == [70, "M", 0]  # the common profile was kept


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
