"""The training epoch of the conditional GAN, with or without DP-SGD on the discriminator.

Losses are the non-saturating ones of DCGAN (softplus on the logits). Under DP, each
discriminator step reads the Poisson-drawn real images: each image, with its class, is one
sample whose gradient (its own real term plus the term of a fake image drawn for it alone) is
clipped and noised (:func:`~fedsynth.imaging.generators._torch.private_step`), so that adding
or removing an image changes the step's sum by at most the clipping norm. The generator's steps
read only the discriminator and noise: post-processing, no privacy cost.

After each generator step, an exponential moving average of the generator's weights is
updated; images are sampled from the average. A GAN's generator oscillates around the
equilibrium with its discriminator (the losses of a benchmark run swing from step to step), and
the average sits nearer its centre: on the simulated brain MRI (317 images, 60 epochs) it cut
the FID from 127 to 93 along the same training run (benchmark features). Averaging reads only
the generator's weights: no privacy cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from fedsynth.core.privacy.dp_sgd import PrivateTraining


def gan_epoch(
    generator_net: torch.nn.Module,
    discriminator: torch.nn.Module,
    images: torch.Tensor,
    classes: torch.Tensor,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    batches: Iterable[torch.Tensor],
    fake_classes: torch.Tensor,
    noise_dim: int,
    generator: torch.Generator,
    *,
    batch_size: int,
    plan: PrivateTraining | None = None,
    average: torch.nn.Module | None = None,
    decay: float = 0.0,
) -> dict[str, float]:
    """One epoch: a discriminator step per batch (DP-SGD with ``plan``), then a generator step.

    ``fake_classes`` are the class probabilities fake images are drawn with (the schema's class
    shares; uniform under DP). ``average``, when given, is moved towards the generator after
    each of its steps (``average = decay * average + (1 - decay) * generator``). Returns the
    mean losses.
    """
    import torch
    import torch.nn.functional as F

    g_optimizer, d_optimizer = optimizers
    device = images.device
    generator_net.train()
    discriminator.train()
    totals = torch.zeros(2)
    steps = 0

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn((n, noise_dim), generator=generator).to(device)
        drawn = torch.multinomial(fake_classes, n, replacement=True, generator=generator)
        return noise, drawn.to(device)

    for index in batches:
        real, real_classes = images[index], classes[index]
        n = len(real)
        noise, drawn = draw(max(n, 1))
        with torch.no_grad():
            fake = generator_net(noise, drawn)[:n]
        drawn = drawn[:n]
        if plan is None:
            d_loss = (
                F.softplus(-discriminator(real, real_classes)).mean()
                + F.softplus(discriminator(fake, drawn)).mean()
            )
            d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            d_optimizer.step()
            d_value = float(d_loss.detach())
        else:
            from fedsynth.imaging.generators._torch import private_step

            losses = private_step(
                plan,
                discriminator,
                _sample_loss(discriminator),
                (real, real_classes, fake, drawn),
                optimizer=d_optimizer,
                generator=generator,
            )
            d_value = float(torch.cat(losses).mean()) if losses else 0.0
        # The generator's step: fresh noise, the discriminator's judgement only.
        noise, drawn = draw(batch_size)
        g_loss = F.softplus(-discriminator(generator_net(noise, drawn), drawn)).mean()
        g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        g_optimizer.step()
        if average is not None:
            update_average(average, generator_net, decay)
        d_optimizer.zero_grad(set_to_none=True)  # the generator's step left gradients there
        totals += torch.tensor([d_value, float(g_loss.detach())])
        steps += 1
    d_mean, g_mean = (totals / max(steps, 1)).tolist()
    return {"discriminator": d_mean, "generator": g_mean}


def update_average(average: torch.nn.Module, current: torch.nn.Module, decay: float) -> None:
    """Move ``average``'s parameters and buffers towards ``current``'s by ``1 - decay``."""
    import torch

    with torch.no_grad():
        pairs = zip(average.state_dict().values(), current.state_dict().values(), strict=True)
        for kept, new in pairs:
            if kept.is_floating_point():
                kept.mul_(decay).add_(new, alpha=1.0 - decay)
            else:
                kept.copy_(new)


def _sample_loss(discriminator: torch.nn.Module):
    """One real image's discriminator loss, with the fake image drawn for it, as a function of
    the discriminator's parameters."""
    import torch.nn.functional as F
    from torch.func import functional_call

    def loss(params, real, real_class, fake, fake_class):
        real_logit = functional_call(discriminator, params, (real[None], real_class[None]))
        fake_logit = functional_call(discriminator, params, (fake[None], fake_class[None]))
        value = (F.softplus(-real_logit) + F.softplus(fake_logit)).sum()
        return value, value.detach()[None]

    return loss
