"""Figures of the validation report, drawn from the report's aggregates (never from rows).

Each function takes a :class:`~fedsynth.tabular.validation.ValidationReport` (or part of one) and
returns a PNG as a base64 string, or ``None`` when the report lacks the numbers. matplotlib's
object API is used (no pyplot), so that drawing neither needs a display nor changes the backend
of the caller's session.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fedsynth.tabular.validation.scores import SCORE_THRESHOLDS

if TYPE_CHECKING:
    from fedsynth.tabular.validation.api import ValidationReport

REAL, SYNTHETIC, BASELINE = "#1f77b4", "#ff7f0e", "#7f7f7f"
#: Columns shown in the grid of marginals (clinical columns first).
MAX_MARGINALS = 24
#: Columns shown in the association heatmap.
MAX_HEATMAP_COLUMNS = 60
_DPI = 80


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _details(report: ValidationReport, metric: str) -> dict | None:
    result = report.results.get(metric)
    if result is None or result.skipped is not None:
        return None
    return result.details


def scores(report: ValidationReport) -> str | None:
    """Horizontal bars of the headline scores."""
    names = [
        n
        for n in ("csf", "gsf", "utility", "privacy", "overall")
        if report.scores.get(n) is not None
    ]
    if not names:
        return None
    values = [report.scores[n] for n in names]
    fig = Figure(layout="constrained", figsize=(6, 0.45 * len(names) + 0.6))
    ax = fig.add_subplot()
    colors = []
    for name, value in zip(names, values, strict=True):
        pass_at, warn_at = SCORE_THRESHOLDS[name]
        colors.append(
            "#2ca02c" if value >= pass_at else "#ffbf00" if value >= warn_at else "#d62728"
        )
    ax.barh([n.upper() for n in names][::-1], values[::-1], color=colors[::-1])
    for i, v in enumerate(values[::-1]):
        ax.text(min(v + 0.01, 0.93), i, f"{v:.3f}", va="center")
    ax.set_xlim(0, 1)
    ax.set_xlabel("score (1 is best; green pass, amber warn, red fail)")
    return _png(fig)


def marginals(report: ValidationReport, columns: list[str]) -> tuple[str | None, list[str]]:
    """Histograms (numbers) and category bars (labels), real next to synthetic.

    Returns the PNG and the columns shown (at most :data:`MAX_MARGINALS`).
    """
    histograms = (_details(report, "ks_statistic") or {}).get("histograms", {})
    frequencies = (_details(report, "total_variation") or {}).get("frequencies", {})
    shown = [c for c in columns if c in histograms or c in frequencies][:MAX_MARGINALS]
    if not shown:
        return None, []
    n_cols = 4
    n_rows = int(np.ceil(len(shown) / n_cols))
    fig = Figure(layout="constrained", figsize=(4 * n_cols, 2.8 * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, column in zip(axes, shown, strict=False):
        if column in histograms:
            h = histograms[column]
            edges = np.asarray(h["edges"], dtype=float)
            ax.stairs(h["real"], edges, color=REAL, label="real", linewidth=1.8)
            ax.stairs(h["synthetic"], edges, color=SYNTHETIC, label="synthetic", linewidth=1.8)
        else:
            f = frequencies[column]
            x = np.arange(len(f["categories"]))
            ax.bar(x - 0.2, f["real"], width=0.4, color=REAL, label="real")
            ax.bar(x + 0.2, f["synthetic"], width=0.4, color=SYNTHETIC, label="synthetic")
            ax.set_xticks(
                x, [str(c)[:12] for c in f["categories"]], rotation=45, ha="right", fontsize=7
            )
        ax.set_title(column, fontsize=10)
        ax.tick_params(labelsize=7)
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    return _png(fig), shown


def association_difference(report: ValidationReport) -> str | None:
    """Heatmap of the association matrix of real minus that of synthetic data."""
    details = _details(report, "pairwise_association")
    if details is None:
        return None
    columns = details["columns"][:MAX_HEATMAP_COLUMNS]
    k = len(columns)
    diff = np.asarray(details["real"], dtype=float) - np.asarray(details["synthetic"], dtype=float)
    diff = np.nan_to_num(diff[:k, :k])
    size = min(4 + 0.18 * k, 14)
    fig = Figure(layout="constrained", figsize=(size + 1.5, size))
    ax = fig.add_subplot()
    image = ax.imshow(diff, cmap="RdBu_r", vmin=-1, vmax=1)
    fontsize = 8 if k <= 30 else 6
    ax.set_xticks(range(k), columns, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(k), columns, fontsize=fontsize)
    ax.set_title("association real − synthetic")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _png(fig)


def kaplan_meier(report: ValidationReport) -> str | None:
    """Kaplan–Meier curves real vs synthetic, overall and by group."""
    overall = _details(report, "km_gap")
    if overall is None:
        return None
    groups = _details(report, "group_km_gap") or {}
    levels = list(groups.get("curves", {}))
    n_panels = 1 + len(levels)
    n_cols = min(n_panels, 3)
    n_rows = int(np.ceil(n_panels / n_cols))
    fig = Figure(layout="constrained", figsize=(5 * n_cols, 3.6 * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    curves = overall["curves"]
    panels = [("all patients", curves["time"], curves["real"], curves["synthetic"])]
    for level in levels:
        c = groups["curves"][level]
        panels.append((f"{groups['group']} = {level}", groups["time"], c["real"], c["synthetic"]))
    for ax, (title, time, real, synthetic) in zip(axes, panels, strict=False):
        ax.step(time, real, where="post", color=REAL, label="real")
        ax.step(time, synthetic, where="post", color=SYNTHETIC, label="synthetic")
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("time")
        ax.set_ylabel("survival")
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    axes[0].legend()
    return _png(fig)


def cumulative_incidence(report: ValidationReport) -> str | None:
    """Aalen–Johansen cumulative incidence real vs synthetic, one panel per competing cause."""
    details = _details(report, "cif_gap")
    if details is None:
        return None
    causes = list(details["curves"])
    fig = Figure(layout="constrained", figsize=(5 * len(causes), 3.6))
    axes = fig.subplots(1, len(causes), squeeze=False).ravel()
    for ax, cause in zip(axes, causes, strict=True):
        curves = details["curves"][cause]
        ax.step(details["time"], curves["real"], where="post", color=REAL, label="real")
        ax.step(details["time"], curves["synthetic"], where="post", color=SYNTHETIC,
                label="synthetic")  # fmt: skip
        ax.set_ylim(0, 1.02)
        ax.set_title(f"cause {cause}", fontsize=10)
        ax.set_xlabel("time")
        ax.set_ylabel("cumulative incidence")
    axes[0].legend()
    return _png(fig)


def mutation_frequencies(report: ValidationReport) -> str | None:
    """Bars of mutation frequency by gene, real next to synthetic (most frequent first)."""
    details = _details(report, "mutation_frequency")
    if details is None:
        return None
    real = np.asarray(details["real"], dtype=float)
    synthetic = np.asarray(details["synthetic"], dtype=float)
    order = np.argsort(-real, kind="stable")
    genes = [details["genes"][i] for i in order]
    x = np.arange(len(genes))
    fig = Figure(layout="constrained", figsize=(max(6, 0.35 * len(genes) + 2), 3.5))
    ax = fig.add_subplot()
    ax.bar(x - 0.2, real[order], width=0.4, color=REAL, label="real")
    ax.bar(x + 0.2, synthetic[order], width=0.4, color=SYNTHETIC, label="synthetic")
    ax.set_xticks(x, genes, rotation=90, fontsize=8)
    ax.set_ylabel("mutation frequency")
    ax.legend()
    return _png(fig)


def co_occurrence(report: ValidationReport) -> str | None:
    """Heatmaps of pairwise co-mutation log odds ratios, real and synthetic."""
    details = _details(report, "co_occurrence")
    if details is None:
        return None
    genes = details["genes"]
    k = len(genes)
    size = min(3 + 0.2 * k, 9)
    fig = Figure(layout="constrained", figsize=(2 * size + 1.5, size))
    axes = fig.subplots(1, 2)
    image = None
    for ax, key, title in zip(
        axes,
        ("log_odds_ratio_real", "log_odds_ratio_synthetic"),
        ("real", "synthetic"),
        strict=True,
    ):
        matrix = np.clip(np.asarray(details[key], dtype=float), -3, 3)
        image = ax.imshow(matrix, cmap="PuOr", vmin=-3, vmax=3)
        ax.set_xticks(range(k), genes, rotation=90, fontsize=7)
        ax.set_yticks(range(k), genes, fontsize=7)
        ax.set_title(f"log odds ratio of co-mutation: {title}", fontsize=10)
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    return _png(fig)


def dcr_histograms(report: ValidationReport) -> str | None:
    """Histograms of distances to the closest training row: synthetic rows and the baseline."""
    details = _details(report, "dcr")
    if details is None:
        return None
    h = details["histogram"]
    edges = np.asarray(h["edges"], dtype=float)
    fig = Figure(layout="constrained", figsize=(7, 3.4))
    ax = fig.add_subplot()
    ax.stairs(h["synthetic"], edges, color=SYNTHETIC, label="synthetic rows", fill=True, alpha=0.5)
    ax.stairs(h["baseline"], edges, color=BASELINE, label=details["baseline"], linewidth=2)
    ax.set_xlabel("Gower distance to the closest training row")
    ax.set_ylabel("share of rows")
    ax.legend(fontsize=8)
    return _png(fig)


def utility_bars(report: ValidationReport) -> str | None:
    """Holdout performance of each model family, trained on real vs on synthetic rows."""
    details = _details(report, "tstr_performance")
    if details is None:
        return None
    tstr = report.results["tstr_performance"].columns
    families = list(tstr)
    x = np.arange(len(families))
    fig = Figure(layout="constrained", figsize=(6, 3.2))
    ax = fig.add_subplot()
    ax.bar(
        x - 0.2,
        [details["trtr"][f] for f in families],
        width=0.4,
        color=REAL,
        label="trained on real",
    )
    ax.bar(
        x + 0.2,
        [tstr[f] for f in families],
        width=0.4,
        color=SYNTHETIC,
        label="trained on synthetic",
    )
    ax.set_xticks(x, [f.replace("_", " ") for f in families])
    ax.set_ylabel(f"holdout {details['metric']} ({details['target']})")
    if details["metric"] == "AUROC":
        ax.set_ylim(0.4, 1.0)
        ax.axhline(0.5, color=BASELINE, linestyle=":", linewidth=1)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)
