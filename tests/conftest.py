"""Shared fixtures: small clinical tables with known structure."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")

# Hypothesis fails an example that runs longer than 200 ms: a timed test, which a loaded, shared
# machine would make flaky. Speed is measured in benchmarks, not in tests.
settings.register_profile("fedsynth", deadline=None)
settings.load_profile("fedsynth")


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test, restored after: image models are tiny here and two
    cores are shared, so more threads only wait on each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def clinical() -> pd.DataFrame:
    """400 patients: identifier, numerics (one with missing values), a category, two genes,
    a survival pair and a site."""
    rng = np.random.default_rng(42)
    n = 400
    severity = rng.normal(size=n)
    tp53 = (rng.random(n) < 0.08 + 0.25 * (severity > 1)).astype(int)
    sf3b1 = ((rng.random(n) < 0.25) & (tp53 == 0)).astype(int)
    hb = np.round(10 - 0.8 * severity + rng.normal(0, 1, n), 1)
    hb[rng.random(n) < 0.05] = np.nan
    time = np.round(rng.exponential(30 * np.exp(-0.4 * severity - 0.7 * tp53)) + 0.1, 1)
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:04d}" for i in range(n)],
            "age": np.clip(np.round(72 + 6 * severity + rng.normal(0, 6, n)), 18, 95).astype(int),
            "sex": rng.choice(["F", "M"], size=n, p=[0.4, 0.6]),
            "hb": hb,
            "TP53": tp53,
            "SF3B1": sf3b1,
            "os_months": time,
            "os_status": (rng.random(n) < 0.65).astype(int),
            "site": rng.choice(["site_1", "site_2", "site_3"], size=n),
        }
    )
