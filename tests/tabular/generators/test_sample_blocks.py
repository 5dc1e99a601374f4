"""Sampling in blocks (``sample_blocks``) and the up-front refusal of outputs too large for
``sample``."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.exceptions import ConditionError, FedsynthError
from fedsynth.tabular.generators import base
from fedsynth.tabular.generators.base import SampleTooLargeError


@pytest.fixture(scope="module")
def copula():
    rng = np.random.default_rng(0)
    n = 300
    real = pd.DataFrame(
        {
            "age": np.round(rng.normal(60, 10, n), 1),
            "sex": rng.choice(["F", "M"], n),
            "stage": rng.choice(["I", "II", "III"], n),
        }
    )
    return fedsynth.make("gaussian_copula", seed=0).fit(real)


@pytest.mark.parametrize(("n", "block_size"), [(0, 7), (1, 7), (20, 7), (21, 7), (1000, 1000)])
def test_blocks_add_up_to_exactly_n(copula, n, block_size):
    blocks = list(copula.sample_blocks(n, block_size=block_size, seed=1))
    full, rest = divmod(n, block_size)
    assert [len(b) for b in blocks] == [block_size] * full + ([rest] if rest else [])
    assert all(list(b.columns) == copula.columns_ for b in blocks)


def test_same_seed_same_rows_other_seed_other_rows(copula):
    first = pd.concat(copula.sample_blocks(250, block_size=100, seed=5), ignore_index=True)
    again = pd.concat(copula.sample_blocks(250, block_size=100, seed=5), ignore_index=True)
    other = pd.concat(copula.sample_blocks(250, block_size=100, seed=6), ignore_index=True)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


def test_each_block_is_sample_with_its_own_seed(copula):
    # The documented scheme: block i is sample(k, seed=s_i), s_i drawn in turn from seed.
    seeder = np.random.default_rng(3)
    expected = [copula.sample(40, seed=int(seeder.integers(2**62))) for _ in range(3)]
    for got, want in zip(copula.sample_blocks(120, block_size=40, seed=3), expected, strict=True):
        pd.testing.assert_frame_equal(got, want)


def test_conditions_hold_in_every_block(copula):
    blocks = list(copula.sample_blocks(95, block_size=30, conditions={"sex": "F"}, seed=0))
    assert len(blocks) == 4
    assert all((b["sex"] == "F").all() for b in blocks)


def test_bad_input_fails_at_the_call(copula):
    with pytest.raises(ValueError, match="block_size"):
        copula.sample_blocks(10, block_size=0)
    with pytest.raises(ValueError, match="non-negative"):
        copula.sample_blocks(-1)
    with pytest.raises(ConditionError):
        copula.sample_blocks(10, conditions={"sex": "X"})


def test_sample_refuses_a_billion_rows_without_allocating(copula):
    tracemalloc.start()
    try:
        with pytest.raises(SampleTooLargeError) as info:
            copula.sample(10**9)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "1,000,000,000" in message  # n
    assert "22.4 GiB" in message  # 10**9 rows x 3 columns x 8 bytes
    assert "2.0 GiB" in message  # the limit
    assert "sample_blocks" in message and "fedsynth sample" in message
    assert isinstance(info.value, FedsynthError) and isinstance(info.value, ValueError)
    assert peak < 10 * 1024**2


def test_the_limit_can_be_overridden(copula, monkeypatch):
    monkeypatch.setattr(base, "SAMPLE_MEMORY_LIMIT", 100 * 3 * 8)
    assert len(copula.sample(100, seed=0)) == 100
    with pytest.raises(SampleTooLargeError, match="sample\\(101\\)"):
        copula.sample(101, seed=0)
    assert sum(len(b) for b in copula.sample_blocks(1000, block_size=100, seed=0)) == 1000
