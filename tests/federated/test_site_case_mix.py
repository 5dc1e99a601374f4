"""Each site's case mix after FedAvg (issue 26): averaged weights hardly tell the sites apart,
so each site fits an offset of the decoder's outputs on its own rows (``_site_offsets``), and
sampling conditioned on a site adds that site's offset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.federated.task import load_model
from fedsynth.tabular.generators import _site_offsets
from fedsynth.tabular.privacy import declare_public

from .conftest import read_jsonl, run_in_process

VAE = {"hidden_dims": [32], "latent_dim": 4, "batch_size": 64}


@pytest.fixture(scope="module")
def shifted_sites(two_sites) -> dict[str, pd.DataFrame]:
    """The two sites made to differ clearly: the south's patients 15 years younger with a
    third of the platelets."""
    south = two_sites["south"].copy()
    south["age"] = south["age"] - 15
    south["plt"] = south["plt"] / 3
    return {"north": two_sites["north"], "south": south}


def _fedavg_model(sites, tmp_path):
    out, _ = run_in_process(
        sites,
        tmp_path,
        model="vae_bgm",
        params=VAE,
        strategies=["fedavg"],
        rounds=2,
        local_epochs=15,
    )
    return load_model(read_jsonl(out / "models.jsonl")[-1]["path"])


def _site_means(model, column: str) -> dict[str, float]:
    return {
        site: float(model.sample(300, conditions={"site": site}, seed=1)[column].mean())
        for site in ("site_1", "site_2")
    }


@pytest.fixture(scope="module")
def fedavg_model(shifted_sites, tmp_path_factory):
    return _fedavg_model(shifted_sites, tmp_path_factory.mktemp("case_mix"))


@pytest.mark.parametrize("column", ["age", "plt"])
def test_a_fedavg_model_keeps_each_sites_case_mix(fedavg_model, shifted_sites, column):
    real = {d["site"].iloc[0]: d[column].mean() for d in shifted_sites.values()}
    synthetic = _site_means(fedavg_model, column)
    real_gap = real["site_1"] - real["site_2"]
    # Most of the difference between the sites survives federation, with the right sign.
    assert (synthetic["site_1"] - synthetic["site_2"]) / real_gap > 0.6
    assert fedavg_model.site_offsets_.shape[0] == 2 and (fedavg_model.site_rows_ > 0).all()


def test_without_offsets_fedavg_loses_the_case_mix(shifted_sites, tmp_path, monkeypatch):
    """The same federation with the offsets forced to zero: the gap between the sites'
    synthetic ages shrinks (what the offsets repair)."""

    def zero(generator, data, torch_generator):
        return np.zeros(data.shape[1])

    monkeypatch.setattr("fedsynth.tabular.generators.vae_bgm.fit_site_offset", zero)
    model = _fedavg_model(shifted_sites, tmp_path)
    real = {d["site"].iloc[0]: d["age"].mean() for d in shifted_sites.values()}
    synthetic = _site_means(model, "age")
    assert (synthetic["site_1"] - synthetic["site_2"]) / (real["site_1"] - real["site_2"]) < 0.6


def test_the_offsets_are_saved_with_the_model(fedavg_model, tmp_path):
    again = fedsynth.load(fedavg_model.save(tmp_path / "model"))
    np.testing.assert_array_equal(again.site_offsets_, fedavg_model.site_offsets_)
    pd.testing.assert_frame_equal(
        again.sample(20, conditions={"site": "site_2"}, seed=4),
        fedavg_model.sample(20, conditions={"site": "site_2"}, seed=4),
    )


def test_no_offsets_for_a_central_model_or_under_dp(two_sites):
    pooled = pd.concat(two_sites.values(), ignore_index=True)
    central = fedsynth.make("vae_bgm", epochs=2, seed=0, **VAE).fit(pooled)
    assert central.site_offsets_ is None
    # One site's rows under DP (public domains: a few rows cannot release them privately):
    # the offset would see the rows without noise.
    columns = ["age", "sex", "site"]
    metadata = declare_public(
        fedsynth.federated.shared_metadata({k: v[columns] for k, v in two_sites.items()}),
        bounds={"age": (18, 100)},
        categories={"sex": ["F", "M"], "site": ["site_1", "site_2"]},
    )
    private = fedsynth.make("vae_bgm", epochs=1, seed=0, dp={"epsilon": 5, "delta": 1e-5}, **VAE)
    private.fit(two_sites["north"][columns], metadata=metadata)
    assert private.site_offsets_ is None


def test_offsets_merge_by_site_category():
    a, b = np.ones((3, 2)), np.full((3, 2), 3.0)
    merged, rows = _site_offsets.merge_site_offsets(
        [a, b], [np.array([10.0, 0.0, 0.0]), np.array([10.0, 5.0, 0.0])]
    )
    np.testing.assert_array_equal(merged, [[2.0, 2.0], [3.0, 3.0], [0.0, 0.0]])
    np.testing.assert_array_equal(rows, [20.0, 5.0, 0.0])
