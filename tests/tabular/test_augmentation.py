"""Cohort rebalancing: exact plans, conditional draws, clear errors."""

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.exceptions import ConditionError, NotFittedError
from fedsynth.tabular.augmentation import rebalance, rebalance_plan


@pytest.fixture(scope="module")
def mds():
    return fedsynth.datasets.mds_cohort(n=600, seed=0)


@pytest.fixture(scope="module")
def network(mds):
    return fedsynth.make("bayesian_network", seed=0).fit(mds)


def test_plan_reaches_the_share_with_the_fewest_rows():
    real = pd.DataFrame({"risk": ["low"] * 70 + ["high"] * 20 + ["very high"] * 10})
    plan = rebalance_plan(real, "risk", {"very high": 0.25})
    assert plan.loc["very high"].tolist() == [10, 30, 20, 0.25]
    # The other values keep their rows and their proportions.
    assert plan.loc[["low", "high"], "added"].tolist() == [0, 0]
    assert plan["final"].sum() == 120 and plan["share"].sum() == pytest.approx(1.0)
    assert plan.index.name == "risk"


def test_plan_dilutes_a_group_above_its_target_and_honours_n():
    real = pd.DataFrame({"TP53": [0] * 60 + [1] * 40})
    lower = rebalance_plan(real, "TP53", {1: 0.2})
    assert lower.loc[1, "added"] == 0 and lower.loc[0, "final"] == 160
    bigger = rebalance_plan(real, "TP53", {1: 0.5}, n=1001)
    assert bigger["final"].sum() == 1001 and (bigger["added"] >= 0).all()
    assert abs(bigger.loc[1, "share"] - 0.5) <= 1 / 1001
    with pytest.raises(ValueError, match=r"n=110 is too small: the other values \(60 real rows\)"):
        rebalance_plan(real, "TP53", {1: 0.5}, n=110)
    with pytest.raises(ValueError, match=r"value 1 \(40 real rows\) .* at least 200 rows"):
        rebalance_plan(real, "TP53", {1: 0.2}, n=199)


def test_plan_float_targets_the_rarest_value_and_keeps_missing_rows():
    real = pd.DataFrame({"grade": ["a"] * 50 + ["b"] * 30 + ["c"] * 5 + [None] * 15})
    plan = rebalance_plan(real, "grade", 0.2)
    assert plan.loc["c", "share"] == pytest.approx(0.2, abs=0.01)
    # Missing rows are kept, not added: the groups plus them make the whole cohort.
    assert plan["final"].sum() + 15 == round(plan.loc["c", "final"] / plan.loc["c", "share"])
    ties = pd.DataFrame({"x": ["a", "a", "b", "c"]})
    with pytest.raises(ValueError, match=r"values \['b', 'c'\] are equally rare"):
        rebalance_plan(ties, "x", 0.5)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"high": 0.0}, r"value 'high': share 0.0 is not in \(0, 1\]"),
        ({"high": 1.5}, r"share 1.5 is not in \(0, 1\]"),
        ({"high": 0.6, "low": 0.6}, "sum to 1.2, more than 1"),
        ({"high": 1.0}, "leaving no room for the 8 real rows"),
        ({}, "names no value"),
        ("high", "must be a dict"),
    ],
)
def test_plan_errors_name_the_column_and_value(target, message):
    real = pd.DataFrame({"risk": ["low"] * 8 + ["high"] * 2})
    with pytest.raises(ValueError, match=message):
        rebalance_plan(real, "risk", target)


def test_plan_unknown_column():
    with pytest.raises(ValueError, match="'TP53' is not a column of the cohort"):
        rebalance_plan(pd.DataFrame({"a": [1]}), "TP53", 0.5)


def test_rebalance_a_rare_risk_group(mds, network):
    before = mds.copy()
    cohort = rebalance(network, mds, "ipssm_risk", {"Very High": 0.3}, seed=0)
    pd.testing.assert_frame_equal(mds, before)  # the input is left alone
    plan = rebalance_plan(mds, "ipssm_risk", {"Very High": 0.3})
    assert len(cohort) == plan["final"].sum()
    share = (cohort["ipssm_risk"] == "Very High").mean()
    assert share == pytest.approx(0.3, abs=1 / len(cohort))
    pd.testing.assert_frame_equal(cohort.iloc[: len(mds)], mds.reset_index(drop=True))
    added = cohort.iloc[len(mds) :]
    assert (added["ipssm_risk"] == "Very High").all()
    assert cohort.dtypes.to_dict() == mds.dtypes.to_dict()
    assert added["patient_id"].isna().all()  # identifiers are never generated
    # Synthetic Very High patients look like the real ones: mostly TP53-mutated or complex.
    real_vh = mds[mds["ipssm_risk"] == "Very High"]
    assert added["ipssm_score"].mean() == pytest.approx(real_vh["ipssm_score"].mean(), abs=0.5)
    again = rebalance(network, mds, "ipssm_risk", {"Very High": 0.3}, seed=0)
    pd.testing.assert_frame_equal(again, cohort)


def test_rebalance_a_binary_flag_with_a_float(mds, network):
    cohort = rebalance(network, mds, "TP53", 0.25, n=1000, seed=1)
    assert len(cohort) == 1000
    assert (cohort["TP53"] == 1).mean() == pytest.approx(0.25, abs=1e-3)
    assert cohort["TP53"].dtype == np.int64


def test_rebalance_errors(mds, network):
    with pytest.raises(ValueError, match="'age' is numeric; rebalancing needs a discrete column"):
        rebalance(network, mds, "age", 0.5)
    with pytest.raises(NotFittedError):
        rebalance(fedsynth.make("gaussian_copula"), mds, "TP53", 0.3)
    with pytest.raises(ConditionError, match=r"cannot add \d+ rows with ipssm_risk='Extreme'"):
        rebalance(network, mds, "ipssm_risk", {"Extreme": 0.1})
