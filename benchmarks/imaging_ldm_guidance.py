"""Classifier-free guidance and synthetic-set size of ``latent_diffusion`` on the imaging
study's cohort: one central model fitted once, sampled under several settings.

Cohort and split as ``benchmarks/imaging.py`` (``brain_mri_cohort(n, sites=3, size=64)``, one
site held out of all training as the classifiers' test set, 20 % of the other sites' images the
real holdout). One ``latent_diffusion`` with the library's defaults (conditioned on tumour type
and IDH status, seed ``--seed``) is fitted on the training images; the fitted model is then
sampled at each guidance scale of ``--guidance`` with as many images as the training set, and at
the best scale (highest mean AUC over the two labels) with each size of ``--sizes``. Each
synthetic set trains the study's classifiers (tumour type, IDH), tested on the held-out site, and
gets the study's image checks (FID ratio, nearest-training-image counts in pixels and features).

The real classifiers are not retrained here: compare with ``real_central`` / ``real_fedavg`` of
``benchmarks/results/imaging.json`` (same cohort, split and seed). One torch thread; CPU seconds
of this process. Results are written after every setting, so a stopped run keeps what it
measured.

Run: ``PYTHONPATH=src python benchmarks/imaging_ldm_guidance.py [--model-dir DIR]`` (a model
already saved in ``DIR`` by an earlier run is loaded instead of refitted).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from _clock import Clock, preload_torch_optimiser_imports
from _imaging_arms import LABELS, concat, peak_rss_mb

from imaging import cohort_parts, image_checks, score, train_classifier

RESULTS = Path(__file__).resolve().parent / "results"
TITLE = "latent_diffusion: classifier-free guidance and synthetic-set size (one fitted model)"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=TITLE)
    add = parser.add_argument
    add("--n", type=int, default=600)
    add("--size", type=int, default=64)
    add("--test-site", default="site_2")
    add("--seed", type=int, default=0)
    add("--guidance", default="1,1.5,2,3", help="guidance scales, at the training set's size")
    add("--sizes", default="1000,2000", help="synthetic-set sizes tried at the best guidance")
    add("--ldm-epochs", type=int, default=None, help="UNet epochs (default: its own)")
    add("--ldm-ae-epochs", type=int, default=None, help="autoencoder epochs (default: its own)")
    add("--model-dir", default=None, help="save the fitted model here (or load it if present)")
    add("--name", default="imaging_ldm_guidance")
    args = parser.parse_args()
    args.clf_epochs, args.clf_rounds = None, 10  # what train_classifier reads: its defaults
    return args


def fitted_model(train, args) -> tuple[Any, float]:
    import fedsynth

    if args.model_dir and (Path(args.model_dir) / "model.json").exists():
        return fedsynth.load(args.model_dir), float("nan")
    epochs = {"epochs": args.ldm_epochs, "ae_epochs": args.ldm_ae_epochs}
    gen = fedsynth.make(
        "latent_diffusion",
        label_columns=list(LABELS),
        device="cpu",
        seed=args.seed,
        **{k: v for k, v in epochs.items() if v},
    )
    with Clock() as clock:
        gen.fit(train)
    if args.model_dir:
        gen.save(args.model_dir)
    return gen, clock.cpu


def measure(gen, guidance: float, n: int, parts, extractor, args) -> dict[str, Any]:
    """Sample ``n`` images at ``guidance``, train and score the classifiers, check the set."""
    train, holdout, test = parts
    gen.set_params(guidance=guidance)
    gen.sample(4, seed=0)
    with Clock() as clock:
        synthetic = gen.sample(n, seed=args.seed + 100)
    row: dict[str, Any] = {
        "guidance": guidance,
        "n_synthetic": n,
        "sample_cpu_s": clock.cpu,
        "images_per_cpu_s": n / max(clock.cpu, 1e-9),
        **image_checks(train, holdout, synthetic, extractor, args.seed),
        "labels": {},
    }
    for label in LABELS:
        model, cpu = train_classifier(label, synthetic, args)
        result, _ = score(model, test, None)
        row["labels"][label] = result | {"classifier_cpu_s": cpu}
    return row


def main() -> None:
    args = arguments()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    preload_torch_optimiser_imports()
    from fedsynth.imaging.validation import prepare_image_validation

    started, started_cpu = time.time(), time.process_time()
    train_by_site, holdout_by_site, test = cohort_parts(args)
    train, holdout = concat(list(train_by_site.values())), concat(list(holdout_by_site.values()))
    extractor = prepare_image_validation(train, holdout, holdout, seed=args.seed).extractor
    gen, fit_cpu = fitted_model(train, args)
    result: dict[str, Any] = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("clf_epochs", "clf_rounds")},
        "images": {"train": len(train), "holdout": len(holdout), "test": len(test)},
        "model": gen.get_params(),
        "fit_cpu_s": fit_cpu,
        "rows": [],
    }
    parts = (train, holdout, test)

    def run(guidance: float, n: int) -> None:
        row = measure(gen, guidance, n, parts, extractor, args)
        result["rows"].append(row)
        result["wall_s"], result["cpu_s"] = time.time() - started, time.process_time() - started_cpu
        result["peak_rss_mb"] = peak_rss_mb()
        write(result, args.name)
        aucs = {k: round(v["auc"], 3) for k, v in row["labels"].items()}
        print(f"guidance {guidance} n {n}: {aucs} FID ratio {row['fid_ratio']:.2f}", flush=True)

    for guidance in [float(g) for g in args.guidance.split(",")]:
        run(guidance, len(train))
    best = max(result["rows"], key=_mean_auc)["guidance"]
    result["best_guidance"] = best
    for n in [int(s) for s in args.sizes.split(",") if s]:
        run(best, n)


def _mean_auc(row: dict[str, Any]) -> float:
    return sum(row["labels"][label]["auc"] for label in LABELS) / len(LABELS)


def write(result: dict[str, Any], name: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    reference = RESULTS / "imaging.json"
    real = json.loads(reference.read_text())["arms"] if reference.exists() else {}
    lines = [
        f"# {TITLE}",
        "",
        f"Images: train {result['images']['train']}, holdout {result['images']['holdout']}, test "
        f"{result['images']['test']} (held-out site). Settings: `{json.dumps(result['settings'])}`"
        f". Fit {result['fit_cpu_s']:.0f} CPU s (nan: loaded); wall {result['wall_s'] / 60:.1f} "
        f"min, {result['cpu_s'] / 60:.1f} CPU min, peak {result['peak_rss_mb']:.0f} MB; one "
        "torch thread.",
        "",
        "| guidance | synthetic images | AUC tumour type | AUC IDH | FID ratio (syn / holdout) | "
        "closer than holdout: pixels, features | images per CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        auc = [row["labels"][label]["auc"] for label in LABELS]
        lines.append(
            f"| {row['guidance']:g} | {row['n_synthetic']} | {auc[0]:.3f} | {auc[1]:.3f} | "
            f"{row['fid_ratio']:.2f} ({row['fid_synthetic_vs_train']:.2f} / "
            f"{row['fid_holdout_vs_train']:.2f}) | {row['nearest_pixels']['synthetic_closer']}, "
            f"{row['nearest_features']['synthetic_closer']} | {row['images_per_cpu_s']:.1f} |"
        )
    for arm in ("real_central", "real_fedavg"):
        if arm in real:
            auc = [real[arm]["labels"][label]["auc"] for label in LABELS]
            lines.append(f"| {arm} (imaging.json) | real | {auc[0]:.3f} | {auc[1]:.3f} | | | |")
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.md").write_text(text)


if __name__ == "__main__":
    main()
