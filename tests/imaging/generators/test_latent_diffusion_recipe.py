"""latent_diffusion's training recipe: the latent scale factor, the autoencoder's patch
adversarial loss, the moving average of the UNet's weights, reconstructions."""

from __future__ import annotations

import numpy as np
import pytest

import fedsynth
from fedsynth.exceptions import ImageDataError
from fedsynth.imaging.generators import _diffusion as diffusion
from tests.imaging.generators.conftest import TINY

#: The tiny configuration with the adversarial loss from the first autoencoder epoch.
ADVERSARIAL = {**TINY["latent_diffusion"], "ae_epochs": 2, "adversarial_warmup": 1}


@pytest.fixture(scope="module")
def adversarial(cohort):
    return fedsynth.make("latent_diffusion", seed=0, **ADVERSARIAL).fit(cohort)


def _latents(gen, cohort):
    import torch

    scaled = torch.from_numpy(gen.schema_.scale(cohort.images))
    return diffusion.latent_means(gen.autoencoder_, scaled).numpy()


def test_latents_are_scaled_to_unit_variance_and_the_scale_is_saved(adversarial, cohort, tmp_path):
    gen = adversarial
    latents = _latents(gen, cohort)
    assert gen.latent_scale_ == pytest.approx(1 / latents.std(ddof=1), rel=1e-5)
    assert (latents * gen.latent_scale_).var(ddof=1) == pytest.approx(1.0, rel=1e-4)
    loaded = fedsynth.load(gen.save(tmp_path / "ldm"))
    assert loaded.latent_scale_ == gen.latent_scale_
    np.testing.assert_array_equal(loaded.sample(3, seed=1).images, gen.sample(3, seed=1).images)


def test_adversarial_loss_joins_after_the_warmup_and_trains_the_discriminator(adversarial, cohort):
    gen = adversarial
    first, second = gen.history_[0], gen.history_[1]
    assert set(first) == {"epoch", "reconstruction", "kl"}
    assert {"adversarial", "discriminator"} <= set(second)
    assert np.isfinite([second["adversarial"], second["discriminator"]]).all()
    assert second["discriminator"] > 0 and second["adversarial"] > 0  # least squares
    # The discriminator trains with the autoencoder; it is not saved, but its weights follow
    # the others' in get_weights (federated rounds average it).
    plain = fedsynth.make("latent_diffusion", seed=0, **{**ADVERSARIAL, "adversarial_weight": 0})
    plain.fit(cohort)
    assert all("adversarial" not in h for h in plain.history_)
    assert plain._adversarial is None and gen._adversarial is not None
    n_discriminator = len(gen._adversarial.discriminator.state_dict())
    assert len(plain.get_weights()) + n_discriminator == len(gen.get_weights())
    assert not any("discriminator" in k for k in gen._get_state()[1])
    # Same seed, same first epoch (to float rounding: the two fits' kernels may sum in another
    # order): the adversarial term alone changed the autoencoder.
    assert plain.history_[0] == pytest.approx(gen.history_[0], rel=1e-5)
    assert not np.allclose(_latents(plain, cohort), _latents(gen, cohort))


def test_moving_average_of_the_unet_is_kept_and_leaves_the_autoencoder_alone(cohort):
    params = {**TINY["latent_diffusion"], "adversarial_weight": 0}
    last = fedsynth.make("latent_diffusion", seed=0, ema_decay=0.0, **params).fit(cohort)
    averaged = fedsynth.make("latent_diffusion", seed=0, ema_decay=0.5, **params).fit(cohort)
    for a, b in zip(
        last.autoencoder_.parameters(), averaged.autoencoder_.parameters(), strict=True
    ):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    # The same training steps (same losses), another UNet kept.
    assert [h["diffusion"] for h in last.history_[1:]] == [
        h["diffusion"] for h in averaged.history_[1:]
    ]
    differ = [
        not np.allclose(a.detach().numpy(), b.detach().numpy())
        for a, b in zip(last.unet_.parameters(), averaged.unet_.parameters(), strict=True)
    ]
    assert any(differ)
    with pytest.raises(ValueError, match="ema_decay"):
        fedsynth.make("latent_diffusion", ema_decay=1.0, **params).fit(cohort)


def test_reconstruct_keeps_labels_and_refuses_another_shape(adversarial, cohort):
    out = adversarial.reconstruct(cohort)
    assert out.shape == cohort.shape and out.labels.equals(cohort.labels)
    assert out.channels == cohort.channels
    low, high = cohort.images.min(), cohort.images.max()
    assert out.images.min() >= low - 1e-5 and out.images.max() <= high + 1e-5
    with pytest.raises(ImageDataError, match="images to reconstruct"):
        adversarial.reconstruct(cohort.images[:, :2])


def test_stochastic_ddim_draws_fresh_noise_each_step_and_stays_seeded(adversarial, cohort):
    gen = adversarial
    assert gen.sampling_eta == 1.0
    stochastic = gen.sample(3, seed=7).images
    np.testing.assert_array_equal(gen.sample(3, seed=7).images, stochastic)
    gen.set_params(sampling_eta=0.0)
    try:
        deterministic = gen.sample(3, seed=7).images
    finally:
        gen.set_params(sampling_eta=1.0)
    assert not np.allclose(stochastic, deterministic)
    params = {**TINY["latent_diffusion"], "sampling_eta": 1.5}
    with pytest.raises(ValueError, match="sampling_eta"):
        fedsynth.make("latent_diffusion", **params).fit(cohort)
