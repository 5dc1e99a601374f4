"""A large ``sample(n)`` is drawn in parts and joined (``_parts.py``): same columns, dtypes,
conditions and copy guard as one draw, reproducible, each warning shown once."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.tabular.generators import _parts, base


@pytest.fixture(scope="module")
def real():
    rng = np.random.default_rng(0)
    n = 300
    return pd.DataFrame(
        {
            "age": np.round(rng.normal(60, 10, n), 1),
            "sex": pd.Categorical(rng.choice(["F", "M"], n)),
            "stage": rng.choice(["I", "II", "III"], n),
            "count": pd.array(rng.poisson(3, n), dtype="Int64"),
        }
    )


@pytest.fixture
def small_parts(monkeypatch):
    """Parts of 40 rows for a 4-column table."""
    monkeypatch.setattr(_parts, "MIN_PART_ROWS", 1)
    monkeypatch.setattr(_parts, "SAMPLE_PART_CELLS", 4 * 40)


@pytest.mark.parametrize("model", ["gaussian_copula", "bayesian_network"])
def test_parts_keep_columns_dtypes_and_reproducibility(real, small_parts, monkeypatch, model):
    gen = fedsynth.make(model, seed=0).fit(real)
    sizes: list[int] = []
    draw = gen._draw_part

    def spy(n, checked, rng):
        sizes.append(n)
        return draw(n, checked, rng)

    monkeypatch.setattr(gen, "_draw_part", spy)
    big = gen.sample(100, seed=1)
    assert sizes == [40, 40, 20]
    small = gen.sample(30, seed=1)
    assert list(big.columns) == list(small.columns) == list(real.columns)
    assert big.dtypes.equals(small.dtypes)
    assert big["sex"].cat.categories.tolist() == ["F", "M"]
    assert big.index.equals(pd.RangeIndex(100))
    pd.testing.assert_frame_equal(big, gen.sample(100, seed=1))
    # One random stream across the parts: the second part is not the first one again.
    assert not big.iloc[:20].reset_index(drop=True).equals(big.iloc[40:60].reset_index(drop=True))


def test_conditions_and_copy_guard_hold_in_every_part(real, small_parts):
    gen = fedsynth.make("bayesian_network", seed=0).fit(real)
    out = gen.sample(130, conditions={"sex": "F", "stage": "II"}, seed=2)
    assert len(out) == 130
    assert (out["sex"] == "F").all() and (out["stage"] == "II").all()
    assert not gen.guard_.copies(gen._model_form(out, len(out))).any()


def test_part_rows_from_the_cell_budget():
    assert _parts.part_rows(50) == _parts.SAMPLE_PART_CELLS // 50
    assert _parts.part_rows(10**9) == _parts.MIN_PART_ROWS
    assert _parts.part_rows(0) == _parts.SAMPLE_PART_CELLS


def test_a_warning_of_every_part_is_shown_once(monkeypatch):
    monkeypatch.setattr(_parts, "MIN_PART_ROWS", 1)
    monkeypatch.setattr(_parts, "SAMPLE_PART_CELLS", 10)

    def draw(k):
        warnings.warn(f"{k} rows redrawn", UserWarning, stacklevel=1)
        return pd.DataFrame({"x": np.arange(k)})

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _parts.draw_in_parts(draw, 35, columns=1)
    assert out["x"].tolist() == list(range(10)) * 3 + list(range(5))
    assert [str(w.message) for w in caught] == ["10 rows redrawn"]


def test_the_memory_refusal_still_comes_first(real, small_parts, monkeypatch):
    gen = fedsynth.make("gaussian_copula", seed=0).fit(real)
    monkeypatch.setattr(base, "SAMPLE_MEMORY_LIMIT", 100 * 4 * 8)
    with pytest.raises(base.SampleTooLargeError, match="sample_blocks"):
        gen.sample(101)


def test_a_large_block_of_sample_blocks_is_drawn_in_parts(real, small_parts, monkeypatch):
    gen = fedsynth.make("gaussian_copula", seed=0).fit(real)
    sizes: list[int] = []
    draw = gen._draw_part

    def spy(n, checked, rng):
        sizes.append(n)
        return draw(n, checked, rng)

    monkeypatch.setattr(gen, "_draw_part", spy)
    blocks = list(gen.sample_blocks(130, block_size=100, seed=1))
    assert [len(b) for b in blocks] == [100, 30]
    assert sizes == [40, 40, 20, 30]
