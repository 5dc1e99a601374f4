"""Exploratory: does adding the sites' scanner noise to ``latent_diffusion`` samples lower FID?

The FID diagnosis (``results/imaging_ldm_diagnosis.md``, section 1) found that the study's
feature space reacts strongly to whether images carry scanner noise. This script measures each
training site's Rician noise level from the image corners (signal 0 there, so the magnitude is
Rayleigh: E[x^2] = 2 sigma^2), draws 2000 images from a saved central model, adds to each, for a
site drawn in proportion to the sites' sizes, the Rician noise missing between that site's level
and the samples' own corner level, and compares FID (the study's features), the nearest-image
check and the classifiers' AUC (seed 0) with and without. One run, one draw: exploratory, not a
method of the library.

Run (from ``benchmarks/``): ``PYTHONPATH=../src python imaging_ldm_noise.py MODEL_DIR``; prints
its lines (``results/imaging_ldm_noise.txt`` holds session 15's output).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def corners(x: np.ndarray, k: int = 6) -> np.ndarray:
    """The four k x k corners of every image, side by side."""
    parts = [x[..., :k, :k], x[..., :k, -k:], x[..., -k:, :k], x[..., -k:, -k:]]
    return np.concatenate(parts, axis=-1)


def background_sigma(x: np.ndarray) -> np.ndarray:
    """Rayleigh sigma per channel from the corners (where the signal is 0)."""
    return np.sqrt((corners(x).astype(np.float64) ** 2).mean(axis=(0, 2, 3)) / 2)


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from _imaging_arms import LABELS, concat
    from imaging_classifier_seeds import classifier_auc

    import fedsynth
    from fedsynth.imaging import ImageSet
    from fedsynth.imaging.validation import prepare_image_validation
    from imaging import cohort_parts, image_checks

    model = sys.argv[1]
    args = argparse.Namespace(
        n=600, size=64, seed=0, test_site="site_2", clf_epochs=None, clf_rounds=10
    )
    by_site, holdouts, test = cohort_parts(args)
    train, holdout = concat(list(by_site.values())), concat(list(holdouts.values()))
    for site, images in by_site.items():
        print(site, "background sigma per channel", background_sigma(images.images).round(4))
    gen = fedsynth.load(model)
    started = time.process_time()
    syn = gen.sample(2000, seed=123)
    print("sampled", time.process_time() - started)
    print("synthetic background sigma", background_sigma(syn.images).round(4))
    extractor = prepare_image_validation(train, holdout, holdout, seed=0).extractor
    rng = np.random.default_rng(0)
    sizes = np.array([len(v) for v in by_site.values()], float)
    site_sigma = np.array([background_sigma(v.images).mean() for v in by_site.values()])
    own_sigma = background_sigma(syn.images).mean()
    site = rng.choice(len(sizes), size=len(syn), p=sizes / sizes.sum())
    add = np.sqrt(np.maximum(site_sigma[site] ** 2 - own_sigma**2, 0))
    add = add[:, None, None, None].astype(np.float32)
    x = syn.images
    noisy = np.hypot(
        x + add * rng.standard_normal(x.shape, dtype=np.float32),
        add * rng.standard_normal(x.shape, dtype=np.float32),
    )
    noisy_set = ImageSet(noisy, syn.labels, channels=syn.channels, spacing=syn.spacing)
    print("noisy background sigma", background_sigma(noisy).round(4))
    for name, images in (("plain", syn), ("rician", noisy_set)):
        found = image_checks(train, holdout, images, extractor, 0)
        aucs = {lab: round(classifier_auc(lab, images, test, 0, args), 3) for lab in LABELS}
        print(
            name,
            "FID",
            round(found["fid_synthetic_vs_train"], 2),
            "ratio",
            round(found["fid_ratio"], 2),
            "closer",
            found["nearest_pixels"]["synthetic_closer"],
            found["nearest_features"]["synthetic_closer"],
            aucs,
        )


if __name__ == "__main__":
    main()
