"""What every validation metric declares and returns.

A metric is a small object with a ``name``, a ``family`` (one of :data:`FAMILIES`), a
``direction`` (whether higher or lower values of its headline number are better) and a
``compute`` method returning a :class:`MetricResult`. Scores are always in [0, 1] with 1 best,
whatever the direction of the raw value.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

Family = Literal["fidelity", "diversity", "utility", "survival", "genomic", "privacy"]
Direction = Literal["higher", "lower"]
Status = Literal["pass", "warn", "fail"]

#: Most warnings kept per metric result.
MAX_WARNINGS = 5
#: The metric families, in report order.
FAMILIES: tuple[str, ...] = ("fidelity", "diversity", "utility", "survival", "genomic", "privacy")


@dataclass
class MetricResult:
    """The outcome of one metric.

    Attributes
    ----------
    name, family, direction : str
        As declared by the metric.
    value : float or None
        The headline number in the metric's own unit (``None`` when skipped).
    score : float or None
        The value mapped to [0, 1], 1 best; ``None`` for metrics that only inform.
    description : str
        One sentence: what is measured and how the score is derived.
    columns : dict of str to float
        Per-column (or per-pair, per-gene, per-covariate) values, when the metric has them.
    details : dict
        Further JSON-ready numbers (aggregates only, never a row of real data).
    skipped : str or None
        Why the metric was not computed, when it was not.
    """

    name: str
    family: str
    direction: str
    value: float | None
    score: float | None
    description: str
    columns: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN and infinities become ``None``)."""
        return {
            "name": self.name,
            "family": self.family,
            "direction": self.direction,
            "value": json_ready(self.value),
            "score": json_ready(self.score),
            "description": self.description,
            "columns": json_ready(self.columns),
            "details": json_ready(self.details),
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class Flag:
    """A pass/warn/fail verdict on one score or one privacy check.

    Attributes
    ----------
    name : str
        What is judged, e.g. ``"privacy.exact_copies"`` or ``"csf"``.
    status : {"pass", "warn", "fail"}
    value : float or None
        The number judged.
    rule : str
        The documented threshold that gave the status.
    """

    name: str
    status: Status
    value: float | None
    rule: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "status": self.status,
            "value": json_ready(self.value),
            "rule": self.rule,
        }


class Metric:
    """Base class of the validation metrics (the template: ``compute`` wraps ``_compute``).

    Subclasses set the class attributes and implement ``_compute``, returning the headline
    value, the score and optionally per-column values and details, or raise
    :class:`Skip` when the inputs do not allow the metric (no holdout, no survival columns).
    ``data`` is whatever its modality prepares once for all its metrics (for tables,
    :class:`fedsynth.tabular.validation.data.ValidationData`).
    """

    name: ClassVar[str]
    family: ClassVar[str]
    direction: ClassVar[str]
    description: ClassVar[str]

    def compute(self, data: Any) -> MetricResult:
        """Run the metric on prepared inputs and return its typed result.

        Warnings raised by the libraries underneath are not shown but kept, distinct and at
        most :data:`MAX_WARNINGS`, in the result's ``details["warnings"]``.
        """
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                outcome = self._compute(data)
            except Skip as reason:
                return MetricResult(
                    self.name,
                    self.family,
                    self.direction,
                    None,
                    None,
                    self.description,
                    skipped=str(reason),
                )
        details = dict(outcome.details)
        messages = list(dict.fromkeys(str(w.message).split("\n")[0] for w in caught))
        if messages:
            details["warnings"] = [*details.get("warnings", []), *messages][:MAX_WARNINGS]
        return MetricResult(
            self.name,
            self.family,
            self.direction,
            _finite_or_none(outcome.value),
            None if outcome.score is None else clip01(outcome.score),
            self.description,
            columns=outcome.columns,
            details=details,
        )

    def _compute(self, data: Any) -> Outcome:
        raise NotImplementedError


@dataclass
class Outcome:
    """What a metric's ``_compute`` returns; :meth:`Metric.compute` turns it into a result."""

    value: float | None
    score: float | None
    columns: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


class Skip(Exception):
    """Raised by ``_compute`` when a metric does not apply; the message says why."""


def clip01(value: float) -> float:
    """``value`` clipped to [0, 1] (NaN stays NaN)."""
    return float(min(1.0, max(0.0, value))) if not math.isnan(value) else math.nan


def mean_or_none(values) -> float | None:
    """Mean of the finite values, or ``None`` when there are none."""
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def json_ready(value: Any) -> Any:
    """Numpy scalars and arrays to Python, non-finite floats to ``None``, recursively."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value
