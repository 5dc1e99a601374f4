"""The pages without a browser: login, CSRF protection, escaping, forms and their errors."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from .conftest import upload


@pytest.fixture
def browser(client) -> TestClient:
    """A client of the same app without the token header, logged in (as the first account, a
    steward) with a session cookie."""
    session = TestClient(client.app, follow_redirects=False)
    response = session.post("/login", data={**admin(client), "next": "/"})
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    return session


def admin(client) -> dict[str, str]:
    """The login form's fields of the first account."""
    return {"name": "admin", "password": client.app.state.first_password}


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', page).group(1)


def test_login_refuses_a_wrong_password_and_open_redirects(client):
    anonymous = TestClient(client.app, follow_redirects=False)
    for name, password in (("admin", "nope"), ("nobody", client.app.state.first_password)):
        wrong = anonymous.post("/login", data={"name": name, "password": password, "next": "/"})
        assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    for target in ("//evil.example/", "https://evil.example/", "/\\evil"):
        response = anonymous.post("/login", data={**admin(client), "next": target})
        assert response.headers["location"] == "/"
    response = anonymous.post("/login", data={**admin(client), "next": "/runs"})
    assert response.headers["location"] == "/runs"
    actions = [e["action"] for e in client.get("/api/audit").json()]
    assert "login refused" in actions and "login" in actions


def test_every_page_renders_with_security_headers(browser, client, mds_csv):
    dataset = upload(client, mds_csv)
    for path in ("/", "/runs", "/runs/new", "/audit", f"/datasets/{dataset['id']}"):
        response = browser.get(path)
        assert response.status_code == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "SAMEORIGIN"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert browser.get("/static/style.css").status_code == 200
    missing = browser.get(f"/datasets/{'0' * 16}")
    assert missing.status_code == 404 and "no dataset with id" in missing.text
    assert browser.get("/runs/not-an-id").status_code == 422


def test_forms_need_the_csrf_token_of_the_session(browser, mds_csv):
    page = browser.get("/").text
    files = {"file": ("mds.csv", mds_csv, "text/csv")}
    forged = browser.post("/datasets", files=files, data={"csrf_token": "0" * 64})
    assert forged.status_code == 403 and "CSRF" in forged.text
    missing = browser.post("/datasets", files=files)
    assert missing.status_code == 403
    other_origin = browser.post(
        "/datasets",
        files=files,
        data={"csrf_token": csrf_of(page)},
        headers={"Origin": "https://evil.example"},
    )
    assert other_origin.status_code == 403 and "cross-origin" in other_origin.text
    api_forged = browser.post("/api/runs", json={"dataset_id": "0" * 16})
    assert api_forged.status_code == 403  # the API with a cookie needs the token too
    accepted = browser.post("/datasets", files=files, data={"csrf_token": csrf_of(page)})
    assert accepted.status_code == 303 and accepted.headers["location"].startswith("/datasets/")


def test_user_text_is_escaped_and_rows_are_never_shown(browser, client):
    frame = pd.DataFrame(
        {
            "<script>alert(1)</script>": ["a", "b"] * 20,
            "name": [f"Jane Doe {i}" for i in range(40)],
            "age": [61, 70, 66, 58] * 10,
            "rare": ["common"] * 38 + ["one patient's", "another"],
        }
    )
    dataset = upload(client, frame.to_csv(index=False).encode(), name='<img src=x onerror="1">')
    page = browser.get(f"/datasets/{dataset['id']}").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x" in page
    assert "Jane Doe" not in page  # identifier values are never shown
    assert "one patient" not in page and "held by fewer than 5 rows not shown" in page
    assert "common (38)" in page
    assert "<img src=x" not in browser.get("/").text


def test_metadata_form_saves_and_shows_problems_by_column(browser, client, mds_csv):
    dataset = upload(client, mds_csv)
    url = f"/datasets/{dataset['id']}"
    page = browser.get(url).text
    names = [c["name"] for c in dataset["columns"]]
    form = {"csrf_token": csrf_of(page)}
    for index, column in enumerate(dataset["columns"]):
        form[f"kind_{index}"] = column["kind"]
        if column["name"] in dataset["genomic"]:
            form[f"genomic_{index}"] = "on"
    form[f"kind_{names.index('complex_karyotype')}"] = "categorical"
    saved = browser.post(f"{url}/metadata", data=form)
    assert saved.status_code == 303 and saved.headers["location"] == f"{url}?saved=1"
    assert (
        client.get(f"/api/datasets/{dataset['id']}").json()["columns"][
            names.index("complex_karyotype")
        ]["kind"]
        == "categorical"
    )
    form[f"kind_{names.index('age')}"] = "duration"  # a second duration column
    refused = browser.post(f"{url}/metadata", data=form)
    assert refused.status_code == 422
    assert "only one survival pair" in refused.text
    form[f"kind_{names.index('age')}"] = "event"  # ages are not 0/1: a problem of the column
    form[f"kind_{names.index('os_status')}"] = "numeric"
    shown = browser.post(f"{url}/metadata", data=form, follow_redirects=True).text
    row = shown[shown.index('data-column="age"') :]
    row = row[: row.index("</tr>")]
    assert "expected only [0, 1]" in row and 'class="problem"' in row


def test_new_run_form_shows_every_problem_and_starts_a_run(browser, client, mds_csv):
    dataset = upload(client, mds_csv)
    page = browser.get(f"/runs/new?dataset={dataset['id']}").text
    assert f'<option value="{dataset["id"]}" selected>' in page
    form = {
        "csrf_token": csrf_of(page),
        "dataset_id": dataset["id"],
        "generator": "gaussian_copula",
        "epochs": "10",
        "conditions": "sex=F\nnot a pair",
        "mode": "central",
        "families": "fidelity",
        "holdout_fraction": "0.3",
        "seed": "0",
    }
    refused = browser.post("/runs", data=form)
    assert refused.status_code == 422 and "expected one COLUMN=VALUE per line" in refused.text
    assert "sex=F\nnot a pair" in refused.text  # the entries are kept
    form["conditions"] = "sex=F"
    refused = browser.post("/runs", data=form)
    assert refused.status_code == 422 and "not trained in epochs" in refused.text
    form["epochs"] = ""
    started = browser.post("/runs", data=form)
    assert started.status_code == 303
    run_id = started.headers["location"].rsplit("/", 1)[1]
    run = client.get(f"/api/runs/{run_id}").json()
    assert run["config"]["conditions"] == {"sex": "F"}
    page = browser.get(f"/runs/{run_id}").text
    assert 'id="cancel"' in page and f'data-run="{run_id}"' in page
    cancelled = browser.post(f"/runs/{run_id}/cancel", data={"csrf_token": csrf_of(page)})
    assert cancelled.status_code == 303
    page = browser.get(f"/runs/{run_id}").text
    assert 'id="rerun"' in page and "cancelled" in page


def test_federated_form_becomes_a_federated_request(browser, client, mds_csv):
    dataset = upload(client, mds_csv)
    page = browser.get("/runs/new").text
    form = {
        "csrf_token": csrf_of(page),
        "dataset_id": dataset["id"],
        "generator": "gaussian_copula",
        "mode": "federated",
        "site_source": "column",
        "site_column": "site",
        "strategies": ["synthetic_sharing", "generator_sharing"],
        "rounds": "2",
        "local_epochs": "1",
        "families": ["fidelity", "genomic"],
    }
    started = browser.post("/runs", data=form)
    assert started.status_code == 303, started.text
    run = client.get(f"/api/runs/{started.headers['location'].rsplit('/', 1)[1]}").json()
    assert run["kind"] == "federated"
    assert run["config"]["federated"]["strategies"] == ["synthetic_sharing", "generator_sharing"]
    assert run["config"]["families"] == ["fidelity", "genomic", "privacy"]
    client.post(f"/api/runs/{run['id']}/cancel")


def test_secure_aggregation_box_reaches_the_request(browser, client, mds_csv):
    dataset = upload(client, mds_csv)
    page = browser.get("/runs/new").text
    assert 'name="secure_aggregation"' in page
    form = {
        "csrf_token": csrf_of(page),
        "dataset_id": dataset["id"],
        "generator": "tvae",
        "mode": "federated",
        "site_source": "column",
        "site_column": "site",
        "strategies": ["synthetic_sharing"],
        "secure_aggregation": "true",
    }
    refused = browser.post("/runs", data=form)
    assert refused.status_code == 422
    assert "secure_aggregation applies" in refused.text
    assert client.get("/api/runs").json() == []


def test_logout_ends_the_session(browser):
    page = browser.get("/").text
    response = browser.post("/logout", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert browser.get("/").status_code == 303
