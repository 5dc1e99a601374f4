"""The privacy ledger: composition, sites, the budget cap, and its JSON form."""

import json
import math

import pytest

from fedsynth.core.privacy import PrivacyBudgetError, PrivacyLedger


def test_basic_composition_adds_epsilons_and_deltas():
    ledger = PrivacyLedger()
    ledger.charge("domain", "laplace partition selection", 0.1, 1e-6)
    ledger.charge("counts", "laplace", 0.5)
    ledger.charge("correlation", "gaussian", 0.4, 9e-6, sigma=12.0)
    assert math.isclose(ledger.epsilon, 1.0) and math.isclose(ledger.delta, 1e-5)
    assert [s.what for s in ledger.spends] == ["domain", "counts", "correlation"]
    assert ledger.spends[2].details == {"sigma": 12.0}
    assert "total: epsilon=1, delta=1e-05" in ledger.summary()


def test_sites_compose_in_parallel():
    ledger = PrivacyLedger()
    ledger.charge("encoder statistics", "gaussian", 0.2, 1e-6)
    for round_ in range(3):
        ledger.charge(f"round {round_}", "dp-sgd (rdp)", 0.5, 1e-6, site="A")
    ledger.charge("round 0", "dp-sgd (rdp)", 0.5, 1e-6, site="B")
    assert ledger.spent("A") == pytest.approx((1.7, 4e-6))
    assert ledger.spent("B") == pytest.approx((0.7, 2e-6))
    assert (ledger.epsilon, ledger.delta) == pytest.approx((1.7, 4e-6))  # the worst site


def test_cap_refuses_before_recording_with_a_clear_message():
    ledger = PrivacyLedger(max_epsilon=1.0)
    ledger.charge("first half", "laplace", 0.5)
    ledger.charge("second half", "laplace", 0.5)  # exactly at the cap is allowed
    with pytest.raises(PrivacyBudgetError) as error:
        ledger.charge("one more", "laplace", 0.01)
    assert str(error.value) == (
        "refused: one more (laplace, epsilon=0.01) would take the privacy loss to "
        "epsilon=1.01, above the budget cap max_epsilon=1 (already spent: epsilon=1, delta=0)"
    )
    assert len(ledger.spends) == 2


def test_cap_applies_per_site():
    ledger = PrivacyLedger(max_epsilon=1.0)
    ledger.charge("round 0", "dp-sgd (rdp)", 0.8, site="A")
    ledger.charge("round 0", "dp-sgd (rdp)", 0.8, site="B")  # other patients
    with pytest.raises(PrivacyBudgetError, match=r"for site 'A' to epsilon=1\.6"):
        ledger.charge("round 1", "dp-sgd (rdp)", 0.8, site="A")


def test_invalid_spends_are_rejected():
    with pytest.raises(ValueError, match="finite epsilon and delta >= 0"):
        PrivacyLedger().charge("bad", "laplace", -0.1)
    with pytest.raises(ValueError, match="finite epsilon and delta >= 0"):
        PrivacyLedger().charge("bad", "laplace", float("inf"))


def test_json_round_trip():
    ledger = PrivacyLedger(max_epsilon=5.0)
    ledger.charge("training", "dp-sgd (rdp)", 1.2, 1e-5, steps=300, noise_multiplier=1.1)
    ledger.charge("round 1", "dp-sgd (rdp)", 0.3, 0.0, site="A")
    data = json.loads(json.dumps(ledger.to_dict()))
    assert data["epsilon"] == pytest.approx(1.5) and data["composition"].startswith("basic")
    copy = PrivacyLedger.from_dict(data)
    assert copy.spends == ledger.spends and copy.max_epsilon == 5.0
    assert repr(copy) == "PrivacyLedger(epsilon=1.5, delta=1e-05, 2 spend(s), max_epsilon=5)"
