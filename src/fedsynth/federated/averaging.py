"""The strategies that average weights: FedAvg and FedProx.

Both run on a generator that implements the federable protocol
(:class:`~fedsynth.core.federable.Federable`) with weights, and touch it through that protocol
only. A reply carries the weights as arrays ``w0000``, ``w0001``... (Flower ``ArrayRecord``), the
row count and the losses as metrics (``MetricRecord``) and, for a generator with data-derived
state, that state as settings (``extra-config``) and arrays (``extra/<name>``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedsynth.core.federable import ExtraState, Federable
from fedsynth.federated import task
from fedsynth.federated.encoder_stats import SharedSchema
from fedsynth.federated.messages import Payload
from fedsynth.federated.strategy_base import (
    NUM_EXAMPLES,
    RoundLog,
    Site,
    Strategy,
    mean_losses,
    n_examples,
    privacy_log,
)

_EXTRA = "extra/"


def weights_payload(weights: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Weight arrays as a payload's arrays, named in order."""
    return {f"w{i:04d}": w for i, w in enumerate(weights)}


def weights_from(arrays: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The weight arrays of a payload, in order (the other arrays are extra state)."""
    return [arrays[k] for k in sorted(k for k in arrays if k.startswith("w"))]


def _extra_payload(state: ExtraState) -> tuple[str, dict[str, np.ndarray]]:
    return json.dumps(state.config), {_EXTRA + k: v for k, v in state.arrays.items()}


def _extra_from(payload: Payload) -> ExtraState:
    arrays = {k[len(_EXTRA) :]: v for k, v in payload.arrays.items() if k.startswith(_EXTRA)}
    return ExtraState(json.loads(payload.config["extra-config"]), arrays)


def _extra_for(generator: Federable, data: Any) -> ExtraState:
    """The data-derived state of the generator's current weights, computed on ``data`` (a
    zero-epoch training redoes the post-training step, e.g. VAE-BGM's latent mixture)."""
    generator.train_local(data, epochs=0, extra_state=True)
    return generator.export_extra_state()


class FedAvg(Strategy):
    """Federated averaging (McMahan et al. 2017): local epochs, then weights averaged by size.

    **What leaves a site:** the generator's weights after this round's local training (every
    module's parameters and buffers), the last epoch's losses, and, for a generator with
    data-derived state (VAE-BGM's mixture over latent means and its site's output offset), that
    state recomputed on the site's rows for the previous round's global weights.

    The server rejects an update whose arrays are not as many or not shaped as the global
    weights, or hold NaN or infinity; it is left out of the average and the round's log says why.
    """

    name = "fedavg"
    leaves_site = (
        "model weights after local training, last-epoch losses, data-derived state (e.g. "
        "VAE-BGM's latent mixture and site output offset) for the previous global weights"
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
        self._ready: list[tuple[int, Federable]] = []

    def instructions(self, round: int) -> Payload:
        config = {
            "round": round,
            "epochs": self.local_epochs,
            "proximal-mu": float(self.proximal_mu),
            "extra-for-global": self._awaiting is not None,
        }
        return Payload(config, weights_payload(self.weights_))

    @classmethod
    def site_task(cls, instructions: Payload, site: Site) -> Payload:
        config = instructions.config
        generator = task.start_generator(
            site.model, site.params, site.schema, n_fits=int(config["round"]) - 1
        )
        generator.set_weights(weights_from(instructions.arrays))
        reply = Payload(metrics={NUM_EXAMPLES: len(site.data)})
        if config["extra-for-global"]:
            text, arrays = _extra_payload(_extra_for(generator, site.data))
            reply.config["extra-config"] = text
            reply.arrays.update(arrays)
        losses = generator.train_local(
            site.data,
            epochs=int(config["epochs"]),
            proximal_mu=float(config["proximal-mu"]),
            extra_state=False,
        )
        reply.metrics.update({f"loss/{k}": v for k, v in losses.items()})
        reply.metrics.update(task.privacy_spent(generator))
        reply.config["has-extra"] = bool(generator.has_extra_state)
        reply.arrays.update(weights_payload(generator.get_weights()))
        return reply

    def aggregate(self, round: int, replies: Mapping[str, Payload]) -> RoundLog:
        start = time.perf_counter()
        accepted: dict[str, Payload] = {}
        rejected: dict[str, str] = {}
        for site, reply in replies.items():
            n = n_examples(reply)
            problems = task.check_update(self.weights_, weights_from(reply.arrays))
            if n is None:
                found = reply.metrics.get(NUM_EXAMPLES)
                problems.insert(0, f"{NUM_EXAMPLES} must be a positive integer, got {found!r}")
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
                if key in reply.metrics:
                    total = self.privacy_spent_.setdefault(site, {})
                    total[key] = total.get(key, 0.0) + float(reply.metrics[key])
        return RoundLog(
            strategy=self.name,
            round=round,
            participants=sorted(accepted),
            rejected=rejected,
            failed={},
            metrics={**mean_losses(accepted), **privacy_log(self.privacy_spent_)},
            seconds=time.perf_counter() - start,
        )

    def _complete_awaiting(self, replies: Mapping[str, Payload]) -> None:
        """Give the awaited round model the merged extra state the sites sent for it."""
        with_extra = {s: r for s, r in replies.items() if "extra-config" in r.config}
        if with_extra and self._awaiting is not None:
            round, weights = self._awaiting
            states = [_extra_from(r) for r in with_extra.values()]
            sizes = [float(n_examples(r)) for r in with_extra.values()]
            merged = self.global_model_.merge_extra_states(states, sizes)
            self._ready.append((round, self._model_for(weights, merged)))
        self._awaiting = None

    def _model_for(self, weights: list[np.ndarray], extra: ExtraState | None) -> Federable:
        model = task.start_generator(self.model, self.params, self.schema)
        model.set_weights(weights)
        if extra is not None:
            model.load_extra_state(extra)
        # Averaged weights cannot tell the sites apart (see site_mix): sample by site.
        return task.by_site(model, self.schema)

    def ready_models(self) -> list[tuple[int, Federable]]:
        ready, self._ready = self._ready, []
        return ready

    def finalize_instructions(self) -> Payload | None:
        if self._awaiting is None:
            return None
        return Payload({"round": self._awaiting[0]}, weights_payload(self._awaiting[1]))

    @classmethod
    def site_finalize(cls, instructions: Payload, site: Site) -> Payload:
        generator = task.start_generator(
            site.model, site.params, site.schema, n_fits=int(instructions.config["round"])
        )
        generator.set_weights(weights_from(instructions.arrays))
        text, arrays = _extra_payload(_extra_for(generator, site.data))
        return Payload({"extra-config": text}, arrays, {NUM_EXAMPLES: len(site.data)})

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
