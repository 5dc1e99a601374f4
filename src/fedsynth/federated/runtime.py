"""Flower's deployment runtime on one machine: a SuperLink and one SuperNode per site, as local
processes on loopback, started and stopped by fedsynth.

This is the embedded default of :func:`fedsynth.federated.federate`: the same ServerApp and
ClientApp as a real deployment, with nothing to set up. Every process listens on and connects to
127.0.0.1 only, and runs with Flower's telemetry, update check and runtime dependency
installation switched off and its own ``FLWR_HOME``; no ``flwr`` CLI configuration (and so no
remote connection such as Flower's "supergrid") is read. Flower's Ray-based simulation runtime is
not used: Ray was seen probing non-loopback addresses.

Flower offers no public API to start a run without the ``flwr`` CLI, so this module uses a few
internal ones (building the app bundle in memory, the Control API client); they are all here and
in :mod:`~fedsynth.federated.flower_app`, whose :data:`FLOWER_VERSION` is the version they were
written for. The app itself is in :mod:`~fedsynth.federated.flower_app`, certificates and node
keys in :mod:`~fedsynth.federated.credentials`, process handling in
:mod:`~fedsynth.federated.processes`. Every process started here
carries a session marker in its environment, and :meth:`LocalFederation.stop` ends exactly the
processes that carry it (SuperLink, SuperNodes and the app processes they spawn), even when a
run fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fedsynth.federated.credentials import TLSFiles, generate_node_key
from fedsynth.federated.errors import FederationError
from fedsynth.federated.flower_app import (
    FLOWER_VERSION,
    build_fab,
    check_flower_version,
    write_app,
)
from fedsynth.federated.processes import (
    LOOPBACK,
    end_processes,
    free_port,
    ignore_gone,
    import_path,
    marked_processes,
    rss_mb,
)
from fedsynth.federated.settings import RunSettings

__all__ = [
    "FLOWER_VERSION",
    "LOOPBACK",
    "LocalFederation",
    "TLSFiles",
    "check_flower_version",
    "generate_node_key",
    "write_app",
]

_SESSION = "FEDSYNTH_FLOWER_SESSION"
_SITE = "FEDSYNTH_FLOWER_SITE"


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen
    log: Path


class LocalFederation:
    """A SuperLink and one SuperNode per site, as local processes on loopback.

    Parameters
    ----------
    sites : mapping of str to path
        Each site's name and table (CSV/TSV/Parquet); a SuperNode reads it, nothing else does.
    workdir : path
        Folder for Flower's home, logs, certificates and keys.
    tls : bool, default False
        Encrypt every connection with a throw-away CA and certificate made in ``workdir``.
    node_auth : bool, default False
        Register one key per SuperNode with the SuperLink and refuse any other (needs ``tls``).
    threads_per_site : int, optional
        Torch/OpenMP threads of each site's processes (default: the CPUs shared by the sites).
    startup_timeout : float, default 60
        Seconds for the SuperLink to answer before failing.

    Examples
    --------
    >>> sites = {"a": "a.csv", "b": "b.csv"}
    >>> with LocalFederation(sites, workdir="fl") as federation:  # doctest: +SKIP
    ...     federation.run(settings, timeout=600)
    """

    def __init__(
        self,
        sites: Mapping[str, str | os.PathLike],
        *,
        workdir: str | os.PathLike,
        tls: bool = False,
        node_auth: bool = False,
        threads_per_site: int | None = None,
        startup_timeout: float = 60.0,
    ):
        if node_auth and not tls:
            raise ValueError("node authentication needs TLS (tls=True)")
        self.sites = {str(k): Path(v).resolve() for k, v in sites.items()}
        self.workdir = Path(workdir).resolve()
        self.tls = tls
        self.node_auth = node_auth
        cpus = os.cpu_count() or 1
        self.threads_per_site = threads_per_site or max(1, cpus // max(len(self.sites), 1))
        self.startup_timeout = startup_timeout
        self.session = uuid.uuid4().hex
        self.port = 0
        self._processes: list[_Process] = []
        self._tls_files: TLSFiles | None = None
        self._client = None
        #: Highest resident memory (MB) seen per site (its SuperNode and the app processes it
        #: spawned) and for the coordinator (``"server"``: SuperLink and ServerApp), while runs
        #: were polled.
        self.peak_memory_mb: dict[str, float] = {}

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalFederation:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _env(self, site: str | None = None) -> dict[str, str]:
        proxies = {"http_proxy", "https_proxy", "all_proxy", "grpc_proxy"}
        env = {k: v for k, v in os.environ.items() if k.lower() not in proxies}
        bin_dir = str(Path(sys.executable).parent)
        env.update(
            {
                "FLWR_TELEMETRY_ENABLED": "0",
                "FLWR_DISABLE_UPDATE_CHECK": "1",
                "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
                "FLWR_HOME": str(self.workdir / "flwr-home"),
                "NO_PROXY": "127.0.0.1,localhost,::1",
                "no_proxy": "127.0.0.1,localhost,::1",
                "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
                "PYTHONPATH": import_path(),
                "FEDSYNTH_NO_PROGRESS": "1",
                "OMP_NUM_THREADS": str(self.threads_per_site),
                "MKL_NUM_THREADS": str(self.threads_per_site),
                _SESSION: self.session,
            }
        )
        if site is not None:
            env[_SITE] = site
        return env

    def _spawn(self, name: str, argv: list[str], site: str | None = None) -> _Process:
        log = self.workdir / "logs" / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                [str(Path(sys.executable).parent / argv[0]), *argv[1:]],
                env=self._env(site),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
            )
        process = _Process(name, popen, log)
        self._processes.append(process)
        return process

    def start(self) -> None:
        """Start the SuperLink, wait until it answers, then start one SuperNode per site."""
        check_flower_version()
        for folder in ("logs", "flwr-home", "keys"):
            (self.workdir / folder).mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.port = free_port()
        superlink = [
            "flower-superlink",
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--disable-runtime-dependency-installation",
        ]
        if self.tls:
            self._tls_files = TLSFiles.generate(self.workdir / "certificates")
            superlink += [
                "--ssl-certfile",
                str(self._tls_files.server_cert),
                "--ssl-keyfile",
                str(self._tls_files.server_key),
                "--ssl-ca-certfile",
                str(self._tls_files.ca_cert),
            ]
        else:
            superlink.append("--insecure")
        if self.node_auth:
            superlink.append("--enable-supernode-auth")
        self._spawn("superlink", superlink)
        self._wait_for_superlink()
        for site, data in self.sites.items():
            self._start_node(site, data, register=self.node_auth)

    def _start_node(self, site: str, data: Path, *, register: bool) -> _Process:
        node = [
            "flower-supernode",
            "--superlink",
            f"{LOOPBACK}:{self.port}",
            "--host",
            LOOPBACK,
            "--port",
            str(free_port()),
            "--node-config",
            f"site-name={json.dumps(site)} data-path={json.dumps(str(data))}",
        ]
        if self.tls:
            node += ["--root-certificates", str(self._tls_files.ca_cert)]
        else:
            node.append("--insecure")
        if self.node_auth:
            key = self.workdir / "keys" / _safe_name(site)
            public = generate_node_key(key)
            if register:
                self._register_node(site, public)
            node += ["--auth-supernode-private-key", str(key)]
        return self._spawn(f"supernode-{site}", node, site=site)

    def add_site(
        self, site: str, data: str | os.PathLike, *, register: bool = True
    ) -> subprocess.Popen:
        """Start one more SuperNode, e.g. a site that joins late.

        With node authentication, ``register=False`` gives it a key the SuperLink does not
        know: the SuperLink must refuse it. Returns its process.
        """
        self.sites[str(site)] = Path(data).resolve()
        return self._start_node(str(site), self.sites[str(site)], register=register).popen

    def _control(self):
        """The Control API client (Flower internal API)."""
        if self._client is None:
            from flwr.supercore.control.control_http_client import ControlHttpClient
            from flwr.supercore.interceptors.http.runtime_version import (
                RuntimeVersionHttpInterceptor,
            )

            self._client = ControlHttpClient.from_server_address(
                server_address=f"{LOOPBACK}:{self.port}",
                insecure=not self.tls,
                root_certificates=self._tls_files.ca_cert.read_bytes() if self.tls else None,
                interceptors=[RuntimeVersionHttpInterceptor(component_name="fedsynth")],
            )
        return self._client

    def _wait_for_superlink(self) -> None:
        from flwr.proto.control_pb2 import ListRunsRequest

        deadline = time.monotonic() + self.startup_timeout
        while True:
            self._check_alive()
            try:
                self._control().ListRuns(ListRunsRequest())
                return
            except Exception as exc:  # any failure means "not up yet"
                if time.monotonic() > deadline:
                    raise FederationError(
                        f"the SuperLink did not answer within {self.startup_timeout:g} s "
                        f"({type(exc).__name__}: {exc})\n{self.log_tail('superlink')}"
                    ) from exc
                time.sleep(0.3)

    def _register_node(self, site: str, public_key: bytes) -> None:
        from flwr.proto.control_pb2 import RegisterNodeRequest

        self._control().RegisterNode(
            RegisterNodeRequest(public_key=public_key, name=_safe_name(site))
        )

    def _check_alive(self) -> None:
        superlink = self._processes[0]
        if superlink.popen.poll() is not None:
            raise FederationError(
                f"the SuperLink exited with code {superlink.popen.returncode}\n"
                + self.log_tail("superlink")
            )

    def stop(self) -> None:
        """End every process of this federation (idempotent)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        end_processes(_SESSION, self.session)
        for process in self._processes:
            # One that outlives this wait was sent SIGKILL: init reaps it.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=5)
        self._processes = []

    def kill_site(self, site: str) -> None:
        """Kill a site's SuperNode and the app processes it spawned, as a crash would."""
        ours = set(marked_processes(_SESSION, self.session))
        for pid in marked_processes(_SITE, site):
            if pid in ours:
                with ignore_gone():
                    os.kill(pid, signal.SIGKILL)

    def memory_mb(self) -> dict[str, float]:
        """Resident memory (MB) now, per site and for the coordinator (``"server"``)."""
        ours = set(marked_processes(_SESSION, self.session))
        usage = dict.fromkeys([*self.sites, "server"], 0.0)
        for site in self.sites:
            for pid in set(marked_processes(_SITE, site)) & ours:
                usage[site] += rss_mb(pid)
                ours.discard(pid)
        usage["server"] = sum(rss_mb(pid) for pid in ours)
        return usage

    def _sample_memory(self) -> None:
        for name, mb in self.memory_mb().items():
            self.peak_memory_mb[name] = max(self.peak_memory_mb.get(name, 0.0), mb)

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The end of a process's log (``superlink`` or ``supernode-<site>``)."""
        path = self.workdir / "logs" / f"{name}.log"
        if not path.is_file():
            return ""
        text = path.read_text(errors="replace").splitlines()
        return f"--- last lines of {path} ---\n" + "\n".join(text[-lines:])

    # ------------------------------------------------------------------ runs
    def run(
        self,
        settings: RunSettings,
        *,
        timeout: float,
        on_poll: Callable[[], None] | None = None,
        poll_interval: float = 1.0,
    ) -> int:
        """Start a run of fedsynth's app with ``settings`` and wait until it finishes.

        Parameters
        ----------
        settings : RunSettings
            The run config.
        timeout : float
            Seconds the whole run may take; past it the run is stopped and an error raised.
        on_poll : callable, optional
            Called while waiting (e.g. to evaluate round models as they appear).

        Returns
        -------
        int
            The Flower run id.

        Raises
        ------
        FederationError
            When the run fails, the deadline passes or the SuperLink dies; with the server's
            error and the end of the SuperLink's log.
        """
        from flwr.common.serde import fab_to_proto, run_from_proto, user_config_to_proto
        from flwr.proto.control_pb2 import ListRunsRequest, StartRunRequest, StopRunRequest
        from flwr.supercore.fab import Fab

        fab = build_fab(settings)
        request = StartRunRequest(
            fab=fab_to_proto(Fab(hashlib.sha256(fab).hexdigest(), fab, {})),
            override_config=user_config_to_proto(settings.to_run_config()),
        )
        run_id = self._control().StartRun(request).run_id
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            self._sample_memory()
            if on_poll is not None:
                on_poll()
            response = self._control().ListRuns(ListRunsRequest(run_id=run_id))
            status = run_from_proto(response.run_dict[run_id]).status
            if status.status == "finished":
                if status.sub_status != "completed":
                    raise FederationError(
                        f"the federated run {status.sub_status}: "
                        f"{_server_error(settings) or status.details}\n"
                        + self.log_tail("superlink")
                    )
                return run_id
            if time.monotonic() > deadline:
                self._control().StopRun(StopRunRequest(run_id=run_id))
                raise FederationError(
                    f"the federated run did not finish within {timeout:g} s and was stopped\n"
                    + self.log_tail("superlink")
                )
            time.sleep(poll_interval)


def _server_error(settings: RunSettings) -> str | None:
    """The error the ServerApp recorded in its event log, if any."""
    events = Path(settings.out_dir) / "events.jsonl"
    if not events.is_file():
        return None
    for line in reversed(events.read_text().splitlines()):
        event = json.loads(line)
        if event["event"] == "failed":
            return event["error"]
    return None


def _safe_name(site: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in site) or "site"
