"""Synthetic values a discrete column never holds in the real data are a fidelity failure:
counted, scored as mismatch and flagged with the column and a few values (issue #24)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedsynth.tabular.validation import SCORE_THRESHOLDS, validate
from fedsynth.tabular.validation.data import prepare
from fedsynth.tabular.validation.fidelity import marginal_statistics
from fedsynth.tabular.validation.worst_columns import WORST_COLUMN_CHECKS

N_ROWS = 300


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "age": rng.normal(60, 10, N_ROWS).round(1),
            "sex": rng.choice(["F", "M"], N_ROWS),
            "stage": rng.choice(["I", "II", "III"], N_ROWS),
            "hb": rng.normal(12, 2, N_ROWS).round(2),
        }
    )


def _copy(real: pd.DataFrame) -> pd.DataFrame:
    return real.sample(frac=1, random_state=1).reset_index(drop=True)


def _data(real, synthetic):
    return prepare(
        real,
        synthetic,
        holdout=None,
        metadata=None,
        target=None,
        group=None,
        max_rows=N_ROWS,
        n_attacks=10,
        seed=0,
    )


def _validate(real, synthetic):
    return validate(real, synthetic, families=("fidelity",), max_rows=N_ROWS)


def _flag(report):
    return next(f for f in report.flags if f.name == "unseen_categories")


def test_thresholds_are_documented_with_the_worst_column_checks():
    assert "unseen_categories" in WORST_COLUMN_CHECKS
    assert SCORE_THRESHOLDS["unseen_categories"] == (1.0, 0.99)


def test_a_column_made_of_an_unseen_category_scores_zero_and_fails(real):
    synthetic = _copy(real)
    synthetic["stage"] = "IV"
    report = _validate(real, synthetic)
    assert report.results["column_shapes"].columns["stage"] == pytest.approx(0.0)
    assert report.scores["unseen_categories"] == pytest.approx(0.0)
    flag = _flag(report)
    assert flag.status == "fail"
    assert "'stage'" in flag.rule and "'IV'" in flag.rule
    assert report.status == "fail"


def test_unseen_rows_are_counted_per_column(real):
    synthetic = _copy(real)
    synthetic.loc[:2, "sex"] = ["X", "X", "Y"]
    synthetic.loc[:29, "stage"] = "IV"
    report = _validate(real, synthetic)
    stats = marginal_statistics(_data(real, synthetic))
    assert stats["sex"]["unseen_share"] == pytest.approx(3 / N_ROWS)
    assert stats["sex"]["unseen_values"] == ["X", "Y"]
    assert stats["stage"]["unseen_share"] == pytest.approx(30 / N_ROWS)
    assert stats["age"].get("unseen_share") is None
    # The flag names the worst column: 10 % of its rows unseen fails.
    flag = _flag(report)
    assert flag.status == "fail" and "'stage'" in flag.rule


def test_a_few_unseen_rows_warn(real):
    synthetic = _copy(real)
    synthetic.loc[:1, "sex"] = "X"
    flag = _flag(_validate(real, synthetic))
    assert flag.status == "warn"
    assert "'sex'" in flag.rule and "'X'" in flag.rule


def test_no_unseen_category_passes_and_shows_no_real_row(real):
    report = _validate(real, _copy(real))
    flag = _flag(report)
    assert flag.status == "pass"
    assert "absent from the real data" not in flag.rule
