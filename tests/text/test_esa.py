"""Embedding space aggregation: partition, prompts, noisy aggregate, release and accounting."""

from __future__ import annotations

import numpy as np
import pytest

from fedsynth.core.privacy import PrivacyBudgetError, PrivacyLedger
from fedsynth.text.backends import FakeBackend
from fedsynth.text.esa import (
    SENSITIVITY,
    aggregate,
    assign_prompts,
    build_prompt,
    charge_esa,
    esa_epsilon,
    esa_sigma,
    nearest_candidate,
    partition_notes,
)


def test_each_note_in_exactly_one_prompt(notes):
    texts = notes["text"].tolist()
    groups = partition_notes(texts, 10, seed=0)
    flat = sorted(i for g in groups for i in g)
    assert flat == list(range(len(texts)))
    assert partition_notes(texts, 10, seed=0) == groups
    assert partition_notes(texts, 10, seed=1) != groups


def test_adding_or_removing_a_note_changes_only_its_own_prompt(notes):
    # The property behind the sensitivity: a note's prompt does not depend on the other notes.
    texts = notes["text"].tolist()
    full = partition_notes(texts, 8, seed=0, max_shots=6)
    removed = texts[:40] + texts[41:]
    fewer = partition_notes(removed, 8, seed=0, max_shots=6)
    as_texts = [[{texts[i] for i in g} for g in full], [{removed[i] for i in g} for g in fewer]]
    changed = [p for p in range(8) if as_texts[0][p] != as_texts[1][p]]
    assert len(changed) <= 1
    assert assign_prompts([texts[40]], 8, seed=0)[0] == assign_prompts(texts, 8, seed=0)[40]
    assert max(len(g) for g in full) <= 6


def test_prompts_hold_the_public_instruction_and_the_shots():
    private = build_prompt("Write a consult letter.", ["Note A", "Note B"])
    public = build_prompt("Write a consult letter.", [])
    assert private[0]["role"] == "system" and public[0] == private[0]
    assert "Example note 2:\nNote B" in private[1]["content"]
    assert public[1]["content"] == "Write a consult letter."


def test_sigma_matches_the_composed_gaussian_and_is_inverted():
    sigma = esa_sigma(1.0, 1e-5, 1)
    assert sigma == pytest.approx(2 * 3.7304, rel=1e-3)  # twice the sensitivity-1 sigma
    assert esa_sigma(1.0, 1e-5, 4) == pytest.approx(2 * sigma, rel=1e-9)  # sqrt(T) scaling
    assert esa_epsilon(esa_sigma(3.0, 1e-5, 20), 1e-5, 20) == pytest.approx(3.0, rel=1e-6)


@pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # PRV at sampling rate 1
@pytest.mark.parametrize("n_releases", [1, 10, 50])
def test_accounting_agrees_with_opacus(n_releases):
    from opacus.accountants import PRVAccountant, RDPAccountant

    epsilon, delta = 2.0, 1e-5
    sigma = esa_sigma(epsilon, delta, n_releases)
    # One release = one full-batch step of a Gaussian mechanism with this noise multiplier.
    history = [(sigma / SENSITIVITY, 1.0, n_releases)]
    rdp, prv = RDPAccountant(), PRVAccountant()
    rdp.history, prv.history = list(history), list(history)
    # Orders up to 1000: little noise per step puts the best Renyi order beyond Opacus's default.
    eps = {
        "rdp": rdp.get_epsilon(
            delta, alphas=[1 + x / 10 for x in range(1, 100)] + list(range(12, 1000))
        ),
        "prv": prv.get_epsilon(delta),
    }
    # The exact composition is tighter than Renyi DP and close to the PRV accountant.
    assert epsilon <= eps["rdp"] <= 1.3 * epsilon
    assert eps["prv"] == pytest.approx(epsilon, rel=0.05)


def test_aggregate_adds_calibrated_noise_to_the_sum_of_unit_vectors():
    rng = np.random.default_rng(0)
    answers = rng.normal(size=(5, 384)) * 3  # not unit norm: aggregate normalises
    noiseless = aggregate(answers, sigma=0.0, rng=rng)
    unit = answers / np.linalg.norm(answers, axis=1, keepdims=True)
    np.testing.assert_allclose(noiseless, unit.sum(0), atol=1e-5)
    noisy = np.stack([aggregate(answers, sigma=2.0, rng=rng) for _ in range(200)])
    assert (noisy - noiseless).std() == pytest.approx(2.0, rel=0.02)
    with pytest.raises(ValueError, match="sigma"):
        aggregate(answers, sigma=-1.0, rng=rng)


def test_release_is_the_nearest_public_candidate():
    candidates = np.eye(4)
    assert nearest_candidate(np.array([0.1, 0.9, 0.2, 0.0]), candidates) == 1
    assert nearest_candidate(np.array([0.0, 0.0, 0.0, -1.0]), candidates * 3) in {0, 1, 2}


def test_ledger_records_the_spend_and_refuses_above_the_cap():
    ledger = PrivacyLedger(max_epsilon=3.0)
    sigma = esa_sigma(2.0, 1e-5, 5)
    spend = charge_esa(ledger, epsilon=2.0, delta=1e-5, n_releases=5, n_prompts=10, sigma=sigma)
    assert ledger.epsilon == 2.0 and spend.details["sensitivity"] == 2.0
    assert "add/remove" in spend.details["neighbours"]
    with pytest.raises(PrivacyBudgetError):
        charge_esa(ledger, epsilon=2.0, delta=1e-5, n_releases=5, n_prompts=10, sigma=sigma)


def test_end_to_end_release_never_returns_private_text(notes, embedder):
    """One ESA release with the fake model and the real embedder: the released note is one of
    the zero-shot candidates, and with little noise the nearest to the private answers."""
    texts = notes["text"].tolist()[:24]
    llm = FakeBackend()
    instruction = "Write a haematology consult letter about an adult with MDS."
    groups = partition_notes(texts, 6, seed=0, max_shots=4)
    answers = [llm.chat(build_prompt(instruction, [texts[i] for i in g]), max_tokens=30, seed=p)
               for p, g in enumerate(groups)]  # fmt: skip
    public = [
        "Dear Dr Patel, I saw a 70-year-old man, Hb 9.1 g/dL, PLT 45, IPSS-M Low. Plan: review.",
        "The weather today is sunny with a light breeze from the west.",
        "Invoice number 4411 for garden furniture, payable within thirty days.",
    ]
    rng = np.random.default_rng(0)
    noisy = aggregate(embedder.embed(answers), sigma=0.05, rng=rng)
    released = public[nearest_candidate(noisy, embedder.embed(public))]
    assert released == public[0]
    assert released not in texts and released not in answers
