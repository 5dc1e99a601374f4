"""Typed progress events: what a long run (an experiment, a federation, a fit, a validation)
tells while it works.

A run is given a :data:`ProgressCallback` and calls it with one event at each step. Every event
has a :attr:`~ProgressEvent.message` (one line for a log) and a :attr:`~ProgressEvent.label` (a
few words for a status line or a progress bar); whoever follows the run (the command line's
progress bar, the web app's run page) decides what to show by the event's type and fields,
never by reading its text.

Events that end one step of an experiment (:class:`ReferenceDone`, :class:`RoundDone`) are
:class:`StepDone`; :class:`ExperimentStarted` says how many follow. A generator's training loop
reports its epochs through :func:`training_progress`: a rich progress bar with the losses
(``verbose=True``) and an :class:`EpochDone` per epoch to a callback, for tables and images
alike.

Examples
--------
>>> from fedsynth.core.progress import RoundDone, StepDone
>>> event = RoundDone(strategy="fedavg", round=2, rounds=5, scores={"csf": 0.8123})
>>> event.message
'fedavg round 2/5: csf 0.812'
>>> isinstance(event, StepDone)
True
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EpochDone",
    "ExperimentStarted",
    "FamilyDone",
    "FamilyStarted",
    "ProgressCallback",
    "ProgressEvent",
    "ReferenceDone",
    "ReferenceStarted",
    "RoundDone",
    "StageFinished",
    "StageStarted",
    "StepDone",
    "format_scores",
    "training_progress",
    "validation_steps",
]


def format_scores(scores: Mapping[str, float | None]) -> str:
    """``"csf 0.812, gsf 0.774"``: the scores that were computed, to three decimals."""
    return ", ".join(f"{name} {value:.3f}" for name, value in scores.items() if value is not None)


@dataclass(frozen=True)
class ProgressEvent(ABC):
    """What every progress event offers: a log line and a short label."""

    @property
    @abstractmethod
    def message(self) -> str:
        """One line for a log."""

    @property
    @abstractmethod
    def label(self) -> str:
        """A few words for a status line or a progress bar: what is going on."""


#: Called with each event of a run.
ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class StepDone(ProgressEvent):
    """An event that ends one of the steps announced by :class:`ExperimentStarted`."""


@dataclass(frozen=True)
class StageStarted(ProgressEvent):
    """A stage of a run begins (``name``, e.g. ``"Federated"``, and what it does)."""

    name: str
    detail: str = ""

    @property
    def message(self) -> str:
        return f"{self.name}: {self.detail}" if self.detail else f"{self.name}..."

    @property
    def label(self) -> str:
        return self.name


@dataclass(frozen=True)
class StageFinished(ProgressEvent):
    """A stage of a run ends, after ``seconds``."""

    name: str
    seconds: float

    @property
    def message(self) -> str:
        return f"{self.name}: done in {self.seconds:.1f} s"

    @property
    def label(self) -> str:
        return f"{self.name} done"


@dataclass(frozen=True)
class ExperimentStarted(ProgressEvent):
    """An experiment begins: its references, then its strategies for ``rounds`` rounds."""

    model: str
    sites: Sequence[str]
    strategies: Sequence[str]
    rounds: int
    centralized: bool = True
    isolated: bool = True

    @property
    def steps(self) -> int:
        """How many :class:`StepDone` events follow: one per reference and per round."""
        references = int(self.centralized) + (len(self.sites) if self.isolated else 0)
        return references + len(self.strategies) * self.rounds

    @property
    def message(self) -> str:
        wanted = {"centralized": self.centralized, "isolated": self.isolated}
        references = [name for name, chosen in wanted.items() if chosen]
        shown = f"{' and '.join(references)} references, then " if references else ""
        return (
            f"Experiment: {self.model} over {len(self.sites)} sites; {shown}"
            f"{', '.join(self.strategies)} for {self.rounds} rounds"
        )

    @property
    def label(self) -> str:
        return "experiment"


@dataclass(frozen=True)
class ReferenceStarted(ProgressEvent):
    """A reference generator starts training: ``centralized`` on the pooled rows, or
    ``isolated`` on one ``site``'s rows."""

    method: str
    model: str
    rows: int
    epochs: int
    site: str | None = None

    @property
    def message(self) -> str:
        where = "pooled" if self.site is None else f"{self.site}'s"
        trained = f"{self.model} on {where} {self.rows} rows, {self.epochs} epochs"
        return f"{self.method.capitalize()}: {trained}"

    @property
    def label(self) -> str:
        return f"{self.method} reference" + ("" if self.site is None else f" ({self.site})")


@dataclass(frozen=True)
class ReferenceDone(StepDone):
    """A reference generator is trained and scored on all data (``scores``) and, for an
    isolated one, on its own site (``own_scores``)."""

    method: str
    scores: Mapping[str, float | None]
    seconds: float
    site: str | None = None
    own_scores: Mapping[str, float | None] | None = None

    @property
    def message(self) -> str:
        text = f"{self.label}: {format_scores(self.scores) or 'no score'}"
        if self.own_scores is not None:
            text += f"; on its own site: {format_scores(self.own_scores) or 'no score'}"
        return f"{text} ({self.seconds:.1f} s)"

    @property
    def label(self) -> str:
        return f"{self.method} reference" + ("" if self.site is None else f" ({self.site})")


@dataclass(frozen=True)
class RoundDone(StepDone):
    """A federated round of ``strategy`` ended; ``scores`` are its model's, when scored."""

    strategy: str
    round: int
    rounds: int
    scores: Mapping[str, float | None] = field(default_factory=dict)

    @property
    def message(self) -> str:
        shown = format_scores(self.scores)
        return f"{self.label}: {shown}" if shown else f"{self.label} done"

    @property
    def label(self) -> str:
        return f"{self.strategy} round {self.round}/{self.rounds}"


@dataclass(frozen=True)
class EpochDone(ProgressEvent):
    """A generator finished epoch ``epoch`` of ``epochs``, with its mean ``losses``."""

    epoch: int
    epochs: int
    losses: Mapping[str, float] = field(default_factory=dict)

    @property
    def message(self) -> str:
        losses = "  ".join(f"{name} {value:.4f}" for name, value in self.losses.items())
        return f"epoch {self.epoch}/{self.epochs}" + (f": {losses}" if losses else "")

    @property
    def label(self) -> str:
        return f"training: epoch {self.epoch} of {self.epochs}"


@dataclass(frozen=True)
class FamilyStarted(ProgressEvent):
    """Validation starts a metric family (``description`` as the validation names it)."""

    description: str

    @property
    def message(self) -> str:
        return f"{self.description}..."

    @property
    def label(self) -> str:
        return f"validating: {self.description}"


@dataclass(frozen=True)
class FamilyDone(ProgressEvent):
    """Validation finished a metric family, after ``seconds``."""

    description: str
    seconds: float

    @property
    def message(self) -> str:
        return f"{self.description}: done in {self.seconds:.1f} s"

    @property
    def label(self) -> str:
        return f"validated: {self.description}"


def validation_steps(
    callback: ProgressCallback,
) -> Callable[[str], AbstractContextManager[None]]:
    """The ``progress`` argument of :func:`fedsynth.validate` that reports each metric family
    to ``callback`` as a :class:`FamilyStarted` and a :class:`FamilyDone`.

    Examples
    --------
    >>> events = []
    >>> with validation_steps(events.append)("Genomic structure"):
    ...     pass
    >>> [type(event).__name__ for event in events]
    ['FamilyStarted', 'FamilyDone']
    """

    @contextmanager
    def family(description: str) -> Iterator[None]:
        callback(FamilyStarted(description))
        start = time.perf_counter()
        yield
        callback(FamilyDone(description, time.perf_counter() - start))

    return family


@contextmanager
def training_progress(
    enabled: bool, title: str, epochs: int, callback: ProgressCallback | None = None
) -> Iterator[Callable[[int, Mapping[str, float]], None]]:
    """Yield ``advance(epoch, losses)`` for a training loop to call after each epoch.

    When ``enabled`` (and the environment variable ``FEDSYNTH_NO_PROGRESS`` is unset or
    empty), a rich progress bar titled ``title`` counts the ``epochs`` and shows the last
    losses; with ``callback``, each call also sends it an :class:`EpochDone`. rich is
    imported only when the bar is shown, so that the core imports fast.

    Examples
    --------
    >>> events = []
    >>> with training_progress(False, "Training", 2, events.append) as advance:
    ...     advance(1, {"loss": 0.5})
    >>> events[0].message
    'epoch 1/2: loss 0.5000'
    """
    if not enabled or os.environ.get("FEDSYNTH_NO_PROGRESS"):
        bar = None
        shown: AbstractContextManager[Any] = nullcontext()
    else:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            transient=False,
        )
        shown = bar
    with shown:
        task = None if bar is None else bar.add_task(title, total=epochs, losses="")

        def advance(epoch: int, losses: Mapping[str, float]) -> None:
            if bar is not None:
                text = "  ".join(f"{name} {value:.4f}" for name, value in losses.items())
                bar.update(task, completed=epoch, losses=text)
            if callback is not None:
                callback(EpochDone(epoch, epochs, dict(losses)))

        yield advance
