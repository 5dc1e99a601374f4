"""The typed progress events: their fields, log lines, labels and step counts."""

from __future__ import annotations

import dataclasses

import pytest

import fedsynth
from fedsynth.core.progress import (
    EpochDone,
    ExperimentStarted,
    FamilyDone,
    FamilyStarted,
    ProgressEvent,
    ReferenceDone,
    ReferenceStarted,
    RoundDone,
    StageFinished,
    StageStarted,
    StepDone,
    format_scores,
    training_progress,
    validation_steps,
)


def test_events_are_frozen_and_the_base_is_abstract():
    event = RoundDone("fedavg", 1, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.round = 2
    with pytest.raises(TypeError):
        ProgressEvent()


def test_scores_show_three_decimals_and_skip_the_missing():
    assert format_scores({"csf": 0.81234, "utility": None, "gsf": 0.5}) == "csf 0.812, gsf 0.500"
    assert format_scores({}) == ""


def test_a_round_with_and_without_scores():
    scored = RoundDone("fedprox", 2, 5, {"csf": 0.9, "privacy": None})
    assert scored.message == "fedprox round 2/5: csf 0.900"
    assert scored.label == "fedprox round 2/5"
    assert RoundDone("fedavg", 1, 1).message == "fedavg round 1/1 done"


def test_references_name_their_method_and_site():
    pooled = ReferenceStarted("centralized", "tvae", 700, 50)
    assert pooled.message == "Centralized: tvae on pooled 700 rows, 50 epochs"
    assert pooled.label == "centralized reference"
    site = ReferenceStarted("isolated", "tvae", 200, 50, site="north")
    assert site.message == "Isolated: tvae on north's 200 rows, 50 epochs"
    done = ReferenceDone("isolated", {"csf": 0.7}, 2.25, site="north", own_scores={"csf": 0.8})
    assert done.label == "isolated reference (north)"
    assert (
        done.message == "isolated reference (north): csf 0.700; on its own site: csf 0.800 (2.2 s)"
    )
    assert ReferenceDone("centralized", {"csf": None}, 1.0).message == (
        "centralized reference: no score (1.0 s)"
    )


@pytest.mark.parametrize(
    ("centralized", "isolated", "steps"),
    [(True, True, 1 + 3 + 8), (False, True, 3 + 8), (False, False, 8)],
)
def test_an_experiment_counts_its_steps(centralized, isolated, steps):
    plan = ExperimentStarted(
        "vae_bgm", ("a", "b", "c"), ("fedavg", "fedprox"), 4, centralized, isolated
    )
    assert plan.steps == steps
    assert plan.message.endswith("fedavg, fedprox for 4 rounds")
    assert ("centralized" in plan.message) is centralized


def test_only_references_and_rounds_are_steps():
    steps = [ReferenceDone("centralized", {}, 1.0), RoundDone("fedavg", 1, 1)]
    others = [
        ExperimentStarted("tvae", ("a", "b"), ("fedavg",), 1),
        ReferenceStarted("centralized", "tvae", 10, 1),
        StageStarted("Federated", "fedavg on 2 sites, 1 rounds"),
        StageFinished("Federated", 1.0),
        EpochDone(1, 10, {"loss": 0.5}),
        FamilyStarted("Genomic structure"),
        FamilyDone("Genomic structure", 0.5),
    ]
    assert all(isinstance(event, StepDone) for event in steps)
    assert not any(isinstance(event, StepDone) for event in others)
    assert all(event.message and event.label for event in steps + others)


def test_stages_and_epochs():
    assert StageStarted("Federated", "fedavg on 2 sites").message == "Federated: fedavg on 2 sites"
    assert StageStarted("Sampling").message == "Sampling..."
    assert StageFinished("Federated", 12.345).message == "Federated: done in 12.3 s"
    epoch = EpochDone(3, 10, {"loss_g": 1.23456, "loss_d": 0.5})
    assert epoch.message == "epoch 3/10: loss_g 1.2346  loss_d 0.5000"
    assert epoch.label == "training: epoch 3 of 10"
    assert EpochDone(1, 2).message == "epoch 1/2"


def test_validation_reports_each_family(mds_small):
    real, synthetic = mds_small
    events = []
    fedsynth.validate(
        real,
        synthetic,
        families=["fidelity", "genomic"],
        seed=0,
        progress=validation_steps(events.append),
    )
    assert [type(event) for event in events] == [FamilyStarted, FamilyDone] * 2
    assert events[0].description == events[1].description
    assert events[1].seconds >= 0 and events[1].message.startswith(events[1].description)
    assert events[0].label == f"validating: {events[0].description}"


def test_a_family_that_fails_is_not_reported_done():
    events = []
    with pytest.raises(ValueError), validation_steps(events.append)("Fidelity"):
        raise ValueError("broken metric")
    assert events == [FamilyStarted("Fidelity")]


def test_training_progress_shows_a_bar_and_reports_each_epoch(capsys, monkeypatch):
    monkeypatch.delenv("FEDSYNTH_NO_PROGRESS", raising=False)
    events = []
    with training_progress(True, "Training Toy", 2, events.append) as advance:
        advance(1, {"loss": 0.25})
        advance(2, {"loss": 0.125})
    out = capsys.readouterr().out
    assert "Training Toy" in out and "loss 0.1250" in out and "2/2" in out
    assert events == [EpochDone(1, 2, {"loss": 0.25}), EpochDone(2, 2, {"loss": 0.125})]


@pytest.mark.parametrize("enabled, variable", [(False, ""), (True, "1")])
def test_training_progress_stays_silent_when_off(capsys, monkeypatch, enabled, variable):
    monkeypatch.setenv("FEDSYNTH_NO_PROGRESS", variable)
    events = []
    with training_progress(enabled, "Training Toy", 1, events.append) as advance:
        advance(1, {"loss": 0.5})
    assert capsys.readouterr().out == ""
    assert events == [EpochDone(1, 1, {"loss": 0.5})]  # the callback is told all the same


@pytest.fixture
def mds_small():
    """A small simulated cohort split in two halves, playing real and synthetic rows."""
    cohort = fedsynth.datasets.mds_cohort(n=120, sites=1, seed=0)
    return cohort.iloc[:60].reset_index(drop=True), cohort.iloc[60:].reset_index(drop=True)
