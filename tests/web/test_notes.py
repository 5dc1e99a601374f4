"""Clinical notes in the web app: a text run with progress, report and gate; the blinded review."""

from __future__ import annotations

import hashlib
import io
import re
import time
import zipfile

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from fedsynth.text.corpus import simulate_notes

PASSWORD = "a long password 1"


class HashEmbedder:
    """Deterministic unit vectors from a hash of the text (no model to load)."""

    def embed(self, texts):
        out = np.empty((len(texts), 16))
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            out[i] = np.random.default_rng(seed).normal(size=16)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', page).group(1)


def login(client: TestClient, name: str, password: str) -> TestClient:
    session = TestClient(client.app, follow_redirects=False)
    response = session.post("/login", data={"name": name, "password": password, "next": "/"})
    assert response.status_code == 303, response.text
    return session


@pytest.fixture
def app_client(client, mds_frame):
    client.app.state.notes_backend = "fake"
    client.app.state.notes_embedder = HashEmbedder()
    accounts = client.app.state.guard.accounts
    accounts.create("rater2", "steward", PASSWORD)
    accounts.create("analyst1", "analyst", PASSWORD)
    return client


@pytest.fixture
def notes_csv(mds_frame) -> bytes:
    buffer = io.BytesIO()
    simulate_notes(mds_frame.iloc[:40], seed=2)[["text"]].to_csv(buffer, index=False)
    return buffer.getvalue()


def wait_done(session: TestClient, run_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = session.get(f"/api/notes/{run_id}").json()
        if run["status"] in ("done", "failed"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.1)


def start_run(
    session: TestClient, content: bytes, filename: str = "notes.csv", n: int = 4, **extra: str
) -> str:
    page = session.get("/notes").text
    form = {"csrf_token": csrf_of(page), "notes": str(n), "epsilon": "2", **extra}
    response = session.post("/notes", files={"file": (filename, content)}, data=form)
    assert response.status_code == 303, response.text
    return response.headers["location"].rsplit("/", 1)[1]


def test_text_run_reports_progress_and_passes_the_gate(app_client, notes_csv):
    analyst = login(app_client, "analyst1", PASSWORD)
    run_id = start_run(analyst, notes_csv)
    run = wait_done(analyst, run_id)
    assert run["status"] == "done", run["error"]
    assert (run["done"], run["total"]) == (4, 4) and run["prompts"] == 4 * (4 + 4)
    assert run["words"] > 0 and run["verdict"] == "pass" and run["released"]
    assert run["report"]["epsilon_spent"] == pytest.approx(2.0)
    page = analyst.get(f"/notes/{run_id}")
    assert "4 of 4 notes" in page.text and "Download the synthetic notes" in page.text
    download = analyst.get(f"/notes/{run_id}/synthetic.csv")
    assert download.status_code == 200
    assert len(pd.read_csv(io.StringIO(download.text))) == 4
    # A zip of .txt files works too; bad uploads are named.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, text in enumerate(pd.read_csv(io.BytesIO(notes_csv))["text"][:6]):
            archive.writestr(f"note{i}.txt", text)
    assert wait_done(analyst, start_run(analyst, buffer.getvalue(), "notes.zip", 1))["verdict"]
    page = analyst.get("/notes").text
    bad = analyst.post(
        "/notes",
        files={"file": ("notes.csv", b"note\nhello\n")},
        data={"csrf_token": csrf_of(page), "notes": "2", "epsilon": "2"},
    )
    assert bad.status_code == 422 and "notes.csv has no" in bad.text


def test_text_run_with_candidate_styles_spends_the_same_epsilon(app_client, notes_csv):
    analyst = login(app_client, "analyst1", PASSWORD)
    run = wait_done(analyst, start_run(analyst, notes_csv, n=2, styles="1"))
    assert run["status"] == "done", run["error"]
    assert run["config"]["candidate_styles"] == "clinical"
    assert run["prompts"] == 2 * (4 + 4) and run["verdict"] == "pass"
    assert run["report"]["epsilon_spent"] == pytest.approx(2.0)


def test_gate_holds_back_until_a_steward_overrides(app_client, notes_csv):
    admin = login(app_client, "admin", app_client.app.state.first_password)
    analyst = login(app_client, "analyst1", PASSWORD)
    run_id = start_run(admin, notes_csv, n=2)
    wait_done(admin, run_id)
    app_client.app.state.notes_store._update(run_id, verdict="fail")
    assert analyst.get(f"/notes/{run_id}/synthetic.csv").status_code == 403
    page = analyst.get(f"/notes/{run_id}").text
    assert "holds these notes back" in page
    refused = analyst.post(
        f"/notes/{run_id}/override", data={"csrf_token": csrf_of(page), "reason": "reviewed ok"}
    )
    assert refused.status_code == 403
    page = admin.get(f"/notes/{run_id}").text
    ok = admin.post(
        f"/notes/{run_id}/override", data={"csrf_token": csrf_of(page), "reason": "checked by hand"}
    )
    assert ok.status_code == 303
    assert analyst.get(f"/notes/{run_id}/synthetic.csv").status_code == 200
    actions = [e["action"] for e in app_client.get("/api/audit").json()]
    assert "text override" in actions and "text download" in actions


def _items(page: str) -> list[str]:
    return re.findall(r'<section class="card" id="item-([0-9a-f]+)">', page)


def _rate(session: TestClient, run_id: str, item: str, scores: tuple[int, ...]):
    page = session.get(f"/notes/{run_id}/review").text
    form = dict(zip(("coherence", "usability", "language", "style"), map(str, scores), strict=True))
    return session.post(f"/review/{item}", data={"csrf_token": csrf_of(page), **form})


def test_blinded_review_rates_and_aggregates(app_client, notes_csv):
    admin = login(app_client, "admin", app_client.app.state.first_password)
    rater2 = login(app_client, "rater2", PASSWORD)
    run_id = start_run(admin, notes_csv, n=4)
    wait_done(admin, run_id)
    page = admin.get(f"/notes/{run_id}").text
    assert (
        admin.post(f"/notes/{run_id}/review", data={"csrf_token": csrf_of(page)}).status_code == 303
    )

    first, second = (
        admin.get(f"/notes/{run_id}/review").text,
        rater2.get(f"/notes/{run_id}/review").text,
    )
    mine, theirs = _items(first), _items(second)
    assert len(mine) == 8 and sorted(mine) == sorted(theirs) and mine != theirs
    # Blinded: once the note's text is taken out, every item's markup is the same.
    sections = re.findall(r'<section class="card" id="item-[0-9a-f]+">(.*?)</section>', first, re.S)
    shapes = {
        re.sub(r"<pre class=\"note\">.*?</pre>|/review/[0-9a-f]+|Note \d+", "", s, flags=re.S)
        for s in sections
    }
    assert len(shapes) == 1
    assert "synthetic" not in shapes.pop().lower()

    store = app_client.app.state.notes_store
    with store.db.connect() as con:
        source = dict(con.execute("SELECT id, source FROM review_items").fetchall())
    real = [i for i in mine if source[i] == "real"]
    fake = [i for i in mine if source[i] == "synthetic"]
    assert len(real) == len(fake) == 4
    assert _rate(admin, run_id, real[0], (2, 2, 2, 2)).status_code == 303
    assert _rate(admin, run_id, real[0], (4, 4, 4, 4)).status_code == 303  # replaces
    assert _rate(admin, run_id, fake[0], (3, 2, 5, 1)).status_code == 303
    assert _rate(rater2, run_id, fake[0], (5, 4, 3, 1)).status_code == 303
    assert _rate(rater2, run_id, fake[1], (6, 1, 1, 1)).status_code == 422
    assert "Update" in admin.get(f"/notes/{run_id}/review").text

    summary = admin.get(
        f"/notes/{run_id}/review/report", headers={"Accept": "application/json"}
    ).json()
    assert summary["raters"] == 2
    real_c, fake_c = summary["by_source"]["real"]["coherence"], summary["by_source"]["synthetic"]
    assert real_c == {"mean": 4.0, "sd": None, "n": 1}
    assert fake_c["coherence"]["mean"] == 4.0 and fake_c["coherence"]["n"] == 2
    assert fake_c["coherence"]["sd"] == pytest.approx(np.std([3, 5], ddof=1))
    assert fake_c["usability"]["mean"] == 3.0 and fake_c["language"]["mean"] == 4.0
    assert summary["gap"]["coherence"] == 0.0 and summary["gap"]["usability"] == -1.0
    assert "Raters" in admin.get(f"/notes/{run_id}/review/report").text


def test_review_is_refused_to_anonymous_users_analysts_and_forged_forms(app_client, notes_csv):
    admin = login(app_client, "admin", app_client.app.state.first_password)
    run_id = start_run(admin, notes_csv, n=2)
    wait_done(admin, run_id)
    page = admin.get(f"/notes/{run_id}").text
    admin.post(f"/notes/{run_id}/review", data={"csrf_token": csrf_of(page)})
    item = _items(admin.get(f"/notes/{run_id}/review").text)[0]

    anonymous = TestClient(app_client.app, follow_redirects=False)
    assert anonymous.get(f"/notes/{run_id}/review").status_code == 303  # to the login page
    form = {"coherence": "3", "usability": "3", "language": "3", "style": "3"}
    refused = anonymous.post(f"/review/{item}", data=form)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/login")

    analyst = login(app_client, "analyst1", PASSWORD)
    denied = analyst.get(f"/notes/{run_id}/review")
    assert denied.status_code == 403 and "only stewards" in denied.text
    page = analyst.get(f"/notes/{run_id}").text
    assert (
        analyst.post(f"/review/{item}", data={"csrf_token": csrf_of(page), **form}).status_code
        == 403
    )
    assert analyst.get(f"/notes/{run_id}/review/report").status_code == 403

    forged = admin.post(f"/review/{item}", data={"csrf_token": "0" * 64, **form})
    assert forged.status_code == 403
    assert app_client.app.state.notes_store.aggregates(run_id)["raters"] == 0
