"""The four federated strategies, each with exactly what leaves a site.

A strategy has two roles. At the server it writes the instructions of a round
(:meth:`Strategy.instructions`) and combines the sites' replies (:meth:`Strategy.aggregate`),
rejecting any reply it cannot use; at a site, :meth:`Strategy.site_task` turns the instructions
and the site's rows into the reply, and that reply is *everything* the strategy lets leave the
site. Every strategy also receives the shared schema (metadata and encoder built from aggregate
statistics, see :mod:`~fedsynth.federated.encoder_stats`) and sends back the site's name and row
count.

================== ==========================================================================
strategy           what leaves a site each round (besides its name and row count)
================== ==========================================================================
fedavg             the generator's weights after local training (every module's parameters
                   and buffers, e.g. batch-norm running means), the last epoch's losses; for a
                   generator with data-derived state (VAE-BGM's latent mixture), that state
                   recomputed for the previous global weights
fedprox            the same as fedavg (the proximal term only changes local training)
synthetic_sharing  synthetic rows only (as many as the site has rows), drawn from a generator
                   trained at the site, with no copy of a unique training row (copy guard)
generator_sharing  the site's trained generator: its saved files (hyperparameters, shared
                   metadata and encoder, weights, data-derived state, training losses), without
                   the copy guard's fingerprints of the training rows
================== ==========================================================================

A site whose generator is trained with differential privacy (``params={"dp": {...}}``) also
sends the (epsilon, delta) its training spent; each round's log gives every site's total so far
(``epsilon/<site>``, ``delta/<site>``): the sum over rounds for weight averaging, where each
round trains anew, and the site model's own ledger for the sharing strategies, where the site's
model lives on.

With ``secure_aggregation`` on, fedavg's and fedprox's weights leave a site masked, as an update
the server can only sum with the other sites' (:mod:`~fedsynth.federated.secure_aggregation`
lists what still travels in clear).

No strategy sends a training row, a row identifier or a per-row value. The server sends every
site the same things: the shared schema, the round's settings and, for fedavg and fedprox, the
global weights.

Flower's own ``FedAvg`` averages every reply it gets; these strategies check each reply first
(NaN, infinite or misshapen weights, tables that do not fit the shared metadata) and record
which sites took part in each round, which were rejected and why. They run in lock-step: one
message per site per round carries the work of every strategy of an experiment, so that a
comparison costs one ClientApp start per site and round rather than one per strategy.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fedsynth.exceptions import FedsynthError
from fedsynth.federated import _hooks, task
from fedsynth.federated.encoder_stats import SharedSchema
from fedsynth.tabular.generators import BaseGenerator
from fedsynth.tabular.generators.site_mix import SiteMix, attach_site_mix


@dataclass
class Payload:
    """What one strategy puts in a message: flat settings and named arrays.

    ``config`` values are ``str``, ``int``, ``float``, ``bool`` or ``bytes`` (what a Flower
    ``ConfigRecord`` holds); ``arrays`` are numeric numpy arrays.
    """

    config: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


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
    """A federated strategy: its server role and its site role (see the module docstring).

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
    #: Whether the strategy averages weights (needs a generator with ``get_weights``).
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
    def ready_models(self) -> list[tuple[int, BaseGenerator | task.GeneratorMixture]]:
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


# ---------------------------------------------------------------------- weight averaging
def _weights_payload(weights: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {f"w{i:04d}": w for i, w in enumerate(weights)}


def weights_from(arrays: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The weight arrays of a payload, in order (the other arrays are extra state)."""
    return [arrays[k] for k in sorted(k for k in arrays if k.startswith("w"))]


def _extra_payload(state: _hooks.ExtraState) -> tuple[str, dict[str, np.ndarray]]:
    config, arrays = state
    return json.dumps(config), {f"extra/{k}": v for k, v in arrays.items()}


def _extra_from(payload: Payload) -> _hooks.ExtraState:
    arrays = {k[len("extra/") :]: v for k, v in payload.arrays.items() if k.startswith("extra/")}
    return json.loads(payload.config["extra-config"]), arrays


def n_examples(payload: Payload) -> int | None:
    """The row count a reply gives (the weight of its site), or ``None`` when unusable."""
    value = payload.config.get("num-examples")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


class FedAvg(Strategy):
    """Federated averaging (McMahan et al. 2017): local epochs, then weights averaged by size.

    **What leaves a site:** the generator's weights after this round's local training (every
    module's parameters and buffers), the last epoch's losses, and, for a generator with
    data-derived state (VAE-BGM's mixture over latent means), that state recomputed on the
    site's rows for the previous round's global weights.

    The server rejects an update whose arrays are not as many or not shaped as the global
    weights, or hold NaN or infinity; it is left out of the average and the round's log says why.
    """

    name = "fedavg"
    leaves_site = (
        "model weights after local training, last-epoch losses, data-derived state (e.g. "
        "VAE-BGM's latent mixture) for the previous global weights"
    )
    averages_weights = True
    proximal_mu: float = 0.0

    def __init__(
        self,
        *,
        model: str,
        params: Mapping[str, Any],
        schema: SharedSchema,
        local_epochs: int,
    ):
        super().__init__(model=model, params=params, schema=schema, local_epochs=local_epochs)
        self.global_model_ = task.start_generator(model, self.params, schema)
        self.weights_ = self.global_model_.get_weights()
        self.needs_extra_ = False
        self.privacy_spent_: dict[str, dict[str, float]] = {}
        self._awaiting: tuple[int, list[np.ndarray]] | None = None
        self._ready: list[tuple[int, BaseGenerator]] = []

    def instructions(self, round: int) -> Payload:
        config = {
            "round": round,
            "epochs": self.local_epochs,
            "proximal-mu": float(self.proximal_mu),
            "extra-for-global": self._awaiting is not None,
        }
        return Payload(config, _weights_payload(self.weights_))

    @classmethod
    def site_task(cls, instructions: Payload, site: Site) -> Payload:
        config = instructions.config
        generator = task.start_generator(
            site.model, site.params, site.schema, n_fits=int(config["round"]) - 1
        )
        generator.set_weights(weights_from(instructions.arrays))
        reply = Payload({"num-examples": len(site.data)})
        if config["extra-for-global"]:
            text, arrays = _extra_payload(task.refresh_extra_state(generator, site.data))
            reply.config["extra-config"] = text
            reply.arrays.update(arrays)
        losses = task.train_local(
            generator,
            site.data,
            epochs=int(config["epochs"]),
            proximal_mu=float(config["proximal-mu"]),
            post_training=False,
        )
        reply.config.update({f"loss/{k}": v for k, v in losses.items()})
        reply.config.update(task.privacy_spent(generator))
        reply.config["has-extra"] = _hooks.has_post_training_state(generator)
        reply.arrays.update(_weights_payload(generator.get_weights()))
        return reply

    def aggregate(self, round: int, replies: Mapping[str, Payload]) -> RoundLog:
        start = time.perf_counter()
        accepted: dict[str, Payload] = {}
        rejected: dict[str, str] = {}
        for site, reply in replies.items():
            n = n_examples(reply)
            problems = task.check_update(self.weights_, weights_from(reply.arrays))
            if n is None:
                found = reply.config.get("num-examples")
                problems.insert(0, f"num-examples must be a positive integer, got {found!r}")
            if problems:
                rejected[site] = "update rejected: " + "; ".join(problems)
            else:
                accepted[site] = reply
        weights = None
        if accepted:
            weights = task.weighted_average(
                [weights_from(r.arrays) for r in accepted.values()],
                [n_examples(r) for r in accepted.values()],
            )
        return self._advance(round, weights, accepted, rejected, replies, start)

    def aggregate_secure(
        self, round: int, weights: list[np.ndarray] | None, replies: Mapping[str, Payload]
    ) -> RoundLog:
        """Like :meth:`aggregate`, from a secure round: the new global ``weights`` (``None``
        when the protocol halted) and what the summed sites sent in clear (no weights)."""
        start = time.perf_counter()
        accepted = dict(replies) if weights is not None else {}
        return self._advance(round, weights, accepted, {}, replies, start)

    def _advance(
        self,
        round: int,
        weights: list[np.ndarray] | None,
        accepted: Mapping[str, Payload],
        rejected: dict[str, str],
        replies: Mapping[str, Payload],
        start: float,
    ) -> RoundLog:
        """Take ``weights`` as the new global weights; the round's log."""
        if self._awaiting is not None:
            self._complete_awaiting(accepted)
        if weights is not None:
            self.weights_ = weights
            self.needs_extra_ = self.needs_extra_ or any(
                bool(r.config.get("has-extra")) for r in accepted.values()
            )
            if self.needs_extra_:
                self._awaiting = (round, self.weights_)
            else:
                self._ready.append((round, self._model_for(self.weights_, None)))
        # Each round trains a new model on the same rows: its spends add up (basic composition).
        for site, reply in replies.items():
            for key in ("epsilon", "delta"):
                if key in reply.config:
                    total = self.privacy_spent_.setdefault(site, {})
                    total[key] = total.get(key, 0.0) + float(reply.config[key])
        return RoundLog(
            strategy=self.name,
            round=round,
            participants=sorted(accepted),
            rejected=rejected,
            failed={},
            metrics={**_mean_losses(accepted), **_privacy_metrics(self.privacy_spent_)},
            seconds=time.perf_counter() - start,
        )

    def _complete_awaiting(self, replies: Mapping[str, Payload]) -> None:
        """Give the awaited round model the merged extra state the sites sent for it."""
        with_extra = {s: r for s, r in replies.items() if "extra-config" in r.config}
        if with_extra and self._awaiting is not None:
            round, weights = self._awaiting
            states = [_extra_from(r) for r in with_extra.values()]
            sizes = [float(n_examples(r)) for r in with_extra.values()]
            merged = _hooks.merge_extra_states(self.global_model_, states, sizes)
            self._ready.append((round, self._model_for(weights, merged)))
        self._awaiting = None

    def _model_for(
        self, weights: list[np.ndarray], extra: _hooks.ExtraState | None
    ) -> BaseGenerator:
        model = task.start_generator(self.model, self.params, self.schema)
        model.set_weights(weights)
        if extra is not None:
            _hooks.load_extra_state(model, extra)
        # Averaged weights cannot tell the sites apart (see site_mix): sample by site.
        return attach_site_mix(
            model, SiteMix.from_encoder(self.schema.metadata, self.schema.encoder)
        )

    def ready_models(self) -> list[tuple[int, BaseGenerator]]:
        ready, self._ready = self._ready, []
        return ready

    def finalize_instructions(self) -> Payload | None:
        if self._awaiting is None:
            return None
        return Payload({"round": self._awaiting[0]}, _weights_payload(self._awaiting[1]))

    @classmethod
    def site_finalize(cls, instructions: Payload, site: Site) -> Payload:
        generator = task.start_generator(
            site.model, site.params, site.schema, n_fits=int(instructions.config["round"])
        )
        generator.set_weights(weights_from(instructions.arrays))
        text, arrays = _extra_payload(task.refresh_extra_state(generator, site.data))
        return Payload({"num-examples": len(site.data), "extra-config": text}, arrays)

    def finalize(self, replies: Mapping[str, Payload]) -> None:
        usable = {s: r for s, r in replies.items() if n_examples(r) is not None}
        self._complete_awaiting(usable)


class FedProx(FedAvg):
    """FedProx (Li et al. 2020): FedAvg whose local loss adds ``mu/2 ||w - w_global||^2``.

    The proximal term keeps each site's weights near the global ones during local training,
    which steadies federated training when the sites' data differ.

    **What leaves a site:** the same as :class:`FedAvg`.

    Parameters
    ----------
    proximal_mu : float, default 0.01
        Weight of the proximal term.
    """

    name = "fedprox"
    leaves_site = FedAvg.leaves_site

    def __init__(
        self,
        *,
        model: str,
        params: Mapping[str, Any],
        schema: SharedSchema,
        local_epochs: int,
        proximal_mu: float = 0.01,
    ):
        if not proximal_mu > 0:
            raise ValueError(f"proximal_mu must be positive, got {proximal_mu!r}")
        self.proximal_mu = proximal_mu
        super().__init__(model=model, params=params, schema=schema, local_epochs=local_epochs)


# ---------------------------------------------------------------------- sharing strategies
def _local_generator(site: Site, epochs: int) -> BaseGenerator:
    """The site's own generator, trained ``epochs`` more epochs this round.

    Kept between rounds in the site's state (never sent); shared by the strategies that run in
    lock-step in the same message, so that a site trains one local model per round.
    """
    if "local" in site.cache:
        return site.cache["local"]
    previous = None
    if "local" in site.state:
        saved = site.state["local"]
        previous = task.model_from_payload(saved.config["model"], saved.arrays)
    generator = task.fit_local(
        site.model,
        site.params,
        site.schema,
        site.data,
        epochs=epochs,
        previous=previous,
        n_fits=site.round - 1,
    )
    # Every row it samples is labelled with this site's own site value(s) (see site_mix).
    attach_site_mix(generator, SiteMix.from_data(site.schema.metadata, site.data))
    text, arrays = task.model_to_payload(generator, keep_guard=True)
    site.state["local"] = Payload({"model": text}, arrays)
    site.cache["local"] = generator
    return generator


class SyntheticSharing(Strategy):
    """Each site trains its own generator and shares synthetic rows only; the server trains
    one generator on the pooled synthetic rows.

    **What leaves a site:** synthetic rows, as many as the site has rows, drawn from the site's
    generator; the copy guard redraws any synthetic row equal to a unique training row.

    The site's generator is trained a few more epochs each round (a neural generator; any other
    is fitted once); the server's generator continues training on each round's pooled rows.
    A table that does not fit the shared metadata is rejected.
    """

    name = "synthetic_sharing"
    leaves_site = "synthetic rows only (as many as the site has rows), no copy of a training row"

    def __init__(
        self,
        *,
        model: str,
        params: Mapping[str, Any],
        schema: SharedSchema,
        local_epochs: int,
    ):
        super().__init__(model=model, params=params, schema=schema, local_epochs=local_epochs)
        # The server trains on synthetic rows, which have no identifier columns.
        self.synthetic_schema = schema.for_synthetic()
        self.server_model_: BaseGenerator | None = None
        self._ready: list[tuple[int, BaseGenerator]] = []

    def instructions(self, round: int) -> Payload:
        return Payload({"round": round, "epochs": self.local_epochs})

    @classmethod
    def site_task(cls, instructions: Payload, site: Site) -> Payload:
        generator = _local_generator(site, int(instructions.config["epochs"]))
        rows = generator.sample(len(site.data), seed=site.round)
        reply = {"num-examples": len(site.data), "rows": task.table_to_bytes(rows)}
        return Payload({**reply, **task.privacy_spent(generator)})

    def aggregate(self, round: int, replies: Mapping[str, Payload]) -> RoundLog:
        start = time.perf_counter()
        tables: dict[str, pd.DataFrame] = {}
        rejected: dict[str, str] = {}
        for site, reply in replies.items():
            problem = self._check_rows(reply)
            if isinstance(problem, str):
                rejected[site] = problem
            else:
                tables[site] = problem
        if tables:
            pooled = pd.concat(tables.values(), ignore_index=True)
            self.server_model_ = self._train_server_model(pooled)
            self._ready.append((round, self.server_model_))
        return RoundLog(
            strategy=self.name,
            round=round,
            participants=sorted(tables),
            rejected=rejected,
            failed={},
            metrics={
                "pooled_rows": float(sum(len(t) for t in tables.values())),
                **_privacy_metrics(_reported_privacy(replies)),
            },
            seconds=time.perf_counter() - start,
        )

    def _check_rows(self, reply: Payload) -> pd.DataFrame | str:
        """The reply's synthetic table, or why it is rejected."""
        if n_examples(reply) is None or not isinstance(reply.config.get("rows"), bytes):
            return "reply rejected: it holds no synthetic table"
        try:
            rows = task.table_from_bytes(reply.config["rows"])
        except (OSError, ValueError) as exc:
            return f"reply rejected: unreadable synthetic table ({exc})"
        if list(rows.columns) != self.schema.columns:
            return (
                f"synthetic table rejected: columns {list(rows.columns)}, "
                f"expected {self.schema.columns}"
            )
        if len(rows) == 0 or len(rows) > 10 * self.schema.n_rows:
            return f"synthetic table rejected: {len(rows)} rows"
        try:
            self.synthetic_schema.metadata.check(rows)
        except FedsynthError as exc:
            return f"synthetic table rejected: {exc}"
        return rows

    def _train_server_model(self, pooled: pd.DataFrame) -> BaseGenerator:
        schema = self.synthetic_schema
        # The pooled rows hold each site's share only up to sampling noise: sample by site.
        mix = SiteMix.from_encoder(schema.metadata, schema.encoder)
        if self.server_model_ is None:
            model = task.new_generator(self.model, self.params)
            if not model.has_weights:
                return attach_site_mix(model.fit(pooled, metadata=schema.metadata), mix)
            _hooks.initialize(model, schema)
        else:
            model = self.server_model_
        model.fit(pooled, epochs=self.local_epochs, warm_start=True)
        return attach_site_mix(model, mix)

    def ready_models(self) -> list[tuple[int, BaseGenerator]]:
        ready, self._ready = self._ready, []
        return ready


class GeneratorSharing(Strategy):
    """Each site trains its own generator and sends it; the server samples from all of them,
    from each in proportion to its site's size.

    **What leaves a site:** the site's trained generator as its saved files: hyperparameters,
    shared metadata and encoder, weights (or a statistical model's parameters), data-derived
    state, training losses and row count, without the copy guard's fingerprints of the training
    rows. A generator is as revealing as its training allows: without DP, prefer fedavg or
    synthetic_sharing for small sites.

    A generator that cannot be loaded, does not produce the shared columns or holds NaN or
    infinite weights is rejected.
    """

    name = "generator_sharing"
    leaves_site = (
        "the trained generator (saved files: weights or parameters, shared encoder, losses), "
        "without copy-guard fingerprints"
    )

    def __init__(
        self,
        *,
        model: str,
        params: Mapping[str, Any],
        schema: SharedSchema,
        local_epochs: int,
    ):
        super().__init__(model=model, params=params, schema=schema, local_epochs=local_epochs)
        self._ready: list[tuple[int, task.GeneratorMixture]] = []

    def instructions(self, round: int) -> Payload:
        return Payload({"round": round, "epochs": self.local_epochs})

    @classmethod
    def site_task(cls, instructions: Payload, site: Site) -> Payload:
        generator = _local_generator(site, int(instructions.config["epochs"]))
        text, arrays = task.model_to_payload(generator, keep_guard=False)
        reply = {"num-examples": len(site.data), "model": text, **task.privacy_spent(generator)}
        return Payload(reply, arrays)

    def aggregate(self, round: int, replies: Mapping[str, Payload]) -> RoundLog:
        start = time.perf_counter()
        generators: dict[str, BaseGenerator] = {}
        sizes: dict[str, int] = {}
        rejected: dict[str, str] = {}
        for site, reply in replies.items():
            checked = self._check_generator(reply)
            if isinstance(checked, str):
                rejected[site] = checked
            else:
                generators[site], sizes[site] = checked, n_examples(reply)
        if generators:
            self._ready.append((round, task.GeneratorMixture(generators, sizes)))
        return RoundLog(
            strategy=self.name,
            round=round,
            participants=sorted(generators),
            rejected=rejected,
            failed={},
            metrics=_privacy_metrics(_reported_privacy(replies)),
            seconds=time.perf_counter() - start,
        )

    def _check_generator(self, reply: Payload) -> BaseGenerator | str:
        if n_examples(reply) is None or not isinstance(reply.config.get("model"), str):
            return "reply rejected: it holds no generator"
        try:
            generator = task.model_from_payload(reply.config["model"], reply.arrays)
        except FedsynthError as exc:
            return f"generator rejected: {exc}"
        if generator.columns_ != self.schema.columns:
            return f"generator rejected: it makes columns {generator.columns_}"
        if generator.has_weights:
            weights = generator.get_weights()
            problems = task.check_update(weights, weights)
            if problems:
                return "generator rejected: " + "; ".join(problems)
        return generator

    def ready_models(self) -> list[tuple[int, task.GeneratorMixture]]:
        ready, self._ready = self._ready, []
        return ready


def _mean_losses(replies: Mapping[str, Payload]) -> dict[str, float]:
    """Size-weighted mean of each loss the sites reported."""
    keys = sorted({k for r in replies.values() for k in r.config if k.startswith("loss/")})
    out = {}
    for key in keys:
        pairs = [(r.config[key], n_examples(r)) for r in replies.values() if key in r.config]
        total = sum(n for _, n in pairs)
        out[key[len("loss/") :]] = float(sum(v * n for v, n in pairs) / total)
    return out


def _reported_privacy(replies: Mapping[str, Payload]) -> dict[str, dict[str, float]]:
    """The (epsilon, delta) each site reported for the model it sent."""
    return {
        site: {k: float(r.config[k]) for k in ("epsilon", "delta") if k in r.config}
        for site, r in replies.items()
        if "epsilon" in r.config
    }


def _privacy_metrics(spent: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    return {f"{key}/{site}": value for site, pair in spent.items() for key, value in pair.items()}


#: Strategy name to class.
STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (FedAvg, FedProx, SyntheticSharing, GeneratorSharing)
}


def make_strategy(
    name: str,
    *,
    model: str,
    params: Mapping[str, Any],
    schema: SharedSchema,
    local_epochs: int,
    proximal_mu: float = 0.01,
) -> Strategy:
    """A strategy by name; an unknown name fails and lists the known ones."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(STRATEGIES)}")
    kwargs: dict[str, Any] = {
        "model": model,
        "params": params,
        "schema": schema,
        "local_epochs": local_epochs,
    }
    if name == "fedprox":
        kwargs["proximal_mu"] = proximal_mu
    return STRATEGIES[name](**kwargs)
