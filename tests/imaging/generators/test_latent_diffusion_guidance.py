"""Classifier-free guidance of latent_diffusion's sampler: the guided noise estimate is
unconditional + guidance x (conditional - unconditional), and the fitted model's ``guidance``
reaches the sampler."""

from __future__ import annotations

import numpy as np
import pytest

import fedsynth
from fedsynth.imaging.generators import _diffusion as diffusion
from tests.imaging.generators.conftest import TINY


class _ClassUNet:
    """A stand-in UNet whose noise estimate is ``0.1 x class`` everywhere."""

    def __call__(self, z, timesteps, class_labels):
        return z * 0 + 0.1 * class_labels.float().view(-1, 1, 1, 1)


class _ConstantUNet:
    def __init__(self, value: float):
        self.value = value

    def __call__(self, z, timesteps, class_labels):
        return z * 0 + self.value


class _Identity:
    def decode(self, z):
        return z


def _draw(unet, guidance: float, eta: float):
    import torch

    _, ddim = diffusion.schedulers(100)
    classes = torch.tensor([1, 1, 1])
    generator = torch.Generator().manual_seed(7)
    return diffusion.ddim_sample(
        unet,
        _Identity(),
        ddim,
        classes,
        (2, 4, 4),
        scale=1.0,
        steps=5,
        generator=generator,
        null_class=3,
        guidance=guidance,
        eta=eta,
    )


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("guidance", [1.5, 2.0, 3.0])
def test_guided_estimate_mixes_conditional_and_null_class(guidance, eta):
    # Class 1 predicts 0.1, the null class 3 predicts 0.3: guided 0.3 + g (0.1 - 0.3).
    expected = _draw(_ConstantUNet(0.3 + guidance * (0.1 - 0.3)), 1.0, eta)
    guided = _draw(_ClassUNet(), guidance, eta)
    np.testing.assert_allclose(guided.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    unguided = _draw(_ClassUNet(), 1.0, eta)
    assert not np.allclose(guided.numpy(), unguided.numpy())


def test_a_fitted_model_samples_with_its_guidance(cohort):
    gen = fedsynth.make("latent_diffusion", seed=0, **TINY["latent_diffusion"]).fit(cohort)
    assert gen.guidance == 1.5  # the default
    plain = gen.set_params(guidance=1.0).sample(6, seed=3)
    guided = gen.set_params(guidance=2.5).sample(6, seed=3)
    # Same classes drawn, other images: the null class's estimate now enters every step.
    assert plain.labels.equals(guided.labels)
    assert not np.allclose(plain.images, guided.images)
    assert np.allclose(gen.set_params(guidance=1.0).sample(6, seed=3).images, plain.images)
