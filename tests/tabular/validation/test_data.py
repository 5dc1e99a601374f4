"""The inputs of a validation: a synthetic or holdout table that cannot be scored is refused
naming the table and the column, before any metric runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.exceptions import InvalidDataError


@pytest.fixture
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    real = pd.DataFrame({"age": rng.integers(40, 90, 60), "hb": rng.normal(11, 1.5, 60)})
    return real, real.sample(frac=1.0, random_state=1).reset_index(drop=True)


def test_repeated_synthetic_column_names_are_named(tables):
    real, synthetic = tables
    repeated = pd.concat([synthetic, synthetic[["age"]]], axis=1)
    with pytest.raises(InvalidDataError, match=r"synthetic table: the column name\(s\) \['age'\]"):
        fedsynth.validate(real, repeated, families=["fidelity"], max_rows=60, n_attacks=10)


def test_infinite_synthetic_values_are_named(tables):
    real, synthetic = tables
    synthetic.loc[[3, 7], "hb"] = np.inf
    with pytest.raises(
        InvalidDataError, match=r"column 'hb': synthetic table: 2 infinite value\(s\)"
    ):
        fedsynth.validate(real, synthetic, families=["fidelity"], max_rows=60, n_attacks=10)
