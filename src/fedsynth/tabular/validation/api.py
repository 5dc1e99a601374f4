"""``validate`` and ``compare``: run every metric family and gather one report."""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fedsynth._version import __version__
from fedsynth.core.metrics import FAMILIES, Flag, Metric, MetricResult, json_ready
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.validation import diversity, fidelity, genomic, privacy, survival, utility
from fedsynth.tabular.validation.data import prepare
from fedsynth.tabular.validation.scores import (
    SCORE_DEFINITIONS,
    compute_flags,
    compute_scores,
    overall_status,
)
from fedsynth.tabular.validation.worst_columns import ColumnGap, unseen_values, worst_columns

#: The metrics of each family, in report order.
METRICS: dict[str, tuple[Metric, ...]] = {
    "fidelity": fidelity.METRICS,
    "diversity": diversity.METRICS,
    "utility": utility.METRICS,
    "survival": survival.METRICS,
    "genomic": genomic.METRICS,
    "privacy": privacy.METRICS,
}
_STEP_NAMES = {
    "fidelity": "Fidelity: marginals and pairwise structure",
    "diversity": "Diversity and coverage",
    "utility": "Utility: train on synthetic, test on real",
    "survival": "Survival: Kaplan-Meier and Cox models",
    "genomic": "Genomic structure",
    "privacy": "Privacy: distances, membership inference, Anonymeter",
}
#: Default cap on the rows that heavy metrics use from each table.
MAX_ROWS = 5000
#: Default number of attacks of each Anonymeter evaluator.
N_ATTACKS = 500

Progress = bool | Callable[[str], AbstractContextManager[Any]]


@dataclass
class ValidationReport:
    """Scores, flags and every metric result of one validation.

    Attributes
    ----------
    scores : dict of str to float or None
        ``csf``, ``gsf``, ``utility``, ``privacy``, ``overall`` and the sub-scores
        ``clinical_fidelity``, ``survival``, ``diversity``, each in [0, 1] (1 best) or ``None``
        when it could not be computed; see :data:`~fedsynth.tabular.validation.SCORE_DEFINITIONS`.
    parts : dict of str to dict
        For each score, the values it averages.
    flags : list of Flag
        Pass/warn/fail verdicts with their documented thresholds.
    status : str
        The worst flag: ``"pass"``, ``"warn"`` or ``"fail"``.
    results : dict of str to MetricResult
        Every metric, by name.
    notes : list of str
        Subsamples and fallbacks used in the computation.
    worst_columns : list of ColumnGap
        The columns furthest from the real ones, worst first (see
        :mod:`~fedsynth.tabular.validation.worst_columns`).
    info : dict
        Table sizes, settings, timings, the fedsynth version and the date.
    """

    scores: dict[str, float | None]
    parts: dict[str, dict[str, float | None]]
    flags: list[Flag]
    status: str
    results: dict[str, MetricResult]
    notes: list[str] = field(default_factory=list)
    worst_columns: list[ColumnGap] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Everything in the report as JSON-ready data (aggregates only, no real row)."""
        return {
            "format": "fedsynth-validation-report",
            "format_version": 1,
            "status": self.status,
            "scores": json_ready(self.scores),
            "score_definitions": SCORE_DEFINITIONS,
            "parts": json_ready(self.parts),
            "flags": [f.to_dict() for f in self.flags],
            "notes": list(self.notes),
            "worst_columns": [gap.to_dict() for gap in self.worst_columns],
            "info": json_ready(self.info),
            "results": {name: r.to_dict() for name, r in self.results.items()},
        }

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` to ``path``; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n")
        return path

    def to_html(
        self, path: str | os.PathLike, *, title: str = "fedsynth validation report"
    ) -> Path:
        """Write a self-contained HTML report (plots embedded as PNG) to ``path``."""
        from fedsynth.tabular.validation.report import render_html

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(self, title=title), encoding="utf-8")
        return path

    def table(self) -> pd.DataFrame:
        """One row per metric: family, direction, value, score, skipped."""
        rows = [
            {
                "metric": r.name,
                "family": r.family,
                "direction": r.direction,
                "value": r.value,
                "score": r.score,
                "skipped": r.skipped,
            }
            for r in self.results.values()
        ]
        return pd.DataFrame(rows).set_index("metric")

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{k}={v:.3f}" if v is not None else f"{k}=n/a"
            for k, v in self.scores.items()
            if k in ("csf", "gsf", "utility", "privacy", "overall")
        )
        return f"<ValidationReport {self.status}: {shown}>"


def validate(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    *,
    holdout: pd.DataFrame | None = None,
    metadata: Metadata | Mapping[str, Any] | str | os.PathLike | None = None,
    target: str | None = None,
    group: str | None = None,
    families: Iterable[str] = FAMILIES,
    metrics: Iterable[str] | None = None,
    max_rows: int = MAX_ROWS,
    n_attacks: int = N_ATTACKS,
    seed: int = 0,
    progress: Progress = False,
) -> ValidationReport:
    """Measure how well ``synthetic`` matches ``real`` and how much it exposes its patients.

    Parameters
    ----------
    real : DataFrame
        The real table the generator was trained on.
    synthetic : DataFrame
        The synthetic table, from any tool; it needs the real table's columns (identifiers
        excepted).
    holdout : DataFrame, optional
        Real rows the generator never saw: needed by the utility metrics, membership inference
        and Anonymeter, and used as the baseline of the distance metrics.
    metadata : Metadata, dict or path, optional
        Column kinds of the real table (all or some columns; the rest are inferred).
    target : str, optional
        Column that the utility models predict (default: the survival event).
    group : str, optional
        Discrete column whose levels get their own survival curves (default: the site).
    families : iterable of str
        Metric families to run (default: all of ``FAMILIES``).
    metrics : iterable of str, optional
        Names of the metrics to run within those families (default: all of them), e.g.
        ``["column_shapes", "tstr_ratio"]`` for a quick screen; scores whose parts were not run
        are left out of the report.
    max_rows : int
        Largest number of rows that heavy metrics (pairwise associations, nearest neighbours,
        Cox and utility models, Anonymeter) use from each table; the report says when rows
        were left out.
    n_attacks : int
        Attacks of each Anonymeter evaluator.
    seed : int
        Seed of every subsample, model and attack.
    progress : bool or callable
        ``True`` prints each family's duration to standard error; a callable taking a
        description and returning a context manager (such as
        :func:`fedsynth.cli.progress.step`) wraps each family.

    Returns
    -------
    ValidationReport

    Raises
    ------
    InvalidDataError
        When a table lacks columns, holds unusable values, or an argument names no column.

    Examples
    --------
    >>> import fedsynth
    >>> df = fedsynth.datasets.mds_cohort(n=600, seed=0)
    >>> train, test = df.iloc[:400], df.iloc[400:]
    >>> syn = fedsynth.make("gaussian_copula", seed=0).fit(train).sample(400)  # doctest: +SKIP
    >>> report = validate(train, syn, holdout=test)  # doctest: +SKIP
    >>> sorted(report.scores)[:3]  # doctest: +SKIP
    ['clinical_fidelity', 'csf', 'diversity']
    """
    start = time.perf_counter()
    families = list(families)
    unknown = [f for f in families if f not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric famil(y/ies) {unknown}; expected some of {FAMILIES}")
    offered = [m.name for f in families for m in METRICS[f]]
    wanted = set(offered) if metrics is None else set(metrics)
    if not wanted or wanted - set(offered):
        raise ValueError(
            f"unknown metric(s) {sorted(wanted - set(offered)) or '(none given)'} for the "
            f"families {families}; expected some of {offered}"
        )
    data = prepare(
        real,
        synthetic,
        holdout=holdout,
        metadata=metadata,
        target=target,
        group=group,
        max_rows=max_rows,
        n_attacks=n_attacks,
        seed=seed,
    )
    wrap = _progress(progress)
    results: dict[str, MetricResult] = {}
    timings: dict[str, float] = {}
    for family in FAMILIES:
        if family not in families:
            continue
        family_start = time.perf_counter()
        with wrap(_STEP_NAMES[family]):
            for metric in METRICS[family]:
                if metric.name in wanted:
                    results[metric.name] = metric.compute(data)
        timings[family] = round(time.perf_counter() - family_start, 3)
    scores, parts = compute_scores(results, data)
    flags = compute_flags(scores, results, parts, unseen_values(data))
    info = {
        "rows": {
            "real": len(data.real),
            "synthetic": len(data.synthetic),
            "holdout": None if data.holdout is None else len(data.holdout),
        },
        "columns": len(data.columns),
        "kinds": {c: data.kind(c) for c in data.columns},
        "genomic_columns": data.genomic,
        "target": data.target,
        "group": data.group,
        "families": [f for f in FAMILIES if f in families],
        "max_rows": max_rows,
        "n_attacks": n_attacks,
        "seed": seed,
        "seconds": timings,
        "total_seconds": round(time.perf_counter() - start, 3),
        "fedsynth_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    return ValidationReport(
        scores=scores,
        parts=parts,
        flags=flags,
        status=overall_status(flags),
        results=results,
        notes=list(data.notes),
        worst_columns=worst_columns(data),
        info=info,
    )


def compare(
    synthetic: Mapping[str, pd.DataFrame],
    real: pd.DataFrame,
    *,
    holdout: pd.DataFrame | None = None,
    metadata: Metadata | Mapping[str, Any] | str | os.PathLike | None = None,
    target: str | None = None,
    group: str | None = None,
    families: Iterable[str] = FAMILIES,
    max_rows: int = MAX_ROWS,
    n_attacks: int = N_ATTACKS,
    seed: int = 0,
    progress: Progress = False,
) -> pd.DataFrame:
    """Validate several synthetic tables against the same real data, side by side.

    Parameters
    ----------
    synthetic : mapping of str to DataFrame
        One synthetic table per generator or strategy, by name.
    real, holdout, metadata, target, group, families, max_rows, n_attacks, seed, progress
        As in :func:`validate`.

    Returns
    -------
    DataFrame
        One row per name: the scores, the status and the headline privacy numbers
        (:func:`comparison_table`).

    Examples
    --------
    >>> table = compare({"copula": syn_a, "bn": syn_b}, train, holdout=test)  # doctest: +SKIP
    >>> table[["csf", "privacy", "status"]]  # doctest: +SKIP
    """
    if not synthetic:
        raise ValueError("compare needs at least one synthetic table")
    families = list(families)
    reports = {
        name: validate(
            real,
            table,
            holdout=holdout,
            metadata=metadata,
            target=target,
            group=group,
            families=families,
            max_rows=max_rows,
            n_attacks=n_attacks,
            seed=seed,
            progress=progress,
        )
        for name, table in synthetic.items()
    }
    return comparison_table(reports)


def comparison_table(reports: Mapping[str, ValidationReport]) -> pd.DataFrame:
    """One row per report: scores, status and headline privacy numbers.

    Examples
    --------
    >>> reports = {"copula": validate(train, syn_a, holdout=test)}  # doctest: +SKIP
    >>> comparison_table(reports).loc["copula", "overall"]  # doctest: +SKIP
    0.81
    """
    rows = []
    headline = {
        "exact_copies": "exact_copy_share",
        "dcr": "dcr_closer_probability",
        "membership_inference_distance": "membership_auc_distance",
        "membership_inference_density": "membership_auc_density",
    }
    for name, report in reports.items():
        row: dict[str, Any] = {"name": name, "status": report.status}
        row.update(report.scores)
        for metric, column in headline.items():
            result = report.results.get(metric)
            row[column] = None if result is None else result.value
        rows.append(row)
    return pd.DataFrame(rows).set_index("name")


def _progress(progress: Progress) -> Callable[[str], AbstractContextManager[Any]]:
    if callable(progress):
        return progress
    return _print_step if progress else _silent


@contextmanager
def _print_step(description: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    print(f"{description}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr)


@contextmanager
def _silent(description: str) -> Iterator[None]:
    yield
