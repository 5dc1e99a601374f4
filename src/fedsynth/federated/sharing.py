"""The strategies that share what a site's own generator makes: synthetic rows
(:class:`SyntheticSharing`) or the generator itself (:class:`GeneratorSharing`).

Both train one generator per site, kept between rounds in the site's state as its bytes
(:meth:`~fedsynth.core.federable.Federable.to_bytes`, never sent). A generator that implements
the federable protocol with weights is built on the shared schema and trained a few epochs more
each round; any other (a statistical generator) is fitted once on the shared metadata.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from fedsynth.exceptions import FedsynthError
from fedsynth.federated import task
from fedsynth.federated.encoder_stats import SharedSchema
from fedsynth.federated.messages import Payload
from fedsynth.federated.strategy_base import (
    NUM_EXAMPLES,
    RoundLog,
    Site,
    Strategy,
    n_examples,
    privacy_log,
    reported_privacy,
)
from fedsynth.tabular.generators import BaseGenerator


def _local_generator(site: Site, epochs: int) -> BaseGenerator:
    """The site's own generator, trained ``epochs`` more epochs this round.

    Kept between rounds in the site's state (never sent); shared by the strategies that run in
    lock-step in the same message, so that a site trains one local model per round.
    """
    if "local" in site.cache:
        return site.cache["local"]
    previous = None
    if "local" in site.state:
        previous = task.model_from_bytes(site.state["local"].config["model"])
    generator = task.fit_local(
        site.model,
        site.params,
        site.schema,
        site.data,
        epochs=epochs,
        previous=previous,
        n_fits=site.round - 1,
    )
    # Every row it samples is labelled with this site's own site value(s) (see site_mix); an
    # image model samples the site's own case mix.
    task.by_site(generator, site.schema, site.data)
    site.state["local"] = Payload({"model": generator.to_bytes(keep_guard=True)})
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
        metrics = {NUM_EXAMPLES: len(site.data), **task.privacy_spent(generator)}
        return Payload({"rows": task.table_to_bytes(rows)}, metrics=metrics)

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
                **privacy_log(reported_privacy(replies)),
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
        """A federable model with weights trains on, a round more on each round's rows; any
        other is fitted again on them."""
        previous = self.server_model_
        if previous is not None and not task.averages_weights(previous):
            previous = None
        schema = self.synthetic_schema
        model = task.fit_local(
            self.model, self.params, schema, pooled, epochs=self.local_epochs, previous=previous
        )
        # The pooled rows hold each site's share only up to sampling noise: sample by site.
        return task.by_site(model, schema)

    def ready_models(self) -> list[tuple[int, BaseGenerator]]:
        ready, self._ready = self._ready, []
        return ready


class GeneratorSharing(Strategy):
    """Each site trains its own generator and sends it; the server samples from all of them,
    from each in proportion to its site's size.

    **What leaves a site:** the site's trained generator as the bytes of its saved files:
    hyperparameters, shared metadata and encoder, weights (or a statistical model's
    parameters), data-derived state, training losses and row count, without the copy guard's
    fingerprints of the training rows. A generator is as revealing as its training allows:
    without DP, prefer fedavg or synthetic_sharing for small sites.

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
        #: The last round's pooled generators (for the checked release of images).
        self.mixture_: task.GeneratorMixture | None = None

    def instructions(self, round: int) -> Payload:
        return Payload({"round": round, "epochs": self.local_epochs})

    @classmethod
    def site_task(cls, instructions: Payload, site: Site) -> Payload:
        generator = _local_generator(site, int(instructions.config["epochs"]))
        metrics = {NUM_EXAMPLES: len(site.data), **task.privacy_spent(generator)}
        return Payload({"model": generator.to_bytes(keep_guard=False)}, metrics=metrics)

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
            self.mixture_ = task.GeneratorMixture(generators, sizes)
            self._ready.append((round, self.mixture_))
        return RoundLog(
            strategy=self.name,
            round=round,
            participants=sorted(generators),
            rejected=rejected,
            failed={},
            metrics=privacy_log(reported_privacy(replies)),
            seconds=time.perf_counter() - start,
        )

    def _check_generator(self, reply: Payload) -> BaseGenerator | str:
        if n_examples(reply) is None or not isinstance(reply.config.get("model"), bytes):
            return "reply rejected: it holds no generator"
        try:
            generator = task.model_from_bytes(reply.config["model"])
        except FedsynthError as exc:
            return f"generator rejected: {exc}"
        problem = task.output_problem(generator, self.schema)
        if problem is not None:
            return f"generator rejected: {problem}"
        if task.averages_weights(generator):
            weights = generator.get_weights()
            problems = task.check_update(weights, weights)
            if problems:
                return "generator rejected: " + "; ".join(problems)
        return generator

    def ready_models(self) -> list[tuple[int, task.GeneratorMixture]]:
        ready, self._ready = self._ready, []
        return ready
