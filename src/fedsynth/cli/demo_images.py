"""The imaging demo (``fedsynth demo --images``): the simulated brain MRI cohort in, synthetic
slices, their image report and a verdict out, in a few CPU minutes.

The settings are sized for a laptop's CPU, not for fidelity: ``latent_diffusion`` trains its
autoencoder 20 epochs and its UNet 150 on 32 x 32 slices of 210 patients (about 80 CPU s on one
thread); ``dp_gan`` trains its default 60 epochs under epsilon 5 (the CardioSynth budget).
The report says how far the samples are from the real slices (FID against the real holdout's,
precision, recall), and the privacy checks decide the verdict.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.table import Table

from fedsynth.cli.progress import console, fitting, make_generator, step

#: The image generators of the demo, with the settings that keep it to a few CPU minutes.
#: The demo-sized diffusion model samples with deterministic DDIM (eta 0): on its 150 epochs the
#: stochastic sampler (the default, eta 1) drew near-mean slices (recall 0.005, MS-SSIM 0.90 vs
#: the real 0.80; FID 24.7) where eta 0 kept the real variety (recall 0.30, MS-SSIM 0.81; FID
#: 30.6). Fully trained models do better with eta 1 (benchmarks/results/imaging_ldm.md). Its
#: numbers were measured without guidance; the default guidance (1.5) was measured only on the
#: 64 x 64 study model, so the demo keeps guidance 1 (and half the sampling cost).
DEMO_PARAMS: dict[str, dict[str, Any]] = {
    "latent_diffusion": {"ae_epochs": 20, "epochs": 150, "sampling_eta": 0.0, "guidance": 1.0},
    "dp_gan": {},  # its defaults (60 epochs, hinge loss: benchmarks/results/dp_gan_diagnosis.md)
}
#: Privacy budget of the dp_gan demo (CardioSynth's DP-GAN trained under epsilon <= 5).
DEMO_EPSILON = 5.0
#: The label the demo's generators are conditioned on, and the simulator's intensity range
#: (public facts of its design, which a DP fit needs declared).
LABEL = "idh_mutant"
INTENSITY_RANGE = [0.0, 1.5]


def run_image_demo(
    *,
    out: Path,
    model: str = "latent_diffusion",
    patients: int = 300,
    size: int = 32,
    epochs: int | None = None,
    report_epochs: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Simulate the brain MRI cohort, fit ``model`` on 70 % of it, sample, validate, write all.

    Parameters
    ----------
    out : Path
        Folder of the outputs: ``synthetic/`` (``images.npz`` + ``labels.csv``), ``model/``,
        ``image_report.html`` + ``image_report.json``.
    model : {"latent_diffusion", "dp_gan"}
        The generator (``dp_gan`` trains under epsilon :data:`DEMO_EPSILON`).
    patients, size : int
        Simulated patients (one 4-sequence slice each, 3 sites) and pixels a side.
    epochs : int, optional
        Epochs of the UNet or the GAN (the autoencoder trains ``min(20, epochs)``); default
        :data:`DEMO_PARAMS`. Small values make a quick check, not a useful model.
    report_epochs : int
        Epochs of the report's feature encoder.
    seed : int
        Seed of the cohort, the fit, the draw and the report.

    Returns
    -------
    dict
        The image report (metrics, flags, verdict) with ``cpu_seconds`` and ``wall_seconds``.
    """
    import torch

    from fedsynth.cli.images import write_sample_folder
    from fedsynth.imaging.datasets import brain_mri_cohort
    from fedsynth.imaging.report import image_report, write_image_report
    from fedsynth.imaging.validation import IMAGE_METRICS

    if model not in DEMO_PARAMS:
        raise ValueError(f"the imaging demo runs {' or '.join(DEMO_PARAMS)}, not {model!r}")
    # One thread: on a small machine more threads fight over the cores and go slower.
    torch.set_num_threads(1)
    cpu, wall = time.process_time(), time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    with step(f"Simulating {patients} brain MRI slices of {size} x {size} (T1, T1c, T2, FLAIR)"):
        cohort = brain_mri_cohort(patients, size=size, seed=seed)
        train, holdout = cohort.split(0.3, seed=seed, stratify=LABEL)
    params: dict[str, Any] = {**DEMO_PARAMS[model], "label_columns": [LABEL], "seed": seed}
    if epochs is not None:
        params["epochs"] = epochs
        if "ae_epochs" in params:
            params["ae_epochs"] = min(params["ae_epochs"], epochs)
    if model == "dp_gan":
        # The simulator's design, not its patients: public facts a DP fit may use for free.
        params["dp"] = {"epsilon": DEMO_EPSILON, "delta": 1e-5}
        params["label_values"] = {LABEL: [0, 1]}
        params["intensity_range"] = INTENSITY_RANGE
    generator = make_generator(model, **params)
    described = f"Fitting {model} on {len(train)} slices ({len(holdout)} held out)"
    with fitting(generator, described):
        generator.fit(train)
    generator.save(out / "model")
    with step(f"Sampling {len(train)} synthetic slices"):
        synthetic = generator.sample(len(train), seed=seed)
    write_sample_folder(synthetic, out / "synthetic")
    with step(f"Scoring the synthetic slices ({len(IMAGE_METRICS)} metrics, holdout as reference)"):
        spent = getattr(generator, "privacy_spent_", None)
        report = image_report(
            train,
            synthetic,
            holdout,
            epochs=report_epochs,
            seed=seed,
            extra={
                "demo": f"simulated brain MRI, {model}",
                "epsilon_spent": None if spent is None else spent.epsilon,
            },
        )
        title = f"fedsynth imaging demo: simulated brain MRI, {model}"
        page = write_image_report(report, train, synthetic, out / "image_report.html", title=title)
    report["cpu_seconds"] = time.process_time() - cpu
    report["wall_seconds"] = time.perf_counter() - wall
    console.print(_summary(report, train, synthetic, holdout))
    verdict = report["verdict"]
    colour = {"pass": "green", "warn": "yellow"}.get(verdict, "red")
    console.print(
        f"Privacy verdict: [bold {colour}]{verdict.upper()}[/] (near-copies, closeness to the "
        "training slices, membership inference)"
        + ("" if spent is None else f"; epsilon spent {spent.epsilon:.3g}")
    )
    console.print(
        f"Done in {report['wall_seconds']:.0f} s ({report['cpu_seconds']:.0f} CPU s). "
        f"Image report: [bold]{page.resolve()}[/]",
        soft_wrap=True,
    )
    console.print(f"Synthetic slices: {(out / 'synthetic').resolve()}", soft_wrap=True)
    console.print(f"Model: {(out / 'model').resolve()}", soft_wrap=True)
    return report


def _summary(report: dict[str, Any], train, synthetic, holdout) -> Table:
    """Headline figures of the report: fidelity against the real holdout's, privacy, labels."""
    metrics = {m["name"]: m for m in report["metrics"]}
    table = Table(title="Simulated brain MRI: real vs synthetic slices")
    for column, justify in (("figure", "left"), ("synthetic", "right"), ("reference", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_row("slices (train / holdout)", f"{len(synthetic)}", f"{len(train)} / {len(holdout)}")
    table.add_row(
        f"{LABEL} share",
        f"{synthetic.labels[LABEL].mean():.1%}",
        f"{train.labels[LABEL].mean():.1%} (train)",
    )
    rows = (
        ("fid", "FID to the training slices", "holdout_fid"),
        ("precision", "precision (realistic share)", "holdout_precision"),
        ("recall", "recall (real variety covered)", "holdout_recall"),
        ("ms_ssim_diversity", "MS-SSIM among images (lower: more diverse)", "real_ms_ssim"),
        ("near_copies", "near-copies of a training slice", "holdout_near_copy_share"),
        ("membership_inference", "membership-inference AUC (0.5: none)", None),
    )
    for name, label, reference in rows:
        metric = metrics.get(name)
        if metric is None or metric.get("skipped"):
            continue
        details = metric.get("details") or {}
        shown = details.get(reference) if reference else None
        table.add_row(
            label,
            f"{metric['value']:.3g}",
            ""
            if shown is None
            else f"{shown:.3g} (holdout)"
            if reference != "real_ms_ssim"
            else f"{shown:.3g} (real)",
        )
    utility = (metrics.get("classifier_utility") or {}).get("details") or {}
    label = (utility.get("per_label") or {}).get(LABEL)
    if label:
        table.add_row(
            f"{LABEL} AUC on the holdout, CNN trained on",
            f"{label['synthetic']['auc']:.3f}",
            f"{label['real']['auc']:.3f} (real)",
        )
    return table
