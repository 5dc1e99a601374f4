"""The federable protocol of the image generators: one two-site FedAvg round in process, done
as FedAvg's site task and aggregation do it (fedsynth.federated.averaging), and generator
sharing's bytes."""

from __future__ import annotations

import numpy as np
import pytest

import fedsynth
from fedsynth.core.federable import Federable
from fedsynth.exceptions import FedsynthError
from fedsynth.federated.task import weighted_average
from fedsynth.imaging.generators import ImageSchema
from tests.imaging.generators.conftest import LABEL_VALUES, TINY

COLUMNS = ["tumour_type", "idh_mutant"]


@pytest.fixture(scope="module")
def sites(cohort):
    names = cohort.labels["site"]
    return {name: cohort.take(np.flatnonzero(names == name)) for name in sorted(set(names))}


@pytest.fixture(scope="module")
def schema(sites):
    # Each site describes its images; the server merges (classes, shares, intensity range).
    return ImageSchema.merge(
        [ImageSchema.from_images(images, label_columns=COLUMNS) for images in sites.values()]
    )


def _fedavg_round(name, params, schema, sites, global_weights, round_no):
    """What FedAvg.site_task does at each site, then the server's weighted average and the
    extra state of the averaged weights."""
    replies, sizes = [], []
    for images in sites.values():
        site = fedsynth.make(name, **params).init_from_schema(schema, n_fits=round_no - 1)
        site.set_weights(global_weights)
        losses = site.train_local(images, epochs=2, extra_state=False)
        assert losses and all(np.isfinite(v) for v in losses.values())
        replies.append(site.get_weights())
        sizes.append(len(images))
    averaged = weighted_average(replies, sizes)
    states = []
    for images in sites.values():
        site = fedsynth.make(name, **params).init_from_schema(schema, n_fits=round_no)
        site.train_local(images, epochs=0, weights=averaged, extra_state=True)
        states.append(site.export_extra_state())
    return averaged, states, sizes, replies


@pytest.mark.parametrize("name", ["latent_diffusion", "dp_gan"])
def test_a_two_site_fedavg_round(name, schema, sites):
    params = {**TINY[name], "seed": 3}
    server = fedsynth.make(name, **params).init_from_schema(schema)
    assert isinstance(server, Federable) and server.has_weights
    start = server.get_weights()
    # Every site builds the same initial model from the schema and the seed.
    other = fedsynth.make(name, **params).init_from_schema(schema)
    assert all(np.array_equal(a, b) for a, b in zip(start, other.get_weights(), strict=True))
    averaged, states, sizes, replies = _fedavg_round(name, params, schema, sites, start, 1)
    server.set_weights(averaged)
    server.load_extra_state(type(server).merge_extra_states(states, sizes))
    moved = [not np.array_equal(a, b) for a, b in zip(start, averaged, strict=True)]
    # MONAI zero-initialises the UNet's output layers: the layers before them move from the
    # second step on, and a site holds about one batch.
    assert sum(moved) > len(moved) // 2, f"training moved {sum(moved)} of {len(moved)} arrays"
    shares = np.asarray(sizes) / sum(sizes)
    i = next(i for i, m in enumerate(moved) if m)
    np.testing.assert_allclose(
        averaged[i], shares[0] * replies[0][i] + shares[1] * replies[1][i], rtol=1e-5, atol=1e-7
    )
    # Generator sharing sends the model whole, without pickle.
    shared = type(server).from_bytes(server.to_bytes(keep_guard=False))
    out = shared.sample(6, conditions={"idh_mutant": 1}, seed=0)
    assert out.shape == (6, 4, 32, 32) and (out.labels["idh_mutant"] == 1).all()
    np.testing.assert_array_equal(out.images, server.sample(6, {"idh_mutant": 1}, 0).images)
    with pytest.raises(FedsynthError, match="weight arrays"):
        server.set_weights(averaged[:-1])


def test_latent_scale_is_merged_by_site_size(schema, sites):
    cls = fedsynth.make("latent_diffusion").__class__
    states = [
        cls.merge_extra_states([s], [1])
        for s in (
            fedsynth.core.federable.ExtraState({"latent_variance": 1.0}, {}),
            fedsynth.core.federable.ExtraState({"latent_variance": 4.0}, {}),
        )
    ]
    merged = cls.merge_extra_states(states, [3, 1])
    assert merged.config["latent_variance"] == pytest.approx(1.75)


def test_dp_gan_sites_charge_their_ledger_under_dp(schema, sites):
    params = {
        **TINY["dp_gan"],
        "label_columns": None,
        "label_values": LABEL_VALUES,
        "intensity_range": (0.0, 1.6),
        "dp": {"epsilon": 5.0, "delta": 1e-5},
        "seed": 0,
    }
    declared = ImageSchema.from_images(
        next(iter(sites.values())),
        label_values=LABEL_VALUES,
        intensity_range=(0.0, 1.6),
        uniform_classes=True,
    )
    site = fedsynth.make("dp_gan", **params).init_from_schema(declared)
    images = next(iter(sites.values()))
    assert site.train_local(images, epochs=1) == {}, "no loss leaves a site under DP"
    first = site.privacy_spent_.epsilon
    assert 0 < first <= 5.0
    site.train_local(images, epochs=1)  # a second round at the first round's noise
    (one, two) = site.privacy_spent_.spends
    assert two.details["history"][0][0] == one.details["history"][0][0]
    assert site.privacy_spent_.epsilon == pytest.approx(2 * first)
    with pytest.raises(fedsynth.core.privacy.PrivacyConfigError, match="federated"):
        ldm = {**TINY["latent_diffusion"], "dp": {"epsilon": 5.0, "delta": 1e-5}}
        fedsynth.make("latent_diffusion", **ldm).init_from_schema(declared).train_local(
            images, epochs=1
        )
