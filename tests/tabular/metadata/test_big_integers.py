"""Integers beyond float64's exact range come back exactly (as codes) or are refused: never
silently rounded, wrapped or collapsed (issue #24, class 1)."""

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.exceptions import InvalidDataError
from fedsynth.tabular.metadata import Metadata

GENERATORS = ["gaussian_copula", "bayesian_network"]
N_ROWS = 120


def _codes(dtype: str) -> pd.Series:
    """Four distinct codes beyond 2**53 whose neighbours share one float64."""
    if dtype == "uint64":
        base = [2**64 - 1, 2**64 - 2, 2**63 + 1, 2**53 + 1]
    elif dtype == "object":  # Python ints beyond int64
        base = [2**70 + 1, 2**70 + 2, -(2**65) - 3, 2**53 + 1]
    else:
        base = [2**62 + 1, 2**62 + 2, -(2**63), 2**63 - 1]
    values = [base[i % len(base)] for i in range(N_ROWS)]
    return pd.Series(values, dtype=dtype if dtype != "object" else object)


def _table(codes: pd.Series) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"code": codes, "age": rng.normal(60, 10, len(codes)).round(2)})


@pytest.mark.parametrize("dtype", ["int64", "uint64", "object"])
def test_few_big_integers_are_inferred_as_exact_categories(dtype):
    codes = _codes(dtype)
    col = Metadata.infer(_table(codes)).columns["code"]
    assert col.kind == "categorical"
    assert col.categories == sorted({int(v) for v in codes})


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("dtype", ["int64", "uint64", "object"])
def test_few_big_integers_round_trip_exactly(name, dtype):
    codes = _codes(dtype)
    gen = fedsynth.make(name, seed=0)
    gen.fit(_table(codes))
    out = gen.sample(200)["code"]
    assert str(out.dtype) == str(codes.dtype)
    assert {int(v) for v in out} <= {int(v) for v in codes}
    assert len({int(v) for v in out}) > 1


@pytest.mark.parametrize("dtype", ["int64", "uint64", "object", "Int64"])
def test_many_big_integers_are_refused_with_the_reason(dtype):
    # 60 distinct values, repeated so that the column is no identifier.
    values = [2**60 + 7 * (i % 60) for i in range(N_ROWS)]
    if dtype == "uint64":
        values = [2**63 + v for v in values]
    codes = pd.Series(values, dtype=object if dtype == "object" else dtype)
    with pytest.raises(InvalidDataError) as info:
        fedsynth.make("gaussian_copula", seed=0).fit(_table(codes))
    message = str(info.value)
    assert "code" in message
    assert str(max(int(v) for v in values)) in message
    assert "float64 holds integers exactly only up to 2**53" in message
    assert "declare the column categorical if it is a code, or rescale it" in message


def test_declared_categorical_big_integers_are_kept_exactly():
    values = [2**60 + 7 * (i % 60) for i in range(N_ROWS)]
    table = _table(pd.Series(values, dtype="int64"))
    metadata = Metadata.infer(table, overrides={"code": "categorical"})
    gen = fedsynth.make("bayesian_network", seed=0).fit(table, metadata=metadata)
    assert set(gen.sample(200)["code"].tolist()) <= set(values)


def test_integers_up_to_2_53_stay_numeric():
    values = [2**53 - (i % 60) for i in range(N_ROWS)]
    table = _table(pd.Series(values, dtype="int64"))
    assert Metadata.infer(table).columns["code"].kind == "numeric"
    Metadata.infer(table).check(table)
