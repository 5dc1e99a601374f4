"""The ServerApp: the coordinator's side of federated training.

:func:`run_server` is the whole protocol, written against a small :class:`Transport` (send a
message to some sites, collect their replies within a deadline) so that it does not depend on
how messages travel; the Flower ``ServerApp`` at the bottom of this module only wraps Flower's
``Grid`` into that transport.

The protocol:

1. wait for ``min_sites`` sites; send the shared metadata; each site checks its table against it
   and replies with aggregate statistics, or with a refusal naming its problem columns (the site
   is then left out of the run); image sites send their image schema instead
   (:mod:`~fedsynth.federated.image_sites`; ``modality = "imaging"``, no metadata);
2. build the shared encoder from the statistics (:func:`~.encoder_stats.build_schema`), or
   merge the image schemas (:func:`~.image_sites.build_image_schema`);
3. for each round: one ``train`` message per site carrying the instructions of every strategy;
   each strategy aggregates its part of the replies, rejecting unusable ones; a site that fails
   or does not reply within ``round_timeout`` is left out of the round, which goes on with the
   others if at least ``min_sites`` are connected. With ``secure_aggregation``, fedavg and
   fedprox each take a secure exchange of their own instead (four ``train`` steps of Flower's
   SecAgg+, :mod:`~fedsynth.federated.secure_aggregation`), and the server only learns the
   average of their updates;
4. a last ``query.finalize`` message when a strategy needs it (VAE-BGM's latent mixture);
5. ``checked_release``: generator sharing's images checked at every site (:mod:`~.checked_release`).

Everything is written to ``out_dir``: ``events.jsonl`` (progress), ``sites.json`` (sites,
sizes, refusals), ``strategies.json`` (what each strategy lets leave a site), ``schema/`` (the
shared encoder), ``rounds.jsonl`` (participants, rejections,
failures and losses of every round of every strategy), ``models.jsonl`` and ``models/<strategy>/
round_NNN/`` (each round's model, saved without pickle), ``audit.jsonl`` (what every message
from every site held: record names, setting names and values, array shapes), and with ``audit``
on, ``audit/``: a full copy of every such message.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from flwr.app import Context, Message
from flwr.serverapp import Grid, ServerApp

from fedsynth.federated import checked_release
from fedsynth.federated.averaging import FedAvg
from fedsynth.federated.encoder_stats import build_schema, check_shared_metadata
from fedsynth.federated.errors import FederationError
from fedsynth.federated.image_sites import TABULAR, build_image_schema
from fedsynth.federated.messages import Content, Payload, from_records, to_records
from fedsynth.federated.secure_aggregation import SecureResult, new_weights, secure_average
from fedsynth.federated.settings import RunSettings
from fedsynth.federated.strategies import make_strategy
from fedsynth.federated.strategy_base import RoundLog, Strategy
from fedsynth.tabular.metadata import Metadata


class Transport(Protocol):
    """How the server reaches the sites."""

    def node_ids(self) -> list[int]:
        """The sites (nodes) connected now."""

    def exchange(
        self, message_type: str, contents: Mapping[int, Content], timeout: float
    ) -> tuple[dict[int, Content], dict[int, str]]:
        """Send each node its content; return the replies and, per node without one, why."""

    def secure_exchange(
        self,
        contents: Mapping[int, Content],
        timeout: float,
        *,
        round: int,
        max_weight: float,
        clipping_range: float,
    ) -> SecureResult:
        """A secure round: the average of the nodes' masked updates, and what they sent in
        clear (:func:`~fedsynth.federated.secure_aggregation.secure_average`)."""


# ---------------------------------------------------------------------- output files
class _Output:
    """The files of ``out_dir`` (see the module docstring)."""

    def __init__(self, out_dir: str, audit: bool):
        self.root = Path(out_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.audit = audit

    def append(self, name: str, record: Mapping[str, Any]) -> None:
        with open(self.root / name, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def event(self, event: str, **fields: Any) -> None:
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")
        self.append("events.jsonl", {"time": now, "event": event, **fields})

    def write_json(self, name: str, record: Mapping[str, Any]) -> None:
        (self.root / name).write_text(json.dumps(record, indent=2) + "\n")

    def save_schema(self, schema: Any) -> None:
        config, arrays = schema.to_payload()
        folder = self.root / "schema"
        folder.mkdir(exist_ok=True)
        (folder / "schema.json").write_text(json.dumps(config, indent=2) + "\n")
        np.savez(folder / "schema.npz", **arrays)

    def save_model(self, strategy: str, round: int, model: Any) -> None:
        """Save a round model; it is listed in ``models.jsonl`` only once complete."""
        final = self.root / "models" / strategy / f"round_{round:03d}"
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        model.save(partial)
        partial.rename(final)
        self.append("models.jsonl", {"strategy": strategy, "round": round, "path": str(final)})

    def record(self, phase: str, round: int, site: str, content: Mapping[str, Payload]) -> None:
        """Keep a copy of what a site sent (when auditing) and a summary of it."""
        summary: dict[str, Any] = {}
        folder = self.root / "audit" / f"{phase}_{round:03d}" / site
        for part, payload in content.items():
            summary[part] = {
                "config": {k: _describe(v) for k, v in payload.config.items()},
                "arrays": {
                    k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                    for k, v in payload.arrays.items()
                },
                "metrics": dict(payload.metrics),
            }
            if not self.audit:
                continue
            folder.mkdir(parents=True, exist_ok=True)
            config = {}
            for key, value in payload.config.items():
                if isinstance(value, bytes):
                    name = f"{part}.{_safe(key)}.bin"
                    (folder / name).write_bytes(value)
                    config[key] = {"bytes_file": name}
                else:
                    config[key] = value
            (folder / f"{part}.json").write_text(json.dumps(config, indent=2) + "\n")
            if payload.metrics:
                metrics = json.dumps(payload.metrics, indent=2)
                (folder / f"{part}.metrics.json").write_text(metrics + "\n")
            np.savez(folder / f"{part}.npz", **{_safe(k): v for k, v in payload.arrays.items()})
        self.append("audit.jsonl", {"phase": phase, "round": round, "site": site, "parts": summary})


def _describe(value: Any) -> Any:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, str) and len(value) > 200:
        return f"<text, {len(value)} characters>"
    return value


def _safe(key: str) -> str:
    return key.replace("/", "__")


# ---------------------------------------------------------------------- the protocol
def wait_for_nodes(
    transport: Transport, minimum: int, timeout: float, among: Sequence[int] | None = None
) -> list[int]:
    """Nodes connected now (restricted to ``among``), once at least ``minimum`` are.

    Raises
    ------
    FederationError
        When fewer than ``minimum`` are connected after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        nodes = transport.node_ids()
        if among is not None:
            nodes = [n for n in nodes if n in among]
        if len(nodes) >= minimum:
            return sorted(nodes)
        if time.monotonic() > deadline:
            raise FederationError(
                f"only {len(nodes)} site(s) connected after {timeout:g} s; at least {minimum} "
                "are needed (min_sites)"
            )
        time.sleep(1.0)


def run_server(transport: Transport, settings: RunSettings) -> None:
    """Run a federation to its end (see the module docstring); results go to ``out_dir``.

    Raises
    ------
    FederationError
        When too few sites can take part, or none replies.
    """
    out = _Output(settings.out_dir, settings.audit)
    out.event("started", settings=settings.to_run_config())
    try:
        _run(transport, settings, out)
    except Exception as exc:
        out.event("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    out.event("finished")


def _common(settings: RunSettings, round: int) -> Payload:
    return Payload(
        {
            "model": settings.model,
            "params": json.dumps(settings.params),
            "plugins": settings.plugins,
            "strategies": ",".join(settings.strategies),
            "round": round,
            "seed": settings.seed,
            "min-count": settings.min_count,
            "max-modes": settings.max_modes,
            "secure-clipping-range": float(settings.secure_clipping_range),
            "modality": settings.modality,
        }
    )


def _run(transport: Transport, settings: RunSettings, out: _Output) -> None:
    metadata = None
    if settings.modality == TABULAR:
        metadata = Metadata.from_dict(json.loads(Path(settings.metadata_path).read_text()))
        check_shared_metadata(metadata)
    names, sizes, schema = _statistics(transport, settings, metadata, out)
    out.save_schema(schema)
    strategies = [
        make_strategy(
            name,
            model=settings.model,
            params=settings.params,
            schema=schema,
            local_epochs=settings.local_epochs,
            proximal_mu=settings.proximal_mu,
        )
        for name in settings.strategies
    ]
    out.write_json("strategies.json", {s.name: {"leaves_site": s.leaves_site} for s in strategies})
    config, arrays = schema.to_payload()
    schema_part = Payload({"json": json.dumps(config)}, arrays)
    secure = [s for s in strategies if settings.secure_aggregation and s.averages_weights]
    plain = [s for s in strategies if s not in secure]
    for round in range(1, settings.rounds + 1):
        nodes = wait_for_nodes(transport, settings.min_sites, settings.connect_timeout, list(names))
        out.event("round_started", round=round, sites=[names[n] for n in nodes])
        common = {"common": _common(settings, round), "schema": schema_part}
        if plain:
            _plain_round(transport, settings, plain, round, common, names, nodes, out)
        for strategy in secure:
            _secure_round(transport, settings, strategy, round, common, names, sizes, out)
        out.event("round_finished", round=round)
    _finalize(transport, settings, strategies, names, schema_part, out)
    if settings.checked_release:
        checked_release.release(transport, settings, strategies, names, out)


def _plain_round(
    transport: Transport,
    settings: RunSettings,
    strategies: Sequence[Strategy],
    round: int,
    common: Content,
    names: Mapping[int, str],
    nodes: Sequence[int],
    out: _Output,
) -> None:
    """One round of ``strategies`` in lock-step: one ``train`` message per site for all."""
    contents = {n: {**common, **{s.name: s.instructions(round) for s in strategies}} for n in nodes}
    replies, failed = transport.exchange("train", contents, settings.round_timeout)
    _audit(out, "train", round, names, replies)
    for strategy in strategies:
        parts, errors = _split(strategy.name, names, replies, failed)
        log = strategy.aggregate(round, parts)
        log.failed = errors
        _finish_round(out, strategy, log)


def _secure_round(
    transport: Transport,
    settings: RunSettings,
    strategy: FedAvg,
    round: int,
    common: Content,
    names: Mapping[int, str],
    sizes: Mapping[str, int],
    out: _Output,
) -> None:
    """One round of an averaging strategy under secure aggregation (one exchange of its own).

    The sites connected now take part; each scales its update by its share of the largest
    site's rows, so that no scaled update exceeds the clipping range by its scale alone.
    """
    nodes = wait_for_nodes(transport, settings.min_sites, settings.connect_timeout, list(names))
    contents = {n: {**common, strategy.name: strategy.instructions(round)} for n in nodes}
    result = transport.secure_exchange(
        contents,
        settings.round_timeout,
        round=round,
        max_weight=float(max(sizes[names[n]] for n in nodes)),
        clipping_range=settings.secure_clipping_range,
    )
    # A phase per strategy: fedavg's and fedprox's exchanges of a round keep separate copies.
    _audit(out, f"train.{strategy.name}", round, names, result.replies)
    parts, errors = _split(strategy.name, names, result.replies, result.failed)
    weights = None
    if result.average is not None:
        weights = new_weights(strategy.weights_, result.average, parts)
    log = strategy.aggregate_secure(round, weights, parts)
    log.failed = errors
    _finish_round(out, strategy, log)


def _statistics(
    transport: Transport, settings: RunSettings, metadata: Metadata | None, out: _Output
) -> tuple[dict[int, str], dict[str, int], Any]:
    """Phase 1: every site checks its table and sends statistics; the sites' names and row
    counts, and the shared encoder. Image sites send their image schemas instead, merged into
    the shared one (``metadata`` is then ``None``)."""
    nodes = wait_for_nodes(transport, settings.min_sites, settings.connect_timeout)
    out.event("statistics", nodes=len(nodes))
    common: Content = {"common": _common(settings, 0)}
    if metadata is not None:
        common["metadata"] = Payload({"json": json.dumps(metadata.to_dict())})
    contents = {n: common for n in nodes}
    replies, failed = transport.exchange("query.statistics", contents, settings.round_timeout)
    names: dict[int, str] = {}
    statistics: dict[str, Any] = {}
    refused: dict[str, str] = {}
    for node, reply in replies.items():
        site = reply["site"].config
        name = str(site["name"])
        out.record("statistics", 0, name, reply)
        if name in statistics or name in refused:
            raise FederationError(f"two sites call themselves {name!r}; site names must differ")
        if "refused" in site:
            refused[name] = str(site["refused"])
            out.event("site_refused", site=name, columns=json.loads(site["columns"]))
            continue
        names[node] = name
        statistics[name] = json.loads(site["statistics"])
    rows = {name: int(s["n_rows"]) for name, s in statistics.items()}
    no_reply = {str(node): reason for node, reason in failed.items()}
    out.write_json("sites.json", {"sites": rows, "refused": refused, "no_reply": no_reply})
    if len(statistics) < settings.min_sites:
        details = "".join(f"\n{text}" for text in refused.values())
        details += "".join(f"\nnode {n}: {r}" for n, r in no_reply.items())
        raise FederationError(
            f"only {len(statistics)} site(s) can take part, at least {settings.min_sites} are "
            f"needed (min_sites){details}"
        )
    if metadata is None:
        return names, rows, build_image_schema(statistics)
    schema = build_schema(metadata, statistics, max_modes=settings.max_modes, seed=settings.seed)
    return names, rows, schema


def _audit(
    out: _Output, phase: str, round: int, names: Mapping[int, str], replies: Mapping[int, Content]
) -> None:
    for node, reply in replies.items():
        out.record(phase, round, names.get(node, f"node-{node}"), reply)


def _split(
    strategy: str,
    names: Mapping[int, str],
    replies: Mapping[int, Content],
    failed: Mapping[int, str],
) -> tuple[dict[str, Payload], dict[str, str]]:
    """One strategy's part of each reply, and the sites that failed it (with why)."""
    parts: dict[str, Payload] = {}
    errors = {names.get(node, f"node-{node}"): reason for node, reason in failed.items()}
    for node, reply in replies.items():
        site = names.get(node, f"node-{node}")
        part = reply.get(strategy)
        if part is None:
            errors[site] = "the reply holds nothing for this strategy"
        elif "error" in part.config:
            errors[site] = str(part.config["error"])
        else:
            parts[site] = part
    return parts, errors


def _finish_round(out: _Output, strategy: Strategy, log: RoundLog) -> None:
    out.append("rounds.jsonl", log.to_dict())
    for round, model in strategy.ready_models():
        out.save_model(strategy.name, round, model)


def _finalize(
    transport: Transport,
    settings: RunSettings,
    strategies: Sequence[Strategy],
    names: Mapping[int, str],
    schema_part: Payload,
    out: _Output,
) -> None:
    """Phase 4: the last message, for strategies whose final model needs the sites once more."""
    parts = {s.name: p for s in strategies if (p := s.finalize_instructions()) is not None}
    if not parts:
        return
    nodes = wait_for_nodes(transport, settings.min_sites, settings.connect_timeout, list(names))
    common = _common(settings, settings.rounds)
    contents = {n: {"common": common, "schema": schema_part, **parts} for n in nodes}
    replies, failed = transport.exchange("query.finalize", contents, settings.round_timeout)
    _audit(out, "finalize", settings.rounds, names, replies)
    for strategy in strategies:
        if strategy.name in parts:
            replies_for, _ = _split(strategy.name, names, replies, failed)
            strategy.finalize(replies_for)
            for round, model in strategy.ready_models():
                out.save_model(strategy.name, round, model)


# ---------------------------------------------------------------------- Flower
class FlowerTransport:
    """:class:`Transport` over Flower's ``Grid``: push one message per node, pull the replies.

    Replies are matched to nodes by the id of the message they answer, as an error reply made
    by the SuperLink for a node it lost (missed heartbeats) does not come from that node.
    """

    def __init__(self, grid: Grid, context: Context | None = None, poll_interval: float = 1.0):
        self.grid = grid
        self.context = context
        self.poll_interval = poll_interval

    def node_ids(self) -> list[int]:
        return list(self.grid.get_node_ids())

    def exchange(
        self, message_type: str, contents: Mapping[int, Content], timeout: float
    ) -> tuple[dict[int, Content], dict[int, str]]:
        nodes = list(contents)
        messages = [
            Message(to_records(contents[node]), dst_node_id=node, message_type=message_type)
            for node in nodes
        ]
        ids = list(self.grid.push_messages(messages))
        if len(ids) != len(nodes):  # Flower returns no id at all for a payload too large
            ids = [None] * len(nodes)
        sent = list(zip(nodes, ids, strict=True))
        failed = {node: "the message could not be sent" for node, i in sent if not i}
        pending = {i: node for node, i in sent if i}
        replies: dict[int, Content] = {}
        deadline = time.monotonic() + timeout
        while pending:
            for reply in self.grid.pull_messages(list(pending)):
                node = pending.pop(reply.metadata.reply_to_message_id, None)
                if node is None:
                    continue
                if reply.has_error():
                    failed[node] = f"the site failed: {reply.error.reason}"
                else:
                    replies[node] = from_records(reply.content)
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(self.poll_interval)
        for node in pending.values():
            failed[node] = f"no reply within {timeout:g} s"
        return replies, failed

    def secure_exchange(
        self,
        contents: Mapping[int, Content],
        timeout: float,
        *,
        round: int,
        max_weight: float,
        clipping_range: float,
    ) -> SecureResult:
        if self.context is None:
            raise FederationError("secure aggregation needs the ServerApp's context")
        return secure_average(
            self.grid,
            self.context,
            contents,
            round=round,
            max_weight=max_weight,
            clipping_range=clipping_range,
            timeout=timeout,
        )


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the federation described by the run config (:class:`RunSettings`)."""
    run_server(FlowerTransport(grid, context), RunSettings.from_run_config(context.run_config))
