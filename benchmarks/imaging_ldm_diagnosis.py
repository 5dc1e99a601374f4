"""Why latent_diffusion's FID is high: what the FID features react to, and the autoencoder's
ceiling.

Same cohort, split and feature space as ``benchmarks/imaging_ldm.py`` (the validation's
autoencoder features, fitted on the real training images). Measures, each as FID against the
real training images:

1. the feature space's sensitivity: the real holdout as it is, with its scanner noise removed
   (a 3 x 3 median filter, a Gaussian blur, and the same images simulated without noise),
   with extra Gaussian noise, with one site's intensity gain changed by 10 %;
2. the autoencoder's ceiling: ``latent_diffusion``'s autoencoder trained alone for
   ``--ae-epochs`` epochs (its loss as set by ``--adversarial``), then the FID of its
   reconstructions of the training and holdout images; no diffusion model can beat it.

Run: ``PYTHONPATH=src python benchmarks/imaging_ldm_diagnosis.py [--ae-epochs 30]
[--adversarial 0.0]``; prints a table (one torch thread, CPU seconds).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--ae-epochs", type=int, default=30)
    parser.add_argument("--adversarial", type=float, default=None, help="default: the model's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-sensitivity", action="store_true")
    parser.add_argument("--skip-autoencoder", action="store_true")
    parser.add_argument(
        "--set", nargs="*", default=[], help="more model parameters, as name=json-value"
    )
    args = parser.parse_args()

    import torch
    from scipy import ndimage

    torch.set_num_threads(1)
    import fedsynth
    from fedsynth.imaging import brain_mri_cohort
    from fedsynth.imaging.validation.data import prepare_image_validation
    from fedsynth.imaging.validation.fidelity import frechet_distance, prdc

    cohort = brain_mri_cohort(args.n, sites=3, size=64, seed=args.seed)
    train, holdout = cohort.split(0.3, seed=args.seed, stratify="tumour_type")
    prepared = prepare_image_validation(train, holdout, holdout, seed=args.seed)
    extractor = prepared.extractor
    low, width = _scale(train.images)
    reference = prepared.real_features

    def fid(images: np.ndarray) -> float:
        features = extractor.transform((images - low) / width)
        return frechet_distance(reference, features)

    def precision_recall(images: np.ndarray) -> tuple[float, float]:
        found = prdc(reference, extractor.transform((images - low) / width))
        return found["precision"], found["recall"]

    rows = [("holdout (the reference)", fid(holdout.images))]
    if not args.skip_sensitivity:
        held = holdout.images
        rows += [
            ("holdout, 3x3 median filter (noise removed)", fid(_median(held, ndimage))),
            ("holdout, Gaussian blur sigma 0.7 px", fid(_blur(held, 0.7, ndimage))),
            ("holdout, Gaussian blur sigma 1.5 px", fid(_blur(held, 1.5, ndimage))),
            ("holdout + Gaussian noise sd 0.02", fid(_noisy(held, 0.02, args.seed))),
            ("holdout + Gaussian noise sd 0.05", fid(_noisy(held, 0.05, args.seed))),
            ("holdout, all intensities x 1.1", fid(held * 1.1)),
            ("holdout, site_0 intensities x 1.1", fid(_site_gain(holdout, "site_0", 1.1))),
        ]
        clean = _noise_free(args, holdout)
        level = float(cohort_truth_noise(args))
        rows += [
            ("holdout without scanner noise (same images)", fid(clean)),
            (f"  + Rician noise at the sites' mean level {level:.3f}", fid(_rician(clean, level))),
        ]
        for name, value in rows:
            print(f"{name}: {value:.2f}", flush=True)
    if args.skip_autoencoder:
        return

    params = {"seed": args.seed, "device": "cpu", "ae_epochs": args.ae_epochs, "epochs": 1}
    params["label_columns"] = ["tumour_type", "idh_mutant"]
    if args.adversarial is not None:
        params["adversarial_weight"] = args.adversarial
    params.update({k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)})
    gen = fedsynth.make("latent_diffusion", **params)
    start = time.process_time()
    gen.fit(train)
    ae_cpu = time.process_time() - start
    for name, images in (("train", train.images), ("holdout", holdout.images)):
        rebuilt = gen.reconstruct(images).images
        rows.append((f"autoencoder reconstructions of {name}", fid(rebuilt)))
        precision, recall = precision_recall(rebuilt)
        rows += [("  their precision", precision), ("  their recall", recall)]
        l1 = float(np.abs(gen.schema_.scale(rebuilt) - gen.schema_.scale(images)).mean())
        rows.append(("  their mean L1 on the model's [-1, 1] scale", l1))
    rows.append(("autoencoder fit CPU s (and one UNet epoch)", ae_cpu))
    rows.append(("latent scale factor", gen.latent_scale_))
    ae_history = [h["reconstruction"] for h in gen.history_ if "reconstruction" in h]
    for epoch in sorted({1, len(ae_history) // 2, len(ae_history)} - {0}):
        rows.append((f"  autoencoder L1 loss at epoch {epoch}", ae_history[epoch - 1]))
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:.4g} |")


def _scale(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from fedsynth.imaging.validation.features import intensity_scale

    low, width = intensity_scale(images)
    return low[None, :, None, None], width[None, :, None, None]


def _noise_free(args, holdout) -> np.ndarray:
    """The holdout's images simulated again without the sites' Rician noise: the same seed,
    anatomy, bias fields and blur (the noise is the simulator's last draw, scaled by the
    site's level, here 0)."""
    from unittest import mock

    from fedsynth.imaging import brain_mri_cohort
    from fedsynth.imaging.datasets import brain_mri

    original = brain_mri._site_table

    def quiet(sites, rng):
        return original(sites, rng).assign(noise=0.0)

    with mock.patch.object(brain_mri, "_site_table", quiet):
        clean = brain_mri_cohort(args.n, sites=3, size=64, seed=args.seed)
    _, held = clean.split(0.3, seed=args.seed, stratify="tumour_type")
    assert held.labels["patient_id"].equals(holdout.labels["patient_id"])
    return held.images


def cohort_truth_noise(args) -> float:
    """The mean of the sites' noise levels (the simulator's truth)."""
    from fedsynth.imaging import brain_mri_cohort

    _, truth = brain_mri_cohort(8, sites=3, size=16, seed=args.seed, return_truth=True)
    return float(truth.sites["noise"].mean())


def _rician(images: np.ndarray, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(1)
    real = images + sigma * rng.standard_normal(images.shape)
    return np.hypot(real, sigma * rng.standard_normal(images.shape)).astype(np.float32)


def _median(images: np.ndarray, ndimage) -> np.ndarray:
    return ndimage.median_filter(images, size=(1, 1, 3, 3))


def _blur(images: np.ndarray, sigma: float, ndimage) -> np.ndarray:
    return ndimage.gaussian_filter(images, (0, 0, sigma, sigma))


def _noisy(images: np.ndarray, sd: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return images + rng.normal(0, sd, images.shape).astype(np.float32)


def _site_gain(images, site: str, gain: float) -> np.ndarray:
    out = images.images.copy()
    out[(images.labels["site"] == site).to_numpy()] *= gain
    return out


if __name__ == "__main__":
    main()
