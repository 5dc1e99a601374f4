"""dp_gan's training options: the discriminator's own learning rate (TTUR), several
discriminator steps per generator step, the hinge loss and DiffAugment's translation, with and
without DP-SGD (epsilon still matches Opacus's accountant)."""

from __future__ import annotations

import pytest

import fedsynth
from tests.imaging.generators.conftest import LABEL_VALUES, TINY

torch = pytest.importorskip("torch")


def _vector(module):
    return torch.nn.utils.parameters_to_vector(module.parameters()).detach().clone()


def test_translate_shifts_each_image_by_its_own_bounded_offset():
    from fedsynth.imaging.generators._gan import translate

    images = torch.rand(8, 2, 16, 16)
    out = translate(images, 0.125, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    found = []
    for i in range(len(images)):  # each output is its input moved by at most 2 pixels
        shifts = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(out[i, :, 2:-2, 2:-2], images[i, :, 2 - dy : 14 - dy, 2 - dx : 14 - dx])
        ]
        assert len(shifts) == 1, f"image {i} is not a shifted copy"
        found.append(shifts[0])
    assert len(set(found)) > 1, "every image got the same shift"
    # An image's output depends on that image alone (per-image gradients under DP-SGD).
    changed = images.clone()
    changed[3] = 0.0
    again = translate(changed, 0.125, torch.Generator().manual_seed(0))
    keep = [i for i in range(8) if i != 3]
    assert torch.equal(again[keep], out[keep])


def test_generator_steps_once_per_discriminator_steps():
    from fedsynth.imaging.generators._gan import gan_epoch
    from fedsynth.imaging.generators.networks import (
        ConditionalGenerator,
        ProjectionDiscriminator,
    )

    g_net = ConditionalGenerator(8, 2, 1, 8, 8, 4)
    d_net = ProjectionDiscriminator(2, 1, 8, 8, 4)
    optimizers = tuple(torch.optim.Adam(m.parameters(), lr=1e-3) for m in (g_net, d_net))
    images, classes = torch.rand(24, 1, 8, 8) * 2 - 1, torch.randint(0, 2, (24,))
    batches = [torch.arange(4 * k, 4 * k + 4) for k in range(6)]
    losses = gan_epoch(
        g_net, d_net, images, classes, optimizers, batches, torch.ones(2), 8,
        torch.Generator().manual_seed(0), batch_size=4, d_steps=3, loss="hinge", shift=0.25,
    )  # fmt: skip

    def steps(optimizer):
        return {int(state["step"]) for state in optimizer.state.values()}

    assert steps(optimizers[0]) == {2} and steps(optimizers[1]) == {6}
    assert set(losses) == {"discriminator", "generator"}
    assert losses["discriminator"] >= 0  # hinge terms are non-negative


def test_discriminator_learning_rate_is_its_own(cohort):
    params = {**TINY["dp_gan"], "epochs": 2}
    gen = fedsynth.make("dp_gan", seed=0, discriminator_lr=1e-12, **params)
    gen.fit(cohort)
    # The same seed builds the same untrained networks (the federable protocol's start).
    before = fedsynth.make("dp_gan", seed=0, **params).init_from_schema(gen.schema_, n_fits=0)
    # Adam's first steps move each weight by about the learning rate: 1e-12 leaves the
    # discriminator where it started while the generator (lr 2e-4) moves.
    moved_d = (_vector(gen.discriminator_) - _vector(before.discriminator_)).abs().max()
    moved_g = (_vector(gen.generator_) - _vector(before.generator_)).abs().max()
    assert moved_d < 1e-9 and moved_g > 1e-4


def test_private_training_with_the_options_is_charged_as_opacus_counts(cohort):
    from opacus.accountants import RDPAccountant

    params = {**TINY["dp_gan"], "label_columns": None, "label_values": LABEL_VALUES}
    options = {"discriminator_steps": 2, "loss": "hinge", "augment_shift": 0.125}
    dp = {"epsilon": 3.0, "delta": 1e-5}
    gen = fedsynth.make("dp_gan", seed=0, intensity_range=(0.0, 1.6), dp=dp, **params, **options)
    gen.fit(cohort)
    ((noise, rate, steps),) = gen.steps_taken()
    # Every discriminator step is a DP-SGD step, whatever the generator does in between.
    assert steps == params["epochs"] * round(len(cohort) / params["batch_size"])
    accountant = RDPAccountant()
    accountant.history = [(noise, rate, steps)]
    assert gen.privacy_spent_.epsilon == pytest.approx(
        accountant.get_epsilon(delta=dp["delta"]), rel=1e-9
    )
    assert gen.privacy_spent_.epsilon <= dp["epsilon"]
    assert gen.sample(4, {"idh_mutant": 1}, seed=0).shape == (4, 4, 32, 32)


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"loss": "wasserstein"}, "loss must be one of"),
        ({"discriminator_steps": 0}, "discriminator_steps"),
        ({"augment_shift": 0.5}, "augment_shift"),
        ({"discriminator_lr": -1.0}, "discriminator_lr"),
    ],
)
def test_bad_training_options_are_refused(cohort, option, match):
    with pytest.raises(ValueError, match=match):
        fedsynth.make("dp_gan", **{**TINY["dp_gan"], **option}).fit(cohort)


def test_loss_terms_known_answers():
    from fedsynth.imaging.generators._gan import LOSSES

    logits = torch.tensor([-2.0, 0.0, 0.5, 2.0])
    real, fake, generator = LOSSES["hinge"]
    torch.testing.assert_close(real(logits), torch.tensor([3.0, 1.0, 0.5, 0.0]))
    torch.testing.assert_close(fake(logits), torch.tensor([0.0, 1.0, 1.5, 3.0]))
    torch.testing.assert_close(generator(logits), -logits)
    real, fake, generator = LOSSES["nonsaturating"]
    torch.testing.assert_close(real(logits), torch.log1p(torch.exp(-logits)))
    torch.testing.assert_close(fake(logits), torch.log1p(torch.exp(logits)))
    assert fedsynth.make("dp_gan").loss == "hinge" and fedsynth.make("dp_gan").epochs == 60
