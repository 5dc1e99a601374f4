"""VAE-BGM's site-aware latent mixture: p(site | component) is recorded when the mixture is
fitted, saved and loaded with the model, concatenated when sites' mixtures are merged, and
sharpens sampling conditioned on a site."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.core.federable import ExtraState
from fedsynth.tabular.generators.federable import union_of_mixtures
from fedsynth.tabular.metadata import Metadata

SITES = ["a", "b", "c"]
SMALL = {"epochs": 40, "batch_size": 64, "latent_dim": 4, "hidden_dims": [32]}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """Three sites whose ages differ by 20 years, with a lab value and a sex column."""
    rng = np.random.default_rng(0)
    n = 900
    site = np.repeat(SITES, n // 3)
    shift = np.repeat([0.0, 20.0, 40.0], n // 3)
    return pd.DataFrame(
        {
            "site": site,
            "age": 40 + shift + rng.normal(0, 5, n),
            "lab": 100 + 0.5 * shift + rng.normal(0, 10, n),
            "sex": rng.choice(["F", "M"], n),
        }
    )


@pytest.fixture(scope="module")
def model(table):
    metadata = Metadata.infer(table, site="site")
    return fedsynth.make("vae_bgm", seed=0, **SMALL).fit(table, metadata=metadata)


def test_component_sites_computed_saved_loaded(model, tmp_path):
    sites = model.mixture_sites_
    assert sites.shape == (len(model.mixture_weights_), len(SITES))
    np.testing.assert_allclose(sites.sum(axis=1), 1.0)
    path = tmp_path / "model.fsm"
    model.save(path)
    loaded = fedsynth.load(path)
    np.testing.assert_array_equal(loaded.mixture_sites_, sites)
    conditioned = {"site": "b"}
    pd.testing.assert_frame_equal(
        loaded.sample(50, conditions=conditioned, seed=1),
        model.sample(50, conditions=conditioned, seed=1),
    )


def test_old_files_without_sites_load(model):
    _, arrays = model._extra_state()
    old = {key: value for key, value in arrays.items() if key != "sites"}
    model._load_extra_state({}, old)
    try:
        assert model.mixture_sites_ is None
        assert len(model.sample(20, conditions={"site": "a"}, seed=0)) == 20
    finally:
        model._load_extra_state({}, arrays)


def test_union_concatenates_component_sites(model):
    _, arrays = model._extra_state()
    state = ExtraState({}, arrays)
    merged = union_of_mixtures([state, state], [2, 1]).arrays
    k = len(arrays["weights"])
    assert merged["sites"].shape == (2 * k, len(SITES))
    np.testing.assert_allclose(merged["sites"].sum(axis=1), 1.0)
    np.testing.assert_array_equal(merged["sites"][k:], arrays["sites"])
    # A site whose model file predates the array: no site information after the merge.
    old = ExtraState({}, {key: v for key, v in arrays.items() if key != "sites"})
    assert "sites" not in union_of_mixtures([state, old], [1, 1]).arrays


def test_site_conditioning_closer_than_without_site_weights(table):
    """The federated case on one machine: shared weights (a short central fit, whose decoder
    depends little on the site), each site's mixture fitted on its own rows' latent means, and
    the union of the three, as FedAvg's final round builds it."""
    metadata = Metadata.infer(table, site="site")
    model = fedsynth.make("vae_bgm", seed=0, **{**SMALL, "epochs": 10}).fit(table, metadata)
    states = []
    for site in SITES:
        local = copy.deepcopy(model)
        local.fit(table[table["site"] == site].reset_index(drop=True), epochs=0, warm_start=True)
        states.append(ExtraState(*local._extra_state()))
    model._load_extra_state({}, type(model).merge_extra_states(states, [1, 1, 1]).arrays)
    assert set(model.mixture_sites_.max(axis=1)) == {1.0}  # each component is one site's

    def age_error() -> float:
        errors = []
        for site in SITES:
            synthetic = model.sample(400, conditions={"site": site}, seed=0)
            real = table.loc[table["site"] == site, "age"].mean()
            errors.append(abs(synthetic["age"].mean() - real))
        return float(np.mean(errors))

    # Each local fit saw one site of three, so each also fitted its site's output offset.
    assert model.site_offsets_ is not None and (model.site_rows_ > 0).all()
    with_offsets = age_error()
    offsets = model.site_offsets_
    model.site_offsets_ = None  # the site's own components alone
    site_aware = age_error()
    model.mixture_sites_ = None  # the old way: the whole mixture, then likelihood weighting
    pooled = age_error()
    # Measured: 3.8 years against 5.0 without offsets; 0.3 with them.
    assert site_aware < pooled - 0.5
    assert with_offsets < site_aware
    model.site_offsets_ = offsets
