"""The self-contained HTML report: the worst columns, scores, flags, notes, one section per
family, plots inline.

The page has no external resource (styles inline, plots as base64 PNG) so that it can be mailed
or archived as one file. It shows aggregates of the real data only (frequencies, histograms,
curves, matrices, distances), never a real row.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from fedsynth.core.metrics import FAMILIES, MetricResult
from fedsynth.tabular.validation import plots
from fedsynth.tabular.validation.scores import PRIVACY_LIMITS, SCORE_DEFINITIONS, SCORE_THRESHOLDS
from fedsynth.tabular.validation.worst_columns import WORST_COLUMN_CHECKS

if TYPE_CHECKING:
    from fedsynth.tabular.validation.api import ValidationReport

_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 0;
       color: #222; background: #fafafa; }
main { max-width: 1200px; margin: 0 auto; padding: 24px; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px;
     margin-top: 36px; }
table { border-collapse: collapse; margin: 12px 0; background: white; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 10px; color: white;
         font-weight: 600; }
.pass { background: #2ca02c; } .warn { background: #d89b00; } .fail { background: #d62728; }
.na { background: #999; }
.muted { color: #666; font-size: 13px; } .skipped { color: #999; font-style: italic; }
figure { margin: 12px 0; background: white; border: 1px solid #eee; padding: 8px; }
figure img { max-width: 100%; } figcaption { color: #555; font-size: 13px; }
.notes li { margin: 2px 0; }
"""

_FAMILY_TITLES = {
    "fidelity": "Fidelity",
    "diversity": "Diversity and coverage",
    "utility": "Utility (train on synthetic, test on real)",
    "survival": "Survival",
    "genomic": "Genomic structure",
    "privacy": "Privacy",
}


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int,)):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return _e(value)


def _badge(status: str | None) -> str:
    status = status or "na"
    return f'<span class="badge {_e(status)}">{_e(status.upper())}</span>'


def _figure(png: str | None, caption: str) -> str:
    if png is None:
        return ""
    return (
        f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{png}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num(value: Any, digits: int = 3) -> str:
    return f'<td class="num">{_fmt(value, digits)}</td>'


def _cell(text: Any) -> str:
    return f"<td>{_e(text)}</td>"


def _metrics_table(results: list[MetricResult]) -> str:
    rows = []
    for r in results:
        if r.skipped is not None:
            rows.append(
                [
                    _cell(r.name),
                    f'<td colspan="3" class="skipped">skipped: {_e(r.skipped)}</td>',
                    _cell(r.description),
                ]
            )
            continue
        better = "higher is better" if r.direction == "higher" else "lower is better"
        rows.append(
            [_cell(r.name), _num(r.value), _cell(better), _num(r.score), _cell(r.description)]
        )
    return _table(["metric", "value", "direction", "score", "what it measures"], rows)


def _scores_section(report: ValidationReport) -> str:
    rows = []
    for name, definition in SCORE_DEFINITIONS.items():
        value = report.scores.get(name)
        status = next((f.status for f in report.flags if f.name == name), None)
        threshold = SCORE_THRESHOLDS.get(name)
        rule = f"pass ≥ {threshold[0]}, warn ≥ {threshold[1]}" if threshold else "not flagged"
        parts = report.parts.get(name, {})
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in parts.items()) if parts else ""
        badge = _badge(status) if status else ""
        rows.append(
            [
                _cell(name),
                _num(value),
                f"<td>{badge}</td>",
                _cell(definition),
                _cell(shown),
                _cell(rule),
            ]
        )
    table = _table(["score", "value", "flag", "definition", "parts", "thresholds"], rows)
    return f"<h2>Scores</h2>{_figure(plots.scores(report), 'Headline scores')}{table}"


_MEASURES = {
    "tvd": "total variation",
    "ks": "KS statistic",
    "missing": "|Δ missing rate|",
    "unseen": "share of unseen categories",
}


def _worst_columns_section(report: ValidationReport) -> str:
    """The columns furthest from the real ones, each judged by its check's thresholds, with
    their marginals: a column far off shows here even when every mean looks fine."""
    if not report.worst_columns:
        return ""
    check_of = {measure: name for name, (_, measure) in WORST_COLUMN_CHECKS.items()}
    kinds = report.info.get("kinds", {})
    rows = []
    for gap in report.worst_columns:
        pass_at, warn_at = SCORE_THRESHOLDS[check_of[gap.measure]]
        score = 1.0 - gap.distance
        status = "pass" if score >= pass_at else "warn" if score >= warn_at else "fail"
        limits = f"pass ≤ {1 - pass_at:.2f}, warn ≤ {1 - warn_at:.2f}"
        rows.append(
            [
                _cell(gap.column),
                _cell(kinds.get(gap.column, "")),
                _cell(_MEASURES[gap.measure]),
                _num(gap.distance),
                f"<td>{_badge(status)}</td>",
                _cell(limits),
            ]
        )
    header = ["column", "kind", "measure", "distance", "flag", "thresholds"]
    png, shown = plots.marginals(report, [gap.column for gap in report.worst_columns])
    figure = _figure(png, f"Marginals of the worst columns, real vs synthetic: {', '.join(shown)}")
    return "<h2>Worst columns</h2>" + _table(header, rows) + figure


def _flags_section(report: ValidationReport) -> str:
    rows = [
        [_cell(f.name), f"<td>{_badge(f.status)}</td>", _num(f.value), _cell(f.rule)]
        for f in report.flags
    ]
    limits = ", ".join(
        f"{name}: warn ≥ {warn}, fail ≥ {fail}" for name, (warn, fail) in PRIVACY_LIMITS.items()
    )
    return (
        "<h2>Flags</h2>"
        + _table(["check", "status", "value", "rule"], rows)
        + f'<p class="muted">Privacy limits: {_e(limits)}. Any exact copy of a training row '
        "shared by fewer than 5 patients fails privacy.</p>"
    )


def _notes_section(report: ValidationReport) -> str:
    notes = list(report.notes)
    info = report.info
    if not notes:
        notes.append("every metric used every row (no subsampling)")
    items = "".join(f"<li>{_e(n)}</li>" for n in notes)
    return (
        "<h2>How it was computed</h2>"
        f'<ul class="notes">{items}</ul>'
        f'<p class="muted">Heavy metrics use at most {_fmt(info.get("max_rows"))} rows per table '
        f"(max_rows); Anonymeter runs {_fmt(info.get('n_attacks'))} attacks per evaluator; "
        f"seed {_fmt(info.get('seed'))}.</p>"
    )


def _per_column_table(report: ValidationReport) -> str:
    def values(metric: str) -> dict:
        result = report.results.get(metric)
        return {} if result is None else result.columns

    ks, w, tvd = values("ks_statistic"), values("wasserstein_distance"), values("total_variation")
    hel, kl, miss = (
        values("hellinger_distance"),
        values("kl_divergence"),
        values("missing_rate_difference"),
    )
    kinds = report.info.get("kinds", {})
    rows = [
        [
            _cell(c),
            _cell(kinds.get(c, "")),
            _num(ks.get(c)),
            _num(w.get(c)),
            _num(tvd.get(c)),
            _num(hel.get(c)),
            _num(kl.get(c)),
            _num(miss.get(c)),
        ]
        for c in kinds
    ]
    header = [
        "column",
        "kind",
        "KS",
        "Wasserstein / range",
        "TVD",
        "Hellinger",
        "KL",
        "|Δ missing|",
    ]
    return "<h3>Per column</h3>" + _table(header, rows)


def _hazard_table(report: ValidationReport) -> str:
    result = report.results.get("hazard_ratio_agreement")
    if result is None or result.skipped is not None:
        return ""
    rows = []
    for covariate, h in result.details["hazard_ratios"].items():
        rows.append(
            [
                _cell(covariate),
                _cell(f"{h['hr_real']:.2f} [{h['hr_real_ci'][0]:.2f}, {h['hr_real_ci'][1]:.2f}]"),
                _num(h["p_real"]),
                _cell(
                    f"{h['hr_synthetic']:.2f} [{h['hr_synthetic_ci'][0]:.2f}, "
                    f"{h['hr_synthetic_ci'][1]:.2f}]"
                ),
            ]
        )
    return "<h3>Cox hazard ratios (95 % CI)</h3>" + _table(
        ["covariate", "real", "p (real)", "synthetic"], rows
    )


def _anonymeter_table(report: ValidationReport) -> str:
    rows = []
    for name in ("singling_out_risk", "linkability_risk", "attribute_inference_risk"):
        result = report.results.get(name)
        if result is None or result.skipped is not None:
            continue
        for attack, r in result.details["risks"].items():
            rows.append(
                [
                    _cell(attack),
                    _num(r["risk"]),
                    _cell(f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"),
                    _num(r["attack_rate"]),
                    _num(r["baseline_rate"]),
                    _num(r["control_rate"]),
                ]
            )
    if not rows:
        return ""
    header = [
        "attack (Anonymeter)",
        "risk",
        "95 % CI",
        "attack rate",
        "baseline rate",
        "control rate",
    ]
    return "<h3>Anonymeter risks</h3>" + _table(header, rows)


def _family_section(report: ValidationReport, family: str) -> str:
    results = [r for r in report.results.values() if r.family == family]
    if not results:
        return ""
    parts = [f"<h2>{_e(_FAMILY_TITLES[family])}</h2>", _metrics_table(results)]
    if family == "fidelity":
        kinds = report.info.get("kinds", {})
        genomic = set(report.info.get("genomic_columns", []))
        clinical = [c for c in kinds if c not in genomic]
        png, shown = plots.marginals(report, clinical)
        caption = (
            f"Marginal distributions, real vs synthetic: {len(shown)} of {len(clinical)} "
            "clinical columns" + ("; genomic columns are in the genomic section" if genomic else "")
        )
        parts.append(_figure(png, caption))
        parts.append(
            _figure(
                plots.association_difference(report),
                "Association matrix of real minus synthetic data (Spearman ρ, "
                "Cramér's V, correlation ratio): 0 is perfect",
            )
        )
        parts.append(_per_column_table(report))
    elif family == "utility":
        parts.append(_figure(plots.utility_bars(report), "Holdout performance by model family"))
    elif family == "survival":
        parts.append(_figure(plots.kaplan_meier(report), "Kaplan–Meier curves, real vs synthetic"))
        parts.append(
            _figure(
                plots.cumulative_incidence(report),
                "Cumulative incidence by cause (competing risks), real vs synthetic",
            )
        )
        parts.append(_hazard_table(report))
    elif family == "genomic":
        parts.append(_figure(plots.mutation_frequencies(report), "Mutation frequency by gene"))
        parts.append(
            _figure(
                plots.co_occurrence(report),
                "Pairwise co-mutation log odds ratios (Haldane-corrected, clipped "
                "to ±3): purple co-occurring, orange exclusive",
            )
        )
    elif family == "privacy":
        parts.append(
            _figure(plots.dcr_histograms(report), "Distance to the closest training row (DCR)")
        )
        parts.append(_anonymeter_table(report))
    return "".join(parts)


def render_html(report: ValidationReport, *, title: str = "fedsynth validation report") -> str:
    """The report as one self-contained HTML page."""
    info = report.info
    rows = info.get("rows", {})
    sizes = ", ".join(f"{k} {_fmt(v)} rows" for k, v in rows.items() if v is not None)
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in info.get("seconds", {}).items())
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p>{_badge(report.status)} &nbsp; overall score "
        f"<b>{_fmt(report.scores.get('overall'))}</b></p>",
        f'<p class="muted">{_e(sizes)}; {_fmt(info.get("columns"))} columns compared; '
        f"target {_e(info.get('target'))}; fedsynth {_e(info.get('fedsynth_version'))}; "
        f"{_e(info.get('created'))}.</p>",
        '<p class="muted">This page shows aggregates of the real data only (frequencies, '
        "histograms, curves, matrices, distances); no real record is included.</p>",
        _worst_columns_section(report),
        _scores_section(report),
        _flags_section(report),
        _notes_section(report),
    ]
    body += [_family_section(report, family) for family in FAMILIES]
    body.append(
        f'<p class="muted">Computed in {_fmt(info.get("total_seconds"), 1)} s ({_e(timing)}).</p>'
    )
    return _page(title, "".join(body))


def render_comparison_html(
    table: pd.DataFrame,
    *,
    title: str = "fedsynth comparison",
    links: Mapping[str, str] | None = None,
) -> str:
    """A page with one row per synthetic dataset (from :func:`comparison_table`).

    ``links`` maps a row name to the relative path of its full report.
    """
    links = dict(links or {})
    header = ["dataset", *[str(c) for c in table.columns]]
    rows = []
    for name, row in table.iterrows():
        label = _e(name)
        if name in links:
            label = f'<a href="{_e(links[name])}">{label}</a>'
        cells = [f"<td>{label}</td>"]
        for column, value in row.items():
            if column == "status":
                cells.append(f"<td>{_badge(str(value))}</td>")
            else:
                cells.append(_num(None if pd.isna(value) else float(value)))
        rows.append(cells)
    body = (
        f"<h1>{_e(title)}</h1>"
        + _table(header, rows)
        + '<p class="muted">Scores in [0, 1], higher is better; see each report for their '
        "definitions.</p>"
    )
    return _page(title, body)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
