"""Images in the web app: upload a zip, run a tiny generator in the job queue, read the report
with its grids, and the privacy gate and steward approval before any download."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.web.conftest import wait_for
from tests.web.test_image_uploads import image_zip

PASSWORD = "a long password 1"
#: A tiny run: 8 training images of 32x32, two epochs, 8 synthetic images.
TINY = {"generator": "latent_diffusion", "epochs": "2", "images": "8", "report_epochs": "2"}


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', page).group(1)


def login(client: TestClient, name: str, password: str) -> TestClient:
    session = TestClient(client.app, follow_redirects=False)
    response = session.post("/login", data={"name": name, "password": password, "next": "/"})
    assert response.status_code == 303, response.text
    return session


def post_form(session: TestClient, page: str, url: str, **fields) -> object:
    csrf = csrf_of(session.get(page).text)
    return session.post(url, data={"csrf_token": csrf, **fields})


@pytest.fixture
def sessions(client):
    client.app.state.guard.accounts.create("analyst1", "analyst", PASSWORD)
    admin = login(client, "admin", client.app.state.first_password)
    return admin, login(client, "analyst1", PASSWORD)


def test_image_run_reports_grids_and_gates_the_download(client, sessions):
    steward, analyst = sessions
    page = analyst.get("/images").text
    uploaded = analyst.post(
        "/images",
        files={"file": ("scans.zip", image_zip(12))},
        data={"csrf_token": csrf_of(page), "name": "tiny scans"},
    )
    assert uploaded.status_code == 303, uploaded.text
    dataset_url = uploaded.headers["location"]
    page = analyst.get(dataset_url).text
    assert "12 images of 1 x 32 x 32" in page and "0: 6 · 1: 6" in page
    started = post_form(analyst, dataset_url, f"{dataset_url}/runs", label_columns="grade", **TINY)
    assert started.status_code == 303, started.text
    run_id = started.headers["location"].rsplit("/", 1)[1]
    run = wait_for(client, run_id, timeout=240)
    assert run["status"] == "done", client.get(f"/api/runs/{run_id}/log").json()
    assert run["kind"] == "imaging" and run["config"]["label_columns"] == ["grade"]
    assert set(run["artifacts"]) >= {"synthetic_images.zip", "image_report.html", "report.json"}
    log = [line["message"] for line in client.get(f"/api/runs/{run_id}/log").json()["lines"]]
    assert any("8 training images, 4 holdout images" in m for m in log), log
    assert any("epoch" in m for m in log) and any("privacy verdict" in m for m in log)

    # The gate, made to hold: nothing synthetic leaves, no grid is shown to an analyst.
    client.app.state.services.db.finish_run(
        run_id, "done", expected=("done",), privacy="fail", artifacts=run["artifacts"]
    )
    files = f"/api/runs/{run_id}/files"
    assert analyst.get(f"{files}/synthetic_images.zip").status_code == 403
    assert analyst.get(f"/runs/{run_id}/images/image_report.html").status_code == 403
    assert analyst.get(f"/runs/{run_id}/images/image_report_private.html").status_code == 403
    page = analyst.get(f"/runs/{run_id}/report").text
    assert 'id="no-grids"' in page and 'id="metrics"' in page and "membership_inference" in page
    assert analyst.get(f"/runs/{run_id}/release").status_code == 404  # nothing approved

    # A steward sees real and synthetic grids; the override and approval release them.
    page = steward.get(f"/runs/{run_id}/report").text
    assert f"/runs/{run_id}/images/image_report_private.html" in page
    private = steward.get(f"/runs/{run_id}/images/image_report_private.html")
    assert private.status_code == 200 and "sandbox" in private.headers["content-security-policy"]
    assert private.text.count("data:image/png;base64,") == 2  # one grid per grade value
    assert "4 real (left) | 4 synthetic (right)" in private.text
    overridden = post_form(
        steward,
        f"/runs/{run_id}/report",
        f"/runs/{run_id}/override",
        reason="tiny test images, none real",
        confirm="true",
    )
    assert overridden.status_code == 303
    page = analyst.get(f"/runs/{run_id}/report").text
    assert f"/runs/{run_id}/images/image_report.html" in page and "private" not in page.lower()
    public = analyst.get(f"/runs/{run_id}/images/image_report.html").text
    assert public.count("data:image/png;base64,") == 2 and "0 real (left)" in public
    download = analyst.get(f"{files}/synthetic_images.zip")
    assert download.status_code == 200
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        names = archive.namelist()
        with np.load(io.BytesIO(archive.read("images.npz"))) as arrays:
            assert arrays["images"].shape == (8, 1, 32, 32)
        labels = archive.read("labels.csv").decode().splitlines()
    assert sum(n.startswith("png/") for n in names) == 8
    assert labels[0] == "file,grade" and len(labels) == 9

    assert analyst.get(f"/runs/{run_id}/release").status_code == 404
    approved = post_form(
        steward,
        f"/runs/{run_id}/report",
        f"/runs/{run_id}/approve",
        comment="checked the grids by eye",
        confirm="true",
    )
    assert approved.status_code == 303, approved.text
    bundle = analyst.get(f"/runs/{run_id}/release")
    assert bundle.status_code == 200
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as archive:
        members = set(archive.namelist())
    assert {"synthetic_images.zip", "image_report.html", "release.json"} <= members
    assert "image_report_private.html" not in members and "model.zip" not in members
    actions = [e["action"] for e in client.get("/api/audit").json()]
    assert {"image upload", "image run created", "download refused", "release approved"} <= set(
        actions
    )


def test_bad_uploads_and_settings_are_named_and_a_run_is_rerun(client, sessions):
    _, analyst = sessions
    page = analyst.get("/images").text
    refused = analyst.post(
        "/images",
        files={"file": ("scans.zip", image_zip(12, labels=False))},
        data={"csrf_token": csrf_of(page)},
    )
    assert refused.status_code == 422 and "scans.zip: has no labels CSV" in refused.text
    api = client.post("/api/images", files={"file": ("labels.csv", b"file\na.png\n")})
    assert api.status_code == 422 and "labels.csv: is not a zip archive" in api.json()["detail"]
    dataset = client.post("/api/images", files={"file": ("ok.zip", image_zip(12))}).json()
    bad = client.post(
        f"/api/images/{dataset['id']}/runs",
        json={"generator": "latent_diffusion", "epsilon": 1.0, "label_columns": ["file"]},
    )
    detail = bad.json()["detail"]
    assert bad.status_code == 422 and "label column 'file'" in detail and "public images" in detail

    settings = {"generator": "dp_gan", "epochs": 1, "epsilon": 3.0, "label_columns": ["grade"]}
    run = client.post(f"/api/images/{dataset['id']}/runs", json=settings).json()
    assert run["kind"] == "imaging" and run["status"] == "queued"
    assert client.post(f"/api/runs/{run['id']}/cancel").status_code == 200
    again = client.post(f"/api/runs/{run['id']}/rerun")
    assert again.status_code == 202, again.text
    rerun = again.json()
    assert rerun["rerun_of"] == run["id"] and rerun["kind"] == "imaging"
    assert rerun["config"]["epsilon"] == 3.0 and rerun["config"]["label_columns"] == ["grade"]
    client.post(f"/api/runs/{rerun['id']}/cancel")
