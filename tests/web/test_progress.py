"""A run's progress in the web app follows the typed progress events, never their text."""

from __future__ import annotations

import time

import pytest

from fedsynth.core.progress import (
    ExperimentStarted,
    ReferenceDone,
    ReferenceStarted,
    RoundDone,
    StageFinished,
    StageStarted,
)
from fedsynth.experiments import runner
from fedsynth.tabular.metadata import Metadata
from fedsynth.web import pipeline
from fedsynth.web.storage import Storage, new_id


class Said:
    """A :class:`~fedsynth.web.pipeline.Reporter` that keeps what it is told."""

    def __init__(self):
        self.lines: list[str] = []
        self.updates: list[tuple[float, str]] = []

    def log(self, message: str) -> None:
        self.lines.append(message)

    def progress(self, fraction: float, stage: str) -> None:
        self.updates.append((fraction, stage))


class Stop(Exception):
    """Ends the pretend experiment once its events are told."""


def experiment_events(sites: list[str]) -> list:
    """The events of an experiment with both references and two strategies for two rounds."""
    scores = {"csf": 0.8, "gsf": 0.7}
    events = [
        ExperimentStarted("tvae", sites, ["fedavg", "synthetic_sharing"], 2),
        ReferenceStarted("centralized", "tvae", 140, 2),
        ReferenceDone("centralized", scores, 1.0),
    ]
    for site in sites:
        events.append(ReferenceStarted("isolated", "tvae", 40, 2, site=site))
        events.append(ReferenceDone("isolated", scores, 1.0, site=site, own_scores=scores))
    events.append(StageStarted("Federated", "fedavg, synthetic_sharing on 3 sites, 2 rounds"))
    for round in (1, 2):
        for strategy in ("fedavg", "synthetic_sharing"):
            events.append(RoundDone(strategy, round, 2, scores))
    events.append(StageFinished("Federated", 3.0))
    return events


def test_federated_progress_advances_one_step_per_reference_and_round(
    tmp_path, mds_frame, monkeypatch
):
    storage = Storage(tmp_path / "data")
    dataset_id = new_id()
    source = storage.dataset_file(dataset_id, "csv")
    source.parent.mkdir(parents=True)
    mds_frame.to_csv(source, index=False)
    sites = sorted(mds_frame["site"].unique())
    events = experiment_events(sites)

    def pretend(partitions, *, progress, **settings):
        assert sorted(partitions) == sites
        for event in events:
            progress(event)
        raise Stop

    monkeypatch.setattr(runner, "run_experiment", pretend)
    config = {
        "sources": [
            {"dataset_id": dataset_id, "file_format": "csv", "filename": "mds.csv", "site": "mds"}
        ],
        "metadata": Metadata.infer(mds_frame).to_dict(),
        "generator": "tvae",
        "families": ["fidelity"],
        "seed": 0,
        "holdout_fraction": 0.3,
        "federated": {
            "site_column": "site",
            "strategies": ["fedavg", "synthetic_sharing"],
            "rounds": 2,
            "local_epochs": 1,
        },
    }
    said = Said()
    with pytest.raises(Stop):
        pipeline.execute(config, storage, tmp_path / "out", said)

    followed = said.updates[-len(events) :]
    assert [stage for _, stage in followed] == [event.label for event in events]
    assert said.lines[-len(events) :] == [event.message for event in events]
    fractions = [fraction for fraction, _ in followed]
    assert fractions == sorted(fractions)
    steps = events[0].steps
    assert steps == 1 + len(sites) + 2 * 2
    # Starting a reference moves nothing; finishing one moves the bar one step of 0.75.
    assert fractions[1] == pytest.approx(0.05)
    assert fractions[2] == pytest.approx(0.05 + 0.75 / steps)
    assert fractions[-1] == pytest.approx(0.8)


class Training:
    """A generator that appends one history entry per epoch, as the neural ones do."""

    epochs = 40

    def __init__(self):
        self.history_: list[dict[str, float]] = []


def test_a_fit_reports_its_epochs_and_thins_its_log():
    generator, said = Training(), Said()

    def train(until: int) -> None:
        """Epochs up to ``until`` (at once: the watcher sees all or none), then wait for it."""
        done = len(generator.history_)
        generator.history_ = generator.history_ + [
            {"epoch": epoch, "loss": 1 / epoch} for epoch in range(done + 1, until + 1)
        ]
        deadline = time.monotonic() + 10
        while not said.updates or said.updates[-1][1] != f"training: epoch {until} of 40":
            assert time.monotonic() < deadline, said.updates
            time.sleep(0.05)

    with pipeline._watch_epochs(generator, pipeline._EpochReport(said, 0.05, 0.6)):
        train(1)  # one epoch: less than 40 // 20, not logged
        train(20)
        train(40)
    assert [fraction for fraction, _ in said.updates] == pytest.approx(
        [0.05 + 0.55 / 40, 0.05 + 0.55 / 2, 0.6]
    )
    assert said.lines == ["epoch 20/40: loss 0.0500", "epoch 40/40: loss 0.0250"]
