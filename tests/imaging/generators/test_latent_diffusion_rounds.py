"""Federated ``latent_diffusion``: every round trains the UNet its epochs, the autoencoder as
many first until its budget is spent, then stays frozen
(fedsynth.imaging.generators._ldm_rounds)."""

from __future__ import annotations

import numpy as np
import pytest

import fedsynth
from fedsynth.federated.task import weighted_average
from fedsynth.imaging.generators import ImageSchema
from fedsynth.imaging.generators._ldm_rounds import autoencoder_epochs_done, split_round
from tests.imaging.generators.conftest import TINY

COLUMNS = ["tumour_type", "idh_mutant"]
#: Autoencoder budget 3 over rounds of 2 epochs: AE 2 + UNet 2 | AE 1 + UNet 2 | UNet 2 | UNet 2.
PARAMS = {**TINY["latent_diffusion"], "ae_epochs": 3, "seed": 5}
EPOCHS = 2


@pytest.fixture(scope="module")
def sites(cohort):
    names = cohort.labels["site"]
    return [cohort.take(np.flatnonzero(names == name)) for name in sorted(set(names))]


@pytest.fixture(scope="module")
def schema(sites):
    return ImageSchema.merge([ImageSchema.from_images(s, label_columns=COLUMNS) for s in sites])


def _state(module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _changed(before: dict[str, np.ndarray], module) -> int:
    after = _state(module)
    return sum(not np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    ("ae_epochs", "rounds", "epochs", "expected"),
    [
        (50, 10, 20, [(20, 20), (20, 20), (10, 20)] + [(0, 20)] * 7),
        (50, 3, 5, [(5, 5)] * 3),
        (3, 2, 5, [(3, 5), (0, 5)]),
    ],
)
def test_rounds_spend_the_autoencoder_budget_first(ae_epochs, rounds, epochs, expected):
    found = [
        split_round(ae_epochs, autoencoder_epochs_done(ae_epochs, r, epochs, []), epochs)
        for r in range(rounds)
    ]
    assert found == expected
    assert sum(a for a, _ in found) == min(ae_epochs, rounds * epochs)
    assert sum(u for _, u in found) == rounds * epochs
    # A model that kept its history (e.g. fitted centrally) counts its own epochs.
    history = [{"reconstruction": 0.1}] * ae_epochs + [{"diffusion": 0.5}]
    assert split_round(ae_epochs, autoencoder_epochs_done(ae_epochs, 1, 1, history), 4) == (0, 4)


def test_the_autoencoder_freezes_after_its_budget_and_the_unet_trains_on(schema, sites):
    images = sites[0]
    weights = fedsynth.make("latent_diffusion", **PARAMS).init_from_schema(schema).get_weights()
    scales = []
    for round_no, ae_epochs in enumerate([2, 1, 0, 0]):
        site = fedsynth.make("latent_diffusion", **PARAMS).init_from_schema(schema, n_fits=round_no)
        site.set_weights(weights)
        ae, unet = _state(site.autoencoder_), _state(site.unet_)
        site.train_local(images, epochs=EPOCHS, extra_state=False)
        parts = [("reconstruction" in e, "diffusion" in e) for e in site.history_]
        assert parts == [(True, False)] * ae_epochs + [(False, True)] * EPOCHS, round_no
        assert (_changed(ae, site.autoencoder_) > 0) == (ae_epochs > 0), round_no
        assert _changed(unet, site.unet_) > 0, round_no
        weights = site.get_weights()
        scales.append(site.latent_scale_)
    # Once the autoencoder is frozen, the site's latents (and their scale) stay the same.
    assert scales[2] == scales[3]


def test_fedavg_rounds_give_a_model_that_samples_its_labels_and_saves(schema, sites, tmp_path):
    sizes = [len(s) for s in sites]
    server = fedsynth.make("latent_diffusion", **PARAMS).init_from_schema(schema)
    weights = server.get_weights()
    for round_no in range(1, 4):
        replies = []
        for images in sites:
            site = fedsynth.make("latent_diffusion", **PARAMS).init_from_schema(
                schema, n_fits=round_no - 1
            )
            site.train_local(images, epochs=EPOCHS, weights=weights, extra_state=False)
            replies.append(site.get_weights())
        weights = weighted_average(replies, sizes)
    states = []
    for images in sites:
        site = fedsynth.make("latent_diffusion", **PARAMS).init_from_schema(schema, n_fits=3)
        site.train_local(images, epochs=0, weights=weights, extra_state=True)
        states.append(site.export_extra_state())
    server.set_weights(weights)
    merged = type(server).merge_extra_states(states, sizes)
    server.load_extra_state(merged)
    variances = [s.config["latent_variance"] for s in states]
    assert min(variances) <= merged.config["latent_variance"] <= max(variances)
    assert server.latent_scale_ == pytest.approx(merged.config["latent_variance"] ** -0.5)

    wanted = {"tumour_type": "oligodendroglioma", "idh_mutant": 1}
    out = server.sample(5, conditions=wanted, seed=1)
    assert out.shape == (5, 4, 32, 32) and np.isfinite(out.images).all()
    assert (out.labels["tumour_type"] == "oligodendroglioma").all()
    assert (out.labels["idh_mutant"] == 1).all()
    server.save(tmp_path / "ldm")
    loaded = fedsynth.load(tmp_path / "ldm")
    assert loaded.latent_scale_ == server.latent_scale_
    np.testing.assert_array_equal(loaded.sample(5, wanted, 1).images, out.images)
