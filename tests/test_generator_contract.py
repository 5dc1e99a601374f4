"""The contract every registered table generator keeps, run on all of them alike.

fit, sample (exact row count, the input's columns and dtypes), conditions, save/load and
to_bytes/from_bytes (same rows from the same seed), weights (a round trip for generators that
have them, a clear refusal for those that do not) and one two-site federated round through the
strategy that fits the generator: FedAvg over weights, or generator sharing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.core.federable import Federable
from fedsynth.exceptions import FedsynthError
from fedsynth.federated.task import load_model
from tests.federated.conftest import mds, read_jsonl, run_in_process, two_sites  # noqa: F401

#: Tiny settings per generator: the contract, not the quality, is under test.
TINY = {
    "gaussian_copula": {},
    "bayesian_network": {},
    "tvae": {"epochs": 2, "hidden_dims": [16], "latent_dim": 4, "batch_size": 64},
    "vae_bgm": {"epochs": 2, "hidden_dims": [16], "latent_dim": 4, "batch_size": 64},
    "tab_ddpm": {
        "epochs": 2,
        "hidden_dims": [16],
        "embedding_dim": 8,
        "batch_size": 64,
        "sampling_steps": 3,
    },
    "ctgan": {
        "epochs": 2,
        "generator_dims": [16],
        "discriminator_dims": [16],
        "embedding_dim": 8,
        "batch_size": 50,
    },
    "auto": {"candidates": ("gaussian_copula", "bayesian_network")},
}
#: Columns of the MDS cohort kept for the contract (a mix of every kind).
COLUMNS = ["patient_id", "age", "sex", "hb", "plt", "bm_blasts", "TP53", "SF3B1", "ASXL1"]
COLUMNS += ["ipssm_risk", "os_months", "os_status", "site"]


def test_every_registered_table_generator_is_under_contract():
    assert set(fedsynth.available_generators()) >= set(TINY)
    assert set(TINY) >= {
        name
        for name in fedsynth.available_generators()
        if fedsynth.make(name).modality == "tabular"
    }


@pytest.fixture(scope="module")
def sites(two_sites) -> dict[str, pd.DataFrame]:  # noqa: F811  (the imported fixture)
    return {name: data[COLUMNS] for name, data in two_sites.items()}


@pytest.fixture(scope="module")
def pooled(sites) -> pd.DataFrame:
    return pd.concat(sites.values(), ignore_index=True)


@pytest.fixture(scope="module", params=sorted(TINY))
def fitted(request, pooled):
    name = request.param
    return name, fedsynth.make(name, seed=0, **TINY[name]).fit(pooled)


def test_fit_and_sample_keep_the_columns_and_dtypes(fitted, pooled):
    name, gen = fitted
    rows = gen.sample(37, seed=1)
    learned = [c for c in pooled.columns if c != "patient_id"]
    assert len(rows) == 37 and list(rows.columns) == learned, name
    for column in learned:
        assert rows[column].dtype == pooled[column].dtype, (name, column)
    assert set(rows["sex"].dropna()) <= set(pooled["sex"])
    assert rows.equals(gen.sample(37, seed=1)), "the same seed must give the same rows"


def test_conditions_hold_on_every_row(fitted):
    name, gen = fitted
    rows = gen.sample(25, conditions={"sex": "F", "site": "site_2"}, seed=2)
    assert len(rows) == 25, name
    assert (rows["sex"] == "F").all() and (rows["site"] == "site_2").all(), name


def test_save_load_and_bytes_sample_the_same_rows(fitted, tmp_path):
    name, gen = fitted
    expected = gen.sample(30, seed=3)
    loaded = fedsynth.load(gen.save(tmp_path / name))
    assert loaded.sample(30, seed=3).equals(expected), name
    assert type(gen).from_bytes(gen.to_bytes()).sample(30, seed=3).equals(expected), name


def test_weights_round_trip_or_a_clear_refusal(fitted):
    name, gen = fitted
    if not gen.has_weights:
        assert not isinstance(gen, Federable) or not gen.has_weights
        with pytest.raises(FedsynthError, match="sharing"):
            gen.get_weights()
        return
    assert isinstance(gen, Federable), name
    weights = gen.get_weights()
    expected = gen.sample(20, seed=4)
    gen.set_weights([w.copy() for w in weights])
    assert gen.sample(20, seed=4).equals(expected), name
    shifted = [w + 0.5 if np.issubdtype(w.dtype, np.floating) else w for w in weights]
    gen.set_weights(shifted)
    assert not gen.sample(20, seed=4).equals(expected), "weights must change the model"
    gen.set_weights(weights)
    with pytest.raises(FedsynthError):
        gen.set_weights(weights[:-1])


@pytest.mark.parametrize("name", sorted(TINY))
def test_one_two_site_federated_round(name, sites, tmp_path):
    strategy = "fedavg" if fedsynth.make(name).has_weights else "generator_sharing"
    out, _ = run_in_process(
        sites, tmp_path, model=name, params=TINY[name], strategies=[strategy], rounds=1
    )
    rounds = read_jsonl(out / "rounds.jsonl")
    assert [r["round"] for r in rounds] == [1] and rounds[0]["participants"] == sorted(sites)
    assert not rounds[0]["rejected"] and not rounds[0]["failed"]
    (entry,) = read_jsonl(out / "models.jsonl")
    rows = load_model(entry["path"]).sample(40, seed=0)
    assert len(rows) == 40
    assert list(rows.columns) == [c for c in COLUMNS if c != "patient_id"]
    # Both sites' rows come back, in about their proportions (111 and 97 rows).
    assert set(rows["site"]) == {"site_1", "site_2"}
