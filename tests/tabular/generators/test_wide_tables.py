"""Wide tables: gaussian_copula refuses a correlation that would not fit in memory, before any
work; bayesian_network warns before a long structure search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.exceptions import InvalidDataError
from fedsynth.tabular.generators import gaussian_copula


def _wide(columns: int, rows: int = 40, missing: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.normal(size=(rows, columns)), columns=[f"g{i}" for i in range(columns)])
    if missing:
        data.iloc[::5, :] = np.nan
    return data


def test_a_table_too_wide_for_the_limit_is_refused_naming_its_width(monkeypatch):
    # 60 columns need 60^2 x 8 x 5 = 144,000 bytes: above a limit of 100,000.
    monkeypatch.setattr(gaussian_copula, "CORRELATION_MEMORY_LIMIT", 100_000)
    with pytest.raises(InvalidDataError, match=r"60 columns give 60 latent dimensions.*GiB"):
        fedsynth.make("gaussian_copula", seed=0).fit(_wide(60))


def test_missing_values_count_as_latent_dimensions(monkeypatch):
    # 40 columns alone need 64,000 bytes; with a missing indicator each, 80 dimensions: 256,000.
    monkeypatch.setattr(gaussian_copula, "CORRELATION_MEMORY_LIMIT", 100_000)
    fedsynth.make("gaussian_copula", seed=0).fit(_wide(40))
    with pytest.raises(InvalidDataError, match="40 columns give 80 latent dimensions"):
        fedsynth.make("gaussian_copula", seed=0).fit(_wide(40, missing=True))


def test_the_private_fit_is_guarded_too(monkeypatch):
    monkeypatch.setattr(gaussian_copula, "CORRELATION_MEMORY_LIMIT", 100_000)
    gen = fedsynth.make("gaussian_copula", seed=0, dp={"epsilon": 1.0, "delta": 1e-5})
    with pytest.raises(InvalidDataError, match="CORRELATION_MEMORY_LIMIT"):
        gen.fit(_wide(60, rows=200))


def test_bayesian_network_warns_before_learning_the_structure_of_a_wide_table(monkeypatch):
    from fedsynth.tabular.generators import bayesian_network

    monkeypatch.setattr(bayesian_network, "WIDE_COLUMNS", 10)
    with pytest.warns(UserWarning, match="bayesian_network: 12 columns"):
        fedsynth.make("bayesian_network", seed=0).fit(_wide(12))
