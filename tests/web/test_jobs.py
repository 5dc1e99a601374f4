"""The job dispatcher on its own: the worker limit, crashed workers, stopping; and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from fedsynth.cli import main
from fedsynth.web.db import Database, RunRecord
from fedsynth.web.jobs import RUN_MARKER, JobManager, _marked
from fedsynth.web.storage import Storage, new_id

from .conftest import process_alive


def _queue(db: Database, n: int) -> list[str]:
    ids = []
    for i in range(n):
        run_id = new_id()
        db.add_run(
            RunRecord(
                id=run_id,
                dataset_id="0" * 16,
                dataset_name="d",
                kind="central",
                config={},
                status="queued",
                created=f"2026-01-01T00:00:0{i}+00:00",
            )
        )
        ids.append(run_id)
    return ids


def _until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def jobs(tmp_path, monkeypatch):
    """A dispatcher whose workers are stand-in processes: ``jobs.program`` is their code."""
    storage = Storage(tmp_path)
    db = Database(storage.database)
    manager = JobManager(db, storage, workers=2, poll_seconds=0.05)
    manager.program = "import time; time.sleep(60)"

    def spawn(run_id: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", manager.program],
            start_new_session=True,
            env={**os.environ, RUN_MARKER: run_id},
        )

    monkeypatch.setattr(manager, "_spawn", spawn)
    yield manager
    manager.stop()


def test_at_most_the_configured_number_of_runs_at_once(jobs):
    first, second, third = _queue(jobs.db, 3)
    jobs.start()
    _until(lambda: len(jobs.running) == 2)
    time.sleep(0.3)
    status = {r.id: r.status for r in jobs.db.list_runs()}
    assert status == {first: "running", second: "running", third: "queued"}  # oldest first
    jobs.cancel(jobs.db.get_run(first))
    _until(lambda: jobs.db.get_run(third).status == "running")
    jobs.stop()
    status = {r.id: r.status for r in jobs.db.list_runs()}
    assert status == {first: "cancelled", second: "interrupted", third: "interrupted"}


def test_cancel_also_stops_what_the_worker_started_in_other_sessions(jobs):
    # Like Flower's SuperLink and SuperNodes: a child in a session of its own.
    jobs.program = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
        "start_new_session=True); time.sleep(60)"
    )
    (run_id,) = _queue(jobs.db, 1)
    jobs.start()
    _until(lambda: len(_marked(run_id)) == 2)
    jobs.cancel(jobs.db.get_run(run_id))
    _until(lambda: not [pid for pid in _marked(run_id) if process_alive(pid)])
    assert jobs.db.get_run(run_id).status == "cancelled"


def test_a_crashed_worker_fails_its_run_with_its_exit_code(jobs):
    jobs.program = "import sys; print('boom'); sys.exit(3)"
    (run_id,) = _queue(jobs.db, 1)
    jobs.start()
    _until(lambda: jobs.db.get_run(run_id).status == "failed")
    assert "exit code 3" in jobs.db.get_run(run_id).error


def test_serve_is_a_command(capsys):
    assert main(["serve", "--help"]) == 0
    shown = capsys.readouterr().out
    for option in ("--host", "--port", "--data-dir", "--workers", "--max-upload-mb"):
        assert option in shown
