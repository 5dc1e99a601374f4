"""The report of ``benchmarks/imaging.py``: each of issue 21's targets met or MISSED, and the
results as JSON and Markdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _imaging_arms import LABELS

RESULTS = Path(__file__).resolve().parent / "results"
TITLE = "Imaging study: classifiers on real and synthetic brain MRI, tested on a held-out site"


def _auc(result, arm: str, label: str) -> float | None:
    found = result["arms"].get(arm)
    return None if found is None else found["labels"][label]["auc"]


def targets(result: dict[str, Any]) -> list[str]:
    """Each of the issue's targets, met or MISSED, with its numbers."""
    lines = []
    arms = result["arms"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    for label in LABELS:
        central, fedavg = _auc(result, "real_central", label), _auc(result, "real_fedavg", label)
        sharing = _auc(result, "ldm_generator_sharing", label)
        for arm in [a for a in arms if not a.startswith("real_")]:
            auc = _auc(result, arm, label)
            lines.append(
                f"{label}: {arm} AUC {auc:.3f} >= centralized {central:.3f} - 0.02: "
                f"{verdict(auc >= central - 0.02)}"
            )
        if sharing is not None:
            lines.append(
                f"{label}: generator sharing AUC {sharing:.3f} >= FedAvg {fedavg:.3f} - 0.02: "
                f"{verdict(sharing >= fedavg - 0.02)}"
            )
        # Each private arm against the non-private arm of the same recipe (e.g. the same
        # warm start on public images).
        for suffix in ("", "_public"):
            private, plain = (
                _auc(result, f"dp_gan_private{suffix}", label),
                _auc(result, f"dp_gan_nonprivate{suffix}", label),
            )
            if private is None or plain is None:
                continue
            vacuous = " (non-private near chance: not informative)" if plain < 0.6 else ""
            lines.append(
                f"{label}: dp_gan{suffix} private AUC {private:.3f} >= 0.85 x non-private "
                f"{plain:.3f} = {0.85 * plain:.3f}: {verdict(private >= 0.85 * plain)}{vacuous}"
            )
    for arm, row in arms.items():
        if arm.startswith("real_"):
            continue
        lines.append(
            f"{arm}: FID ratio {row['fid_ratio']:.2f} (synthetic "
            f"{row['fid_synthetic_vs_train']:.2f} / holdout {row['fid_holdout_vs_train']:.2f}) "
            f"<= 1.5: {verdict(row['fid_ratio'] <= 1.5)}"
        )
        closer = (
            row["nearest_pixels"]["synthetic_closer"] + row["nearest_features"]["synthetic_closer"]
        )
        lines.append(
            f"{arm}: synthetic images closer to a training image than the closest holdout image: "
            f"{row['nearest_pixels']['synthetic_closer']} in pixels, "
            f"{row['nearest_features']['synthetic_closer']} in features (target 0; near-copy "
            f"filter dropped {_dropped(row)}): {verdict(closer == 0)}"
        )
        if "opacus_rdp_epsilon" in row:
            ok = (
                abs(row["opacus_rdp_epsilon"] - row["ledger_epsilon"])
                <= 0.01 * row["ledger_epsilon"]
            )
            lines.append(
                f"{arm}: epsilon {row['ledger_epsilon']:.3f} (target {row['target_epsilon']:g}); "
                f"Opacus RDP {row['opacus_rdp_epsilon']:.3f}, PRV {row['opacus_prv_epsilon']:.3f}; "
                f"ledger = independent RDP within 1 % and <= target: "
                f"{verdict(ok and row['ledger_epsilon'] <= row['target_epsilon'] * 1.0001)}"
            )
    if "ldm_central" in arms:
        row = arms["ldm_central"]
        if row["fit_cpu_s"] is None:
            lines.append(
                f"latent_diffusion fit: not timed in this run (model loaded from "
                f"{row['loaded_from']})"
            )
        else:
            lines.append(
                f"latent_diffusion fit {row['fit_cpu_s'] / 60:.1f} CPU min <= 20: "
                f"{verdict(row['fit_cpu_s'] <= 1200)}"
            )
        lines.append(
            f"latent_diffusion sampling {row['images_per_cpu_s']:.1f} images per CPU s "
            f">= 5: {verdict(row['images_per_cpu_s'] >= 5)}"
        )
    if "ldm_generator_sharing" in arms:
        row = arms["ldm_generator_sharing"]
        total = row["fit_cpu_s"] + row["sample_cpu_s"]
        lines.append(
            f"generator-sharing experiment (site fits + sampling) {total / 60:.1f} CPU min"
            f" <= 30: {verdict(total <= 1800)}"
        )
    peak = result["peak_rss_mb"]
    lines.append(f"peak memory {peak:.0f} MB <= 4096: {verdict(peak <= 4096)}")
    return lines


def write(result: dict[str, Any], name: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    text = markdown(result)
    (RESULTS / f"{name}.md").write_text(text)
    print(text)


def _dropped(row: dict[str, Any]) -> str:
    """Draws the near-copy filter dropped (and replaced), or "off"."""
    found = row.get("copy_filter")
    if found is None:
        return "off"
    if not found.get("cross_site"):
        return str(found["dropped"])
    flagged = ", ".join(f"{site} {n}" for site, n in found["flagged_by_site"].items())
    return f"{found['dropped']} (each draw checked at every site; flagged by {flagged})"


def _f(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    settings, images = result["settings"], result["images"]
    lines = [
        f"# {TITLE}",
        "",
        f"Images: train {images['train']}, holdout {images['holdout']} (same sites), test "
        f"{images['test']} ({images['test_site']}, held out of all training). Settings: "
        f"`{json.dumps({k: v for k, v in settings.items() if k != 'name'}, default=str)}`. "
        f"Wall {result['wall_s'] / 60:.1f} min, {result['cpu_s'] / 60:.1f} CPU min; one torch "
        "thread; CPU seconds of this process.",
        "",
        "## Classifiers on the held-out site",
        "",
        "| arm | label | accuracy | AUC | sensitivity | specificity | McNemar p vs central |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, row in result["arms"].items():
        for label, r in row["labels"].items():
            lines.append(
                f"| {arm} | {label} | {_f(r['accuracy'])} | {_f(r['auc'])} | "
                f"{_f(r['sensitivity'])} | {_f(r['specificity'])} | "
                f"{_f(r.get('mcnemar_p_vs_central'))} |"
            )
    lines += [
        "",
        "Tumour type: AUC one-vs-rest macro, sensitivity and specificity macro means over the "
        "three types (per type in the JSON); IDH: of the mutant class.",
        "",
        "## Synthetic sets",
        "",
        "| arm | FID syn / holdout (ratio) | closer than holdout: pixels, features | dropped "
        "by the copy filter | PIQE syn / train | fit CPU s | images per CPU s | peak RSS MB | "
        "epsilon (ledger / Opacus RDP / PRV) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, row in result["arms"].items():
        if arm.startswith("real_"):
            continue
        eps = (
            f"{row['ledger_epsilon']:.3f} / {row['opacus_rdp_epsilon']:.3f} / "
            f"{row['opacus_prv_epsilon']:.3f}"
            if "ledger_epsilon" in row
            else "-"
        )
        lines.append(
            f"| {arm} | {row['fid_synthetic_vs_train']:.2f} / {row['fid_holdout_vs_train']:.2f} "
            f"({row['fid_ratio']:.1f}) | {row['nearest_pixels']['synthetic_closer']}, "
            f"{row['nearest_features']['synthetic_closer']} of {row['n_synthetic']} | "
            f"{_dropped(row)} | {row['piqe']['synthetic']:.1f} / {row['piqe']['train']:.1f} | "
            f"{_f(row['fit_cpu_s'], 0)} | {row['images_per_cpu_s']:.1f} | "
            f"{row['peak_rss_mb']:.0f} | "
            f"{eps} |"
        )
    public = {
        arm: row["public_images"] for arm, row in result["arms"].items() if "public_images" in row
    }
    if public:
        lines += ["", "## Public images (warm start, no privacy cost)", ""]
        lines += [
            f"- {arm}: {p['images']} images of `{p['cohort']}`, {p['epochs']} epochs before the "
            "training images"
            for arm, p in public.items()
        ]
        lines.append(
            "- Another seed than the study's cohort: other patients, and other scanners (each "
            "site's gains, noise, bias field and blur are drawn from the seed), all three of its "
            "sites, labels used. The same simulator: its label-to-appearance rules are those of "
            "the private images, so this public set is as close to them as a public set can be."
        )
    lines += ["", "## Targets", ""]
    if settings.get("quick"):
        lines += [
            "Quick run: generators and classifiers train far below their defaults, to check the "
            "pipeline; its quality numbers say nothing of the defaults, and its time targets "
            "are met only because it trains little.",
            "",
        ]
    lines += [f"- {t}" for t in result["targets"]]
    return "\n".join(lines) + "\n"
