"""Associations between pairs of columns, of any kinds, and their agreement between two tables.

Spearman's ρ between ordered columns (numbers, two-level labels as 0/1), Cramér's V between
labels, the correlation ratio η between a label and a number; the fidelity metrics
(:mod:`fedsynth.tabular.validation.fidelity`) compare the real and synthetic matrices.
"""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats.contingency import association

from fedsynth.tabular.validation.data import ValidationData

#: Weight of a pair with no association in either table, relative to a perfect association.
PAIR_WEIGHT_FLOOR = 0.05


def ordered_columns(data: ValidationData) -> list[str]:
    """Columns with an order: numbers, and discrete columns with two categories (as 0/1)."""
    two_level = [c for c in data.discrete if len(data.categories(c)) == 2]
    return [c for c in data.columns if c in set(data.numeric) | set(two_level)]


def label_codes(data: ValidationData, frame: pd.DataFrame, column: str) -> np.ndarray:
    """Integer codes of a discrete column (-1 for missing; labels unseen in real get codes
    after the real categories)."""
    categories = data.categories(column)
    values = frame[column]
    extra = sorted(set(values.dropna().unique()) - set(categories))
    codes = pd.Index(categories + extra, dtype=object).get_indexer(values)
    return np.where(values.isna(), -1, codes)


def ordered_view(data: ValidationData, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Numbers of ordered columns: floats, or 0/1 codes of two-level labels (NaN missing)."""
    out = {}
    for column in columns:
        if column in data.numeric:
            out[column] = frame[column].to_numpy(dtype=float)
        else:
            codes = label_codes(data, frame, column).astype(float)
            out[column] = np.where(codes < 0, np.nan, np.minimum(codes, 1.0))
    return pd.DataFrame(out)


def cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    keep = (a >= 0) & (b >= 0)
    a, b = a[keep], b[keep]
    if len(a) == 0:
        return np.nan
    table = np.zeros((a.max() + 1, b.max() + 1), dtype=np.int64)
    np.add.at(table, (a, b), 1)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if min(table.shape) < 2:
        return 0.0
    return float(association(table, method="cramer"))


def correlation_ratio(codes: np.ndarray, values: np.ndarray) -> float:
    """η: the share of a number's spread explained by a label (square root of η²)."""
    keep = (codes >= 0) & ~np.isnan(values)
    codes, values = codes[keep], values[keep]
    if len(values) < 2:
        return np.nan
    total = ((values - values.mean()) ** 2).sum()
    if total == 0:
        return 0.0
    counts = np.bincount(codes)
    sums = np.bincount(codes, weights=values)
    present = counts > 0
    means = sums[present] / counts[present]
    between = (counts[present] * (means - values.mean()) ** 2).sum()
    return float(np.sqrt(between / total))


def association_matrix(data: ValidationData, frame: pd.DataFrame) -> pd.DataFrame:
    """Mixed association matrix over every compared column.

    Spearman's ρ (signed) between ordered columns (numbers, two-level labels as 0/1), Cramér's
    V between a label with three or more levels and another label, the correlation ratio η
    between such a label and a number.
    """
    columns = data.columns
    ordered = ordered_columns(data)
    matrix = pd.DataFrame(np.eye(len(columns)), index=columns, columns=columns)
    if len(ordered) > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # constant columns: NaN is right
            rho = ordered_view(data, frame, ordered).corr(method="spearman")
        matrix.loc[ordered, ordered] = rho.to_numpy()
    codes = {c: label_codes(data, frame, c) for c in data.discrete}
    numbers = {c: frame[c].to_numpy(dtype=float) for c in data.numeric}
    ordered_set = set(ordered)
    for a, b in combinations(columns, 2):
        if a in ordered_set and b in ordered_set:
            continue
        if a in codes and b in codes:
            value = cramers_v(codes[a], codes[b])
        else:
            label, number = (a, b) if a in codes else (b, a)
            value = correlation_ratio(codes[label], numbers[number])
        matrix.loc[a, b] = matrix.loc[b, a] = value
    return matrix


def association_matrices(data: ValidationData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The real and synthetic association matrices (on at most ``max_rows`` rows each)."""

    def compute():
        real = data.subsample("real", "pairwise associations")
        synthetic = data.subsample("synthetic", "pairwise associations")
        return association_matrix(data, real), association_matrix(data, synthetic)

    return data.cached("associations", compute)


def pair_agreement(
    data: ValidationData, columns: list[str] | None = None
) -> tuple[dict[str, float], float | None]:
    """Agreement of each pair's association (``"a|b"`` to [0, 1]) and their weighted mean.

    Signed pairs (Spearman) agree by 1 − |Δρ| / 2, unsigned ones (V, η) by 1 − |Δ|. The mean
    weighs each pair by max(|real|, |synthetic|) + :data:`PAIR_WEIGHT_FLOOR`: in a wide table
    most pairs are nearly independent, and an unweighted mean would let them drown the few
    strong associations that carry the structure. Pairs are kept when at least one of their
    columns is in ``columns`` (default: all).
    """
    real, synthetic = association_matrices(data)
    ordered = set(ordered_columns(data))
    wanted = set(data.columns if columns is None else columns)
    agreement, weights = {}, []
    for a, b in combinations(data.columns, 2):
        if a not in wanted and b not in wanted:
            continue
        r, s = real.loc[a, b], synthetic.loc[a, b]
        if np.isnan(r) and np.isnan(s):
            continue
        r, s = np.nan_to_num(r), np.nan_to_num(s)
        signed = a in ordered and b in ordered
        agreement[f"{a}|{b}"] = 1.0 - abs(r - s) / (2.0 if signed else 1.0)
        weights.append(max(abs(r), abs(s)) + PAIR_WEIGHT_FLOOR)
    if not agreement:
        return agreement, None
    return agreement, float(np.average(list(agreement.values()), weights=weights))
