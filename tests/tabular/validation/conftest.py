"""Small simulated cohorts, split into training, holdout and stand-in synthetic tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fedsynth


@pytest.fixture(scope="package")
def mds():
    """1,500 simulated MDS patients: (frame, ground truth)."""
    return fedsynth.datasets.mds_cohort(n=1500, sites=3, seed=1, return_truth=True)


@pytest.fixture(scope="package")
def split(mds):
    """Disjoint training (600), second real sample (600) and holdout (300) rows."""
    df = mds[0]
    order = np.random.default_rng(0).permutation(len(df))
    parts = (order[:600], order[600:1200], order[1200:])
    return tuple(df.iloc[p].reset_index(drop=True) for p in parts)


@pytest.fixture(scope="package")
def metadata(mds):
    return mds[1].metadata()


def shuffle_columns(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Each column permuted on its own: marginals kept, every relation between columns gone."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: df[c].to_numpy()[rng.permutation(len(df))] for c in df.columns}).astype(
        df.dtypes.to_dict()
    )


def independent_noise(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Values drawn uniformly over each column's range or categories, independently."""
    rng = np.random.default_rng(seed)
    out = {}
    for column in df.columns:
        values = df[column].dropna()
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > 2:
            out[column] = rng.uniform(values.min(), values.max(), size=len(df))
        else:
            out[column] = rng.choice(values.unique(), size=len(df))
    return pd.DataFrame(out)
