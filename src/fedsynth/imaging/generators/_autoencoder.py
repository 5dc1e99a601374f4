"""The latent diffusion model's KL autoencoder: L1 reconstruction, a small KL term and, after
a warm-up, a patch adversarial loss (the LDM recipe of Rombach et al. 2022 and of MONAI's
latent diffusion tutorials, without their LPIPS term, whose weights would be downloaded).

Why the adversarial term: an L1-trained decoder returns the conditional median of the image
given its latent, which is smoother than any real image (edges spread, fine structure and
scanner texture averaged away). A discriminator that judges overlapping patches (MONAI's
:class:`~monai.networks.nets.PatchDiscriminator`, least-squares loss through
:class:`~monai.losses.PatchAdversarialLoss`) penalises exactly that local smoothness, while L1
keeps the reconstruction faithful at large scales.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Discriminator learning rate relative to the autoencoder's (MONAI's tutorials: 5e-4 vs 1e-4
#: would be 5; a ratio of 1 keeps the small CPU networks balanced at the higher base rate).
DISCRIMINATOR_LR_RATIO = 1.0


def build_discriminator(in_channels: int, channels: int = 32) -> torch.nn.Module:
    """MONAI's patch discriminator: three stride-2 4 x 4 convolutions (``channels``, doubled
    twice), instance normalisation, LeakyReLU, one logit per overlapping patch.

    Instance normalisation rather than MONAI's default batch normalisation: the score of one
    patch then depends on its own image alone, and small batches do not skew it.
    """
    from monai.networks.nets import PatchDiscriminator

    return PatchDiscriminator(
        spatial_dims=2,
        num_layers_d=3,
        channels=channels,
        in_channels=in_channels,
        out_channels=1,
        norm="INSTANCE",
    )


class AdversarialPart:
    """The discriminator, its optimiser and loss, kept by the model between training calls.
    Federated, the discriminator's weights travel and are averaged with the model's (a site's
    model is rebuilt every round: ``LatentDiffusion._weight_modules``); it is never saved.

    Parameters
    ----------
    in_channels : int
        Channels of the images.
    weight : float
        Weight of the adversarial term in the autoencoder's loss (and of the discriminator's).
    warmup : int
        Autoencoder epochs of L1 + KL alone before the adversarial term joins (a discriminator
        facing a decoder that does not reconstruct yet only adds noise to its gradient).
    lr : float
        The autoencoder's learning rate (the discriminator's is ``DISCRIMINATOR_LR_RATIO`` x).
    device : torch.device
    """

    def __init__(self, in_channels: int, weight: float, warmup: int, lr: float, device) -> None:
        import torch
        from monai.losses import PatchAdversarialLoss

        self.weight = weight
        self.warmup = warmup
        self.epochs_seen = 0
        self.discriminator = build_discriminator(in_channels).to(device)
        self.optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=lr * DISCRIMINATOR_LR_RATIO, betas=(0.5, 0.9)
        )
        self.loss = PatchAdversarialLoss(criterion="least_squares")

    @property
    def active(self) -> bool:
        """Whether the warm-up is over."""
        return self.epochs_seen >= self.warmup

    def generator_loss(self, reconstruction: torch.Tensor) -> torch.Tensor:
        """The autoencoder's adversarial term: its reconstructions should score as real."""
        logits = self.discriminator(reconstruction.contiguous())[-1]
        return self.loss(logits, target_is_real=True, for_discriminator=False)

    def discriminator_step(self, real: torch.Tensor, reconstruction: torch.Tensor) -> float:
        """One step of the discriminator on a batch of real images and their (detached)
        reconstructions; its loss."""
        fake = self.discriminator(reconstruction.detach().contiguous())[-1]
        true = self.discriminator(real.contiguous())[-1]
        loss = 0.5 * (
            self.loss(fake, target_is_real=False, for_discriminator=True)
            + self.loss(true, target_is_real=True, for_discriminator=True)
        )
        self.optimizer.zero_grad(set_to_none=True)
        (self.weight * loss).backward()
        self.optimizer.step()
        return float(loss.detach())


def autoencoder_epoch(
    ae: torch.nn.Module,
    images: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    batches,
    kl_weight: float,
    adversarial: AdversarialPart | None = None,
) -> dict[str, float]:
    """One epoch of the KL autoencoder over ``batches`` (index tensors); mean losses.

    With ``adversarial`` past its warm-up, each step adds its weighted generator loss to the
    autoencoder's and then takes one discriminator step on the same batch.
    """
    import torch

    ae.train()
    use_adversary = adversarial is not None and adversarial.active
    totals = torch.zeros(4)
    steps = 0
    for index in batches:
        x = images[index]
        reconstruction, mu, sigma = ae(x)
        l1 = (reconstruction - x).abs().mean()
        kl = 0.5 * (mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2) + 1e-12) - 1).sum(
            dim=(1, 2, 3)
        )
        loss = l1 + kl_weight * kl.mean()
        generator = torch.zeros(())
        if use_adversary:
            generator = adversarial.generator_loss(reconstruction)
            loss = loss + adversarial.weight * generator
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        critic = adversarial.discriminator_step(x, reconstruction) if use_adversary else 0.0
        totals += torch.tensor(
            [float(l1.detach()), float(kl.mean().detach()), float(generator.detach()), critic]
        )
        steps += 1
    if adversarial is not None:
        adversarial.epochs_seen += 1
    l1, kl, generator, critic = (totals / max(steps, 1)).tolist()
    losses = {"reconstruction": l1, "kl": kl}
    if use_adversary:
        losses.update({"adversarial": generator, "discriminator": critic})
    return losses
