"""Accounts, roles and a steward's release approval: signed bundle, audit log, downloads."""

from __future__ import annotations

import io
import re
import sqlite3
import zipfile

import pytest
from fastapi.testclient import TestClient

from fedsynth.release import verify_bundle
from fedsynth.release.signing import load_public_key
from fedsynth.web.accounts import check_password, hash_password

from .conftest import QUICK_RUN, auth, make_app, upload, wait_for


@pytest.fixture(scope="module")
def done(tmp_path_factory, mds_csv):
    """An app with a finished run, an analyst with an API token, and the steward's client."""
    app = make_app(tmp_path_factory.mktemp("release"))
    steward = TestClient(app, headers=auth(app))
    steward.__enter__()
    dataset = upload(steward, mds_csv)
    created = steward.post("/api/runs", json={**QUICK_RUN, "dataset_id": dataset["id"]}).json()
    run = wait_for(steward, created["id"])
    assert run["status"] == "done"
    accounts = app.state.guard.accounts
    accounts.create("ana", "analyst", "analyst password 1")
    token = accounts.issue_token("ana", "tests")
    analyst = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    yield {"steward": steward, "analyst": analyst, "run": run, "app": app}
    steward.__exit__(None, None, None)


def login(app, name: str, password: str) -> TestClient:
    session = TestClient(app, follow_redirects=False)
    response = session.post("/login", data={"name": name, "password": password, "next": "/"})
    assert response.status_code == 303, response.text
    return session


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', page).group(1)


def test_passwords_are_salted_scrypt_hashes():
    first, second = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert first != second and first.startswith("scrypt$")
    assert check_password("correct horse battery", first)
    assert not check_password("correct horse battery!", first)
    assert not check_password("x", "not a hash")


def test_an_analyst_can_neither_approve_nor_override(done, tmp_path):
    analyst, run = done["analyst"], done["run"]
    url = f"/api/runs/{run['id']}"
    response = analyst.post(f"{url}/approve", json={"comment": "looks fine to me"})
    assert response.status_code == 403 and "only a data steward" in response.json()["detail"]
    response = analyst.post(f"{url}/privacy-override", json={"confirm": True, "reason": "x" * 20})
    assert response.status_code == 403
    assert analyst.get(f"{url}/release").status_code == 404  # nothing approved yet
    page = login(done["app"], "ana", "analyst password 1").get(f"/runs/{run['id']}/report").text
    assert "approve-form" not in page and "A data steward approves" in page
    assert analyst.get("/api/datasets").status_code == 200  # the analyst's token works


def test_the_approve_form_needs_the_csrf_token(done):
    session = login(done["app"], "admin", done["app"].state.first_password)
    url = f"/runs/{done['run']['id']}/approve"
    forged = session.post(url, data={"comment": "approved for the network", "confirm": "true"})
    assert forged.status_code == 403 and "CSRF" in forged.text


def test_a_steward_approves_and_the_bundle_verifies(done, tmp_path):
    steward, run = done["steward"], done["run"]
    session = login(done["app"], "admin", done["app"].state.first_password)
    page = session.get(f"/runs/{run['id']}/report").text
    assert "approve-form" in page
    form = {"comment": "approved for the network", "confirm": "true", "csrf_token": csrf_of(page)}
    response = session.post(f"/runs/{run['id']}/approve", data=form)
    assert response.status_code == 303, response.text
    approval = steward.get(f"/api/runs/{run['id']}/approval").json()
    assert approval["approved_by"] == "admin"
    entry = next(e for e in steward.get("/api/audit").json() if e["action"] == "release approved")
    assert entry["actor"] == "user:admin" and entry["target"] == run["id"]
    assert entry["detail"]["manifest_sha256"] == approval["manifest_sha256"]
    assert entry["detail"]["comment"] == "approved for the network"
    assert entry["time"] and entry["detail"]["name"] == "admin"

    bundle = tmp_path / "release.zip"
    bundle.write_bytes(done["analyst"].get(f"/api/runs/{run['id']}/release").content)
    key = tmp_path / "server.pub"
    key.write_bytes(steward.get("/api/release-key").content)
    verified = verify_bundle(bundle, load_public_key(key))
    assert verified.manifest_sha256 == approval["manifest_sha256"]
    assert verified.approval["name"] == "admin"
    assert verified.approval["comment"] == "approved for the network"
    assert sorted(verified.files) == [
        "metadata.json",
        "release.json",
        "report.html",
        "report.json",
        "synthetic.csv",
        "synthetic.parquet",
    ]
    assert verified.provenance["generator"]["name"] == "gaussian_copula"
    assert verified.provenance["federation"] is None
    with zipfile.ZipFile(bundle) as archive:
        assert not any("model" in name for name in archive.namelist())
    again = steward.post(f"/api/runs/{run['id']}/approve", json={"comment": "once more please"})
    assert again.status_code == 409
    assert "release download" in [e["action"] for e in steward.get("/api/audit").json()]


def test_a_failed_privacy_check_needs_a_stewards_override_first(done):
    steward, analyst = done["steward"], done["analyst"]
    db = done["app"].state.services.db
    run = steward.post(f"/api/runs/{done['run']['id']}/rerun").json()
    run = wait_for(steward, run["id"])
    with sqlite3.connect(db.path) as con:
        con.execute("UPDATE runs SET privacy = 'fail' WHERE id = ?", (run["id"],))
    url = f"/api/runs/{run['id']}"
    response = steward.post(f"{url}/approve", json={"comment": "approved for the network"})
    assert response.status_code == 409 and "override" in response.json()["detail"]
    reason = {"confirm": True, "reason": "reviewed by the committee"}
    assert analyst.post(f"{url}/privacy-override", json=reason).status_code == 403
    assert steward.post(f"{url}/privacy-override", json=reason).status_code == 200
    response = steward.post(f"{url}/approve", json={"comment": "approved for the network"})
    assert response.status_code == 200
    data = io.BytesIO(steward.get(f"{url}/release").content)
    with zipfile.ZipFile(data) as archive:
        assert b"reviewed by the committee" in archive.read("signature.json")


def test_accounts_page_creates_users_and_tokens(done):
    session = login(done["app"], "admin", done["app"].state.first_password)
    page = session.get("/accounts").text
    form = {"name": "bob", "role": "analyst", "password": "short", "csrf_token": csrf_of(page)}
    assert session.post("/accounts", data=form).status_code == 422
    form["password"] = "a long enough password"
    assert "Account bob (analyst) created" in session.post("/accounts", data=form).text
    bob = login(done["app"], "bob", "a long enough password")
    page = bob.get("/accounts").text
    assert 'id="account-form"' not in page  # analysts do not manage accounts
    made = bob.post("/accounts/token", data={"label": "cron", "csrf_token": csrf_of(page)}).text
    token = re.search(r'id="new-token">([^<]+)<', made).group(1)
    client = TestClient(done["app"], headers={"Authorization": f"Bearer {token}"})
    assert client.get("/api/runs").status_code == 200
    create = bob.post("/accounts", data={**form, "name": "eve", "csrf_token": csrf_of(page)})
    assert create.status_code == 403
