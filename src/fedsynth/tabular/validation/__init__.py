"""SAFE validation of synthetic data: fidelity, diversity, utility, survival, genomic, privacy.

:func:`validate` compares a synthetic table with the real table it imitates (and, optionally, a
real holdout the generator never saw) and returns a :class:`ValidationReport` with scores in
[0, 1] (higher is better), pass/warn/fail flags, every metric's typed result, and writers for
JSON and a self-contained HTML report. :func:`compare` puts several synthetic tables side by
side. The framework works on any pair of tables, whichever tool generated them.
"""

from fedsynth.core.metrics import FAMILIES, Flag, Metric, MetricResult
from fedsynth.tabular.validation.api import (
    MAX_ROWS,
    METRICS,
    N_ATTACKS,
    ValidationReport,
    compare,
    comparison_table,
    validate,
)
from fedsynth.tabular.validation.scores import PRIVACY_LIMITS, SCORE_DEFINITIONS, SCORE_THRESHOLDS

__all__ = [
    "FAMILIES",
    "MAX_ROWS",
    "METRICS",
    "N_ATTACKS",
    "PRIVACY_LIMITS",
    "SCORE_DEFINITIONS",
    "SCORE_THRESHOLDS",
    "Flag",
    "Metric",
    "MetricResult",
    "ValidationReport",
    "compare",
    "comparison_table",
    "validate",
]
