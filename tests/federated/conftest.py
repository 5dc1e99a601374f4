"""Fixtures of the federated tests: two small MDS sites and an in-process transport.

The in-process transport runs the real server protocol and the real site handlers in this
process, with every message serialised into Flower records and back, so that strategies and
what leaves a site are tested in seconds; a few slow tests run the same apps on Flower.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.exceptions import DataWarning
from fedsynth.federated import checked_release, client_app, shared_metadata
from fedsynth.federated.encoder_stats import SharedSchema
from fedsynth.federated.messages import from_records, to_records
from fedsynth.federated.server_app import run_server
from fedsynth.federated.settings import RunSettings

#: Label columns of the image sites, and a dp_gan small enough for a federation in seconds.
IMAGE_COLUMNS = ["tumour_type", "idh_mutant"]
TINY_IMAGE_GAN = {
    "epochs": 1,
    "batch_size": 12,
    "noise_dim": 8,
    "width": 8,
    "norm_groups": 4,
    "label_columns": IMAGE_COLUMNS,
    "device": "cpu",
    "seed": 1,
}
#: A tiny TVAE: fast, and none of its layer sizes equals a site's row count.
TINY = {"hidden_dims": [16], "latent_dim": 4, "batch_size": 64}
#: Site sizes chosen to differ from every dimension of the tiny model's arrays.
SIZES = {"north": 111, "south": 97}


@pytest.fixture(scope="session")
def mds() -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return fedsynth.datasets.mds_cohort(n=600, sites=2, seed=3)


@pytest.fixture(scope="session")
def two_sites(mds) -> dict[str, pd.DataFrame]:
    """Two sites of 111 and 97 patients, from different simulated hospitals."""
    return {
        name: mds[mds["site"] == site].head(size).reset_index(drop=True)
        for (name, size), site in zip(SIZES.items(), ["site_1", "site_2"], strict=True)
    }


class InProcessTransport:
    """The server's transport, delivering each message to a site handler in this process.

    ``fail`` maps a site to the reason its node gives no reply (a crash, a timeout).
    """

    def __init__(self, sites: Mapping[str, pd.DataFrame], fail: Mapping[str, str] | None = None):
        self.sites = {i + 1: (name, data) for i, (name, data) in enumerate(sites.items())}
        self.states: dict[int, dict] = {node: {} for node in self.sites}
        self.fail = dict(fail or {})
        #: Every reply, as (message type, site, content) after serialisation.
        self.replies: list[tuple[str, str, dict]] = []

    def node_ids(self) -> list[int]:
        return list(self.sites)

    def exchange(self, message_type, contents, timeout):
        replies, failed = {}, {}
        for node, content in contents.items():
            name, data = self.sites[node]
            if name in self.fail:
                failed[node] = self.fail[name]
                continue
            content = from_records(to_records(content))
            if message_type == "query.statistics":
                reply = client_app.statistics_reply(content, name, data)
            elif message_type == "query.check":
                reply = checked_release.check_reply(content, name, data)
            else:
                finalize = message_type == "query.finalize"
                reply = client_app.round_reply(
                    content, name, data, self.states[node], finalize=finalize
                )
            replies[node] = from_records(to_records(reply))
            self.replies.append((message_type, name, replies[node]))
        return replies, failed


def run_in_process(
    sites: Mapping[str, pd.DataFrame],
    tmp_path: Path,
    *,
    fail: Mapping[str, str] | None = None,
    metadata=None,
    **settings,
) -> tuple[Path, InProcessTransport]:
    """Run the server protocol over :class:`InProcessTransport`; return its output folder."""
    metadata = metadata if metadata is not None else shared_metadata(sites)
    tmp_path.mkdir(parents=True, exist_ok=True)
    metadata_path = tmp_path / "metadata.json"
    metadata_path.write_text(json.dumps(metadata.to_dict()))
    out = tmp_path / "server"
    settings = {"model": "tvae", "params": TINY, "local_epochs": 1, "rounds": 1, **settings}
    transport = InProcessTransport(sites, fail)
    run_server(
        transport, RunSettings(metadata_path=str(metadata_path), out_dir=str(out), **settings)
    )
    return out, transport


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _training_matrices(data: pd.DataFrame, schema: SharedSchema) -> list[np.ndarray]:
    """A site's rows as the model sees them (encoded) and as numbers (numeric columns)."""
    numeric = [c for c in schema.learned_columns if schema.metadata.columns[c].is_continuous]
    return [
        schema.encoder.transform(data[schema.learned_columns]).astype(np.float64),
        data[numeric].to_numpy(dtype=np.float64),
    ]


def assert_holds_no_training_row(array: np.ndarray, sites, schema: SharedSchema) -> None:
    """No dimension the size of a site's table, and no slice equal to one of its rows."""
    array = np.asarray(array)
    assert not set(array.shape) & set(SIZES.values()), f"row-count-sized array {array.shape}"
    if not np.issubdtype(array.dtype, np.floating) or array.ndim == 0:
        return
    for data in sites.values():
        for matrix in _training_matrices(data, schema):
            width = matrix.shape[1]
            if array.shape[-1] != width:
                continue
            rows = array.reshape(-1, width)
            gaps = np.nanmax(np.abs(rows[:, None, :] - matrix[None, :, :]), axis=2)
            assert np.nanmin(gaps) > 1e-6, "an array holds a training row"


class LoopbackGrid:
    """Flower's ``Grid`` in this process: every message goes through the real ClientApp (its
    mods included) with a ``Context`` per node, as a SuperNode keeps one for a run.

    ``drop`` maps a site to the secure-aggregation step (e.g. ``"collect_masked_vectors"``)
    from which its node answers only with errors, as the SuperLink does for a lost node.
    """

    def __init__(self, files: Mapping[str, Path], drop: Mapping[str, str] | None = None):
        from flwr.app import Context, RecordDict

        self.names = {100 + i: name for i, name in enumerate(files)}
        self.contexts = {
            node: Context(
                1, node, {"site-name": name, "data-path": str(files[name])}, RecordDict(), {}
            )
            for node, name in self.names.items()
        }
        self.drop = dict(drop or {})
        self.dropped: set[int] = set()
        self._replies: dict[str, object] = {}

    def get_node_ids(self) -> list[int]:
        return list(self.names)

    def push_messages(self, messages) -> list[str]:
        from flwr.app import Error, Message
        from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

        from fedsynth.federated.client_app import app

        ids = []
        for message in messages:
            node = message.metadata.dst_node_id
            ids.append(f"m{len(self._replies)}-{node}-{id(message)}")
            # What the transport would set on the way, then a copy, as if it crossed the wire.
            message.metadata.__dict__.update(_message_id=ids[-1], _src_node_id=1, _run_id=1)
            wire = copy.deepcopy(message)
            secure = wire.content.config_records.get(RECORD_KEY_CONFIGS)
            if secure is not None and self.drop.get(self.names[node]) == secure.get("stage"):
                self.dropped.add(node)
            if node in self.dropped:
                reply = Message(Error(3, "node lost (simulated)"), reply_to=wire)
            else:
                try:
                    reply = app(wire, self.contexts[node])
                except Exception as exc:  # a SuperNode answers with an error message
                    reply = Message(Error(1, f"{type(exc).__name__}: {exc}"), reply_to=wire)
            self._replies[ids[-1]] = copy.deepcopy(reply)
        return ids

    def pull_messages(self, message_ids) -> list:
        return [self._replies.pop(i) for i in list(message_ids) if i in self._replies]

    def send_and_receive(self, messages, *, timeout=None) -> list:
        return self.pull_messages(self.push_messages(list(messages)))


def run_on_loopback(
    sites: Mapping[str, pd.DataFrame],
    tmp_path: Path,
    *,
    drop: Mapping[str, str] | None = None,
    **settings,
) -> tuple[Path, LoopbackGrid]:
    """Run the server protocol through Flower's records, mods and workflows in this process
    (:class:`LoopbackGrid`); return its output folder. Needs the ``task_identity`` fixture."""
    from flwr.app import Context, RecordDict

    from fedsynth.federated.server_app import FlowerTransport

    folder = tmp_path / "sites"
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, data in sites.items():
        files[name] = folder / f"{name}.parquet"
        data.to_parquet(files[name], index=False)
    metadata_path = tmp_path / "metadata.json"
    metadata_path.write_text(json.dumps(shared_metadata(sites).to_dict()))
    out = tmp_path / "server"
    settings = {"model": "tvae", "params": TINY, "local_epochs": 1, "rounds": 1, **settings}
    grid = LoopbackGrid(files, drop)
    transport = FlowerTransport(grid, Context(1, 1, {}, RecordDict(), {}), poll_interval=0.0)
    run_server(
        transport, RunSettings(metadata_path=str(metadata_path), out_dir=str(out), **settings)
    )
    return out, grid


@pytest.fixture
def task_identity(monkeypatch):
    """The identity Flower's runtime gives the ServerApp's process (``Message`` reads it)."""
    from flwr.supercore.task_identity import TaskIdentity

    for name in ("_task_id", "_run_id", "_node_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)
