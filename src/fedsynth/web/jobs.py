"""Background runs: a dispatcher thread starts one worker process per run, up to a limit.

The queue is the ``runs`` table itself: a run is created ``queued``, the dispatcher claims the
oldest queued run when a slot is free and starts ``python -m fedsynth.web.worker`` for it, in a
process group of its own and with an environment variable naming the run, which every process
it starts inherits: cancelling a run stops the worker and all of these (Flower's SuperLink and
SuperNodes for a federated run, which start sessions of their own). The worker writes progress,
log lines and the final state into the database; the dispatcher only steps in when a worker ends
without doing so (a crash) or is stopped (cancel, server shutdown).

A run the server was computing when it stopped, or crashed, is marked ``interrupted`` at the
next start; it can be run again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# The runtime's own search for the processes of a federation, by a mark in their environment.
from fedsynth.federated.processes import marked_processes
from fedsynth.web.db import Database, RunRecord
from fedsynth.web.storage import Storage

#: Seconds a worker has to end after SIGTERM (and stop what it started) before it is killed.
TERMINATE_GRACE = 10.0
#: Environment variable naming the run of a worker. Every process the worker starts inherits it,
#: Flower's included, which start sessions of their own: a search for it finds them all.
RUN_MARKER = "FEDSYNTH_WEB_RUN"
#: Environment of the workers: nothing phones home, no terminal progress bars in the log.
WORKER_ENVIRONMENT = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FEDSYNTH_NO_PROGRESS": "1",
    "PYTHONUNBUFFERED": "1",
}
INTERRUPTED = "interrupted: the server stopped while this run was computed; run it again"


@dataclass
class _Worker:
    run_id: str
    process: subprocess.Popen
    cancelled: bool = False


class JobManager:
    """Starts, watches and stops the worker processes of queued runs.

    Parameters
    ----------
    db : Database
        The shared database (the queue).
    storage : Storage
        The data directory.
    workers : int
        Runs computed at the same time.
    poll_seconds : float
        Longest wait between two looks at the queue.
    """

    def __init__(self, db: Database, storage: Storage, *, workers: int, poll_seconds: float = 0.5):
        self.db = db
        self.storage = storage
        self.workers = workers
        self.poll_seconds = poll_seconds
        self._running: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Mark the runs a previous server left running as interrupted, then start dispatching."""
        self.recover()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="fedsynth-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop dispatching; stop every worker and mark its run interrupted."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            workers = list(self._running.values())
            self._running.clear()
        for worker in workers:
            _terminate(worker.process, worker.run_id)
            self._finish_stopped(worker.run_id, "interrupted", INTERRUPTED)

    def recover(self) -> list[str]:
        """Mark runs left ``running`` by a previous server as interrupted; returns their ids."""
        interrupted = []
        for run in self.db.list_runs(status=("running",)):
            if run.pid is not None and _is_worker_of(run.pid, run.id):
                _kill_group(run.pid)
            _kill_marked(run.id)
            self._finish_stopped(run.id, "interrupted", INTERRUPTED)
            interrupted.append(run.id)
        active = {r.id for r in self.db.list_runs(status=("running",))}
        self.storage.remove_leftovers(active)
        return interrupted

    def wake(self) -> None:
        """Look at the queue now (a run was just created)."""
        self._wake.set()

    @property
    def running(self) -> list[str]:
        """Ids of the runs whose worker is alive."""
        with self._lock:
            return list(self._running)

    # ------------------------------------------------------------------ cancelling
    def cancel(self, run: RunRecord) -> bool:
        """Cancel a queued or running run; returns whether it was active."""
        if run.status == "queued":
            if self.db.finish_run(run.id, "cancelled", expected=("queued",), stage="cancelled"):
                self.db.append_log(run.id, "cancelled before it started")
                return True
            run = self.db.get_run(run.id) or run  # it started meanwhile
        if run.status != "running":
            return False
        with self._lock:
            worker = self._running.get(run.id)
            if worker is not None:
                worker.cancelled = True
        if worker is not None:
            _terminate(worker.process, run.id)
        else:
            if run.pid is not None and _is_worker_of(run.pid, run.id):
                _kill_group(run.pid)
            _kill_marked(run.id)
        self._finish_stopped(run.id, "cancelled", "cancelled")
        return True

    # ------------------------------------------------------------------ dispatching
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reap()
                self._dispatch()
            except Exception as exc:  # the dispatcher must outlive a database hiccup
                print(f"fedsynth jobs: {type(exc).__name__}: {exc}", file=sys.stderr)
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if len(self._running) >= self.workers:
                    return
            run = self.db.claim_next_run()
            if run is None:
                return
            process = self._spawn(run.id)
            with self._lock:
                self._running[run.id] = _Worker(run.id, process)
            self.db.set_run_pid(run.id, process.pid)
            self.db.append_log(run.id, f"worker process {process.pid} started")

    def _spawn(self, run_id: str) -> subprocess.Popen:
        output = self.storage.worker_output(run_id)
        with open(output, "wb") as handle:
            return subprocess.Popen(
                [sys.executable, "-m", "fedsynth.web.worker", str(self.storage.root), run_id],
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **WORKER_ENVIRONMENT, RUN_MARKER: run_id},
            )

    def _reap(self) -> None:
        with self._lock:
            ended = [w for w in self._running.values() if w.process.poll() is not None]
            for worker in ended:
                del self._running[worker.run_id]
        for worker in ended:
            if worker.cancelled:
                continue
            _kill_marked(worker.run_id)  # what a crashed worker started (Flower) goes too
            code = worker.process.returncode
            tail = _tail(self.storage.worker_output(worker.run_id))
            message = f"the worker process ended unexpectedly (exit code {code})"
            if self.db.finish_run(worker.run_id, "failed", stage="failed", error=message):
                self.db.append_log(worker.run_id, message + (f":\n{tail}" if tail else ""))

    def _finish_stopped(self, run_id: str, status: str, message: str) -> None:
        if self.db.finish_run(run_id, status, stage=status, error=message):
            self.db.append_log(run_id, message)
            self.storage.discard_artifacts(run_id)


def _terminate(process: subprocess.Popen, run_id: str) -> None:
    """SIGTERM to the worker's process group (the worker then stops what it started), SIGKILL
    if it is still there after a grace time, then SIGKILL to anything else of the run."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=TERMINATE_GRACE)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=TERMINATE_GRACE)
    _signal_group(process.pid, signal.SIGKILL)
    _kill_marked(run_id)


def _kill_group(pid: int) -> None:
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + TERMINATE_GRACE
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _marked(run_id: str) -> list[int]:
    """Processes started for a run: those whose environment holds :data:`RUN_MARKER`."""
    return marked_processes(RUN_MARKER, run_id)


def _kill_marked(run_id: str) -> None:
    for pid in _marked(run_id):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _is_worker_of(pid: int, run_id: str) -> bool:
    """Whether process ``pid`` is still the worker of ``run_id`` (pids are reused)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"fedsynth.web.worker" in command and run_id.encode() in command


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])
