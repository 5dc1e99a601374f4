"""Latent diffusion training and sampling on MONAI's networks and schedulers.

The autoencoder learns to reconstruct the images (L1 loss plus a small KL term on its
latents); the UNet learns DDPM's noise prediction on the latent means, scaled to unit variance
(Rombach et al. 2022), with the class index as its label and, with probability
``label_dropout``, a "null" class (the last index) so that sampling can use classifier-free
guidance. Sampling runs DDIM (:class:`monai.networks.schedulers.DDIMScheduler`) from noise and
decodes.

Under DP the UNet's step is DP-SGD: each image's gradient is computed alone
(``torch.func``), clipped and summed, and Gaussian noise is added once per step
(:func:`~fedsynth.imaging.generators._torch.private_step`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from fedsynth.core.privacy.dp_sgd import PrivateTraining

#: DDPM's noise schedule of MONAI's latent diffusion tutorials.
SCHEDULE = {"schedule": "scaled_linear_beta", "beta_start": 0.0015, "beta_end": 0.0195}


def schedulers(train_timesteps: int):
    """The DDPM scheduler that trains and the DDIM scheduler that samples (same betas)."""
    from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

    ddpm = DDPMScheduler(num_train_timesteps=train_timesteps, clip_sample=False, **SCHEDULE)
    ddim = DDIMScheduler(num_train_timesteps=train_timesteps, clip_sample=False, **SCHEDULE)
    return ddpm, ddim


def autoencoder_epoch(
    ae: torch.nn.Module,
    images: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    batches,
    kl_weight: float,
) -> dict[str, float]:
    """One epoch of the KL autoencoder over ``batches`` (index tensors); mean losses."""
    import torch

    ae.train()
    totals = torch.zeros(2)
    steps = 0
    for index in batches:
        x = images[index]
        reconstruction, mu, sigma = ae(x)
        l1 = (reconstruction - x).abs().mean()
        kl = 0.5 * (mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2) + 1e-12) - 1).sum(
            dim=(1, 2, 3)
        )
        loss = l1 + kl_weight * kl.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        totals += torch.stack([l1.detach(), kl.mean().detach()]).cpu()
        steps += 1
    l1, kl = (totals / max(steps, 1)).tolist()
    return {"reconstruction": l1, "kl": kl}


def latent_means(ae: torch.nn.Module, images: torch.Tensor, block: int = 64) -> torch.Tensor:
    """The encoder's latent means of ``images`` (what the UNet learns), block by block."""
    import torch

    ae.eval()
    with torch.no_grad():
        return torch.cat(
            [ae.encode(images[i : i + block])[0] for i in range(0, len(images), block)]
        )


def latent_variance(latents: torch.Tensor) -> float:
    """Variance of the latents: their scale for the UNet is ``1 / sqrt(variance)``."""
    return float(latents.float().var().clamp(min=1e-8))


def noisy_inputs(
    ddpm,
    latents: torch.Tensor,
    classes: torch.Tensor,
    null_class: int,
    label_dropout: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, ...]:
    """A training step's inputs: noisy latents at random timesteps, the timesteps, the class
    labels (some replaced by the null class) and the noise to predict."""
    import torch

    device = latents.device
    n = len(latents)
    noise = torch.randn(latents.shape, generator=generator, device=generator.device).to(device)
    steps = torch.randint(
        0, ddpm.num_train_timesteps, (n,), generator=generator, device=generator.device
    ).to(device)
    dropped = torch.rand(n, generator=generator, device=generator.device).to(device) < label_dropout
    labels = torch.where(dropped, torch.full_like(classes, null_class), classes)
    return ddpm.add_noise(latents, noise, steps), steps, labels, noise


def unet_epoch(
    unet: torch.nn.Module,
    ddpm,
    latents: torch.Tensor,
    classes: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    batches,
    generator: torch.Generator,
    *,
    null_class: int,
    label_dropout: float,
    plan: PrivateTraining | None = None,
) -> dict[str, float]:
    """One epoch of the UNet's noise prediction (DP-SGD steps with ``plan``); mean loss."""
    import torch

    from fedsynth.imaging.generators._torch import private_step

    unet.train()
    total, steps = 0.0, 0
    for index in batches:
        noisy, t, labels, noise = noisy_inputs(
            ddpm, latents[index], classes[index], null_class, label_dropout, generator
        )
        if plan is None:
            loss = (unet(noisy, t, class_labels=labels) - noise).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        else:
            losses = private_step(
                plan,
                unet,
                _sample_loss(unet),
                (noisy, t, labels, noise),
                optimizer=optimizer,
                generator=generator,
            )
            total += float(torch.cat(losses).mean()) if losses else 0.0
        steps += 1
    return {"diffusion": total / max(steps, 1)}


def _sample_loss(unet: torch.nn.Module) -> Callable:
    """One image's noise-prediction loss as a function of the UNet's parameters."""
    from torch.func import functional_call

    def loss(params, noisy, t, label, noise):
        out = functional_call(unet, params, (noisy[None], t[None]), {"class_labels": label[None]})
        value = (out - noise[None]).pow(2).mean()
        return value, value.detach()[None]

    return loss


def ddim_sample(
    unet: torch.nn.Module,
    ae: torch.nn.Module,
    ddim,
    classes: torch.Tensor,
    latent_shape: tuple[int, int, int],
    scale: float,
    steps: int,
    generator: torch.Generator,
    *,
    null_class: int,
    guidance: float,
) -> torch.Tensor:
    """Images (scaled to about ``[-1, 1]``) of ``classes`` by ``steps`` DDIM steps from noise
    and the decoder; ``guidance`` > 1 mixes in the null class (classifier-free guidance)."""
    import torch

    n = len(classes)
    device = classes.device
    ddim.set_timesteps(steps)
    z = torch.randn((n, *latent_shape), generator=generator, device=generator.device).to(device)
    null = torch.full_like(classes, null_class)
    for t in ddim.timesteps:
        timesteps = torch.full((n,), int(t), device=device, dtype=torch.long)
        if guidance == 1.0:
            eps = unet(z, timesteps, class_labels=classes)
        else:
            both = unet(
                torch.cat([z, z]),
                torch.cat([timesteps, timesteps]),
                class_labels=torch.cat([classes, null]),
            )
            conditional, unconditional = both.chunk(2)
            eps = unconditional + guidance * (conditional - unconditional)
        z, _ = ddim.step(eps, int(t), z)
    return ae.decode(z / scale).clamp(-1.0, 1.0)
