"""The worst columns: per-column checks that a mean over many columns cannot hide.

CSF averages column shapes over every column, so one badly wrong column among 45 moves it by
under 0.01: the demo's federated model once put 0.80 of its rows at a site holding 0.48 of the
patients (total variation 0.32) and still passed. Each check here takes the largest distance of
one kind over the columns it applies to, scored ``1 − distance`` so that it is flagged like the
other scores (:data:`~fedsynth.tabular.validation.scores.SCORE_THRESHOLDS`), and names the
column that gave it.

================================ ===============================================================
check                            distance (largest over the columns)
================================ ===============================================================
``worst_discrete_column``        total variation distance of a discrete column's categories
``worst_numeric_column``         two-sample Kolmogorov–Smirnov statistic of a numeric column
``worst_missing_rate``           |missing share real − synthetic| of any column
``unseen_categories``            share of a discrete column's synthetic rows holding a value
                                 that is none of its real categories (metadata's or seen)
================================ ===============================================================

A generator only emits the categories it learnt, so an unseen value means the synthetic table
was coded differently or made wrongly: any share of them is flagged, and the flag names a few
of the values (taken from the synthetic table, so no real row is shown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fedsynth.tabular.validation.data import ValidationData
from fedsynth.tabular.validation.fidelity import marginal_statistics, missing_rate_differences

#: Each check: (what it measures, the key of the per-column statistic or ``"missing"``).
WORST_COLUMN_CHECKS: dict[str, tuple[str, str]] = {
    "worst_discrete_column": ("largest total variation distance over discrete columns", "tvd"),
    "worst_numeric_column": ("largest KS statistic over numeric columns", "ks"),
    "worst_missing_rate": ("largest missing-rate difference over columns", "missing"),
    "unseen_categories": (
        "largest share of a discrete column's synthetic rows with a value absent from the real "
        "categories",
        "unseen",
    ),
}
#: Columns listed at the top of the report: the worst ones by their distance.
N_WORST_LISTED = 5


@dataclass(frozen=True)
class ColumnGap:
    """How far one column is from the real one, by one measure.

    Attributes
    ----------
    column : str
    measure : str
        ``"tvd"``, ``"ks"``, ``"missing"`` or ``"unseen"``.
    distance : float
        In [0, 1], 0 when the column matches.
    """

    column: str
    measure: str
    distance: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"column": self.column, "measure": self.measure, "distance": self.distance}


def column_gaps(data: ValidationData) -> list[ColumnGap]:
    """Every column's distance by each measure that applies to it, the largest first."""
    gaps = [
        ColumnGap(column, measure, float(stats[key]))
        for column, stats in marginal_statistics(data).items()
        for key, measure in (("tvd", "tvd"), ("ks", "ks"), ("unseen_share", "unseen"))
        if key in stats
    ]
    gaps += [
        ColumnGap(column, "missing", float(gap))
        for column, gap in missing_rate_differences(data).items()
    ]
    return sorted(gaps, key=lambda gap: -gap.distance)


def worst_column_scores(
    data: ValidationData,
) -> tuple[dict[str, float | None], dict[str, dict[str, float]]]:
    """Each check's score (``1 −`` the largest distance; ``None`` when no column has that
    measure) and, as its part, the worst column with its score.

    Examples
    --------
    >>> scores, parts = worst_column_scores(data)  # doctest: +SKIP
    >>> parts["worst_discrete_column"]  # doctest: +SKIP
    {'site': 0.683}
    """
    gaps = column_gaps(data)
    scores: dict[str, float | None] = {}
    parts: dict[str, dict[str, float]] = {}
    for name, (_, measure) in WORST_COLUMN_CHECKS.items():
        worst = next((gap for gap in gaps if gap.measure == measure), None)
        scores[name] = None if worst is None else 1.0 - worst.distance
        parts[name] = {} if worst is None else {worst.column: 1.0 - worst.distance}
    return scores, parts


def unseen_values(data: ValidationData) -> dict[str, list]:
    """A few synthetic values of each discrete column that none of its real categories holds
    (most frequent first); columns without any are left out.

    Examples
    --------
    >>> unseen_values(data)  # doctest: +SKIP
    {'stage': ['IV']}
    """
    return {
        column: stats["unseen_values"]
        for column, stats in marginal_statistics(data).items()
        if stats.get("unseen_values")
    }


def worst_columns(data: ValidationData, n: int = N_WORST_LISTED) -> list[ColumnGap]:
    """The ``n`` columns furthest from the real ones (each column once, by its largest gap)."""
    listed: dict[str, ColumnGap] = {}
    for gap in column_gaps(data):
        listed.setdefault(gap.column, gap)
    return list(listed.values())[:n]
