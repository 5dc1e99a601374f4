"""The training epoch of the conditional GAN, with or without DP-SGD on the discriminator.

Losses are the hinge losses of SAGAN / BigGAN or the non-saturating ones of DCGAN (softplus
on the logits); both are sums of per-image terms, as DP-SGD needs. Under DP, each
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
    d_steps: int = 1,
    loss: str = "nonsaturating",
    shift: float = 0.0,
) -> dict[str, float]:
    """One epoch: a discriminator step per batch (DP-SGD with ``plan``), and a generator step
    after every ``d_steps`` of them.

    ``fake_classes`` are the class probabilities fake images are drawn with (the schema's class
    shares; uniform under DP). ``average``, when given, is moved towards the generator after
    each of its steps (``average = decay * average + (1 - decay) * generator``). ``loss`` is
    ``"nonsaturating"`` or ``"hinge"``; ``shift`` > 0 translates every image the discriminator
    sees, real or fake, by up to that fraction of its side (:func:`translate`). Returns the
    mean losses.
    """
    import torch

    g_optimizer, d_optimizer = optimizers
    device = images.device
    generator_net.train()
    discriminator.train()
    d_total = g_total = 0.0
    steps = g_steps = 0
    d_real, d_fake, g_term = LOSSES[loss]

    def seen(batch: torch.Tensor) -> torch.Tensor:
        return translate(batch, shift, generator) if shift > 0 else batch

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
        real, fake = seen(real), seen(fake)
        if plan is None:
            d_loss = (
                d_real(discriminator(real, real_classes)).mean()
                + d_fake(discriminator(fake, drawn)).mean()
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
                _sample_loss(discriminator, d_real, d_fake),
                (real, real_classes, fake, drawn),
                optimizer=d_optimizer,
                generator=generator,
            )
            d_value = float(torch.cat(losses).mean()) if losses else 0.0
        steps += 1
        if steps % d_steps == 0:
            # The generator's step: fresh noise, the discriminator's judgement only.
            noise, drawn = draw(batch_size)
            g_loss = g_term(discriminator(seen(generator_net(noise, drawn)), drawn)).mean()
            g_optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
            g_optimizer.step()
            if average is not None:
                update_average(average, generator_net, decay)
            d_optimizer.zero_grad(set_to_none=True)  # the generator's step left gradients there
            g_total += float(g_loss.detach())
            g_steps += 1
        d_total += d_value
    return {"discriminator": d_total / max(steps, 1), "generator": g_total / max(g_steps, 1)}


def _hinge_real(logit):
    import torch.nn.functional as F

    return F.relu(1.0 - logit)


def _hinge_fake(logit):
    import torch.nn.functional as F

    return F.relu(1.0 + logit)


def _hinge_generator(logit):
    return -logit


def _softplus_real(logit):
    import torch.nn.functional as F

    return F.softplus(-logit)


def _softplus_fake(logit):
    import torch.nn.functional as F

    return F.softplus(logit)


#: Per-image loss terms (discriminator on a real image, on a fake one; generator on a fake
#: one): DCGAN's non-saturating losses, or the hinge losses of SAGAN / BigGAN.
LOSSES = {
    "nonsaturating": (_softplus_real, _softplus_fake, _softplus_real),
    "hinge": (_hinge_real, _hinge_fake, _hinge_generator),
}


def translate(images: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Each image shifted by its own random whole number of pixels, up to ``fraction`` of its
    side along each axis, the uncovered border repeating the edge pixels (the background of a
    scan; DiffAugment's translation,
    Zhao et al. 2020): applied to real and fake images alike it keeps a discriminator trained
    on a few hundred images from memorising them, without changing what the generator must
    produce. Each image's shift depends on nothing else in the batch, so a per-image gradient
    stays that image's alone (DP-SGD)."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = images.shape
    r = max(1, round(fraction * h))
    shifts = torch.randint(-r, r + 1, (n, 2), generator=generator).to(images.device)
    padded = F.pad(images, (r, r, r, r), mode="replicate")
    rows = (torch.arange(h, device=images.device)[None, :] + r - shifts[:, :1])[:, :, None]
    cols = (torch.arange(w, device=images.device)[None, :] + r - shifts[:, 1:])[:, None, :]
    index = torch.arange(n, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows, cols].permute(0, 3, 1, 2)


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


def _sample_loss(discriminator: torch.nn.Module, d_real, d_fake):
    """One real image's discriminator loss, with the fake image drawn for it, as a function of
    the discriminator's parameters."""
    from torch.func import functional_call

    def loss(params, real, real_class, fake, fake_class):
        real_logit = functional_call(discriminator, params, (real[None], real_class[None]))
        fake_logit = functional_call(discriminator, params, (fake[None], fake_class[None]))
        value = (d_real(real_logit) + d_fake(fake_logit)).sum()
        return value, value.detach()[None]

    return loss
