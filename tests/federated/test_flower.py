"""Real Flower runs (slow): the default federation under strace, TLS with node authentication,
and a SuperNode killed mid-round. Each run is short (tiny TVAE, 1-2 rounds, ~100 rows a site)
and every process it starts is ended, even when the test fails."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest

from fedsynth.exceptions import DataWarning
from fedsynth.federated import processes, shared_metadata, task
from fedsynth.federated.encoder_stats import SharedSchema
from fedsynth.federated.runtime import LocalFederation
from fedsynth.federated.settings import RunSettings

from .conftest import SIZES, TINY, assert_holds_no_training_row, read_jsonl, run_in_process

pytestmark = pytest.mark.slow

ALL = ["fedavg", "fedprox", "synthetic_sharing", "generator_sharing"]

# connect() calls that stay on this machine: Unix sockets, netlink, AF_UNSPEC (a UDP
# "disconnect"), and IPv4/IPv6 loopback.
_LOCAL = re.compile(
    r"sa_family=(AF_UNIX|AF_NETLINK|AF_UNSPEC)"
    r"|inet_addr\(\"127\.\d+\.\d+\.\d+\"\)"
    r"|inet_pton\(AF_INET6, \"(::1|::ffff:127\.\d+\.\d+\.\d+)\""
)

_RUN = """
import json, sys
import pandas as pd
from fedsynth.federated import federate
sites = {name: pd.read_parquet(path) for name, path in json.loads(sys.argv[1]).items()}
federate(sites, model="tvae", strategy=json.loads(sys.argv[3]), rounds=1, local_epochs=1,
         params=json.loads(sys.argv[4]), out=sys.argv[2], audit=True, timeout=420,
         round_timeout=300, **json.loads(sys.argv[5]))
"""


def _strace() -> list[str]:
    """The strace command line, or skip the test saying why it cannot run here."""
    path = shutil.which("strace")
    if path is None:
        pytest.skip("strace is not installed (apt-get install -y strace)")
    for command in ([path, "--seccomp-bpf", "-f"], [path, "-f"]):
        probe = subprocess.run(
            [*command, "-qq", "-e", "trace=connect", "-o", os.devnull, "true"],
            capture_output=True,
            timeout=60,
        )
        if probe.returncode == 0:
            return command
    pytest.skip(f"strace cannot trace processes here: {probe.stderr.decode().strip()}")


def _write_sites(sites, folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in sites.items():
        paths[name] = str(folder / f"{name}.parquet")
        data.to_parquet(paths[name], index=False)
    return paths


def _no_process_mentions(text: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    return False
            except OSError:
                continue
    return True


def _federate_under_strace(sites, tmp_path: Path, strategies: list[str], **options) -> Path:
    """Run ``federate`` in a process traced for ``connect()``; fail on any connection outside
    loopback. Returns the run's output folder."""
    strace = _strace()
    out = tmp_path / "run"
    trace = tmp_path / "connect.trace"
    paths = _write_sites(sites, tmp_path / "input")
    command = [
        *strace,
        "-qq",
        "-e",
        "trace=connect",
        "-o",
        str(trace),
        sys.executable,
        "-c",
        _RUN,
        json.dumps(paths),
        str(out),
        json.dumps(strategies),
        json.dumps(TINY),
        json.dumps(options),
    ]
    # Every process of the run inherits this mark: whatever happens, they are all ended.
    mark = uuid.uuid4().hex
    env = {**os.environ, "FEDSYNTH_TEST_RUN": mark}
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=540, env=env)
        assert run.returncode == 0, run.stderr[-3000:]
        assert _no_process_mentions(str(out)), "a Flower process outlived the run"
    finally:
        processes.end_processes("FEDSYNTH_TEST_RUN", mark)

    calls = [line for line in trace.read_text().splitlines() if "connect(" in line]
    assert any("127.0.0.1" in line for line in calls), "the trace saw no Flower traffic"
    outside = [line for line in calls if not _LOCAL.search(line)]
    assert not outside, "connections outside loopback:\n" + "\n".join(outside[:20])
    return out


def test_default_federation_connects_to_loopback_only_and_no_row_leaves(two_sites, tmp_path):
    out = _federate_under_strace(two_sites, tmp_path, ALL)

    # What reached the server through Flower, as its audit copy kept it.
    server = out / "server"
    config = json.loads((server / "schema" / "schema.json").read_text())
    with np.load(server / "schema" / "schema.npz") as npz:
        schema = SharedSchema.from_payload(config, dict(npz))
    for site, data in two_sites.items():
        folder = server / "audit" / "train_001" / site
        for strategy in ("fedavg", "fedprox", "generator_sharing"):
            with np.load(folder / f"{strategy}.npz") as npz:
                for name in npz.files:
                    if name != "copy_guard_fingerprints":
                        assert_holds_no_training_row(npz[name], two_sites, schema)
        synthetic = task.table_from_bytes((folder / "synthetic_sharing.rows.bin").read_bytes())
        assert len(synthetic) == len(data) and "patient_id" not in synthetic
    rounds = read_jsonl(server / "rounds.jsonl")
    assert sorted(r["strategy"] for r in rounds) == sorted(ALL)
    assert all(r["participants"] == sorted(SIZES) for r in rounds)
    usage = json.loads((server / "runtime.json").read_text())
    # Each sample sums a site's processes at one moment: as one strategy's ClientApp process
    # exits while the next starts, both are counted (about 840 MB each here; CI under load saw
    # 1,681 MB for one site). The bound catches growth beyond two, not that overlap.
    assert max(usage["peak_memory_mb"].values()) < 2000


def _settings(sites, tmp_path: Path, **changes) -> RunSettings:
    metadata = shared_metadata(sites)
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(metadata.to_dict()))
    settings = {
        "model": "tvae",
        "params": TINY,
        "strategies": ["fedavg"],
        "rounds": 1,
        "local_epochs": 1,
        "round_timeout": 300.0,
        "connect_timeout": 120.0,
        **changes,
    }
    return RunSettings(metadata_path=str(path), out_dir=str(tmp_path / "server"), **settings)


def test_tls_deployment_with_node_authentication_refuses_the_misfit_site(two_sites, mds, tmp_path):
    misfit = mds[mds["site"] == "site_2"].tail(89).reset_index(drop=True)
    misfit["sex"] = misfit["sex"].astype(object).where(misfit.index > 2, "X")
    misfit["age"] = misfit["age"] + 150
    settings = _settings(two_sites, tmp_path)  # its metadata knows no sex "X" nor age > 150
    paths = _write_sites({**two_sites, "east": misfit}, tmp_path / "input")
    with LocalFederation(
        paths, workdir=tmp_path / "flower", tls=True, node_auth=True
    ) as federation:
        federation.run(settings, timeout=420)
        intruder = federation.add_site("intruder", paths["east"], register=False)
        deadline = time.monotonic() + 60
        while intruder.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        refused_log = federation.log_tail("supernode-intruder", lines=200)
        superlink_log = federation.log_tail("superlink", lines=400)
    sites = json.loads((tmp_path / "server" / "sites.json").read_text())
    assert list(sites["refused"]) == ["east"]
    assert "site 'east' refused" in sites["refused"]["east"]
    assert "column 'sex'" in sites["refused"]["east"]
    assert "column 'age'" in sites["refused"]["east"]
    (log,) = read_jsonl(tmp_path / "server" / "rounds.jsonl")
    assert log["participants"] == sorted(SIZES)
    assert "insecure" not in superlink_log.lower()
    # A SuperNode whose key the SuperLink does not know is turned away.
    assert intruder.returncode not in (None, 0)
    assert "could not establish a connection" in refused_log


def test_killed_supernode_mid_round_leaves_the_run_going(two_sites, mds, tmp_path):
    east = mds[mds["site"] == "site_2"].tail(89).reset_index(drop=True)
    sites = {**two_sites, "east": east}
    settings = _settings(sites, tmp_path, rounds=2, min_sites=2)
    paths = _write_sites(sites, tmp_path / "input")
    events = tmp_path / "server" / "events.jsonl"
    killed = []

    def kill_east_when_round_one_starts() -> None:
        if killed or not events.is_file():
            return
        if any(e["event"] == "round_started" for e in read_jsonl(events)):
            federation.kill_site("east")
            killed.append(time.monotonic())

    with LocalFederation(paths, workdir=tmp_path / "flower") as federation:
        federation.run(settings, timeout=480, on_poll=kill_east_when_round_one_starts)
    assert killed
    first, second = read_jsonl(tmp_path / "server" / "rounds.jsonl")
    assert first["participants"] == sorted(SIZES)
    assert list(first["failed"]) == ["east"]  # the SuperLink's error reply names the lost node
    assert second["participants"] == sorted(SIZES)
    models = read_jsonl(tmp_path / "server" / "models.jsonl")
    assert [m["round"] for m in models] == [1, 2]


def test_secure_aggregation_on_the_deployment_runtime(two_sites, tmp_path):
    """fedavg with SecAgg+ through a SuperLink and two SuperNodes on loopback: the server gets
    the average (as the same run without it, in this process) and no site's weights."""
    out = _federate_under_strace(two_sites, tmp_path, ["fedavg"], secure_aggregation=True)
    server = out / "server"
    (log,) = read_jsonl(server / "rounds.jsonl")
    assert log["participants"] == sorted(SIZES) and not log["failed"]
    for site in two_sites:
        (entry,) = [
            e
            for e in read_jsonl(server / "audit.jsonl")
            if e["site"] == site and e["phase"] == "train.fedavg"
        ]
        assert not [k for k in entry["parts"]["fedavg"]["arrays"] if k.startswith("w")]
        assert entry["parts"]["masked"]["config"]["bytes"] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        plain, _ = run_in_process(two_sites, tmp_path / "plain")
    secure = task.load_model(server / "models" / "fedavg" / "round_001").get_weights()
    expected = task.load_model(plain / "models" / "fedavg" / "round_001").get_weights()
    gap = max(float(np.abs(a - b).max()) for a, b in zip(secure, expected, strict=True))
    assert gap < 2e-5
