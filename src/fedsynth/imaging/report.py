"""The HTML report of synthetic images: privacy verdict, the 14 image metrics with flags, the
per-label utility of a classifier trained on synthetic images, and grids of real and synthetic
images per label value (and per site).

:func:`image_report` runs :func:`~fedsynth.imaging.validation.validate_images` and judges each
metric (:func:`image_flags`); the verdict is the worst privacy flag, the gate that lets
synthetic images leave fedsynth (as for tables and notes). :func:`write_image_report` writes a
self-contained page (styles inline, grids as base64 PNG, no external resource) and the numbers
as JSON next to it.

The page shows a few real images next to the synthetic ones (at most ``per_group`` per label
value) so that a reader can judge them by eye: the file is therefore private, and says so.

Thresholds
----------
* ``privacy.near_copies`` (share of synthetic images with SSIM >= 0.95 to a training image):
  ``pass`` at 0, ``warn`` up to 1 %, ``fail`` above.
* ``privacy.closest_training_distance`` (share closer to a training image than 95 % of unseen
  real images are; 5 % by chance): ``pass`` up to 10 %, ``warn`` up to 20 %, ``fail`` above.
* ``privacy.membership_inference`` (AUC of the distance attack): ``pass`` up to 0.6, ``warn``
  up to 0.7, ``fail`` above, the limits of the tables' report.
* Fidelity (PIQE quality included), diversity and utility metrics are judged on their score
  in [0, 1]: ``pass`` at 0.8 or more, ``warn`` at 0.6 or more, ``fail`` below. They inform and
  do not enter the verdict.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fedsynth.core.io import atomic_path
from fedsynth.core.metrics import Flag, MetricResult, json_ready
from fedsynth.imaging.imageset import ImageSet

#: (warn above, fail above) for the privacy metrics, on their value (lower is better).
PRIVACY_LIMITS: dict[str, tuple[float, float]] = {
    "near_copies": (0.0, 0.01),
    "closest_training_distance": (0.10, 0.20),
    "membership_inference": (0.60, 0.70),
}
#: (pass at or above, warn at or above) on the score of the other metrics.
SCORE_PASS, SCORE_WARN = 0.8, 0.6
#: Label columns with more distinct values than this get no grid (ages, identifiers).
MAX_GROUPS = 8

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
main { max-width: 1200px; margin: 0 auto; padding: 24px; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
table { border-collapse: collapse; margin: 12px 0; background: white; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 10px; color: white;
         font-weight: 600; }
.pass { background: #2ca02c; } .warn { background: #d89b00; } .fail { background: #d62728; }
.na, .unchecked { background: #999; }
.muted { color: #666; font-size: 13px; } .private { color: #a00; font-weight: 600; }
figure { display: inline-block; margin: 8px; background: white; border: 1px solid #eee;
         padding: 8px; vertical-align: top; }
figure img { image-rendering: pixelated; } figcaption { color: #555; font-size: 13px; }
"""


def image_flags(results: Iterable[MetricResult]) -> list[Flag]:
    """Pass/warn/fail on each computed image metric (see the module's thresholds).

    Examples
    --------
    >>> from fedsynth.core.metrics import MetricResult
    >>> r = MetricResult("membership_inference", "privacy", "lower", 0.65, 0.7, "")
    >>> image_flags([r])[0].status
    'warn'
    """
    flags = []
    for result in results:
        if result.skipped is not None or result.value is None:
            continue
        if result.name in PRIVACY_LIMITS:
            warn, fail = PRIVACY_LIMITS[result.name]
            value = float(result.value)
            status = "pass" if value <= warn else "warn" if value <= fail else "fail"
            rule = f"pass <= {warn:g}, warn <= {fail:g}, fail above"
            flags.append(Flag(f"privacy.{result.name}", status, value, rule))
        elif result.score is not None:
            score = float(result.score)
            status = "pass" if score >= SCORE_PASS else "warn" if score >= SCORE_WARN else "fail"
            rule = f"score: pass >= {SCORE_PASS:g}, warn >= {SCORE_WARN:g}, fail below"
            flags.append(Flag(f"{result.family}.{result.name}", status, score, rule))
    return flags


def privacy_verdict(flags: Iterable[Flag | Mapping[str, Any]]) -> str:
    """The worst status of the privacy flags, or ``"unchecked"`` when there is none.

    Examples
    --------
    >>> privacy_verdict([Flag("privacy.near_copies", "pass", 0.0, "")])
    'pass'
    """
    statuses = {
        f.status if isinstance(f, Flag) else f["status"]
        for f in flags
        if (f.name if isinstance(f, Flag) else f["name"]).startswith("privacy.")
    }
    for status in ("fail", "warn", "pass"):
        if status in statuses:
            return status
    return "unchecked"


def image_report(
    real: ImageSet,
    synthetic: ImageSet,
    holdout: ImageSet | None = None,
    *,
    epochs: int = 10,
    seed: int = 0,
    max_images: int = 1000,
    utility_epochs: int = 20,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every image metric, its flag and the privacy verdict, JSON-ready.

    Parameters
    ----------
    real, synthetic, holdout : ImageSet
        Real training images, synthetic images, and optionally real images the generator never
        saw (membership inference needs them).
    epochs, seed, max_images, utility_epochs
        Passed to :func:`~fedsynth.imaging.validation.validate_images`.
    extra : dict, optional
        More JSON-ready entries (the run's settings, an override reason).

    Returns
    -------
    dict
        ``metrics`` (list), ``flags`` (list), ``verdict``, ``images`` (counts) and the entries
        of ``extra``. Aggregates only: no image is copied into it.
    """
    from fedsynth.imaging.validation import validate_images

    results = list(
        validate_images(
            real,
            synthetic,
            holdout,
            epochs=epochs,
            seed=seed,
            max_images=max_images,
            utility_epochs=utility_epochs,
        ).values()
    )
    flags = image_flags(results)
    counts = {"real": len(real), "synthetic": len(synthetic)}
    if holdout is not None:
        counts["holdout"] = len(holdout)
    return {
        **json_ready(dict(extra or {})),
        "images": counts,
        "metrics": [r.to_dict() for r in results],
        "flags": [f.to_dict() for f in flags],
        "verdict": privacy_verdict(flags),
    }


def grid_groups(real: ImageSet, synthetic: ImageSet) -> list[tuple[str, Any]]:
    """The (column, value) pairs that get a grid: each value of a label column both sets share
    (the site column included) with at most :data:`MAX_GROUPS` values; none when no column
    is shared (then one grid of all images)."""
    groups: list[tuple[str, Any]] = []
    for column in real.labels.columns:
        if column not in synthetic.labels.columns:
            continue
        values = synthetic.labels[column].dropna().unique()
        if 0 < len(values) <= MAX_GROUPS:
            groups += [(column, v) for v in sorted(values, key=str)]
    return groups


def render_image_report(
    report: Mapping[str, Any],
    real: ImageSet,
    synthetic: ImageSet,
    *,
    per_group: int = 4,
    title: str = "fedsynth image report",
    seed: int = 0,
    show_real: bool = True,
) -> str:
    """The report as one self-contained HTML page.

    Parameters
    ----------
    report : dict
        From :func:`image_report`.
    real, synthetic : ImageSet
        The images shown: ``per_group`` of each per label value, drawn at random.
    per_group : int
        Images of each set per grid (real ones are shown for comparison only).
    title : str
    seed : int
        Seed of the choice of images shown.
    show_real : bool
        Show real images beside the synthetic ones. ``False`` gives a page without any real
        image (the grey scale still follows the real images' percentiles), which may go where
        the synthetic images may.
    """
    rng = np.random.default_rng(seed)
    low, high = _display_range(real)
    groups = grid_groups(real, synthetic) or [(None, None)]
    figures = []
    for column, value in groups:
        real_idx = _pick(real, column, value, per_group if show_real else 0, rng)
        synth_idx = _pick(synthetic, column, value, per_group, rng)
        if len(synth_idx) == 0 and len(real_idx) == 0:
            continue
        png = _grid_png(real.images[real_idx], synthetic.images[synth_idx], low, high)
        what = "all images" if column is None else f"{column} = {value}"
        caption = (
            f"{what}: {len(real_idx)} real (left) | {len(synth_idx)} synthetic (right); "
            f"one row per channel: {', '.join(map(str, real.channels))}"
        )
        figures.append(
            f'<figure><img src="data:image/png;base64,{png}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    counts = ", ".join(f"{k} {v}" for k, v in report.get("images", {}).items())
    override = report.get("override")
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p>Privacy verdict {_badge(report['verdict'])}"
        + (f" &nbsp; overridden: {_e(override)}" if override else "")
        + "</p>",
        f'<p class="muted">Images: {_e(counts)}.</p>',
        '<p class="private">Private: real images are shown next to the synthetic ones for '
        "comparison (a few per label value), so this file holds patient images and must stay "
        "where the real data may be.</p>"
        if show_real
        else '<p class="muted">Synthetic images only: no real image is shown.</p>',
        "<h2>Metrics</h2>",
        _metrics_table(report),
        _utility_table(report),
        "<h2>Real and synthetic images</h2>",
        *figures,
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def write_image_report(
    report: Mapping[str, Any],
    real: ImageSet,
    synthetic: ImageSet,
    path: str | Path,
    **options: Any,
) -> Path:
    """Write the page to ``path`` and the numbers to ``path`` with suffix ``.json``, each
    atomically (a reader never sees half a file); return the page's path.

    ``options`` go to :func:`render_image_report`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page = render_image_report(report, real, synthetic, **options)
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def _pick(
    images: ImageSet, column: str | None, value: Any, k: int, rng: np.random.Generator
) -> np.ndarray:
    if column is None:
        where = np.arange(len(images))
    else:
        where = np.flatnonzero((images.labels[column] == value).to_numpy())
    return np.sort(rng.choice(where, size=min(k, len(where)), replace=False))


def _display_range(real: ImageSet) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel 1st and 99th percentiles of the real images: real and synthetic images
    are shown on one grey scale, so that a brightness shift is visible."""
    flat = np.moveaxis(real.images, 1, 0).reshape(real.images.shape[1], -1)
    low, high = np.percentile(flat, [1, 99], axis=1)
    return low, np.where(high > low, high, low + 1.0)


def _grid_png(real: np.ndarray, synthetic: np.ndarray, low: np.ndarray, high: np.ndarray) -> str:
    """One mosaic (channels as rows; real tiles, a gap, synthetic tiles) as base64 PNG."""
    from matplotlib.image import imsave

    channels, h, w = (real if len(real) else synthetic).shape[1:4]
    scale = max(1, 64 // max(h, w))  # small images are enlarged so that a reader sees them
    gap = max(2, w // 4)
    tiles = [*real, None, *synthetic]
    mosaic = np.ones((channels * (h + 1), (len(tiles) - 1) * (w + 1) + gap), np.float32)
    x = 0
    for tile in tiles:
        if tile is None:
            x += gap
            continue
        for c in range(channels):
            shown = (tile[c] - low[c]) / (high[c] - low[c])
            mosaic[c * (h + 1) : c * (h + 1) + h, x : x + w] = np.clip(shown, 0, 1)
        x += w + 1
    mosaic = np.kron(mosaic, np.ones((scale, scale), np.float32))
    buffer = io.BytesIO()
    imsave(buffer, mosaic, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _metrics_table(report: Mapping[str, Any]) -> str:
    status = {f["name"].split(".", 1)[1]: f["status"] for f in report["flags"]}
    rows = []
    for m in report["metrics"]:
        if m.get("skipped"):
            cells = f'<td colspan="4" class="muted">skipped: {_e(m["skipped"])}</td>'
        else:
            better = "higher" if m["direction"] == "higher" else "lower"
            cells = (
                f'<td class="num">{_fmt(m["value"])}</td><td>{better} is better</td>'
                f'<td class="num">{_fmt(m["score"])}</td><td>{_badge(status.get(m["name"]))}</td>'
            )
        rows.append(
            f"<tr><td>{_e(m['name'])}</td><td>{_e(m['family'])}</td>{cells}"
            f"<td>{_e(m['description'])}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("metric", "family", "value", "direction", "score", "flag", "what it measures")
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _utility_table(report: Mapping[str, Any]) -> str:
    """Per label column: the holdout performance of the classifier trained on synthetic
    images beside the one trained on real images (empty when the metric was skipped)."""
    utility = next((m for m in report["metrics"] if m["name"] == "classifier_utility"), None)
    per_label = (utility or {}).get("details", {}).get("per_label") or {}
    if not per_label:
        return ""
    keys = ("auc", "accuracy", "sensitivity", "specificity")
    rows = []
    for column, results in per_label.items():
        for trained, label in (("synthetic", "synthetic"), ("real", "real (reference)")):
            cells = "".join(f'<td class="num">{_fmt(results[trained][k])}</td>' for k in keys)
            rows.append(f"<tr><td>{_e(column)}</td><td>{label}</td>{cells}</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("label", "trained on", *keys))
    return (
        "<h2>Utility per label</h2>"
        '<p class="muted">A small CNN trained on the synthetic (or the real training) images, '
        "tested on the real holdout; sensitivity and specificity of the positive class, macro "
        "means beyond two classes.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _badge(status: str | None) -> str:
    status = status or "na"
    return f'<span class="badge {_e(status)}">{_e(status.upper())}</span>'


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else _e(value)


def _e(value: Any) -> str:
    return html.escape(str(value))
