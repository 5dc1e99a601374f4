"""The contract every generator keeps, checked on each statistical generator."""

import json

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.exceptions import (
    ConditionError,
    InvalidDataError,
    ModelFileError,
    NotFittedError,
    UnknownGeneratorError,
)

GENERATORS = ["gaussian_copula", "bayesian_network"]


@pytest.fixture(params=GENERATORS)
def name(request):
    return request.param


@pytest.fixture
def table(clinical):
    return clinical.assign(lab_constant=7.5, lab_never_measured=np.nan)


@pytest.fixture
def fitted(name, table):
    return fedsynth.make(name, seed=3).fit(table)


def test_registry_names_and_errors():
    assert set(GENERATORS) <= set(fedsynth.available_generators())
    with pytest.raises(UnknownGeneratorError, match="unknown generator 'gan'; available: "):
        fedsynth.make("gan")
    with pytest.raises(TypeError, match="got unknown parameter\\(s\\) epochs; it accepts: "):
        fedsynth.make("gaussian_copula", epochs=3)


def test_fit_returns_self_and_leaves_input_untouched(name, table):
    before = table.copy()
    gen = fedsynth.make(name)
    assert gen.fit(table) is gen
    pd.testing.assert_frame_equal(table, before)


def test_sample_before_fit(name):
    with pytest.raises(NotFittedError, match="not fitted yet; call fit"):
        fedsynth.make(name).sample(3)


def test_exact_rows_columns_and_dtypes(fitted, table):
    out = fitted.sample(257)
    expected = table.drop(columns=["patient_id"])
    assert len(out) == 257
    assert list(out.columns) == list(expected.columns)
    assert out.dtypes.to_dict() == expected.dtypes.to_dict()
    assert (out["lab_constant"] == 7.5).all() and out["lab_never_measured"].isna().all()
    assert set(out["sex"]) <= {"F", "M"} and set(out["site"]) <= set(table["site"])
    assert out["age"].between(table.age.min(), table.age.max()).all()
    assert (out["os_months"] >= 0).all() and set(out["os_status"]) <= {0, 1}
    assert fitted.sample(0).shape == (0, len(expected.columns))


def test_identifiers_are_never_emitted(fitted, table):
    out = fitted.sample(500)
    assert "patient_id" not in out.columns
    assert not out.isin(set(table["patient_id"])).any().any()


def test_no_training_row_is_copied(fitted, table):
    real = table.drop(columns=["patient_id"]).astype(str).agg("|".join, axis=1)
    synthetic = fitted.sample(2000, seed=0).astype(str).agg("|".join, axis=1)
    assert not synthetic.isin(set(real)).any()


def test_missing_values_come_back_at_the_learned_rate(fitted, table):
    out = fitted.sample(5000, seed=1)
    assert abs(out["hb"].isna().mean() - table["hb"].isna().mean()) < 0.02


def test_seeds(name, table):
    a = fedsynth.make(name, seed=5).fit(table)
    b = fedsynth.make(name, seed=5).fit(table)
    pd.testing.assert_frame_equal(a.sample(100, seed=9), b.sample(100, seed=9))
    pd.testing.assert_frame_equal(a.sample(100), b.sample(100))  # one stream per fitted seed
    assert not a.sample(100).equals(a.sample(100))
    assert not a.sample(100, seed=1).equals(a.sample(100, seed=2))


def test_save_load_round_trip(fitted, tmp_path):
    path = fitted.save(tmp_path / "model")
    config = json.loads((path / "model.json").read_text())
    assert config["fedsynth_version"] == fedsynth.__version__
    assert config["generator"] == fitted.name
    with np.load(path / "arrays.npz", allow_pickle=False) as arrays:
        assert all(arrays[key].dtype != object for key in arrays.files)
    loaded = fedsynth.load(path)
    assert type(loaded) is type(fitted) and loaded.get_params() == fitted.get_params()
    pd.testing.assert_frame_equal(loaded.sample(300, seed=4), fitted.sample(300, seed=4))
    conditions = {"sex": "F"}
    pd.testing.assert_frame_equal(
        loaded.sample(50, conditions=conditions, seed=4),
        fitted.sample(50, conditions=conditions, seed=4),
    )


def test_load_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(ModelFileError, match=r"is not a saved model: missing model\.json"):
        fedsynth.load(tmp_path)


def test_conditions_are_met_exactly(fitted):
    out = fitted.sample(300, conditions={"sex": "F", "TP53": 1}, seed=2)
    assert len(out) == 300
    assert (out["sex"] == "F").all() and (out["TP53"] == 1).all()
    out = fitted.sample(40, conditions={"age": 80, "site": "site_2"}, seed=2)
    assert (out["age"] == 80).all() and (out["site"] == "site_2").all()
    # values given as text (from a command line) are matched to the categories
    assert (fitted.sample(10, conditions={"TP53": "1"})["TP53"] == 1).all()


def test_conditions_shift_dependent_columns(fitted):
    mutated = fitted.sample(3000, conditions={"TP53": 1}, seed=0)
    wild = fitted.sample(3000, conditions={"TP53": 0}, seed=0)
    # TP53 is exclusive with SF3B1 in the fixture and shortens survival
    assert mutated["SF3B1"].mean() < wild["SF3B1"].mean()
    assert mutated["os_months"].median() < wild["os_months"].median()


def test_bad_conditions_are_named(fitted):
    with pytest.raises(ConditionError) as info:
        fitted.sample(
            5,
            conditions={
                "sex": "X",
                "nope": 1,
                "patient_id": "P0001",
                "age": 300,
                "lab_constant": 1,
            },
        )
    message = str(info.value)
    assert "'sex' has no category 'X'; expected one of ['F', 'M']" in message
    assert "'nope' is not a column of the data" in message
    assert "'patient_id' is an identifier" in message
    assert "'age'=300 is outside the training range" in message
    assert "'lab_constant' was constant (7.5) in the training data" in message


def test_bad_n(fitted):
    for n in (-1, 2.5, "10", True):
        with pytest.raises(ValueError, match="n must be a non-negative integer"):
            fitted.sample(n)


def test_bad_data_is_reported_before_fitting(name, table):
    bad = table.assign(os_months=-table["os_months"])
    with pytest.raises(InvalidDataError, match="negative survival time"):
        fedsynth.make(name).fit(bad)


def test_metadata_override_from_dict(name, table):
    gen = fedsynth.make(name).fit(table, metadata={"age": "categorical"})
    assert gen.metadata_.kinds["age"] == "categorical"
    assert set(gen.sample(200)["age"]) <= set(table["age"])


def test_mds_cohort_mutation_frequencies_and_event_rate(name):
    real, truth = fedsynth.datasets.mds_cohort(n=4427, sites=3, seed=0, return_truth=True)
    gen = fedsynth.make(name, seed=0).fit(real, metadata=truth.metadata())
    synthetic = gen.sample(len(real), seed=0)
    genes = truth.metadata().genomic_columns
    gaps = (synthetic[genes].mean() - real[genes].mean()).abs()
    assert gaps.max() < 0.03, gaps.sort_values().tail()
    event = truth.metadata().event
    assert abs(synthetic[event].mean() - real[event].mean()) < 0.03
