"""A fitted latent_diffusion model (``imaging_ldm.py --save``): where its samples lose to its
autoencoder's ceiling.

Same cohort, split and feature space as ``benchmarks/imaging_ldm.py``. FID against the real
training images of: the autoencoder's reconstructions of the holdout; the same with their
(scaled) latents perturbed by Gaussian noise of a few sizes (how much latent error the decoder
tolerates); samples by DDIM at several step counts and ``eta`` (0: deterministic, 1: as
stochastic as DDPM).

Run: ``PYTHONPATH=src python benchmarks/imaging_ldm_sampler.py MODEL_DIR``; prints a table.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--sample", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    import fedsynth
    from fedsynth.imaging import brain_mri_cohort
    from fedsynth.imaging.generators import _diffusion as diffusion
    from fedsynth.imaging.validation.data import prepare_image_validation
    from fedsynth.imaging.validation.fidelity import frechet_distance, prdc

    cohort = brain_mri_cohort(args.n, sites=3, size=64, seed=args.seed)
    train, holdout = cohort.split(0.3, seed=args.seed, stratify="tumour_type")
    gen = fedsynth.load(args.model)
    data = prepare_image_validation(train, holdout, holdout, seed=args.seed)

    def score(images: np.ndarray) -> str:
        rebuilt = fedsynth.imaging.ImageSet(images, channels=train.channels)
        features = prepare_image_validation(
            train, rebuilt, seed=args.seed, extractor=data.extractor
        ).synthetic_features
        found = prdc(data.real_features, features)
        fid = frechet_distance(data.real_features, features)
        return f"| {fid:.2f} | {found['precision']:.2f} | {found['recall']:.2f} |"

    ae = gen.autoencoder_.eval()
    gen.unet_.eval()
    scale = gen.latent_scale_
    held = torch.from_numpy(gen.schema_.scale(holdout.images))
    latents = diffusion.latent_means(ae, held) * scale
    print("| images | FID | precision | recall |\n|---|---|---|---|")
    torch.manual_seed(args.seed)
    for size in (0.0, 0.05, 0.1, 0.2, 0.4):
        noisy = latents + size * torch.randn_like(latents)
        with torch.no_grad():
            decoded = ae.decode(noisy / scale).clamp(-1, 1).numpy()
        name = f"holdout latents + noise sd {size} (scaled units), decoded"
        print(f"| {name} {score(gen.schema_.unscale(decoded))}", flush=True)
    print(f"| latent sd of the holdout (scaled) {float(latents.std()):.3f} | | | |")
    rng = np.random.default_rng(1)
    classes = torch.from_numpy(
        rng.choice(gen.schema_.n_classes, size=args.sample, p=gen.schema_.allowed_classes(None))
    )
    for steps, eta in ((25, 0.0), (25, 1.0), (100, 0.0), (100, 1.0)):
        images = _sample(gen, diffusion, classes, steps, eta, args.seed)
        print(f"| samples, DDIM {steps} steps, eta {eta} {score(images)}", flush=True)


def _sample(gen, diffusion, classes, steps: int, eta: float, seed: int) -> np.ndarray:
    import torch

    _, ddim = diffusion.schedulers(int(gen.train_timesteps))
    ddim.set_timesteps(steps)
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn((len(classes), *gen._latent_shape), generator=generator)
    with torch.no_grad():
        for t in ddim.timesteps:
            timesteps = torch.full((len(classes),), int(t), dtype=torch.long)
            eps = gen.unet_(z, timesteps, class_labels=classes)
            z, _ = ddim.step(eps, int(t), z, eta=eta, generator=generator)
        images = gen.autoencoder_.decode(z / gen.latent_scale_).clamp(-1, 1).numpy()
    return gen.schema_.unscale(images)


if __name__ == "__main__":
    main()
