"""Fixtures of the web app tests: a small MDS cohort as CSV, apps on temporary data directories."""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import fedsynth
from fedsynth.exceptions import DataWarning
from fedsynth.web import WebSettings, create_app

#: A fast run: the copula, and SAFE's cheapest family (privacy is always added).
QUICK_RUN = {"generator": "gaussian_copula", "families": ["fidelity"]}


@pytest.fixture(scope="session")
def mds_frame():
    """200 simulated MDS patients at 3 sites (no real patient)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return fedsynth.datasets.mds_cohort(n=200, sites=3, seed=5)


@pytest.fixture(scope="session")
def mds_csv(mds_frame) -> bytes:
    """The cohort as CSV bytes, as a user would upload it."""
    buffer = io.BytesIO()
    mds_frame.to_csv(buffer, index=False)
    return buffer.getvalue()


def make_app(data_dir: Path, **settings):
    """The web app on ``data_dir``; dispatching looks at the queue often, to keep tests fast."""
    return create_app(WebSettings(data_dir=data_dir, poll_seconds=0.1, **settings))


def auth(app) -> dict[str, str]:
    """The bearer header of an app (the API token of its first account, a steward)."""
    return {"Authorization": f"Bearer {app.state.setup_token}"}


@pytest.fixture
def started(tmp_path) -> Iterator[Callable[..., TestClient]]:
    """``started(**settings)``: a client of a running app (lifespan on) on ``tmp_path / "data"``,
    sending the token; every client is closed (jobs stopped) at the end."""
    clients: list[TestClient] = []

    def start(**settings) -> TestClient:
        app = make_app(tmp_path / "data", **settings)
        client = TestClient(app, headers=auth(app))
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(started) -> TestClient:
    """A client of a running app, with the token."""
    return started()


def upload(client: TestClient, content: bytes, filename: str = "mds.csv", **form) -> dict:
    """Upload a table; returns the answer's JSON (asserting it was accepted)."""
    response = client.post("/api/datasets", files={"file": (filename, content)}, data=form)
    assert response.status_code == 201, response.text
    return response.json()


def process_alive(pid: int) -> bool:
    """Whether a process runs (a zombie, ended but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return False


def wait_for(
    client: TestClient,
    run_id: str,
    states=("done", "failed", "cancelled", "interrupted"),
    *,
    timeout: float = 120.0,
) -> dict:
    """Poll a run until its status is one of ``states``; returns the run."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.get(f"/api/runs/{run_id}").json()
        if run["status"] in states:
            return run
        if time.monotonic() > deadline:
            log = client.get(f"/api/runs/{run_id}/log").json()["lines"]
            raise AssertionError(f"run still {run['status']} after {timeout} s: {log}")
        time.sleep(0.2)
