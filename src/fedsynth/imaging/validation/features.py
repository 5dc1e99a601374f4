"""A feature space for image metrics that needs no downloaded weights.

FID and its relatives usually embed images with an Inception network trained on ImageNet; no
package ships those weights offline and photographs are not MRI. fedsynth instead trains a small
convolutional **autoencoder** on the real training images (seeded, a few epochs, CPU is enough):
three stride-2 convolution stages (16, 32, 64 channels, GroupNorm, SiLU) and a mirrored
decoder, trained to reconstruct with mean squared error. An image's feature vector is the global
average of each encoder stage's activations (16 + 32 + 64 = 112 numbers), standardised with the
real training images' mean and standard deviation so every feature weighs alike.

Intensities are first put on a common scale per channel: (x - p1) / (p99 - p1), with p1 and p99
the 1st and 99th percentiles of the real training images' channel, the same map for every set.
"""

from __future__ import annotations

import itertools

import numpy as np

#: Channels of the encoder stages.
STAGES: tuple[int, ...] = (16, 32, 64)


def intensity_scale(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel 1st percentile and range (p99 - p1) of ``images`` (N x C x H x W)."""
    low = np.percentile(images, 1, axis=(0, 2, 3))
    high = np.percentile(images, 99, axis=(0, 2, 3))
    return low.astype(np.float32), np.maximum(high - low, 1e-6).astype(np.float32)


def normalise(images: np.ndarray, low: np.ndarray, width: np.ndarray) -> np.ndarray:
    """``images`` mapped channel by channel with the real training images' scale."""
    return (images - low[None, :, None, None]) / width[None, :, None, None]


def _networks(channels: int):
    from torch import nn

    def down(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(4, c_out), nn.SiLU()
        )

    def up(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(
            nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1),
            nn.GroupNorm(4, c_out),
            nn.SiLU(),
        )

    sizes = (channels, *STAGES)
    encoder = nn.ModuleList(down(a, b) for a, b in itertools.pairwise(sizes))
    decoder = nn.Sequential(
        up(STAGES[2], STAGES[1]),
        up(STAGES[1], STAGES[0]),
        nn.ConvTranspose2d(STAGES[0], channels, 4, stride=2, padding=1),
    )
    return encoder, decoder


class FeatureExtractor:
    """A convolutional autoencoder trained on real images; ``transform`` embeds images.

    Parameters
    ----------
    epochs : int
        Passes over the real training images.
    batch_size : int
    learning_rate : float
    seed : int
        Seeds the weights and the batch order: the same images and seed give the same features.
    """

    def __init__(
        self, *, epochs: int = 10, batch_size: int = 32, learning_rate: float = 2e-3, seed: int = 0
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed

    def fit(self, images: np.ndarray) -> FeatureExtractor:
        """Train on normalised real images (N x C x H x W); sets ``loss_`` (last epoch's MSE)."""
        import torch
        from torch.nn import functional

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.encoder_, self.decoder_ = _networks(images.shape[1])
            parameters = [*self.encoder_.parameters(), *self.decoder_.parameters()]
            optimiser = torch.optim.Adam(parameters, lr=self.learning_rate)
            data = torch.from_numpy(np.ascontiguousarray(images, np.float32))
            order = torch.Generator().manual_seed(self.seed)
            for _ in range(self.epochs):
                total = 0.0
                for batch in torch.randperm(len(data), generator=order).split(self.batch_size):
                    x = data[batch]
                    h = x
                    for stage in self.encoder_:
                        h = stage(h)
                    # The decoder's output is resized back: any image size works.
                    out = functional.interpolate(self.decoder_(h), size=x.shape[-2:])
                    loss = functional.mse_loss(out, x)
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    total += loss.item() * len(batch)
                self.loss_ = total / len(data)
        raw = self._pooled(images)
        self.mean_, self.std_ = raw.mean(axis=0), np.maximum(raw.std(axis=0), 1e-6)
        return self

    def _pooled(self, images: np.ndarray) -> np.ndarray:
        import torch

        parts = []
        with torch.no_grad():
            for batch in torch.from_numpy(np.ascontiguousarray(images, np.float32)).split(256):
                h, pooled = batch, []
                for stage in self.encoder_:
                    h = stage(h)
                    pooled.append(h.mean(dim=(2, 3)))
                parts.append(torch.cat(pooled, dim=1).numpy())
        return np.concatenate(parts).astype(np.float64)

    def transform(self, images: np.ndarray) -> np.ndarray:
        """Standardised features (N x 112) of normalised images."""
        return (self._pooled(images) - self.mean_) / self.std_
