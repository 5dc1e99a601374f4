"""The validation report of synthetic notes and its privacy gate.

:func:`notes_report` runs the text metrics (:mod:`fedsynth.text.validation`) and judges the
privacy checks with documented thresholds (:func:`privacy_flags`); :func:`gate_verdict` is the
worst of them. Synthetic notes leave fedsynth (a CSV written by the command line, a download of
the web app) only when the verdict is ``pass`` or ``warn``, or an override with a reason is
recorded, as for tables.

Thresholds
----------
* ``privacy.verbatim_copies``: ``fail`` when any synthetic note reproduces a private word
  8-gram that the public prompt lacks (ESA releases public candidates only, so a copy means the
  mechanism was bypassed, e.g. by non-private ICL); ``pass`` otherwise.
* ``privacy.note_membership_inference``: AUC of the distance attack; ``pass`` up to 0.6,
  ``warn`` up to 0.7, ``fail`` above.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fedsynth.core.metrics import Flag, MetricResult, json_ready
from fedsynth.text.validation import TextValidationData, evaluate_notes

MIA_PASS, MIA_WARN = 0.6, 0.7


def privacy_flags(results: Iterable[MetricResult]) -> list[Flag]:
    """Pass/warn/fail verdicts on the privacy metrics that were computed."""
    flags = []
    for result in results:
        if result.skipped is not None or result.value is None:
            continue
        if result.name == "verbatim_copies":
            copies = float(result.details.get("private_8grams_reproduced", 0.0))
            status = "fail" if copies > 0 else "pass"
            flags.append(
                Flag("privacy.verbatim_copies", status, copies, "fail if any private 8-gram")
            )
        elif result.name == "note_membership_inference":
            auc = float(result.value)
            status = "pass" if auc <= MIA_PASS else "warn" if auc <= MIA_WARN else "fail"
            rule = f"pass <= {MIA_PASS}, warn <= {MIA_WARN}, fail above (AUC)"
            flags.append(Flag("privacy.note_membership_inference", status, auc, rule))
    return flags


def gate_verdict(flags: Iterable[Flag | Mapping[str, Any]]) -> str:
    """The worst status of the privacy flags, or ``"unchecked"`` when there is none.

    Examples
    --------
    >>> gate_verdict([Flag("privacy.verbatim_copies", "pass", 0.0, "")])
    'pass'
    >>> gate_verdict([])
    'unchecked'
    """
    statuses = {f.status if isinstance(f, Flag) else f["status"] for f in flags}
    for status in ("fail", "warn", "pass"):
        if status in statuses:
            return status
    return "unchecked"


def notes_report(
    private: Sequence[str],
    synthetic: Sequence[str],
    *,
    embedder: Any,
    holdout: Sequence[str] | None = None,
    synthetic_rows: Sequence[Mapping[str, Any]] | None = None,
    public: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every text metric, the privacy flags and the gate's verdict, JSON-ready.

    Parameters
    ----------
    private, synthetic : sequences of str
        The notes the generator read, and those it wrote.
    embedder : object with ``embed(texts)``
    holdout : sequence of str, optional
        Real notes the generator never read (membership inference needs them).
    synthetic_rows : sequence of dict, optional
        The rows the synthetic notes were conditioned on (consistency).
    public : sequence of str
        Public prompt texts, whose n-grams are not copies.
    extra : dict, optional
        More JSON-ready entries (the run's settings, the privacy spent).

    Returns
    -------
    dict
        ``metrics`` (list), ``flags`` (list), ``verdict`` and the entries of ``extra``.
        Aggregates only: no note is copied into it.
    """
    data = TextValidationData.prepare(
        private,
        synthetic,
        embedder=embedder,
        holdout=holdout,
        synthetic_rows=synthetic_rows,
        public=public,
    )
    results = evaluate_notes(data)
    flags = privacy_flags(results)
    return {
        **json_ready(dict(extra or {})),
        "metrics": [r.to_dict() for r in results],
        "flags": [f.to_dict() for f in flags],
        "verdict": gate_verdict(flags),
    }


def write_report(report: Mapping[str, Any], folder: str | Path) -> Path:
    """Write ``report.json`` and a plain ``report.html`` in ``folder``; return the HTML path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    rows = "".join(
        f"<tr><td>{html.escape(m['name'])}</td><td>{html.escape(m['family'])}</td>"
        f"<td>{_cell(m.get('value'))}</td><td>{_cell(m.get('score'))}</td>"
        f"<td>{html.escape(m.get('skipped') or m['description'])}</td></tr>"
        for m in report["metrics"]
    )
    flags = "".join(
        f"<li>{html.escape(f['name'])}: <b>{html.escape(f['status'])}</b> "
        f"({_cell(f.get('value'))}; {html.escape(f['rule'])})</li>"
        for f in report["flags"]
    )
    page = (
        "<!doctype html><meta charset='utf-8'><title>fedsynth notes report</title>"
        f"<h1>Synthetic notes: privacy verdict {html.escape(report['verdict'])}</h1>"
        f"<ul>{flags}</ul><table border=1><tr><th>metric</th><th>family</th><th>value</th>"
        f"<th>score</th><th>about</th></tr>{rows}</table>"
    )
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _cell(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
