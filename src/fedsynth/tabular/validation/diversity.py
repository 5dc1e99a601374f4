"""Diversity and coverage: does the synthetic data span the real data, rare values included?

Range coverage of numbers, coverage of categories (rare ones reported on their own) and the ratio
of entropies of labels, on the clinical columns (the genomic group has its own family, where a
1 % mutation's entropy would swing with a handful of patients); and nearest-neighbour precision,
recall (Kynkäänniemi et al. 2019) and coverage (Naeem et al. 2020) of the real distribution in the
Gower embedding of every column.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from fedsynth.core.metrics import Metric, Outcome, Skip, mean_or_none
from fedsynth.tabular.validation.data import ValidationData
from fedsynth.tabular.validation.distances import distance_blocks, nearest

#: A category is rare when it holds less than this share of the real rows.
RARE_SHARE = 0.05
#: Neighbours that define each point's ball in precision, recall and coverage.
PRDC_NEIGHBOURS = 5
#: Most rows per table in precision, recall and coverage, whose cost grows with the square of
#: the rows (the smaller of this and ``max_rows``).
PRDC_ROWS = 3000


def _clinical(data: ValidationData, columns: list[str]) -> list[str]:
    genomic = set(data.genomic)
    return [c for c in columns if c not in genomic]


class RangeCoverage(Metric):
    """Share of each numeric column's real range that the synthetic values span."""

    name = "range_coverage"
    family = "diversity"
    direction = "higher"
    description = (
        "Mean over clinical numeric columns of |[min, max] synthetic ∩ [min, max] real| / real "
        "range; "
        "the score is the value."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        values = {}
        for column in _clinical(data, data.numeric):
            r, s = data.real[column].dropna(), data.synthetic[column].dropna()
            if len(r) == 0:
                continue
            low, high = r.min(), r.max()
            if len(s) == 0:
                values[column] = 0.0
            elif high == low:
                values[column] = float(((s >= low) & (s <= high)).any())
            else:
                overlap = min(high, s.max()) - max(low, s.min())
                values[column] = float(max(0.0, overlap) / (high - low))
        if not values:
            raise Skip("no numeric column")
        mean = float(np.mean(list(values.values())))
        return Outcome(mean, mean, columns=values)


class CategoryCoverage(Metric):
    """Share of the real categories that appear in the synthetic data."""

    name = "category_coverage"
    family = "diversity"
    direction = "higher"
    description = (
        "Mean over clinical discrete columns of the share of real categories present in the "
        "synthetic "
        f"data; rare categories (< {RARE_SHARE:.0%} of real rows) are also counted on their own."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        values, rare_total, rare_found = {}, 0, 0
        for column in _clinical(data, data.discrete):
            shares = data.real[column].value_counts(normalize=True)
            if len(shares) == 0:
                continue
            present = set(data.synthetic[column].dropna().unique())
            values[column] = float(np.mean([c in present for c in shares.index]))
            rare = [c for c, share in shares.items() if share < RARE_SHARE]
            rare_total += len(rare)
            rare_found += sum(c in present for c in rare)
        if not values:
            raise Skip("no discrete column")
        mean = float(np.mean(list(values.values())))
        details = {
            "rare_categories": rare_total,
            "rare_categories_covered": rare_found,
            "rare_coverage": rare_found / rare_total if rare_total else None,
        }
        return Outcome(mean, mean, columns=values, details=details)


class EntropyRatio(Metric):
    """Entropy of each discrete column, synthetic over real."""

    name = "entropy_ratio"
    family = "diversity"
    direction = "higher"
    description = (
        "Mean over clinical discrete columns of H(synthetic) / H(real) (1 is ideal); score mean of "
        "min(ratio, 1 / ratio)."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        ratios, scores = {}, []
        for column in _clinical(data, data.discrete):
            h_real = stats.entropy(data.real[column].value_counts().to_numpy())
            h_syn = stats.entropy(data.synthetic[column].value_counts().to_numpy())
            if h_real == 0 and h_syn == 0:
                ratios[column], similarity = 1.0, 1.0
            elif h_real == 0 or h_syn == 0:
                ratios[column] = float(h_syn / h_real) if h_real else float("inf")
                similarity = 0.0
            else:
                ratios[column] = float(h_syn / h_real)
                similarity = min(ratios[column], 1.0 / ratios[column])
            scores.append(similarity)
        if not ratios:
            raise Skip("no discrete column")
        finite = [r for r in ratios.values() if np.isfinite(r)]
        return Outcome(mean_or_none(finite), float(np.mean(scores)), columns=ratios)


class NearestNeighbourCoverage(Metric):
    """Precision, recall and coverage of the real distribution by nearest-neighbour balls."""

    name = "nn_coverage"
    family = "diversity"
    direction = "higher"
    description = (
        f"Coverage (Naeem et al. 2020): share of real rows whose ball to their "
        f"{PRDC_NEIGHBOURS}th nearest real neighbour (Gower) holds a synthetic row; precision "
        "(synthetic rows inside some real ball) and recall (real rows inside some synthetic "
        "ball, Kynkäänniemi et al. 2019) are in the details. The score is the coverage."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        n = min(PRDC_ROWS, data.max_rows)
        real = data.subsample("real", "nearest-neighbour coverage", n)
        synthetic = data.subsample("synthetic", "nearest-neighbour coverage", n)
        if len(real) <= PRDC_NEIGHBOURS or len(synthetic) <= PRDC_NEIGHBOURS:
            raise Skip(f"needs more than {PRDC_NEIGHBOURS} rows in each table")
        embedding = data.embedding()
        p = embedding.n_columns
        x_real, x_syn = embedding.transform(real), embedding.transform(synthetic)
        # Column k of the k+1 nearest is the k-th neighbour other than the row itself.
        radius_real = nearest(x_real, x_real, PRDC_NEIGHBOURS + 1, p)[:, -1]
        radius_syn = nearest(x_syn, x_syn, PRDC_NEIGHBOURS + 1, p)[:, -1]
        # A synthetic row is "precise" when it lies in the ball of any real row (not only of
        # its nearest one: a farther row may have a larger ball), and the other way round.
        covered, recalled = [], []
        precise = np.zeros(len(x_syn), dtype=bool)
        for rows, block in distance_blocks(x_real, x_syn, p):
            covered.append(block.min(axis=1) <= radius_real[rows])
            recalled.append((block <= radius_syn[None, :]).any(axis=1))
            precise |= (block <= radius_real[rows, None]).any(axis=0)
        coverage = float(np.concatenate(covered).mean())
        details = {
            "precision": float(precise.mean()),
            "recall": float(np.concatenate(recalled).mean()),
            "neighbours": PRDC_NEIGHBOURS,
        }
        return Outcome(coverage, coverage, details=details)


METRICS: tuple[Metric, ...] = (
    RangeCoverage(),
    CategoryCoverage(),
    EntropyRatio(),
    NearestNeighbourCoverage(),
)
