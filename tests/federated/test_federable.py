"""The federable protocol on the neural table generators: they satisfy it, a model built on a
shared schema starts as fit would, and a model travels as bytes and samples the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.core.federable import ExtraState, Federable
from fedsynth.exceptions import ModelFileError
from fedsynth.federated.encoder_stats import SharedSchema
from fedsynth.tabular.generators import BaseGenerator

from .conftest import TINY

TINY_GAN = {"generator_dims": [16], "discriminator_dims": [16], "embedding_dim": 8}


@pytest.fixture(scope="module")
def schema(two_sites) -> SharedSchema:
    from fedsynth.federated import shared_metadata
    from fedsynth.federated.encoder_stats import build_schema, site_statistics

    metadata = shared_metadata(two_sites)
    statistics = {
        name: site_statistics(data, metadata, min_count=5, max_modes=10, seed=0)
        for name, data in two_sites.items()
    }
    return build_schema(metadata, statistics, max_modes=10, seed=0)


@pytest.mark.parametrize(
    ("model", "params"), [("tvae", TINY), ("vae_bgm", TINY), ("ctgan", TINY_GAN)]
)
def test_neural_generators_are_federable_and_statistical_ones_are_not(model, params):
    generator = fedsynth.make(model, **params)
    assert isinstance(generator, Federable) and generator.has_weights
    assert generator.has_extra_state == (model == "vae_bgm")
    assert not isinstance(fedsynth.make("gaussian_copula"), Federable)


def test_init_from_schema_builds_the_model_fit_would_build_untrained(schema, two_sites):
    generator = fedsynth.make("tvae", **TINY, seed=4).init_from_schema(schema)
    assert generator.is_fitted and generator.columns_ == schema.columns
    assert len(generator.guard_.fingerprints) == 0, "the server holds no training row"
    again = fedsynth.make("tvae", **TINY, seed=4).init_from_schema(schema)
    for a, b in zip(generator.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    losses = generator.train_local(two_sites["north"], epochs=2)
    assert set(losses) == {"loss"} and np.isfinite(losses["loss"])
    assert len(generator.history_) == 2 and len(generator.guard_.fingerprints) > 0


def test_to_bytes_round_trips_and_samples_identical_rows(schema, two_sites):
    generator = fedsynth.make("vae_bgm", **TINY, seed=1).init_from_schema(schema)
    generator.train_local(two_sites["south"], epochs=1)
    blob = generator.to_bytes()
    assert blob[:2] == b"PK"  # a ZIP archive of the saved files, not a pickle
    loaded = type(generator).from_bytes(blob)
    assert isinstance(loaded, Federable)
    pd.testing.assert_frame_equal(loaded.sample(200, seed=7), generator.sample(200, seed=7))
    state, loaded_state = generator.export_extra_state(), loaded.export_extra_state()
    assert isinstance(state, ExtraState) and set(state.arrays) == set(loaded_state.arrays)
    for key, array in state.arrays.items():
        np.testing.assert_array_equal(array, loaded_state.arrays[key])
    # Any generator comes back through the base class; another class refuses it.
    assert type(BaseGenerator.from_bytes(blob)) is type(generator)
    with pytest.raises(ModelFileError, match="not a tvae"):
        type(fedsynth.make("tvae")).from_bytes(blob)


def test_to_bytes_without_guard_leaves_the_fingerprints_out(schema, two_sites):
    from fedsynth.core.io import model_files_from_bytes

    generator = fedsynth.make("tvae", **TINY, seed=2).init_from_schema(schema)
    generator.train_local(two_sites["north"], epochs=1)
    _, kept = model_files_from_bytes(generator.to_bytes())
    _, left_out = model_files_from_bytes(generator.to_bytes(keep_guard=False))
    assert kept["copy_guard_fingerprints"].size > 0
    assert left_out["copy_guard_fingerprints"].size == 0
    with pytest.raises(ModelFileError, match="not a readable saved model"):
        BaseGenerator.from_bytes(b"not a model")


def test_a_zero_epoch_training_recomputes_the_extra_state_only(schema, two_sites):
    generator = fedsynth.make("vae_bgm", **TINY, seed=3).init_from_schema(schema)
    generator.train_local(two_sites["north"], epochs=1, extra_state=False)
    assert not hasattr(generator, "mixture_weights_"), "the mixture was fitted"
    weights = generator.get_weights()
    assert generator.train_local(two_sites["north"], epochs=0) == {}
    assert generator.export_extra_state().arrays["weights"].shape == (TINY["latent_dim"],)
    for a, b in zip(weights, generator.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
