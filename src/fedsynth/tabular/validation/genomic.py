"""Genomic structure: mutation frequencies, co-occurrence, mutual exclusivity, mutation burden.

Genomic columns are the binary columns of the metadata's ``"genomic"`` group; the second
category of each is "mutated" and a missing flag counts as not mutated. Pairwise odds ratios
use the Haldane–Anscombe correction (0.5 added to each cell), so that a pair never seen together
has a finite, strongly negative log odds ratio.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from fedsynth.core.metrics import Metric, Outcome, Skip
from fedsynth.tabular.validation.data import ValidationData

#: A pair's odds ratio is compared only when the real data expect at least this many patients
#: with both mutations under independence (rarer pairs are noise).
MIN_EXPECTED = 5.0
#: A real pair is mutually exclusive when observed / expected co-mutations is at most this and
#: Fisher's exact test (one-sided, fewer than expected) gives p below EXCLUSIVE_P.
EXCLUSIVE_RATIO = 0.2
EXCLUSIVE_P = 0.01
#: A real exclusive pair is preserved when the synthetic observed / expected is at most this.
PRESERVED_RATIO = 0.5
#: Mutation counts per patient at or above this are pooled into one bin.
MAX_BURDEN_BIN = 10


def _require_genes(data: ValidationData) -> list[str]:
    genes = data.genomic
    if not genes:
        raise Skip("no genomic columns (binary columns in the 'genomic' group)")
    return genes


def mutation_matrix(data: ValidationData, frame: pd.DataFrame) -> np.ndarray:
    """0/1 matrix (rows x genes) of the genomic columns."""
    genes = _require_genes(data)
    columns = []
    for gene in genes:
        categories = data.categories(gene)
        mutated = categories[-1] if categories else "1"
        columns.append((frame[gene] == mutated).to_numpy(dtype=float))
    return np.column_stack(columns)


def pair_counts(x: np.ndarray) -> dict[str, np.ndarray]:
    """Co-mutation counts of every gene pair: ``n11``, ``n10``, ``n01``, ``n00``, ``expected``."""
    n = len(x)
    n11 = x.T @ x
    ones = np.diag(n11).copy()
    n10 = ones[:, None] - n11
    n01 = ones[None, :] - n11
    n00 = n - n11 - n10 - n01
    expected = np.outer(ones, ones) / max(n, 1)
    return {"n11": n11, "n10": n10, "n01": n01, "n00": n00, "expected": expected}


def log_odds_ratios(counts: dict[str, np.ndarray]) -> np.ndarray:
    """Haldane-corrected log odds ratios of co-mutation."""
    a, b, c, d = (counts[k] + 0.5 for k in ("n11", "n10", "n01", "n00"))
    return np.log(a * d / (b * c))


def _matrices(data: ValidationData) -> dict[str, dict[str, np.ndarray]]:
    def compute():
        return {
            name: pair_counts(mutation_matrix(data, data.table(name)))
            for name in ("real", "synthetic")
        }

    return data.cached("genomic_pairs", compute)


class MutationFrequency(Metric):
    """Mutation frequency of each gene, real against synthetic."""

    name = "mutation_frequency"
    family = "genomic"
    direction = "lower"
    description = (
        "Mean over genes of the relative frequency difference |f_real − f_syn| / (f_real + "
        "f_syn) (0 when both are 0); score 1 − mean."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        genes = _require_genes(data)
        real = mutation_matrix(data, data.real).mean(axis=0)
        synthetic = mutation_matrix(data, data.synthetic).mean(axis=0)
        total = real + synthetic
        relative = np.divide(
            np.abs(real - synthetic), total, out=np.zeros_like(total), where=total > 0
        )
        value = float(relative.mean())
        details = {"genes": genes, "real": real, "synthetic": synthetic}
        return Outcome(
            value, 1.0 - value, columns=dict(zip(genes, relative, strict=True)), details=details
        )


class CoOccurrence(Metric):
    """Agreement of pairwise co-mutation odds ratios."""

    name = "co_occurrence"
    family = "genomic"
    direction = "higher"
    description = (
        "Pearson correlation of real and synthetic log odds ratios of co-mutation over gene "
        f"pairs that the real data expect to see together at least {MIN_EXPECTED:g} times; score "
        "max(0, r). Jaccard indices and both log odds ratio matrices are in the details."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        genes = _require_genes(data)
        if len(genes) < 2:
            raise Skip("fewer than two genomic columns")
        matrices = _matrices(data)
        real_lor = log_odds_ratios(matrices["real"])
        syn_lor = log_odds_ratios(matrices["synthetic"])
        upper = np.triu(np.ones_like(real_lor, dtype=bool), k=1)
        kept = upper & (matrices["real"]["expected"] >= MIN_EXPECTED)
        details = {
            "genes": genes,
            "log_odds_ratio_real": np.where(upper | upper.T, real_lor, 0.0),
            "log_odds_ratio_synthetic": np.where(upper | upper.T, syn_lor, 0.0),
            "jaccard_mean_abs_difference": float(
                np.abs(_jaccard(matrices["real"]) - _jaccard(matrices["synthetic"]))[upper].mean()
            ),
            "pairs_compared": int(kept.sum()),
        }
        if kept.sum() < 3 or np.ptp(real_lor[kept]) == 0 or np.ptp(syn_lor[kept]) == 0:
            raise Skip(f"fewer than 3 gene pairs with {MIN_EXPECTED:g} expected co-mutations")
        r = float(stats.pearsonr(real_lor[kept], syn_lor[kept]).statistic)
        return Outcome(r, max(0.0, r), details=details)


def _jaccard(counts: dict[str, np.ndarray]) -> np.ndarray:
    union = counts["n11"] + counts["n10"] + counts["n01"]
    return np.divide(counts["n11"], union, out=np.zeros_like(union), where=union > 0)


def exclusive_pairs(data: ValidationData) -> list[tuple[str, str]]:
    """Gene pairs that the real data show to be mutually exclusive (thresholds above)."""
    genes = _require_genes(data)
    counts = _matrices(data)["real"]
    pairs = []
    for i in range(len(genes)):
        for j in range(i + 1, len(genes)):
            expected, observed = counts["expected"][i, j], counts["n11"][i, j]
            if expected < MIN_EXPECTED or observed > EXCLUSIVE_RATIO * expected:
                continue
            table = [
                [counts[k][i, j] for k in ("n11", "n10")],
                [counts[k][i, j] for k in ("n01", "n00")],
            ]
            if stats.fisher_exact(table, alternative="less").pvalue < EXCLUSIVE_P:
                pairs.append((genes[i], genes[j]))
    return pairs


class MutualExclusivity(Metric):
    """Share of the real mutually exclusive gene pairs that stay exclusive."""

    name = "mutual_exclusivity"
    family = "genomic"
    direction = "higher"
    description = (
        f"Share of real exclusive pairs (expected ≥ {MIN_EXPECTED:g}, observed/expected ≤ "
        f"{EXCLUSIVE_RATIO}, one-sided Fisher p < {EXCLUSIVE_P}) whose synthetic observed/"
        f"expected co-mutation ratio is ≤ {PRESERVED_RATIO}; the score is the value."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        genes = _require_genes(data)
        pairs = exclusive_pairs(data)
        if not pairs:
            raise Skip("no mutually exclusive gene pair in the real data")
        matrices = _matrices(data)
        ratios = {}
        for a, b in pairs:
            i, j = genes.index(a), genes.index(b)
            syn = matrices["synthetic"]
            expected = syn["expected"][i, j]
            ratios[f"{a}|{b}"] = float(syn["n11"][i, j] / expected) if expected > 0 else 0.0
        preserved = float(np.mean([r <= PRESERVED_RATIO for r in ratios.values()]))
        details = {"pairs": [list(p) for p in pairs]}
        return Outcome(preserved, preserved, columns=ratios, details=details)


class MutationBurden(Metric):
    """Distribution of the number of mutations per patient."""

    name = "mutation_burden"
    family = "genomic"
    direction = "lower"
    description = (
        "Total variation distance between the distributions of mutations per patient "
        f"({MAX_BURDEN_BIN} or more pooled); score 1 − TVD. Means in the details."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        counts = {}
        means = {}
        for name in ("real", "synthetic"):
            burden = mutation_matrix(data, data.table(name)).sum(axis=1)
            means[name] = float(burden.mean())
            pooled = np.minimum(burden, MAX_BURDEN_BIN).astype(int)
            counts[name] = np.bincount(pooled, minlength=MAX_BURDEN_BIN + 1) / len(pooled)
        tvd = float(0.5 * np.abs(counts["real"] - counts["synthetic"]).sum())
        details = {
            "mean_real": means["real"],
            "mean_synthetic": means["synthetic"],
            "distribution": counts,
        }
        return Outcome(tvd, 1.0 - tvd, details=details)


METRICS: tuple[Metric, ...] = (
    MutationFrequency(),
    CoOccurrence(),
    MutualExclusivity(),
    MutationBurden(),
)
