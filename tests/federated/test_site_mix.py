"""A federated model samples each site's share of rows (issue 26): averaged weights cannot tell
the sites apart, so the server's models sample by site, in proportion to the sites' sizes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import fedsynth
from fedsynth.federated.task import GeneratorMixture, load_model
from fedsynth.tabular.generators.site_mix import SiteMix

from .conftest import SIZES, read_jsonl, run_in_process


def test_allocation_is_proportional_exact_to_a_row_and_deterministic():
    mix = SiteMix("site", {"a": 962, "b": 592, "c": 446})
    for n in (0, 1, 7, 1000, 3099):
        counts = mix.allocate(n)
        assert sum(counts.values()) == n
        exact = {k: n * v / 2000 for k, v in mix.rows.items()}
        assert all(abs(counts[k] - exact[k]) < 1 for k in counts)
        assert counts == mix.allocate(n)


def test_site_mix_round_trips_through_json_with_its_value_types():
    mix = SiteMix("centre", {1: 30, 2: 10})
    again = SiteMix.from_dict(mix.to_dict())
    assert again == mix and list(again.rows) == [1, 2]
    with pytest.raises(ValueError, match="centre"):
        SiteMix("centre", {1: 0})


@pytest.fixture(scope="module")
def federated(two_sites, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("site_mix")
    strategies = ["fedavg", "synthetic_sharing", "generator_sharing"]
    out, _ = run_in_process(two_sites, tmp, strategies=strategies, rounds=1)
    return {m["strategy"]: m["path"] for m in read_jsonl(out / "models.jsonl")}


def _shares(sample: pd.DataFrame) -> dict[str, float]:
    return sample["site"].value_counts(normalize=True).to_dict()


@pytest.mark.parametrize("strategy", ["fedavg", "synthetic_sharing"])
def test_a_loaded_server_model_samples_the_sites_in_proportion(federated, two_sites, strategy):
    model = load_model(federated[strategy])
    sizes = {data["site"].iloc[0]: len(data) for data in two_sites.values()}
    assert model.site_mix_ == SiteMix("site", sizes)
    n = sum(SIZES.values())
    counts = model.sample(n, seed=0)["site"].value_counts().to_dict()
    assert counts == sizes
    # The same seed gives the same rows, and a condition on the site still holds.
    pd.testing.assert_frame_equal(model.sample(50, seed=3), model.sample(50, seed=3))
    assert set(model.sample(30, conditions={"site": "site_2"}, seed=1)["site"]) == {"site_2"}


def test_other_conditions_are_kept_in_every_sites_share(federated):
    model = load_model(federated["fedavg"])
    sample = model.sample(40, conditions={"sex": "F"}, seed=2)
    assert set(sample["sex"]) == {"F"} and set(sample["site"]) == {"site_1", "site_2"}


def test_generator_sharing_samples_each_site_from_its_own_generator(federated, two_sites):
    mixture = load_model(federated["generator_sharing"])
    assert isinstance(mixture, GeneratorMixture)
    sample = mixture.sample(2000, seed=0)
    real = pd.concat(two_sites.values())["site"].value_counts(normalize=True)
    assert all(abs(_shares(sample)[site] - share) < 0.04 for site, share in real.items())


def test_a_central_model_is_saved_without_a_site_mix(two_sites, tmp_path):
    pooled = pd.concat(two_sites.values(), ignore_index=True)
    model = fedsynth.make("gaussian_copula", seed=0).fit(pooled)
    assert getattr(model, "site_mix_", None) is None
    config = json.loads((model.save(tmp_path / "model") / "model.json").read_text())
    assert "site_mix" not in config


def test_a_sites_own_mix_is_its_rows_site_values(two_sites):
    metadata = fedsynth.federated.shared_metadata(two_sites)
    assert SiteMix.from_data(metadata, two_sites["south"]) == SiteMix("site", {"site_2": 97})
    assert SiteMix.from_data(metadata, two_sites["south"].drop(columns="site")) is None
