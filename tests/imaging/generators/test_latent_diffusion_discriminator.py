"""Federated ``latent_diffusion``: the autoencoder's patch discriminator travels with the
weights and is averaged like them (a site's model is rebuilt every round and would otherwise
start an untrained one), while central fits and saved files stay as they were."""

from __future__ import annotations

import numpy as np
import pytest

import fedsynth
from fedsynth.exceptions import FedsynthError
from fedsynth.federated.task import weighted_average
from fedsynth.imaging.generators import ImageSchema
from fedsynth.imaging.generators._autoencoder import AdversarialPart
from tests.imaging.generators.conftest import TINY

COLUMNS = ["tumour_type", "idh_mutant"]
#: Rounds of 2 epochs, the autoencoder's (and the discriminator's) in rounds 1-2, no warm-up.
PARAMS = {**TINY["latent_diffusion"], "ae_epochs": 4, "adversarial_warmup": 0, "seed": 5}
EPOCHS = 2


@pytest.fixture(scope="module")
def sites(cohort):
    names = cohort.labels["site"]
    return [cohort.take(np.flatnonzero(names == name)) for name in sorted(set(names))]


@pytest.fixture(scope="module")
def schema(sites):
    return ImageSchema.merge([ImageSchema.from_images(s, label_columns=COLUMNS) for s in sites])


def _site(schema, rounds_done: int, **params):
    return fedsynth.make("latent_diffusion", **{**PARAMS, **params}).init_from_schema(
        schema, n_fits=rounds_done
    )


def _discriminator_slice(model) -> slice:
    """Where the discriminator's arrays sit in ``get_weights`` (last)."""
    names = [f"{m}/{k}" for m, mod in model._weight_modules().items() for k in mod.state_dict()]
    first = next(i for i, n in enumerate(names) if n.startswith("discriminator/"))
    assert all(n.startswith("discriminator/") for n in names[first:])
    return slice(first, len(names))


def _state(module) -> list[np.ndarray]:
    return [v.detach().cpu().numpy().copy() for v in module.state_dict().values()]


def test_round_two_starts_from_the_averaged_discriminator(schema, sites, monkeypatch):
    server = _site(schema, 0)
    where = _discriminator_slice(server)
    weights = server.get_weights()
    initial = weights[where]
    replies = []
    for images in sites:
        site = _site(schema, 0)
        site.train_local(images, epochs=EPOCHS, weights=weights, extra_state=False)
        assert "discriminator" in site.history_[EPOCHS - 1]
        replies.append(site.get_weights())
    # Each site trained the shared initial discriminator on its own images.
    for reply in replies:
        assert any(not np.array_equal(a, b) for a, b in zip(reply[where], initial, strict=True))
    averaged = weighted_average(replies, [len(s) for s in sites])

    # Record the discriminator's weights at its first step of round 2.
    seen: list[list[np.ndarray]] = []
    step = AdversarialPart.discriminator_step

    def recording_step(self, real, reconstruction):
        if not seen:
            seen.append(_state(self.discriminator))
        return step(self, real, reconstruction)

    monkeypatch.setattr(AdversarialPart, "discriminator_step", recording_step)
    site = _site(schema, 1)
    site.train_local(sites[0], epochs=EPOCHS, weights=averaged, extra_state=False)
    assert [("reconstruction" in e) for e in site.history_] == [True] * EPOCHS + [False] * EPOCHS
    assert len(seen) == 1
    for found, expected in zip(seen[0], averaged[where], strict=True):
        np.testing.assert_array_equal(found, expected)
    # Not a fresh discriminator: a model rebuilt without the weights draws another.
    fresh = _site(schema, 1).get_weights()[where]
    assert any(not np.array_equal(a, b) for a, b in zip(fresh, averaged[where], strict=True))
    # Once the autoencoder is frozen, the discriminator no longer trains and travels unchanged.
    frozen = _site(schema, 2)
    frozen.train_local(sites[0], epochs=EPOCHS, weights=averaged, extra_state=False)
    assert all("reconstruction" not in e for e in frozen.history_)
    for found, expected in zip(frozen.get_weights()[where], averaged[where], strict=True):
        np.testing.assert_array_equal(found, expected)


def test_get_and_set_weights_round_trip_with_the_discriminator(schema, sites):
    fitted = _site(schema, 0)
    fitted.train_local(sites[0], epochs=EPOCHS, extra_state=False)
    weights = fitted.get_weights()
    other = _site(schema, 0, seed=6)
    assert len(other.get_weights()) == len(weights)
    other.set_weights(weights)
    for a, b in zip(other.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(a, b)
    where = _discriminator_slice(other)
    for a, b in zip(_state(other._adversarial.discriminator), weights[where], strict=True):
        np.testing.assert_array_equal(a, b)
    # The layout without the discriminator (a model without the adversarial loss) is refused.
    plain = _site(schema, 0, adversarial_weight=0.0)
    assert "discriminator" not in plain._weight_modules()
    assert len(plain.get_weights()) == where.start
    with pytest.raises(FedsynthError, match=f"expected {len(weights)} weight arrays"):
        other.set_weights(plain.get_weights())


def test_central_fit_and_saved_files_are_unaffected(cohort, schema, tmp_path):
    params = {**PARAMS, "ae_epochs": 2}
    fitted = fedsynth.make("latent_diffusion", **params).fit(cohort)
    # A model whose discriminator was drawn for the weights first fits the same: fit rebuilds
    # the model and draws its discriminator from the fit's seed, as before the sharing.
    again = fedsynth.make("latent_diffusion", **params).init_from_schema(schema)
    again.get_weights()
    again.fit(cohort)
    assert "adversarial" in again.history_[1]
    for a, b in zip(again.get_weights(), fitted.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    wanted = {"tumour_type": "astrocytoma", "idh_mutant": 0}
    out = fitted.sample(4, conditions=wanted, seed=2)
    # The saved files hold the autoencoder and the UNet only, as before: old files load alike.
    fitted.save(tmp_path / "ldm")
    assert not [p for p in (tmp_path / "ldm").rglob("*") if "discriminator" in p.name]
    loaded = fedsynth.load(tmp_path / "ldm")
    np.testing.assert_array_equal(loaded.sample(4, wanted, 2).images, out.images)
    n_saved = len(loaded._modules()["autoencoder"].state_dict()) + len(
        loaded._modules()["unet"].state_dict()
    )
    for a, b in zip(loaded.get_weights()[:n_saved], fitted.get_weights(), strict=False):
        np.testing.assert_array_equal(a, b)
    assert len(loaded.get_weights()) == len(fitted.get_weights())


def test_a_federated_run_with_the_shared_discriminator_samples_its_labels(schema, sites):
    sizes = [len(s) for s in sites]
    server = _site(schema, 0)
    weights = server.get_weights()
    for round_no in range(1, 4):
        replies = []
        for images in sites:
            site = _site(schema, round_no - 1)
            site.train_local(images, epochs=EPOCHS, weights=weights, extra_state=False)
            replies.append(site.get_weights())
        weights = weighted_average(replies, sizes)
    states = []
    for images in sites:
        site = _site(schema, 3)
        site.train_local(images, epochs=0, weights=weights, extra_state=True)
        states.append(site.export_extra_state())
    server.set_weights(weights)
    server.load_extra_state(type(server).merge_extra_states(states, sizes))
    wanted = {"tumour_type": "glioblastoma", "idh_mutant": 0}
    out = server.sample(5, conditions=wanted, seed=1)
    assert out.shape == (5, 4, 32, 32) and np.isfinite(out.images).all()
    assert (out.labels["tumour_type"] == "glioblastoma").all()
    assert (out.labels["idh_mutant"] == 0).all()
