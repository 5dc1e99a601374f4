"""Latent diffusion training and sampling on MONAI's networks and schedulers.

The autoencoder (:mod:`~fedsynth.imaging.generators._autoencoder`) learns to reconstruct the
images; the UNet learns DDPM's noise prediction on the latent means, scaled to unit variance
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
    ema: torch.optim.swa_utils.AveragedModel | None = None,
) -> dict[str, float]:
    """One epoch of the UNet's noise prediction (DP-SGD steps with ``plan``); mean loss.
    ``ema`` (an exponential moving average of the UNet's weights) is updated after each step:
    under DP it only post-processes the private iterates."""
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
        if ema is not None:
            ema.update_parameters(unet)
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


def moving_average(unet: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``unet``'s weights (``decay`` per step), started at
    its current weights: the averaged weights sample better than the last iterate (Ho et al.
    2020; Rombach et al. 2022). Buffers are the UNet's own (it has GroupNorm, no running
    statistics)."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(unet, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


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
    eta: float = 0.0,
) -> torch.Tensor:
    """Images (scaled to about ``[-1, 1]``) of ``classes`` by ``steps`` DDIM steps from noise
    and the decoder; ``guidance`` > 1 mixes in the null class (classifier-free guidance);
    ``eta`` is DDIM's share of fresh noise per step (0: deterministic, 1: as DDPM)."""
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
        z, _ = ddim.step(eps, int(t), z, eta=eta, generator=generator)
    return ae.decode(z / scale).clamp(-1.0, 1.0)
