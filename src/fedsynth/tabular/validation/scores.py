"""Scores in [0, 1] (higher is better) built from the metric scores, and pass/warn/fail flags.

Every score is the mean of the parts listed in :data:`SCORE_DEFINITIONS`; a part that could not
be computed (no holdout, no genomic columns...) is left out of the mean, and a score with no
part is ``None``. The overall score is the geometric mean of CSF, GSF, utility and privacy, so
that a dataset is only as good as its weakest side: a copy of the training data, perfect on
fidelity, scores 0 overall because its privacy score is 0. The worst-column checks
(:mod:`~fedsynth.tabular.validation.worst_columns`) take the worst column instead of a mean, so
that one column far off fails the report even when the means are fine.
"""

from __future__ import annotations

import numpy as np

from fedsynth.core.metrics import Flag, MetricResult, mean_or_none
from fedsynth.tabular.validation.data import ValidationData
from fedsynth.tabular.validation.fidelity import clinical_fidelity_parts
from fedsynth.tabular.validation.worst_columns import WORST_COLUMN_CHECKS, worst_column_scores

#: What each score averages (metric names refer to the metric scores).
SCORE_DEFINITIONS: dict[str, str] = {
    "diversity": "mean of range_coverage, category_coverage, entropy_ratio and nn_coverage",
    "clinical_fidelity": (
        "mean of, over clinical (non-genomic) columns: column_shapes, pairwise_association "
        "(pairs with at least one clinical column), 1 − missing-rate difference; and diversity"
    ),
    "survival": (
        "mean of km_gap (cif_gap for competing risks), hazard_ratio_agreement and concordance_tstr"
    ),
    "csf": "Clinical Synthetic Fidelity: mean of clinical_fidelity and survival",
    "gsf": (
        "Genomic Synthetic Fidelity: mean of mutation_frequency, co_occurrence, "
        "mutual_exclusivity and mutation_burden"
    ),
    "utility": "mean of tstr_ratio and feature_importance_agreement",
    "privacy": (
        "mean of exact_copies, dcr, nndr, membership_inference_distance, "
        "membership_inference_density and 1 − the largest Anonymeter risk (singling out, "
        "linkability, attribute inference)"
    ),
    "overall": "geometric mean of csf, gsf, utility and privacy (those available)",
    **{name: f"1 − the {what}" for name, (what, _) in WORST_COLUMN_CHECKS.items()},
}

#: (pass at or above, warn at or above; fail below) for each score.
#:
#: The worst-column checks score ``1 − distance``: a discrete column passes with a total
#: variation distance up to 0.10 and fails beyond 0.20, a numeric column passes with a KS
#: statistic up to 0.15 and fails beyond 0.30, a missing rate passes within 0.05 and fails
#: beyond 0.10. Two real samples of 600 MDS patients differ by at most 0.055 (TVD), 0.041 (KS)
#: and 0.008 (missing rate) over their columns; KS's sampling spread is the widest at small sizes
#: (its 5 % critical value is 0.136 for two tables of 200 rows), hence its wider margin.
#: ``unseen_categories`` passes only when no synthetic value lies outside a discrete column's
#: real categories, warns up to 1 % of its rows and fails beyond: a generator cannot invent a
#: category, so any is a coding fault (issue #24).
SCORE_THRESHOLDS: dict[str, tuple[float, float]] = {
    "csf": (0.85, 0.70),
    "gsf": (0.85, 0.70),
    "utility": (0.80, 0.60),
    "privacy": (0.80, 0.60),
    "overall": (0.80, 0.60),
    "worst_discrete_column": (0.90, 0.80),
    "worst_numeric_column": (0.85, 0.70),
    "worst_missing_rate": (0.95, 0.90),
    "unseen_categories": (1.0, 0.99),
}

#: (warn at or above, fail at or above) for privacy checks where lower is better.
PRIVACY_LIMITS: dict[str, tuple[float, float]] = {
    "membership_inference_auc": (0.60, 0.70),
    "dcr_closer_probability": (0.60, 0.70),
    "anonymeter_risk": (0.10, 0.25),
}

_ANONYMETER = ("singling_out_risk", "linkability_risk", "attribute_inference_risk")


def _score(results: dict[str, MetricResult], name: str) -> float | None:
    result = results.get(name)
    return None if result is None else result.score


def compute_scores(
    results: dict[str, MetricResult], data: ValidationData
) -> tuple[dict[str, float | None], dict[str, dict[str, float | None]]]:
    """The scores and, for each, the parts it averages.

    Examples
    --------
    >>> from fedsynth.tabular.validation.scores import SCORE_DEFINITIONS
    >>> SCORE_DEFINITIONS["csf"]
    'Clinical Synthetic Fidelity: mean of clinical_fidelity and survival'
    """
    parts: dict[str, dict[str, float | None]] = {}
    parts["diversity"] = {
        n: _score(results, n)
        for n in ("range_coverage", "category_coverage", "entropy_ratio", "nn_coverage")
    }
    diversity = mean_or_none(parts["diversity"].values())
    parts["clinical_fidelity"] = {**clinical_fidelity_parts(data), "diversity": diversity}
    # Competing risks: the per-cause incidence gap stands in for the (skipped) KM gap.
    curve_gap = "cif_gap" if _score(results, "cif_gap") is not None else "km_gap"
    parts["survival"] = {
        n: _score(results, n) for n in (curve_gap, "hazard_ratio_agreement", "concordance_tstr")
    }
    scores = {
        "diversity": diversity,
        "clinical_fidelity": mean_or_none(parts["clinical_fidelity"].values()),
        "survival": mean_or_none(parts["survival"].values()),
    }
    parts["csf"] = {k: scores[k] for k in ("clinical_fidelity", "survival")}
    parts["gsf"] = {
        n: _score(results, n)
        for n in ("mutation_frequency", "co_occurrence", "mutual_exclusivity", "mutation_burden")
    }
    parts["utility"] = {
        n: _score(results, n) for n in ("tstr_ratio", "feature_importance_agreement")
    }
    risks = [results[n].value for n in _ANONYMETER if n in results and results[n].value is not None]
    parts["privacy"] = {
        n: _score(results, n)
        for n in (
            "exact_copies",
            "dcr",
            "nndr",
            "membership_inference_distance",
            "membership_inference_density",
        )
    }
    parts["privacy"]["anonymeter"] = 1.0 - max(risks) if risks else None
    for name in ("csf", "gsf", "utility", "privacy"):
        scores[name] = mean_or_none(parts[name].values())
    parts["overall"] = {k: scores[k] for k in ("csf", "gsf", "utility", "privacy")}
    available = [v for v in parts["overall"].values() if v is not None]
    scores["overall"] = float(np.prod(available) ** (1 / len(available))) if available else None
    worst, worst_parts = worst_column_scores(data)
    scores.update(worst)
    parts.update(worst_parts)
    return scores, parts


def _level(value: float, pass_at: float, warn_at: float) -> str:
    return "pass" if value >= pass_at else "warn" if value >= warn_at else "fail"


def _limit(value: float, warn_at: float, fail_at: float) -> str:
    return "fail" if value >= fail_at else "warn" if value >= warn_at else "pass"


def compute_flags(
    scores: dict[str, float | None],
    results: dict[str, MetricResult],
    parts: dict[str, dict[str, float | None]] | None = None,
    unseen: dict[str, list] | None = None,
) -> list[Flag]:
    """Pass/warn/fail verdicts on the scores and on the privacy checks.

    ``parts`` (from :func:`compute_scores`) lets a worst-column flag name its column, and
    ``unseen`` (from :func:`~fedsynth.tabular.validation.worst_columns.unseen_values`) lets the
    ``unseen_categories`` flag name a few of that column's unseen values.
    """
    flags = []
    for name, (pass_at, warn_at) in SCORE_THRESHOLDS.items():
        value = scores.get(name)
        if value is None:
            continue
        rule = f"pass ≥ {pass_at}, warn ≥ {warn_at}, fail below"
        if name in WORST_COLUMN_CHECKS and parts and parts.get(name):
            (column,) = parts[name]
            rule = f"column {column!r}: {rule}"
            if name == "unseen_categories" and unseen and unseen.get(column):
                shown = ", ".join(repr(v) for v in unseen[column])
                rule = f"{rule}; synthetic values absent from the real data: {shown}"
        flags.append(Flag(name, _level(value, pass_at, warn_at), value, rule))
    copies = results.get("exact_copies")
    if copies is not None and copies.skipped is None:
        rare = copies.details["copies_of_rare_rows"]
        flags.append(
            Flag(
                "privacy.exact_copies",
                "fail" if rare > 0 else "pass",
                float(rare),
                "fail if any synthetic row copies a training row shared by fewer than 5 patients",
            )
        )
    checks = {
        "membership_inference_auc": [
            results[n].value
            for n in ("membership_inference_distance", "membership_inference_density")
            if n in results and results[n].value is not None
        ],
        "dcr_closer_probability": [results["dcr"].value] if _has_value(results, "dcr") else [],
        "anonymeter_risk": [results[n].value for n in _ANONYMETER if _has_value(results, n)],
    }
    for name, values in checks.items():
        if not values:
            continue
        warn_at, fail_at = PRIVACY_LIMITS[name]
        worst = max(values)
        rule = f"largest value: warn ≥ {warn_at}, fail ≥ {fail_at}"
        flags.append(Flag(f"privacy.{name}", _limit(worst, warn_at, fail_at), worst, rule))
    return flags


def _has_value(results: dict[str, MetricResult], name: str) -> bool:
    return name in results and results[name].value is not None


def overall_status(flags: list[Flag]) -> str:
    """The worst status among the flags (``"pass"`` when there is none)."""
    order = {"pass": 0, "warn": 1, "fail": 2}
    return max((f.status for f in flags), key=order.__getitem__, default="pass")
