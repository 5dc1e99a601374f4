"""The networks of the image generators.

* :func:`build_autoencoder` and :func:`build_unet`: MONAI's KL autoencoder
  (:class:`monai.networks.nets.AutoencoderKL`) and diffusion UNet
  (:class:`monai.networks.nets.DiffusionModelUNet`, class-conditional through
  ``num_class_embeds``), sized for a CPU: one residual block per level and no attention in the
  levels (the UNet's middle block always has one; MONAI builds it with einops);
* :class:`ConditionalGenerator` and :class:`ProjectionDiscriminator`: a DCGAN-style pair with
  GroupNorm instead of BatchNorm, so that each image's output depends on that image alone, as
  DP-SGD's per-sample gradients need (batch statistics would mix the images of a batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn


def build_autoencoder(
    in_channels: int, channels: Sequence[int], latent_channels: int, norm_groups: int
) -> nn.Module:
    """MONAI's KL autoencoder; each level after the first halves the height and width.

    Examples
    --------
    >>> ae = build_autoencoder(4, (16, 32, 32), 4, 8)  # 64 x 64 images -> 4 x 16 x 16 latents
    """
    from monai.networks.nets import AutoencoderKL

    return AutoencoderKL(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=in_channels,
        num_res_blocks=1,
        channels=tuple(channels),
        attention_levels=(False,) * len(channels),
        latent_channels=latent_channels,
        norm_num_groups=norm_groups,
        with_encoder_nonlocal_attn=False,
        with_decoder_nonlocal_attn=False,
    )


def build_unet(
    latent_channels: int, channels: Sequence[int], n_classes: int, norm_groups: int
) -> nn.Module:
    """MONAI's diffusion UNet on latents, with one learned embedding per class (added to the
    time embedding), predicting the noise."""
    from monai.networks.nets import DiffusionModelUNet

    return DiffusionModelUNet(
        spatial_dims=2,
        in_channels=latent_channels,
        out_channels=latent_channels,
        num_res_blocks=1,
        channels=tuple(channels),
        attention_levels=(False,) * len(channels),
        norm_num_groups=norm_groups,
        # One head over the middle block's channels: the only attention, at the coarsest level.
        num_head_channels=int(channels[-1]),
        num_class_embeds=max(int(n_classes), 1),
    )


def upsamplings(size: int) -> int:
    """Doublings from the generator's 4 x 4 start to ``size`` (a power of two >= 8)."""
    return round(math.log2(size / 4))


class ConditionalGenerator(nn.Module):
    """Noise and a class embedding to an image in ``[-1, 1]``: a 4 x 4 start, then
    (upsample, 3 x 3 convolution, GroupNorm, ReLU) blocks halving the width, and a tanh."""

    def __init__(
        self, noise_dim: int, n_classes: int, channels: int, size: int, width: int, groups: int
    ):
        super().__init__()
        steps = upsamplings(size)
        top = width * 2 ** (steps - 1)
        self.embed = nn.Embedding(max(n_classes, 1), noise_dim)
        self.project = nn.Sequential(
            nn.Linear(2 * noise_dim, top * 16), nn.Unflatten(1, (top, 4, 4))
        )
        blocks: list[nn.Module] = [nn.GroupNorm(groups, top), nn.ReLU()]
        width_in = top
        for i in range(steps):
            width_out = width * 2 ** max(steps - 2 - i, 0)
            blocks += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(width_in, width_out, 3, padding=1),
                nn.GroupNorm(groups, width_out),
                nn.ReLU(),
            ]
            width_in = width_out
        blocks += [nn.Conv2d(width_in, channels, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*blocks)

    def forward(self, noise, classes):
        import torch

        return self.body(self.project(torch.cat([noise, self.embed(classes)], dim=1)))


class ProjectionDiscriminator(nn.Module):
    """An image and its class to a logit: stride-2 4 x 4 convolutions (GroupNorm, LeakyReLU)
    down to 4 x 4, features averaged over space, then a linear score plus the inner product of
    the features with the class's embedding (Miyato and Koyama's projection discriminator)."""

    def __init__(self, n_classes: int, channels: int, size: int, width: int, groups: int):
        super().__init__()
        steps = upsamplings(size)
        blocks: list[nn.Module] = []
        width_in = channels
        for i in range(steps):
            width_out = width * 2 ** min(i, 3)
            blocks += [nn.Conv2d(width_in, width_out, 4, stride=2, padding=1)]
            if i > 0:  # no normalisation on the image itself, as in DCGAN
                blocks += [nn.GroupNorm(groups, width_out)]
            blocks += [nn.LeakyReLU(0.2)]
            width_in = width_out
        self.body = nn.Sequential(*blocks)
        self.score = nn.Linear(width_in, 1)
        self.embed = nn.Embedding(max(n_classes, 1), width_in)

    def forward(self, images, classes):
        # A spatial mean, not DCGAN's sum: logits stay of order one whatever the image size,
        # so the softplus losses do not saturate from the first steps.
        features = self.body(images).mean(dim=(2, 3))
        return self.score(features).squeeze(1) + (self.embed(classes) * features).sum(dim=1)
