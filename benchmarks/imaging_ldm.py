"""latent_diffusion on the simulated brain MRI cohort: fit CPU time, sampling speed and FID.

A measurement, not the issue's full imaging benchmark (``benchmarks/imaging.py``: sites, a held
out site, classifiers): one model on pooled 64 x 64 x 4 slices, a real holdout as the FID
reference (real-holdout vs real-train in the same autoencoder feature space), one torch thread,
CPU seconds (``time.process_time`` of this process).

The fit's CPU time is measured per epoch for each network, so that a short run also tells what
the default epochs cost on the same images (``fit_cpu_s_at_defaults``: the measured seconds per
epoch times the default epochs, the extrapolation is named as such in the results).

Run: ``PYTHONPATH=src python benchmarks/imaging_ldm.py [--n 1000] [--ae-epochs 20]
[--epochs 150]``; writes ``benchmarks/results/{name}.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="patients (one slice each)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--ae-epochs", type=int, default=None, help="default: the model's")
    parser.add_argument("--epochs", type=int, default=None, help="default: the model's")
    parser.add_argument("--sample", type=int, default=256, help="images drawn for speed and FID")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="imaging_ldm", help="results file stem")
    parser.add_argument("--save", default=None, help="folder to save the fitted model to")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    import torch._dynamo  # a once-per-process import, not part of the fit

    import fedsynth
    from fedsynth.core.progress import EpochDone
    from fedsynth.imaging import brain_mri_cohort, validate_images
    from fedsynth.imaging.validation.data import prepare_image_validation
    from fedsynth.imaging.validation.fidelity import frechet_distance, prdc

    cohort = brain_mri_cohort(args.n, sites=3, size=args.size, seed=args.seed)
    train, holdout = cohort.split(0.3, seed=args.seed, stratify="tumour_type")
    params = {"seed": args.seed, "device": "cpu", "label_columns": ["tumour_type", "idh_mutant"]}
    if args.ae_epochs is not None:
        params["ae_epochs"] = args.ae_epochs
    if args.epochs is not None:
        params["epochs"] = args.epochs
    gen = fedsynth.make("latent_diffusion", **params)
    marks: list[tuple[int, float]] = []

    def mark(event: EpochDone) -> None:
        marks.append((event.epoch, time.process_time()))

    start = time.process_time()
    gen.fit(train, progress=mark)
    fit_cpu = time.process_time() - start
    ae_epochs = int(gen.ae_epochs)
    ae_end = marks[ae_epochs - 1][1] if ae_epochs else start
    ae_per_epoch = (ae_end - start) / max(ae_epochs, 1)
    unet_per_epoch = (marks[-1][1] - ae_end) / max(int(gen.epochs), 1)
    defaults = type(gen)()
    at_defaults = ae_per_epoch * defaults.ae_epochs + unet_per_epoch * defaults.epochs

    if args.save:
        gen.save(args.save)
    gen.sample(8, seed=0)  # first call's set-up out of the clock
    start = time.process_time()
    synthetic = gen.sample(args.sample, seed=1)
    sample_cpu = time.process_time() - start

    start = time.process_time()
    data = prepare_image_validation(train, synthetic, holdout, seed=args.seed)
    results = validate_images(None, None, data=data)
    validation_cpu = time.process_time() - start
    fid = results["fid"]
    # The autoencoder's ceiling: its reconstructions of the holdout in the same feature space
    # (what the samples would score if the diffusion model drew the latents perfectly).
    rebuilt = prepare_image_validation(
        train, gen.reconstruct(holdout), seed=args.seed, extractor=data.extractor
    ).synthetic_features
    ceiling = prdc(data.real_features, rebuilt)
    row = {
        "n_train": len(train),
        "n_holdout": len(holdout),
        "size": args.size,
        "params": {k: v for k, v in gen.get_params().items() if k != "label_values"},
        "n_classes": gen.schema_.n_classes,
        "fit_cpu_s": fit_cpu,
        "ae_cpu_s_per_epoch": ae_per_epoch,
        "unet_cpu_s_per_epoch": unet_per_epoch,
        "fit_cpu_s_at_defaults (extrapolated)": at_defaults,
        "sample_images_per_cpu_s": args.sample / sample_cpu,
        "fid_synthetic_vs_train": fid.value,
        "fid_holdout_vs_train": fid.details.get("holdout_fid"),
        "fid_ratio": fid.value / fid.details["holdout_fid"]
        if fid.details.get("holdout_fid")
        else None,
        "fid_autoencoder_holdout_reconstructions_vs_train": frechet_distance(
            data.real_features, rebuilt
        ),
        "precision_autoencoder_holdout_reconstructions": ceiling["precision"],
        "recall_autoencoder_holdout_reconstructions": ceiling["recall"],
        "kid_synthetic_vs_train": results["kid"].value,
        "kid_holdout_vs_train": results["kid"].details.get("holdout_kid"),
        "precision": results["precision"].value,
        "recall": results["recall"].value,
        "near_copies": results["near_copies"].value,
        "validation_cpu_s": validation_cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "last_losses": gen.history_[-1],
        "torch_threads": 1,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(row, indent=2, default=str) + "\n")
    lines = [f"# {__doc__.splitlines()[0]}", "", "| measure | value |", "|---|---|"]
    for key, value in row.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} |")
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
