"""Federated image generators: the tables' server protocol, site handlers and strategies run on
two sites of simulated MRI slices in this process (every message through Flower's records, see
``conftest.InProcessTransport``); the real Flower runtime runs them in
``tests/cli/test_images_federate.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import fedsynth
from fedsynth.exceptions import ImageDataError
from fedsynth.federated import FederationError, federate
from fedsynth.federated.federation import FederationResult
from fedsynth.federated.image_sites import build_image_schema, check_image_sites
from fedsynth.federated.server_app import run_server
from fedsynth.federated.settings import RunSettings
from fedsynth.federated.task import GeneratorMixture
from fedsynth.imaging import ImageSet, brain_mri_cohort
from fedsynth.imaging.generators import ImageSchema

from .conftest import IMAGE_COLUMNS, TINY_IMAGE_GAN, InProcessTransport, read_jsonl

COLUMNS = IMAGE_COLUMNS
TINY_GAN = TINY_IMAGE_GAN


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def image_sites() -> dict[str, ImageSet]:
    """Two hospitals of 13 and 26 slices (32 x 32, 4 sequences), from different scanners."""
    cohort = brain_mri_cohort(60, sites=2, size=32, seed=0)
    names = cohort.labels["site"]
    first, second = (np.flatnonzero(names == n) for n in sorted(set(names)))
    return {"north": cohort.take(first[:13]), "south": cohort.take(second[:26])}


def _run(sites, folder: Path, **settings) -> tuple[FederationResult, InProcessTransport]:
    settings = {"model": "dp_gan", "params": TINY_GAN, "rounds": 1, "local_epochs": 1, **settings}
    transport = InProcessTransport(sites)
    out = folder / "server"
    run_server(
        transport, RunSettings(metadata_path="", out_dir=str(out), modality="imaging", **settings)
    )
    return FederationResult(out), transport


@pytest.fixture(scope="module")
def lockstep(image_sites, tmp_path_factory):
    """FedAvg, FedProx and generator sharing in lock-step, one round."""
    folder = tmp_path_factory.mktemp("images")
    return _run(image_sites, folder, strategies=["fedavg", "fedprox", "generator_sharing"])


def _shared_schema(result: FederationResult) -> ImageSchema:
    return ImageSchema.from_dict(json.loads((result.out_dir / "schema/schema.json").read_text()))


def test_fedavg_trains_the_shared_image_model_and_samples_labelled_images(lockstep, image_sites):
    result, transport = lockstep
    assert result.sites == {"north": 13, "south": 26}
    log = result.rounds.set_index("strategy").loc["fedavg"]
    assert log["participants"] == ["north", "south"] and not log["failed"]
    assert set(log["metrics"]) >= {"discriminator", "generator"}
    model = result.model("fedavg")
    untrained = fedsynth.make("dp_gan", **TINY_GAN).init_from_schema(_shared_schema(result))
    moved = [
        not np.array_equal(a, b)
        for a, b in zip(untrained.get_weights(), model.get_weights(), strict=True)
    ]
    assert sum(moved) > len(moved) // 2, f"FedAvg moved {sum(moved)} of {len(moved)} arrays"
    # FedProx trains the same model from the same start, pulled towards it: it ends elsewhere.
    fedprox = result.model("fedprox").get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(fedprox, model.get_weights(), strict=True))
    images = result.sample(10, "fedavg", conditions={"tumour_type": "astrocytoma"})
    assert images.shape == (10, 4, 32, 32)
    assert list(images.channels) == ["T1", "T1c", "T2", "FLAIR"]
    assert (images.labels["tumour_type"] == "astrocytoma").all()
    # What left a site: its name, image schema (aggregates), weights, losses; no image.
    for _, _site, reply in transport.replies:
        for payload in reply.values():
            for array in payload.arrays.values():
                assert 13 not in array.shape and 26 not in array.shape


def test_generator_sharing_pools_each_sites_own_generator_by_site_size(lockstep, image_sites):
    result, _ = lockstep
    mixture = result.model("generator_sharing")
    assert isinstance(mixture, GeneratorMixture)
    assert mixture.weights == {"north": 13.0, "south": 26.0}
    schema = _shared_schema(result)
    for name, images in image_sites.items():
        # The component is the generator the site trained on its own images, and nothing else.
        own = fedsynth.make("dp_gan", **TINY_GAN).init_from_schema(schema)
        own.train_local(images, epochs=1)
        # (to float32 rounding: the generator's moving average is summed in another order when
        # the runs' kernels differ; a different generator would differ by orders more)
        for a, b in zip(own.get_weights(), mixture.generators[name].get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
        # ... and it samples the site's own case mix, not the pooled one.
        seen = {tuple(row) for row in images.labels[COLUMNS].itertuples(index=False)}
        drawn = mixture.generators[name].sample(40, seed=0).labels[COLUMNS]
        assert {tuple(row) for row in drawn.itertuples(index=False)} <= seen
    pooled = result.sample(440, "generator_sharing", seed=3)
    assert isinstance(pooled, ImageSet) and pooled.site_column == "site"
    share = (pooled.labels["site"] == "north").mean()
    assert abs(share - 13 / 39) < 0.07, share
    assert pooled.shape == (440, 4, 32, 32)


def test_privacy_spent_per_site_under_dp(image_sites, tmp_path):
    params = {
        **TINY_GAN,
        "label_values": {
            "tumour_type": ["glioblastoma", "astrocytoma", "oligodendroglioma"],
            "idh_mutant": [0, 1],
        },
        "intensity_range": [0.0, 1.6],
        "dp": {"epsilon": 4.0, "delta": 1e-5},
    }
    result, transport = _run(image_sites, tmp_path, params=params)
    spent = result.privacy_spent["fedavg"]
    assert set(spent) == {"north", "south"}
    for pair in spent.values():
        assert 0 < pair["epsilon"] <= 4.0 and pair["delta"] == pytest.approx(1e-5)
    rounds = read_jsonl(result.out_dir / "rounds.jsonl")
    assert all("discriminator" not in r["metrics"] for r in rounds), "losses left a DP site"
    # Under DP a site sends the declared classes with equal shares, not its own.
    statistics = [r for kind, _, r in transport.replies if kind == "query.statistics"]
    for reply in statistics:
        sent = json.loads(reply["site"].config["statistics"])["image_schema"]
        assert len(set(sent["class_weights"])) == 1 and sent["low"] == [0.0] * 4


def _other_size(images: ImageSet) -> ImageSet:
    return ImageSet(images.images[:, :, :16, :16], images.labels, channels=images.channels)


def test_sites_whose_images_disagree_are_named(image_sites, tmp_path):
    sites = {**image_sites, "east": _other_size(image_sites["south"])}
    with pytest.raises(ImageDataError, match=r"site 'east'.s size \[16, 16\] differ"):
        federate(sites, model="dp_gan", params=TINY_GAN, out=tmp_path)
    fewer = ImageSet(
        image_sites["south"].images[:, :2], image_sites["south"].labels, channels=["T1", "T1c"]
    )
    with pytest.raises(ImageDataError, match=r"site 'south'.s channels \['T1', 'T1c'\]"):
        check_image_sites({"north": image_sites["north"], "south": fewer}, TINY_GAN)
    unlabelled = ImageSet(image_sites["north"].images, None, channels=image_sites["north"].channels)
    with pytest.raises(ImageDataError, match="site 'north': label column 'tumour_type'"):
        check_image_sites({"north": unlabelled, "south": image_sites["south"]}, TINY_GAN)
    # The server names them too (at a real deployment the sites' images are never together).
    with pytest.raises(FederationError, match=r"site 'east'.s size"):
        _run(sites, tmp_path)
    statistics = {
        name: {"image_schema": ImageSchema.from_images(s, label_columns=COLUMNS).to_dict()}
        for name, s in sites.items()
    }
    # The site that differs from most is named, against one of the others.
    with pytest.raises(
        FederationError,
        match=r"\nsite 'east''s size \[16, 16\] differ from site 'north''s \[32, 32\]$",
    ):
        build_image_schema(statistics)


def test_image_runs_refuse_what_does_not_apply(image_sites, tmp_path):
    with pytest.raises(ValueError, match="synthetic_sharing is for tables"):
        federate(image_sites, model="dp_gan", strategy="synthetic_sharing", params=TINY_GAN)
    with pytest.raises(FederationError, match="tvae is a tabular generator"):
        federate(image_sites, model="tvae", out=tmp_path)
    mixed = {"north": image_sites["north"], "table": fedsynth.datasets.mds_cohort(n=30)}
    with pytest.raises(FederationError, match="'table'"):
        federate(mixed, model="dp_gan")
