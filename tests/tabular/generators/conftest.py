"""Helpers shared by the generator tests: the VAEs' common tolerances on the simulated MDS
cohort (``test_tvae.py``, ``test_vae_bgm.py``) and public domains for the DP tests
(``test_dp_statistical.py``, ``test_dp_neural.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from scipy import stats

import fedsynth
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.privacy import declare_public

#: The tests' training: at most 200 epochs, which early stopping cuts to about 10 s here.
SHORT = {"epochs": 200}


def mds(n: int = 3000):
    """The simulated cohort, its metadata and its ground truth."""
    real, truth = fedsynth.datasets.mds_cohort(n=n, sites=3, seed=0, return_truth=True)
    return real, truth.metadata()


def km_gap(real: pd.DataFrame, other: pd.DataFrame, duration: str, event: str) -> float:
    """Mean absolute gap between two Kaplan-Meier curves on a grid up to the real 95th
    percentile of the durations."""
    grid = np.linspace(0, np.quantile(real[duration], 0.95), 100)

    def curve(df: pd.DataFrame) -> np.ndarray:
        km = KaplanMeierFitter().fit(df[duration].astype(float), df[event].astype(int))
        return km.survival_function_at_times(grid).to_numpy()

    return float(np.abs(curve(real) - curve(other)).mean())


def co_occurrence(df: pd.DataFrame, genes) -> float:
    """Share of rows with two or more of ``genes`` mutated."""
    return float((df[list(genes)].sum(axis=1) > 1).mean())


def independent_co_occurrence(df: pd.DataFrame, genes) -> float:
    """Share of rows with two or more of ``genes`` mutated if they were drawn independently at
    their frequencies in ``df`` (to first order: the sum over pairs of the products)."""
    p = df[list(genes)].mean().to_numpy()
    return float((p.sum() ** 2 - (p**2).sum()) / 2)


#: The VAEs decode each gene given the latent code and the genes drawn before it (the discrete
#: context): measured 0.0002-0.0015 of rows with two splicing hits (both VAEs, seeds 0 and 1),
#: where independent genes give 0.071 and the real cohort 0. Without the context, 0.033-0.047.
EXCLUSIVITY = 0.1


def nmar_table(n: int = 1000) -> pd.DataFrame:
    """A lab value missing mostly when a flag is 1 (80 %) and rarely otherwise (5 %)."""
    rng = np.random.default_rng(3)
    flag = (rng.random(n) < 0.3).astype(int)
    lab = np.round(rng.normal(100 - 20 * flag, 10), 1)
    lab[rng.random(n) < np.where(flag == 1, 0.8, 0.05)] = np.nan
    return pd.DataFrame({"flag": flag, "lab": lab, "age": rng.integers(40, 90, n)})


def check_missing_not_at_random(out: pd.DataFrame) -> None:
    """The lab of :func:`nmar_table` is missing for 80 % of flagged rows and 5 % of the others
    (27.5 % overall: what a missingness learnt apart from the flag would give both groups).
    Measured after 200 epochs: TVAE 64 % / 4 %, VAE-BGM 76 % / 3 %."""
    missing = out["lab"].isna()
    assert missing[out["flag"] == 1].mean() > 0.55
    assert missing[out["flag"] == 0].mean() < 0.1


def check_fidelity(
    real: pd.DataFrame, metadata, synthetic: pd.DataFrame, category_tvd: float = 0.05
) -> None:
    """The tolerances both VAEs meet on the MDS cohort after a short training."""
    # Survival pair: positive durations, 0/1 events, event rate within 3 points.
    duration, event = metadata.duration, metadata.event
    assert (synthetic[duration] > 0).all() and set(synthetic[event]) <= {0, 1}
    assert abs(synthetic[event].mean() - real[event].mean()) < 0.03
    # Mutation frequencies within 3 points (the genes run from 1 % to 25 %).
    genes = metadata.genomic_columns
    gaps = (synthetic[genes].mean() - real[genes].mean()).abs()
    assert gaps.max() < 0.03, gaps.sort_values().tail()
    # Numeric marginals: Kolmogorov-Smirnov distance under 0.1 (present values).
    for column in ["age", "hb", "plt", "anc", "bm_blasts", "ipssm_score", duration]:
        ks = stats.ks_2samp(real[column].dropna(), synthetic[column].dropna()).statistic
        assert ks < 0.1, (column, ks)
    # Categorical marginals: total variation distance under category_tvd.
    for column in ["site", "sex", "cyto_ipssr", "ipssm_risk"]:
        p = real[column].value_counts(normalize=True)
        q = synthetic[column].value_counts(normalize=True).reindex(p.index, fill_value=0)
        assert 0.5 * (p - q).abs().sum() < category_tvd, column
    # Missing values at their rates, within 2 points.
    for column in ["hb", "plt", "anc", "bm_blasts"]:
        assert abs(synthetic[column].isna().mean() - real[column].isna().mean()) < 0.02, column


def check_survival_curve(real: pd.DataFrame, metadata, synthetic: pd.DataFrame) -> None:
    """KM gap under 0.045 (measured 0.015-0.037 for both VAEs over seeds 0 to 5), a tolerance
    that a generator ignoring censoring (every duration an event, gap 0.157) fails by far."""
    duration, event = metadata.duration, metadata.event
    gap = km_gap(real, synthetic, duration, event)
    uncensored = real.assign(**{event: 1})
    assert gap < 0.045 < 3 * 0.045 < km_gap(real, uncensored, duration, event), gap


def public_metadata(table: pd.DataFrame) -> Metadata:
    """Every domain declared public (in a study these facts come from its data dictionary)."""
    metadata = Metadata.infer(table)
    columns = metadata.columns
    return declare_public(
        metadata,
        bounds={c: col.bounds for c, col in columns.items() if col.is_continuous},
        categories={c: col.categories for c, col in columns.items() if col.is_discrete},
    )
