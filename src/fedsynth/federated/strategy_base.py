"""What every federated strategy shares: the site's view of a round, the round's log, the
strategy interface, and reading the sites' row counts, losses and privacy spent from their
replies (see :mod:`~fedsynth.federated.strategies` for the strategies themselves)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from fedsynth.exceptions import FedsynthError
from fedsynth.federated.encoder_stats import SharedSchema
from fedsynth.federated.messages import Payload
from fedsynth.federated.task import GeneratorMixture
from fedsynth.tabular.generators import BaseGenerator

#: The metric a reply gives its site's row count under (Flower's own apps use the same key).
NUM_EXAMPLES = "num-examples"


@dataclass
class Site:
    """What a site knows when it runs a strategy's task.

    ``state`` is the site's memory between rounds (kept by its SuperNode, never sent);
    ``cache`` lives for one message, so that strategies running in lock-step share work.
    """

    name: str
    data: pd.DataFrame
    schema: SharedSchema
    model: str
    params: dict[str, Any]
    round: int
    state: dict[str, Payload] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass
class RoundLog:
    """What happened in one round of one strategy."""

    strategy: str
    round: int
    participants: list[str]
    rejected: dict[str, str]
    failed: dict[str, str]
    metrics: dict[str, float]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "strategy": self.strategy,
            "round": self.round,
            "participants": self.participants,
            "rejected": self.rejected,
            "failed": self.failed,
            "metrics": self.metrics,
            "seconds": round(self.seconds, 3),
        }


class Strategy(ABC):
    """A federated strategy: its server role and its site role (see
    :mod:`~fedsynth.federated.strategies`).

    Parameters
    ----------
    model : str
        Generator name (:func:`fedsynth.make`).
    params : dict
        Its hyperparameters.
    schema : SharedSchema
        The shared metadata and encoder.
    local_epochs : int
        Epochs of local training per round at each site.
    """

    name: ClassVar[str]
    #: Exactly what the site task returns, for the documentation and the audit log.
    leaves_site: ClassVar[str]
    #: Whether the strategy averages weights (needs a federable generator with weights).
    averages_weights: ClassVar[bool] = False

    def __init__(
        self, *, model: str, params: Mapping[str, Any], schema: SharedSchema, local_epochs: int
    ):
        self.model = model
        self.params = dict(params)
        self.schema = schema
        self.local_epochs = local_epochs

    @abstractmethod
    def instructions(self, round: int) -> Payload:
        """What the server sends every site at the start of ``round``."""

    @classmethod
    @abstractmethod
    def site_task(cls, instructions: Payload, site: Site) -> Payload:
        """The site's work for a round; what it returns is all that leaves the site."""

    @abstractmethod
    def aggregate(self, round: int, replies: Mapping[str, Payload]) -> RoundLog:
        """Combine the replies of ``round`` (site name to reply), rejecting unusable ones."""

    @abstractmethod
    def ready_models(self) -> list[tuple[int, BaseGenerator | GeneratorMixture]]:
        """Round models completed since the last call: ``(round, model)``, oldest first."""

    def finalize_instructions(self) -> Payload | None:
        """Instructions of a last message after the final round, or ``None`` when not needed."""
        return None

    @classmethod
    def site_finalize(cls, instructions: Payload, site: Site) -> Payload:
        """The site's part of the last message (see :meth:`finalize_instructions`)."""
        raise FedsynthError(f"{cls.name} has no final message")

    def finalize(self, replies: Mapping[str, Payload]) -> None:
        """Use the replies to the last message."""
        raise FedsynthError(f"{self.name} has no final message")


# ---------------------------------------------------------------------- reading replies
def n_examples(payload: Payload) -> int | None:
    """The row count a reply gives (the weight of its site), or ``None`` when unusable."""
    value = payload.metrics.get(NUM_EXAMPLES)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


def mean_losses(replies: Mapping[str, Payload]) -> dict[str, float]:
    """Size-weighted mean of each loss (``loss/<name>`` metric) the sites reported."""
    keys = sorted({k for r in replies.values() for k in r.metrics if k.startswith("loss/")})
    out = {}
    for key in keys:
        pairs = [(r.metrics[key], n_examples(r)) for r in replies.values() if key in r.metrics]
        total = sum(n for _, n in pairs)
        out[key[len("loss/") :]] = float(sum(v * n for v, n in pairs) / total)
    return out


def reported_privacy(replies: Mapping[str, Payload]) -> dict[str, dict[str, float]]:
    """The (epsilon, delta) each site reported for the model it sent."""
    return {
        site: {k: float(r.metrics[k]) for k in ("epsilon", "delta") if k in r.metrics}
        for site, r in replies.items()
        if "epsilon" in r.metrics
    }


def privacy_log(spent: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """A round log's metrics ``epsilon/<site>`` and ``delta/<site>``."""
    return {f"{key}/{site}": value for site, pair in spent.items() for key, value in pair.items()}
