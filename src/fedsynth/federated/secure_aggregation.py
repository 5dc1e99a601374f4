"""Secure aggregation for the strategies that average weights (Flower's SecAgg+).

With ``secure_aggregation`` on, the server of a fedavg or fedprox run learns the *size-weighted
average* of the sites' weight updates and not one site's update: each site masks its update
with random vectors that cancel in the sum (Bonawitz et al. 2017; SecAgg+, Bell et al. 2020),
through Flower's ``SecAggPlusWorkflow`` (server) and ``secaggplus_mod`` (site). What it protects
against is an honest-but-curious server; see the threat notes at the end.

What a site sends in a secure round
===================================
* **masked**: its update, the difference between the weights after local training and the
  global weights it received (floating-point arrays only), scaled by its share of the rows,
  clipped to ``[-clipping_range, clipping_range]``, quantized to 2^22 levels and masked;
* **in clear**: its row count (the weight of its update; also sent in the statistics phase),
  the last epoch's losses, the privacy spent under DP, integer buffers' updates (batch-norm's
  batch counter: the number of local batches, which the row count gives away anyway) and, for a
  generator with data-derived state (VAE-BGM), that state for the previous global weights: a
  Gaussian mixture over the site's latent means (component weights, means and covariances; no
  row). Secure aggregation does *not* hide that mixture: a site that must hide it too should use
  a generator without such state (``tvae``, ``ctgan``) or DP-SGD;
* **key material**: two public keys, and shares of its secrets encrypted for the other sites.

Each secure round takes four exchanges with every site (set-up, key sharing, masked upload,
unmasking) instead of one. A site checks its own update before masking it (the server can no
longer): an update with NaN or infinite values, or beyond the clipping range, makes the site
answer with an error, and the site is left out of the round like a site that crashed. A site
lost after the masked upload is still in the average (the others' shares unmask it); the
protocol halts when fewer than half of the round's sites (at least 2) remain, and the round
then leaves the global weights unchanged.

Precision: each site's scaled update is quantized in steps of ``2 * clipping_range / 2^22``
(3.8e-6 at the default 8.0); the average is within about that of the plain average. Updates
rather than weights are masked because they are small: the default range holds them, and the
quantization step is fine compared to them.

Threat notes: the server sees the sum only, but with two sites each site can subtract its own
update from the new global weights and learn the other's, and with three, each learns the sum
of the other two; row counts travel in clear. Nothing here protects against a server that
deviates from the protocol (it picks which sites take part), nor replaces DP: the average itself
can reveal what DP-SGD is there to bound.

This module is the only one that touches Flower's secure-aggregation internals: the record
names of the legacy ``FitRes`` (the format ``secaggplus_mod`` masks), the stage names of the
protocol and the ``LegacyContext`` that ``SecAggPlusWorkflow`` runs in. They were checked
against ``flwr==1.41.0`` (the pinned version) and a test runs the protocol end to end.
"""

from __future__ import annotations

import builtins
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.common import FitIns, Parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import Strategy as _LegacyStrategy
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.serverapp import Grid

from fedsynth.federated.averaging import weights_from
from fedsynth.federated.errors import FederationError
from fedsynth.federated.messages import Content, Payload, from_records, to_records
from fedsynth.federated.strategy_base import NUM_EXAMPLES, n_examples

#: Clipping range of the masked updates (the update times the site's share of the rows).
DEFAULT_CLIPPING_RANGE = 8.0
#: Levels of the quantization (Flower's default, 2^22).
QUANTIZATION_RANGE = 2**22
#: The share of a round's sites needed to unmask the sum (at least 2).
RECONSTRUCTION_THRESHOLD = 0.5

# Record names of the legacy FitRes, which secaggplus_mod reads (flwr/compat/common/
# recorddict_compat.py, recorddict_to_fitres).
_FITRES_PARAMETERS = "fitres.parameters"
_FITRES_NUM_EXAMPLES = "fitres.num_examples"
_FITRES_METRICS = "fitres.metrics"
_FITRES_STATUS = "fitres.status"
# What SecAggPlusWorkflow reads from its context's state (flwr/server/workflow/constant.py).
_MAIN_CONFIGS_RECORD = "config"
_MAIN_PARAMS_RECORD = "parameters"
_CURRENT_ROUND = "current_round"
# The clear arrays of a secure reply travel as one .npz in the part's settings: the mod empties
# every ArrayRecord of the reply once it has masked the update.
_CLEAR_ARRAYS = "clear-arrays"
_INTEGER = "integer/"


# ---------------------------------------------------------------------- site side
def is_secure(message: Message) -> bool:
    """Whether ``message`` is a step of the SecAgg+ protocol."""
    return RECORD_KEY_CONFIGS in message.content.config_records


def secure_mod(message: Message, context: Context, call_next: Any) -> Message:
    """Flower's ``secaggplus_mod`` for the steps of a secure round; other messages pass.

    ``secaggplus_mod`` takes over every message of type ``train``, and fails on one that is not
    a protocol step; a plain round of the same ClientApp must reach its handler untouched.
    """
    from flwr.client.mod import secaggplus_mod

    if is_secure(message):
        return secaggplus_mod(message, context, call_next)
    return call_next(message, context)


def masked_reply(content: Mapping[str, Payload], reply: Mapping[str, Payload]) -> RecordDict:
    """A site's reply to the masked-upload step: its update to mask, the rest in clear.

    ``content`` is what the server sent (one averaging strategy's instructions with the global
    weights); ``reply`` is what the site's task returned for it (:meth:`FedAvg.site_task`).

    Raises
    ------
    FederationError
        When the task failed, or its update is unusable (NaN or infinite values, wrong shapes,
        values beyond the clipping range): the site then answers with an error and is left out
        of the round, as the server cannot inspect a masked update.
    """
    site = str(reply["site"].config["name"])
    names = [n for n in str(content["common"].config["strategies"]).split(",") if n in content]
    if len(names) != 1:
        raise FederationError(f"a secure round carries one strategy, got {names}")
    name = names[0]
    part = reply[name]
    if "error" in part.config:
        raise FederationError(f"site {site}: {part.config['error']}")
    clipping = float(content["common"].config["secure-clipping-range"])
    start = weights_from(content[name].arrays)
    masked, clear = split_update(start, weights_from(part.arrays), clipping, site)
    clear.update({k: v for k, v in part.arrays.items() if not k.startswith("w")})
    config = dict(part.config)
    config[_CLEAR_ARRAYS] = _to_npz(clear)
    records = to_records({"site": reply["site"], name: Payload(config, metrics=part.metrics)})
    records[_FITRES_PARAMETERS] = ArrayRecord(masked)
    num_examples = int(part.metrics[NUM_EXAMPLES])
    records[_FITRES_NUM_EXAMPLES] = MetricRecord({"num_examples": num_examples})
    records[_FITRES_METRICS] = ConfigRecord({})
    records[_FITRES_STATUS] = ConfigRecord({"code": 0, "message": "Success"})
    return records


def split_update(
    start: Sequence[np.ndarray], end: Sequence[np.ndarray], clipping_range: float, site: str
) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """The update ``end - start``: floating-point arrays to mask, integer arrays in clear.

    Raises
    ------
    FederationError
        When the update is unusable (see :func:`masked_reply`), naming the site and the array.
    """
    from fedsynth.federated.task import check_update

    problems = check_update(start, end)
    if problems:
        raise FederationError(f"site {site}: update not sent: " + "; ".join(problems))
    masked: list[np.ndarray] = []
    clear: dict[str, np.ndarray] = {}
    for i, (old, new) in enumerate(zip(start, end, strict=True)):
        new = np.asarray(new)
        if np.issubdtype(new.dtype, np.floating):
            delta = new.astype(np.float64) - np.asarray(old, dtype=np.float64)
            largest = float(np.abs(delta).max(initial=0.0))
            if largest > clipping_range:
                raise FederationError(
                    f"site {site}: update not sent: array {i} changed by {largest:.3g}, beyond "
                    f"the secure aggregation's clipping range {clipping_range:g} "
                    "(secure_clipping_range)"
                )
            masked.append(delta)
        else:
            clear[f"{_INTEGER}{i:04d}"] = new.astype(np.int64) - np.asarray(old, dtype=np.int64)
    return masked, clear


def _to_npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{k.replace("/", "__"): v for k, v in arrays.items()})
    return buffer.getvalue()


def _from_npz(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {k.replace("__", "/"): npz[k] for k in npz.files}


# ---------------------------------------------------------------------- server side
@dataclass
class SecureResult:
    """What one secure exchange gave the server.

    ``average`` is the size-weighted average of the masked updates of the sites in
    ``replies`` (``None`` when the protocol halted); ``replies`` hold what those sites sent in
    clear; ``failed`` says why each other site is not in the average.
    """

    average: list[np.ndarray] | None
    replies: dict[int, Content] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


def new_weights(
    start: Sequence[np.ndarray], average: Sequence[np.ndarray], replies: Mapping[str, Payload]
) -> list[np.ndarray]:
    """The new global weights: ``start`` plus the average update, in ``start``'s dtypes.

    Integer arrays (sent in clear) get the size-weighted mean of the sites' updates, rounded.
    """
    sizes = {site: float(n_examples(r) or 0) for site, r in replies.items()}
    total = sum(sizes.values())
    masked = iter(average)
    out = []
    for i, old in enumerate(start):
        old = np.asarray(old)
        if np.issubdtype(old.dtype, np.floating):
            update = np.asarray(next(masked), dtype=np.float64).reshape(old.shape)
        else:
            key = f"{_INTEGER}{i:04d}"
            update = np.round(
                sum(r.arrays[key].astype(np.float64) * sizes[s] for s, r in replies.items()) / total
            )
        out.append(np.asarray(old.astype(np.float64) + update, dtype=old.dtype))
    return out


def clear_part(payload: Payload) -> Payload:
    """A secure reply's part with its clear arrays unpacked (as a plain reply holds them)."""
    config = dict(payload.config)
    blob = config.pop(_CLEAR_ARRAYS, None)
    arrays = _from_npz(blob) if isinstance(blob, bytes) else {}
    return Payload(config, {**payload.arrays, **arrays}, dict(payload.metrics))


def secure_average(
    grid: Grid,
    context: Context,
    contents: Mapping[int, Content],
    *,
    round: int,
    max_weight: float,
    clipping_range: float = DEFAULT_CLIPPING_RANGE,
    timeout: float | None = None,
) -> SecureResult:
    """One SecAgg+ exchange with the nodes of ``contents``: the average of their updates.

    Each node receives its content in the masked-upload step (the only one that reaches the
    ClientApp's handler) and answers with :func:`masked_reply`.

    Parameters
    ----------
    grid : Grid
        The ServerApp's grid.
    context : Context
        The ServerApp's context (its state is borrowed and left as it was).
    contents : mapping of int to content
        Node id to what it receives.
    round : int
        The round (the messages' group).
    max_weight : float
        The largest row count of a site: each site scales its update by its share of it.
    clipping_range : float
        Largest absolute value of a scaled update.
    timeout : float, optional
        Seconds to wait for the replies of each of the four steps.
    """
    nodes = sorted(contents)
    if len(nodes) < 2:
        return SecureResult(None, failed={n: "secure aggregation needs 2 sites" for n in nodes})
    recording = _RecordingGrid(grid, {n: to_records(c) for n, c in contents.items()})
    adapter = _OneRound(grid, context.run_id, nodes)
    legacy = LegacyContext(context, strategy=adapter)
    legacy.state.config_records[_MAIN_CONFIGS_RECORD] = ConfigRecord({_CURRENT_ROUND: round})
    legacy.state.array_records[_MAIN_PARAMS_RECORD] = ArrayRecord()
    workflow = SecAggPlusWorkflow(
        num_shares=1.0,
        reconstruction_threshold=RECONSTRUCTION_THRESHOLD,
        max_weight=float(max_weight),
        clipping_range=float(clipping_range),
        quantization_range=QUANTIZATION_RANGE,
        timeout=timeout,
    )
    try:
        workflow(recording, legacy)  # type: ignore[arg-type]
    finally:
        legacy.state.config_records.pop(_MAIN_CONFIGS_RECORD, None)
        legacy.state.array_records.pop(_MAIN_PARAMS_RECORD, None)
    if adapter.average is None:
        # Flower's threshold for num_shares=1.0: half the round's sites, at least 2.
        needed = max(builtins.round(RECONSTRUCTION_THRESHOLD * len(nodes)), 2)
        halted = f"secure aggregation halted: fewer than the {needed} sites needed remained"
        return SecureResult(None, failed={n: recording.failed.get(n, halted) for n in nodes})
    # A site lost in the unmasking step is in the average all the same (the others' shares
    # unmask its update): it did take part.
    failed = {n: why for n, why in recording.failed.items() if n not in adapter.summed}
    replies = {n: recording.uploads[n] for n in adapter.summed}
    return SecureResult(list(adapter.average), replies, failed)


class _RecordingGrid:
    """The server's grid as ``SecAggPlusWorkflow`` sees it: fedsynth's content is added to the
    masked-upload step, and each node's failure and upload are kept."""

    def __init__(self, grid: Grid, contents: Mapping[int, RecordDict]):
        self._grid = grid
        self._contents = contents
        self.failed: dict[int, str] = {}
        self.uploads: dict[int, Content] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        stage = _stage(messages[0]) if messages else ""
        if stage == Stage.COLLECT_MASKED_VECTORS:
            for message in messages:
                for key, record in self._contents[message.metadata.dst_node_id].items():
                    message.content[key] = record
        replies = self._grid.send_and_receive(messages, timeout=timeout)
        answered = set()
        for reply in replies:
            node = reply.metadata.src_node_id
            answered.add(node)
            if reply.has_error():
                self.failed.setdefault(node, f"the site failed ({stage}): {reply.error.reason}")
            elif stage == Stage.COLLECT_MASKED_VECTORS:
                self.uploads[node] = _upload(reply.content)
        for message in messages:
            node = message.metadata.dst_node_id
            if node not in answered:
                waited = f"within {timeout:g} s " if timeout else ""
                self.failed.setdefault(node, f"no reply {waited}({stage})")
        return replies


def _stage(message: Message) -> str:
    return str(message.content.config_records[RECORD_KEY_CONFIGS].get(Key.STAGE, ""))


def _upload(records: RecordDict) -> Content:
    """What a site sent in clear with its masked update, and the masked update's size."""
    content = {name: clear_part(part) for name, part in from_records(records).items()}
    masked = records.config_records[RECORD_KEY_CONFIGS].get(Key.MASKED_PARAMETERS, [])
    content["masked"] = Payload(
        {"arrays": len(masked), "bytes": int(sum(len(b) for b in masked))}  # type: ignore[arg-type]
    )
    return content


class _OneRound(_LegacyStrategy):
    """The legacy strategy ``SecAggPlusWorkflow`` calls: the given nodes, and the aggregate kept.

    The workflow gives every result the same aggregated parameters; the strategy keeps them,
    and which nodes were summed, and hands nothing back to the workflow's context.
    """

    def __init__(self, grid: Grid, run_id: int, nodes: Sequence[int]):
        self.grid, self.run_id, self.nodes = grid, run_id, list(nodes)
        self.average: list[np.ndarray] | None = None
        self.summed: list[int] = []

    def initialize_parameters(self, client_manager):
        return None

    def configure_fit(self, server_round, parameters, client_manager):
        empty = FitIns(Parameters(tensors=[], tensor_type=""), {})
        return [(GridClientProxy(n, self.grid, self.run_id), empty) for n in self.nodes]

    def aggregate_fit(self, server_round, results, failures):
        if results:
            self.average = parameters_to_ndarrays(results[0][1].parameters)
            self.summed = sorted(proxy.node_id for proxy, _ in results)
        return None, {}

    def configure_evaluate(self, server_round, parameters, client_manager):
        return []

    def aggregate_evaluate(self, server_round, results, failures):
        return None, {}

    def evaluate(self, server_round, parameters):
        return None
