"""A federated experiment started from the web app: one uploaded file per site, Flower on
loopback in the worker process, the experiment's scores and the first strategy's synthetic data
offered for download."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from .conftest import upload, wait_for

pytestmark = pytest.mark.slow


def test_a_federated_run_over_one_file_per_site(client, mds_frame):
    sites = []
    for site in ("site_1", "site_2"):
        rows = mds_frame[mds_frame["site"] == site].drop(columns="site")
        sites.append(upload(client, rows.to_csv(index=False).encode(), f"{site}.csv"))
    settings = {
        "dataset_id": sites[0]["id"],
        "generator": "gaussian_copula",
        "families": ["fidelity"],
        "federated": {
            "site_datasets": [sites[1]["id"]],
            "strategies": ["synthetic_sharing"],
            "rounds": 1,
            "local_epochs": 1,
        },
    }
    created = client.post("/api/runs", json=settings)
    assert created.status_code == 202, created.text
    run = wait_for(client, created.json()["id"], timeout=300)
    log = [line["message"] for line in client.get(f"/api/runs/{run['id']}/log").json()["lines"]]
    assert run["status"] == "done", log
    assert run["kind"] == "federated"
    assert any(line.startswith("synthetic_sharing round 1") for line in log)
    assert {"experiment-scores.csv", "experiment-summary.csv", "experiment-scores.png"} <= set(
        run["artifacts"]
    )
    summary = pd.read_csv(
        io.BytesIO(client.get(f"/api/runs/{run['id']}/files/experiment-summary.csv").content)
    )
    assert set(summary["method"]) == {"centralized", "isolated", "synthetic_sharing"}
    page = client.get(f"/runs/{run['id']}/report")
    assert page.status_code == 200 and "Federated experiment" in page.text
    assert "synthetic_sharing" in page.text
    plot = client.get(f"/runs/{run['id']}/view/experiment-scores.png")
    assert plot.headers["content-type"] == "image/png" and plot.content[:4] == b"\x89PNG"
    if run["download_allowed"]:
        synthetic = client.get(f"/api/runs/{run['id']}/files/synthetic.csv")
        frame = pd.read_csv(io.BytesIO(synthetic.content))
        assert "patient_id" not in frame.columns and len(frame) > 0
    storage = client.app.state.services.storage
    assert not (storage.run_dir(run["id"]) / "experiment").exists()  # only validated data stay
