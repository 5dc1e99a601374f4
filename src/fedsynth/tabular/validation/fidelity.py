"""Fidelity: does each column, and each pair of columns, look like the real one?

Marginals (one column at a time): KS statistic and Wasserstein distance for numbers, total
variation and Hellinger distance for labels, KL divergence on shared bins for both, Levene's test
of equal variances, missing-rate difference. Pairs: Pearson, Spearman and Kendall correlations of
numeric columns, Cramér's V of discrete pairs, and one mixed association matrix over every pair
(Spearman for numeric and two-level columns, Cramér's V for label pairs, the correlation ratio
for a number with a label, computed in :mod:`fedsynth.tabular.validation.associations`) whose
agreement is the pairwise score.
"""

from __future__ import annotations

import warnings
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from fedsynth.core.metrics import Metric, Outcome, Skip, mean_or_none
from fedsynth.tabular.validation.associations import (
    PAIR_WEIGHT_FLOOR,
    association_matrices,
    association_matrix,
    cramers_v,
    label_codes,
    pair_agreement,
)
from fedsynth.tabular.validation.data import ValidationData

# The pairwise computations live in ``associations``; they stay importable from here.
__all__ = [
    "HISTOGRAM_BINS",
    "KL_PSEUDO_COUNT",
    "MAX_PLOTTED_CATEGORIES",
    "METRICS",
    "PAIR_WEIGHT_FLOOR",
    "ColumnShapes",
    "CramersVDifference",
    "Hellinger",
    "KLDivergence",
    "KSStatistic",
    "KendallDifference",
    "LeveneVariance",
    "MissingRate",
    "PairwiseAssociation",
    "PearsonDifference",
    "SpearmanDifference",
    "TotalVariation",
    "Wasserstein",
    "association_matrices",
    "association_matrix",
    "clinical_fidelity_parts",
    "column_shape_similarity",
    "marginal_statistics",
    "missing_rate_differences",
    "pair_agreement",
]

#: Bins of the numeric histograms (KL divergence and the report's plots).
HISTOGRAM_BINS = 20
#: Pseudo-count added to every bin or category before a KL divergence (no division by zero).
KL_PSEUDO_COUNT = 0.5
#: Categories shown per discrete column in the report's plots (the most frequent).
MAX_PLOTTED_CATEGORIES = 20


# ---------------------------------------------------------------------- shared computations
#: Unseen synthetic values named per column (most frequent first).
MAX_UNSEEN_SHOWN = 3


def marginal_statistics(data: ValidationData) -> dict[str, dict]:
    """Per-column statistics of every marginal metric (computed once per validation)."""
    return data.cached("marginals", lambda: _marginal_statistics(data))


def _marginal_statistics(data: ValidationData) -> dict[str, dict]:
    out = {}
    for column in data.numeric:
        out[column] = _numeric_statistics(data.real[column], data.synthetic[column])
    for column in data.discrete:
        out[column] = _discrete_statistics(
            data.real[column], data.synthetic[column], data.categories(column)
        )
    for column in data.columns:
        out[column]["missing_real"] = float(data.real[column].isna().mean())
        out[column]["missing_synthetic"] = float(data.synthetic[column].isna().mean())
    return out


def _numeric_statistics(real: pd.Series, synthetic: pd.Series) -> dict:
    r, s = real.dropna().to_numpy(), synthetic.dropna().to_numpy()
    if len(r) == 0 or len(s) == 0:
        return {"kind": "numeric", "empty": True}
    low, high = float(r.min()), float(r.max())
    span = high - low if high > low else 1.0
    edges = np.linspace(low, high if high > low else low + 1.0, HISTOGRAM_BINS + 1)
    # Synthetic values beyond the real range count in the outer bins: the bins stay shared.
    real_counts = np.histogram(np.clip(r, edges[0], edges[-1]), bins=edges)[0]
    syn_counts = np.histogram(np.clip(s, edges[0], edges[-1]), bins=edges)[0]
    if np.var(r) == 0 and np.var(s) == 0:
        levene_p = 1.0 if r[0] == s[0] else 0.0
    else:
        enough = min(len(r), len(s)) > 1
        levene_p = float(stats.levene(r, s, center="median").pvalue) if enough else 1.0
    return {
        "kind": "numeric",
        "ks": float(stats.ks_2samp(r, s).statistic),
        "wasserstein": float(stats.wasserstein_distance(r, s) / span),
        "kl": _kl(real_counts, syn_counts),
        "levene_p": levene_p,
        "std_real": float(np.std(r)),
        "std_synthetic": float(np.std(s)),
        "histogram": {
            "edges": edges,
            "real": real_counts / real_counts.sum(),
            "synthetic": syn_counts / syn_counts.sum(),
        },
    }


def _discrete_statistics(real: pd.Series, synthetic: pd.Series, categories: list[str]) -> dict:
    r, s = real.dropna(), synthetic.dropna()
    if len(r) == 0 or len(s) == 0:
        return {"kind": "discrete", "empty": True}
    unseen = sorted(set(s.unique()) - set(categories))
    index = categories + unseen
    # Values the real column never holds: counted against the whole synthetic column (missing
    # rows included), most frequent first, so that the report can name a few of them.
    unseen_rows = s[s.isin(unseen)]
    p = r.value_counts().reindex(index, fill_value=0).to_numpy(dtype=float)
    q = s.value_counts().reindex(index, fill_value=0).to_numpy(dtype=float)
    p_freq, q_freq = p / p.sum(), q / q.sum()
    shown = np.argsort(-p_freq, kind="stable")[:MAX_PLOTTED_CATEGORIES]
    return {
        "kind": "discrete",
        "tvd": float(0.5 * np.abs(p_freq - q_freq).sum()),
        "hellinger": float(np.sqrt(0.5 * ((np.sqrt(p_freq) - np.sqrt(q_freq)) ** 2).sum())),
        "kl": _kl(p, q),
        "unseen_categories": len(unseen),
        "unseen_share": float(len(unseen_rows) / len(synthetic)),
        "unseen_values": unseen_rows.value_counts().index[:MAX_UNSEEN_SHOWN].tolist(),
        "frequencies": {
            "categories": [index[i] for i in shown],
            "real": p_freq[shown],
            "synthetic": q_freq[shown],
        },
    }


def _kl(real_counts: np.ndarray, syn_counts: np.ndarray) -> float:
    """KL(real || synthetic) in nats on shared bins, after a pseudo-count."""
    return float(stats.entropy(real_counts + KL_PSEUDO_COUNT, syn_counts + KL_PSEUDO_COUNT))


def _per_column(data: ValidationData, key: str) -> dict[str, float]:
    return {c: s[key] for c, s in marginal_statistics(data).items() if key in s}


# ---------------------------------------------------------------------- marginal metrics
class ColumnShapes(Metric):
    """Per-column similarity: 1 − KS statistic (numbers) or 1 − total variation (labels)."""

    name = "column_shapes"
    family = "fidelity"
    direction = "higher"
    description = (
        "Mean over columns of 1 − KS statistic (numeric) or 1 − total variation distance "
        "(discrete); the marginal part of CSF."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        values = column_shape_similarity(data)
        if not values:
            raise Skip("no column with values in both tables")
        mean = float(np.mean(list(values.values())))
        return Outcome(mean, mean, columns=values)


def column_shape_similarity(data: ValidationData) -> dict[str, float]:
    """1 − KS or 1 − TVD per column (the numbers behind :class:`ColumnShapes`)."""
    out = {}
    for column, s in marginal_statistics(data).items():
        if "ks" in s:
            out[column] = 1.0 - s["ks"]
        elif "tvd" in s:
            out[column] = 1.0 - s["tvd"]
    return out


def _mean_distance(values: dict[str, float], empty: str, **details: Any) -> Outcome:
    """The mean of per-column distances in [0, 1], scored 1 − mean; ``Skip(empty)`` when no
    column has one."""
    if not values:
        raise Skip(empty)
    mean = float(np.mean(list(values.values())))
    return Outcome(mean, 1.0 - mean, columns=values, details=details)


class KSStatistic(Metric):
    """Two-sample Kolmogorov–Smirnov statistic per numeric column."""

    name = "ks_statistic"
    family = "fidelity"
    direction = "lower"
    description = "Mean two-sample KS statistic over numeric columns; score 1 − mean."

    def _compute(self, data: ValidationData) -> Outcome:
        histograms = {c: s["histogram"] for c, s in marginal_statistics(data).items() if "ks" in s}
        return _mean_distance(_per_column(data, "ks"), "no numeric column", histograms=histograms)


class Wasserstein(Metric):
    """Wasserstein (earth mover's) distance per numeric column, in units of the real range."""

    name = "wasserstein_distance"
    family = "fidelity"
    direction = "lower"
    description = (
        "Mean Wasserstein distance over numeric columns, divided by each column's real range; "
        "score 1 − mean."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        return _mean_distance(_per_column(data, "wasserstein"), "no numeric column")


class TotalVariation(Metric):
    """Total variation distance between category frequencies per discrete column."""

    name = "total_variation"
    family = "fidelity"
    direction = "lower"
    description = "Mean total variation distance over discrete columns; score 1 − mean."

    def _compute(self, data: ValidationData) -> Outcome:
        frequencies = {
            c: s["frequencies"] for c, s in marginal_statistics(data).items() if "tvd" in s
        }
        return _mean_distance(
            _per_column(data, "tvd"), "no discrete column", frequencies=frequencies
        )


class Hellinger(Metric):
    """Hellinger distance between category frequencies per discrete column."""

    name = "hellinger_distance"
    family = "fidelity"
    direction = "lower"
    description = "Mean Hellinger distance over discrete columns; score 1 − mean."

    def _compute(self, data: ValidationData) -> Outcome:
        return _mean_distance(_per_column(data, "hellinger"), "no discrete column")


class KLDivergence(Metric):
    """KL(real || synthetic) on shared bins (numbers) or categories (labels)."""

    name = "kl_divergence"
    family = "fidelity"
    direction = "lower"
    description = (
        f"Mean KL(real || synthetic) in nats over columns, on {HISTOGRAM_BINS} shared bins of the "
        f"real range or on categories, pseudo-count {KL_PSEUDO_COUNT}; score mean of 1 / (1 + KL)."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        values = _per_column(data, "kl")
        if not values:
            raise Skip("no column with values in both tables")
        kl = np.array(list(values.values()))
        return Outcome(float(kl.mean()), float(np.mean(1.0 / (1.0 + kl))), columns=values)


class LeveneVariance(Metric):
    """Levene's (Brown–Forsythe) test of equal variances per numeric column."""

    name = "levene_equal_variance"
    family = "fidelity"
    direction = "higher"
    description = (
        "Share of numeric columns where Levene's test (median-centred) does not reject equal "
        "variances at 5 %; informative only (p-values shrink as tables grow), not in a score."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        values = _per_column(data, "levene_p")
        if not values:
            raise Skip("no numeric column")
        share = float(np.mean([p >= 0.05 for p in values.values()]))
        return Outcome(share, None, columns=values)


class MissingRate(Metric):
    """Absolute difference of the share of missing values per column."""

    name = "missing_rate_difference"
    family = "fidelity"
    direction = "lower"
    description = "Mean over columns of |missing share real − synthetic|; score 1 − mean."

    def _compute(self, data: ValidationData) -> Outcome:
        values = missing_rate_differences(data)
        mean = float(np.mean(list(values.values())))
        return Outcome(mean, 1.0 - mean, columns=values)


def missing_rate_differences(data: ValidationData) -> dict[str, float]:
    """|missing share real − synthetic| per column."""
    return {
        c: abs(s["missing_real"] - s["missing_synthetic"])
        for c, s in marginal_statistics(data).items()
    }


class PairwiseAssociation(Metric):
    """Agreement of the mixed association matrices of real and synthetic data."""

    name = "pairwise_association"
    family = "fidelity"
    direction = "higher"
    description = (
        "Weighted mean over column pairs of the agreement of their association: 1 − |Δρ| / 2 "
        "for Spearman's ρ (numbers, two-level labels), 1 − |Δ| for Cramér's V (labels) and the "
        "correlation ratio (label with number); each pair weighs max(|real|, |synthetic|) + "
        "0.05, so that strong associations count most. The pairwise part of CSF."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        if len(data.columns) < 2:
            raise Skip("fewer than two columns")
        agreement, mean = pair_agreement(data)
        if mean is None:
            raise Skip("no pair with an association in either table")
        real, synthetic = association_matrices(data)
        details = {
            "columns": data.columns,
            "real": real.to_numpy(),
            "synthetic": synthetic.to_numpy(),
        }
        return Outcome(mean, mean, columns=agreement, details=details)


class _CorrelationDifference(Metric):
    """Mean absolute difference of one correlation coefficient over numeric column pairs."""

    family = "fidelity"
    direction = "lower"
    method: str

    def _compute(self, data: ValidationData) -> Outcome:
        columns = data.numeric
        if len(columns) < 2:
            raise Skip("fewer than two numeric columns")
        real = data.subsample("real", f"{self.method} correlations")[columns]
        synthetic = data.subsample("synthetic", f"{self.method} correlations")[columns]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            diff = (real.corr(method=self.method) - synthetic.corr(method=self.method)).abs()
        pairs = {
            f"{a}|{b}": float(np.nan_to_num(diff.loc[a, b], nan=0.0))
            for a, b in combinations(columns, 2)
        }
        mean = float(np.mean(list(pairs.values())))
        return Outcome(mean, 1.0 - mean / 2.0, columns=pairs)


class PearsonDifference(_CorrelationDifference):
    """|Pearson r real − synthetic| averaged over numeric pairs."""

    name = "pearson_difference"
    method = "pearson"
    description = "Mean |Δ Pearson r| over numeric column pairs; score 1 − mean / 2."


class SpearmanDifference(_CorrelationDifference):
    """|Spearman ρ real − synthetic| averaged over numeric pairs."""

    name = "spearman_difference"
    method = "spearman"
    description = "Mean |Δ Spearman ρ| over numeric column pairs; score 1 − mean / 2."


class KendallDifference(_CorrelationDifference):
    """|Kendall τ real − synthetic| averaged over numeric pairs."""

    name = "kendall_difference"
    method = "kendall"
    description = "Mean |Δ Kendall τ| over numeric column pairs; score 1 − mean / 2."


class CramersVDifference(Metric):
    """|Cramér's V real − synthetic| averaged over discrete pairs."""

    name = "cramers_v_difference"
    family = "fidelity"
    direction = "lower"
    description = "Mean |Δ Cramér's V| over discrete column pairs; score 1 − mean."

    def _compute(self, data: ValidationData) -> Outcome:
        columns = data.discrete
        if len(columns) < 2:
            raise Skip("fewer than two discrete columns")
        frames = [
            data.subsample("real", "Cramér's V"),
            data.subsample("synthetic", "Cramér's V"),
        ]
        codes = [{c: label_codes(data, f, c) for c in columns} for f in frames]
        pairs = {}
        for a, b in combinations(columns, 2):
            r = cramers_v(codes[0][a], codes[0][b])
            s = cramers_v(codes[1][a], codes[1][b])
            pairs[f"{a}|{b}"] = float(abs(np.nan_to_num(r) - np.nan_to_num(s)))
        mean = float(np.mean(list(pairs.values())))
        return Outcome(mean, 1.0 - mean, columns=pairs)


METRICS: tuple[Metric, ...] = (
    ColumnShapes(),
    KSStatistic(),
    Wasserstein(),
    TotalVariation(),
    Hellinger(),
    KLDivergence(),
    LeveneVariance(),
    MissingRate(),
    PairwiseAssociation(),
    PearsonDifference(),
    SpearmanDifference(),
    KendallDifference(),
    CramersVDifference(),
)


def clinical_fidelity_parts(data: ValidationData) -> dict[str, float | None]:
    """The marginal, pairwise and missingness parts of CSF, on the clinical columns only."""
    clinical = set(data.clinical)
    shapes = column_shape_similarity(data)
    missing = missing_rate_differences(data)
    pairwise = pair_agreement(data, data.clinical)[1] if len(data.columns) > 1 else None
    return {
        "column_shapes": mean_or_none(v for c, v in shapes.items() if c in clinical),
        "pairwise_association": pairwise,
        "missing_rates": mean_or_none(1.0 - v for c, v in missing.items() if c in clinical),
    }
