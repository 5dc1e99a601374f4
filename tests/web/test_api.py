"""The REST API with FastAPI's TestClient: every endpoint, access control, bad uploads, runs in
worker processes, the privacy gate, and persistence across a restart."""

from __future__ import annotations

import io
import json
import sqlite3
import time

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from fedsynth.core.registry import available_generators, get_generator_class
from fedsynth.web.jobs import _marked

from .conftest import QUICK_RUN, auth, make_app, process_alive, upload, wait_for

# Differential privacy on a small table: its ranges and categories declared public knowledge.
DP_RUN = {"generator": "bayesian_network", "epsilon": 2.0, "public_domain": True}
# A generator that trains long enough to be caught running (cancel, restart).
LONG_RUN = {"generator": "ctgan", "epochs": 100_000, "families": ["fidelity"]}


def wait_running(client: TestClient, run_id: str) -> dict:
    """Wait until a run's worker process is training."""
    return wait_for(client, run_id, ("running",)) and _wait_stage(client, run_id, "training")


def _wait_stage(client: TestClient, run_id: str, stage: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = client.get(f"/api/runs/{run_id}").json()
        if stage in run["stage"]:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run never reached {stage!r}: {run}")


def pid_of(client: TestClient, run_id: str) -> int:
    database = client.app.state.services.db
    return database.get_run(run_id).pid


# ---------------------------------------------------------------------- access
def test_health_is_the_only_open_api_route(client):
    anonymous = TestClient(client.app)
    assert anonymous.get("/api/health").json()["status"] == "ok"
    refused = []
    for path, operations in client.app.openapi()["paths"].items():
        if path == "/api/health":
            continue
        for method in operations:
            url = path.replace("{dataset_id}", "0" * 16).replace("{run_id}", "0" * 16)
            url = url.replace("{name}", "report.html")
            response = anonymous.request(method, url)
            assert response.status_code == 401, (method, url, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            refused.append(f"{method} {path}")
    assert len(refused) >= 15
    wrong = anonymous.get("/api/datasets", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and "invalid access token" in wrong.json()["detail"]


def test_pages_redirect_to_login_without_a_session(client):
    anonymous = TestClient(client.app, follow_redirects=False)
    for path in ("/", "/runs", "/runs/new", "/audit", f"/datasets/{'0' * 16}"):
        response = anonymous.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")
    assert anonymous.get("/login").status_code == 200


def test_openapi_schema_is_served_behind_the_token(client):
    assert TestClient(client.app).get("/api/openapi.json").status_code == 401
    schema = client.get("/api/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/api/datasets",
        "/api/datasets/{dataset_id}/metadata",
        "/api/runs",
        "/api/runs/{run_id}/files/{name}",
        "/api/runs/{run_id}/privacy-override",
        "/api/audit",
    ):
        assert path in paths
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert not any(path.startswith(("/runs", "/login")) for path in paths)  # pages stay out


def test_generators_say_which_options_they_take(client):
    generators = {g["name"]: g for g in client.get("/api/generators").json()}
    assert set(generators) == set(available_generators("tabular"))
    assert generators["gaussian_copula"]["epochs"] is False
    assert generators["gaussian_copula"]["dp"] is True
    assert generators["ctgan"]["epochs"] is True and generators["ctgan"]["weights"] is True


# ---------------------------------------------------------------------- uploads
def test_upload_infers_metadata_and_never_returns_a_row(client, mds_csv, mds_frame):
    dataset = upload(client, mds_csv, name="MDS cohort")
    assert dataset["name"] == "MDS cohort" and dataset["rows"] == len(mds_frame)
    assert dataset["ready"] and dataset["problems"] == []
    assert dataset["survival"] == ["os_months", "os_status"] and dataset["site"] == "site"
    assert dataset["identifiers"] == ["patient_id"]
    assert "TP53" in dataset["genomic"]
    columns = {c["name"]: c for c in dataset["columns"]}
    assert columns["patient_id"]["notes"][0].startswith("excluded as an identifier")
    assert columns["patient_id"]["details"] == "identifier: values not shown"
    assert columns["age"]["details"].startswith("range ")
    text = client.get(f"/api/datasets/{dataset['id']}").text
    assert "MDS-00001" not in text  # no identifier value, hence no row, is ever sent
    listed = client.get("/api/datasets").json()
    assert [d["id"] for d in listed] == [dataset["id"]]


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


BAD_UPLOADS = {
    "empty": ("data.csv", b"", 422, "is empty (0 bytes)"),
    "wrong type": ("data.xlsx", b"PK\x03\x04 a workbook", 415, "expected a CSV"),
    "binary named csv": ("data.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00", 415, "binary data"),
    "fake parquet": ("data.parquet", b"age,sex\n61,F\n", 415, "not a Parquet file"),
    "malformed csv": (
        "data.csv",
        b"age,sex\n61,F\n70,M,extra,fields\n55,F\n",
        422,
        "line 3 has 4 field(s) where the header has 2",
    ),
    "header only": ("data.csv", b"age,sex\n", 422, "has no data rows"),
    "repeated column": ("data.csv", b"age,age\n61,62\n", 422, "repeats the column name"),
    "one column": ("data.csv", b"age sex\n61 F\n", 422, "reads as a single column"),
    "nested values": (
        "data.parquet",
        _parquet(pd.DataFrame({"drugs": [["a", "b"], ["c"]], "age": [61, 70]})),
        422,
        "nested values",
    ),
}


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=list(BAD_UPLOADS))
def test_bad_uploads_get_a_clear_error(client, case):
    filename, content, status, message = BAD_UPLOADS[case]
    response = client.post("/api/datasets", files={"file": (filename, content)})
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert filename in response.json()["detail"]  # the file is named
    assert client.get("/api/datasets").json() == []  # nothing half-stored
    assert not [p for p in (client.app.state.services.storage.root / "datasets").iterdir()]


def test_an_upload_above_the_limit_is_refused_before_it_is_stored(started):
    client = started(max_upload_mb=0.01)
    content = b"age,sex\n" + b"61,F\n" * 5000  # 25 kB
    response = client.post("/api/datasets", files={"file": ("big.csv", content)})
    assert response.status_code == 413
    assert "upload limit" in response.json()["detail"]
    # Just above the file limit but below the request limit: the upload check says so.
    small = started(max_upload_mb=0.01, token="x" * 16)
    response = small.post("/api/datasets", files={"file": ("big.csv", b"a\n" + b"1\n" * 6000)})
    assert response.status_code == 413 and "'big.csv' is larger than" in response.json()["detail"]


def test_a_column_of_identifiers_is_excluded_and_named(client):
    frame = pd.DataFrame(
        {"mrn": [f"MRN{i:05d}" for i in range(40)], "age": [61, 70] * 20, "sex": ["F", "M"] * 20}
    )
    dataset = upload(client, _csv(frame), "ids.csv")
    assert dataset["ready"] and dataset["identifiers"] == ["mrn"]
    note = next(n for n in dataset["notes"] if n["column"] == "mrn")
    assert "excluded as an identifier" in note["message"]
    assert "MRN00001" not in json.dumps(dataset)


def test_a_table_of_identifiers_only_is_stored_with_its_problem(client):
    frame = pd.DataFrame(
        {"patient_id": [f"P{i}" for i in range(30)], "mrn": [f"M{i}" for i in range(30)]}
    )
    dataset = upload(client, _csv(frame), "only_ids.csv")
    assert not dataset["ready"]
    assert "nothing to learn" in dataset["problems"][0]["message"]
    response = client.post("/api/runs", json={"dataset_id": dataset["id"]})
    assert response.status_code == 422 and "nothing to learn" in response.json()["detail"]


def test_parquet_and_semicolon_csv_are_read(client, mds_frame):
    buffer = io.BytesIO()
    mds_frame.head(50).to_parquet(buffer, index=False)
    dataset = upload(client, buffer.getvalue(), "mds.parquet")
    assert dataset["file_format"] == "parquet" and dataset["rows"] == 50
    text = b"age;sex;hb\n61;F;10.5\n70;M;9.1\n"
    dataset = upload(client, text, "european.csv")
    assert [c["name"] for c in dataset["columns"]] == ["age", "sex", "hb"]


def test_data_problems_are_listed_by_column(client):
    frame = pd.DataFrame(
        {
            "age": [61, 70, 55, 80] * 10,
            "os_months": [12.0, -3.0, 40.0, 8.0] * 10,
            "os_status": [1, 0, 1, 3] * 10,
        }
    )
    dataset = upload(client, _csv(frame), "survival.csv")
    # The event column is neither 0/1 nor competing risks 0..K, so no survival pair is
    # inferred: name it.
    updated = client.put(
        f"/api/datasets/{dataset['id']}/metadata",
        json={"columns": {"os_months": {"kind": "duration"}, "os_status": {"kind": "event"}}},
    ).json()
    assert not updated["ready"]
    by_column = {c["name"]: c["problems"] for c in updated["columns"]}
    assert "negative survival time" in by_column["os_months"][0]
    assert "expected only [0, 1]" in by_column["os_status"][0]


# ---------------------------------------------------------------------- metadata
def test_metadata_edits_are_checked_and_saved(client, mds_csv):
    dataset = upload(client, mds_csv)
    url = f"/api/datasets/{dataset['id']}/metadata"
    body = {
        "columns": {
            "complex_karyotype": {"kind": "categorical"},
            "TP53": {"genomic": False, "kind": "binary"},
        }
    }
    updated = client.put(url, json=body).json()
    columns = {c["name"]: c for c in updated["columns"]}
    assert columns["complex_karyotype"]["kind"] == "categorical"
    assert "TP53" not in updated["genomic"]
    assert client.get(f"/api/datasets/{dataset['id']}").json()["genomic"] == updated["genomic"]

    second_duration = client.put(url, json={"columns": {"age": {"kind": "duration"}}})
    assert second_duration.status_code == 422
    assert "only one survival pair" in second_duration.json()["detail"]
    genomic_age = client.put(url, json={"columns": {"age": {"kind": "numeric", "genomic": True}}})
    assert genomic_age.status_code == 422
    assert genomic_age.json()["problems"][0]["column"] == "age"
    unknown = client.put(url, json={"columns": {"nope": {"kind": "numeric"}}})
    assert unknown.status_code == 422 and "'nope'" in unknown.json()["detail"]
    bad_kind = client.put(url, json={"columns": {"age": {"kind": "date"}}})
    assert bad_kind.status_code == 422
    # The failed edits changed nothing.
    assert client.get(f"/api/datasets/{dataset['id']}").json()["metadata"] == updated["metadata"]


def test_deleting_a_dataset(client, mds_csv):
    dataset = upload(client, mds_csv)
    assert client.delete(f"/api/datasets/{dataset['id']}").status_code == 204
    assert client.get(f"/api/datasets/{dataset['id']}").status_code == 404
    assert client.delete(f"/api/datasets/{dataset['id']}").status_code == 404


# ---------------------------------------------------------------------- run settings
def _no_dp_generator() -> str | None:
    return next(
        (
            n
            for n in available_generators("tabular")
            if "dp" not in get_generator_class(n)._param_names()
        ),
        None,
    )


def test_run_settings_are_checked_before_queueing(client, mds_csv):
    dataset = upload(client, mds_csv)

    def refused(**settings) -> str:
        response = client.post("/api/runs", json={"dataset_id": dataset["id"], **settings})
        assert response.status_code == 422, response.text
        return response.json()["detail"]

    assert "not trained in epochs" in refused(generator="gaussian_copula", epochs=5)
    assert "set epsilon" in refused(public_domain=True)
    assert "'nope'" in refused(conditions={"nope": "x"})
    assert "'patient_id'" in refused(conditions={"patient_id": "MDS-00001"})
    assert "not a value of the column" in refused(conditions={"sex": "X"})
    assert "conditions or rebalancing" in refused(
        conditions={"sex": "F"}, rebalance={"column": "TP53", "shares": {"1": 0.3}}
    )
    assert "rebalancing" in refused(rebalance={"column": "TP53", "shares": {"7": 0.3}})
    # What each strategy does with weights is read from the strategies themselves.
    assert "no trainable weights to average (fedavg); use synthetic_sharing or " in refused(
        federated={"site_column": "site", "strategies": ["fedavg"]}
    )
    assert "either by a site column" in refused(federated={})
    assert (
        "secure_aggregation applies to the strategies that average weights (fedavg, fedprox)"
        in refused(
            generator="tvae",
            federated={
                "site_column": "site",
                "strategies": ["synthetic_sharing"],
                "secure_aggregation": True,
            },
        )
    )
    assert "not a column" in refused(federated={"site_column": "hospital"})
    no_dp = _no_dp_generator()
    if no_dp is not None:
        assert "no differential privacy" in refused(generator=no_dp, epsilon=1.0)
    invalid = client.post("/api/runs", json={"dataset_id": dataset["id"], "rows": 0})
    assert invalid.status_code == 422 and "rows" in invalid.json()["detail"]
    unknown = client.post("/api/runs", json={"dataset_id": "0" * 16})
    assert unknown.status_code == 404
    assert client.get("/api/runs").json() == []  # nothing was queued


# ---------------------------------------------------------------------- a run
# One app and one finished run serve the tests below, in this order; the last one restarts it.
@pytest.fixture(scope="module")
def served(tmp_path_factory, mds_csv):
    app = make_app(tmp_path_factory.mktemp("served"))
    client = TestClient(app, headers=auth(app))
    client.__enter__()
    dataset = upload(client, mds_csv)
    settings = {**QUICK_RUN, **DP_RUN, "dataset_id": dataset["id"], "rows": 150}
    created = client.post("/api/runs", json=settings)
    assert created.status_code == 202 and created.json()["status"] == "queued"
    yield {"client": client, "dataset": dataset, "run": wait_for(client, created.json()["id"])}
    client.__exit__(None, None, None)


def test_a_run_from_queue_to_downloads(served, mds_frame):
    client, dataset, run = served["client"], served["dataset"], served["run"]
    assert run["status"] == "done", client.get(f"/api/runs/{run['id']}/log").json()
    assert run["progress"] == 1.0 and run["privacy"] in ("pass", "warn")
    assert run["config"]["families"] == ["fidelity", "privacy"]  # privacy always checked
    assert set(run["artifacts"]) == {
        "synthetic.csv",
        "synthetic.parquet",
        "model.zip",
        "report.html",
        "report.json",
    }
    log = [line["message"] for line in client.get(f"/api/runs/{run['id']}/log").json()["lines"]]
    assert log[0] == "queued" and any(line.startswith("SAFE report:") for line in log)
    assert any(line.startswith("differential privacy spent") for line in log)
    assert run["config"]["epsilon"] == 2.0 and run["config"]["public_domain"] is True
    later = client.get(f"/api/runs/{run['id']}/log", params={"after": 3}).json()
    assert later["lines"][0]["seq"] == 4

    response = client.get(f"/api/runs/{run['id']}/files/synthetic.csv")
    assert response.status_code == 200
    assert f"fedsynth-{run['id']}-synthetic.csv" in response.headers["content-disposition"]
    synthetic = pd.read_csv(io.BytesIO(response.content))
    assert len(synthetic) == 150
    assert list(synthetic.columns) == [c for c in mds_frame.columns if c != "patient_id"]
    parquet = client.get(f"/api/runs/{run['id']}/files/synthetic.parquet")
    assert len(pd.read_parquet(io.BytesIO(parquet.content))) == 150
    model = client.get(f"/api/runs/{run['id']}/files/model.zip")
    assert model.headers["content-type"] == "application/zip" and model.content[:2] == b"PK"
    html = client.get(f"/api/runs/{run['id']}/files/report.html")
    assert "sandbox" in html.headers["content-security-policy"]
    report = client.get(f"/api/runs/{run['id']}/report").json()
    assert report["format"] == "fedsynth-validation-report"
    assert client.get(f"/api/runs/{run['id']}/files/experiment-scores.png").status_code == 404

    actions = [(e["action"], e["target"]) for e in client.get("/api/audit").json()]
    assert ("upload", dataset["id"]) in actions and ("run created", run["id"]) in actions
    downloads = [
        e["detail"]["file"] for e in client.get("/api/audit").json() if e["action"] == "download"
    ]
    assert {"synthetic.csv", "synthetic.parquet", "model.zip", "report.html"} <= set(downloads)

    # An ended run cannot be cancelled; it can be run again.
    assert client.post(f"/api/runs/{run['id']}/cancel").status_code == 409
    again = client.post(f"/api/runs/{run['id']}/rerun")
    assert again.status_code == 202 and again.json()["rerun_of"] == run["id"]
    assert client.post(f"/api/runs/{again.json()['id']}/cancel").json()["status"] == "cancelled"


def test_failing_privacy_holds_the_synthetic_data_back_until_an_override(served):
    client, run = served["client"], served["run"]
    db = client.app.state.services.db
    # A failed privacy check is hard to provoke with a generator that refuses copies: record the
    # verdict a failing report gives (what the worker stores from the report's flags).
    with sqlite3.connect(db.path) as con:
        con.execute("UPDATE runs SET privacy = 'fail' WHERE id = ?", (run["id"],))
    shown = client.get(f"/api/runs/{run['id']}").json()
    assert shown["privacy"] == "fail" and shown["download_allowed"] is False
    for name in ("synthetic.csv", "synthetic.parquet", "model.zip"):
        response = client.get(f"/api/runs/{run['id']}/files/{name}")
        assert response.status_code == 403 and "override" in response.json()["detail"]
    assert client.get(f"/api/runs/{run['id']}/files/report.json").status_code == 200

    url = f"/api/runs/{run['id']}/privacy-override"
    assert client.post(url, json={"confirm": True, "reason": "short"}).status_code == 422
    assert client.post(url, json={"confirm": False, "reason": "x" * 20}).status_code == 422
    reason = "released for the steering committee after review"
    released = client.post(url, json={"confirm": True, "reason": reason}).json()
    assert released["download_allowed"] and released["override"]["reason"] == reason
    assert client.get(f"/api/runs/{run['id']}/files/synthetic.csv").status_code == 200
    audit = client.get("/api/audit").json()
    override = next(e for e in audit if e["action"] == "privacy override")
    assert override["detail"]["reason"] == reason and override["target"] == run["id"]
    refused = [e for e in audit if e["action"] == "download refused"]
    assert len(refused) == 3
    last = next(e for e in audit if e["action"] == "download")
    assert last["detail"] == {"file": "synthetic.csv", "privacy": "fail", "override": True}
    # A passing run needs no override.
    with sqlite3.connect(db.path) as con:
        con.execute("UPDATE runs SET privacy = 'pass', override = NULL WHERE id = ?", (run["id"],))
    assert client.post(url, json={"confirm": True, "reason": reason}).status_code == 409
    with sqlite3.connect(db.path) as con:
        con.execute("UPDATE runs SET privacy = ? WHERE id = ?", (run["privacy"], run["id"]))


def test_cancel_stops_the_worker_and_a_queued_run(served):
    client, dataset = served["client"], served["dataset"]
    first = client.post("/api/runs", json={"dataset_id": dataset["id"], **LONG_RUN}).json()
    second = client.post("/api/runs", json={"dataset_id": dataset["id"], **QUICK_RUN}).json()
    wait_running(client, first["id"])
    assert client.get(f"/api/runs/{second['id']}").json()["status"] == "queued"  # 1 worker
    pid = pid_of(client, first["id"])
    assert process_alive(pid) and pid in _marked(first["id"])  # its children inherit the mark
    assert client.post(f"/api/runs/{second['id']}/cancel").json()["status"] == "cancelled"
    # A dataset with an active run can be neither edited nor deleted.
    edit = {"columns": {"age": {"kind": "numeric"}}}
    assert client.put(f"/api/datasets/{dataset['id']}/metadata", json=edit).status_code == 409
    assert client.delete(f"/api/datasets/{dataset['id']}").status_code == 409
    cancelled = client.post(f"/api/runs/{first['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["artifacts"] == []
    assert not process_alive(pid)
    assert not [p for p in _marked(first["id"]) if process_alive(p)]
    storage = client.app.state.services.storage
    assert not storage.run_dir(first["id"]).exists()
    assert not storage.partial_run_dir(first["id"]).exists()
    assert client.get(f"/api/runs/{first['id']}/files/synthetic.csv").status_code == 404
    assert client.post(f"/api/runs/{first['id']}/cancel").status_code == 409


# ---------------------------------------------------------------------- restart
def test_everything_is_still_there_after_a_restart(served):
    first, dataset, run = served["client"], served["dataset"], served["run"]
    long = first.post("/api/runs", json={"dataset_id": dataset["id"], **LONG_RUN}).json()
    wait_running(first, long["id"])
    pid = pid_of(first, long["id"])
    runs_before = first.get("/api/runs").json()
    audit_before = first.get("/api/audit").json()
    first.__exit__(None, None, None)  # the server stops: its worker goes, the run is interrupted
    assert not process_alive(pid), f"worker {pid} outlived the server"

    app = make_app(first.app.state.services.storage.root)  # same data directory, same token
    with TestClient(app, headers=auth(app)) as second:
        assert second.get("/api/datasets").json()[0]["id"] == dataset["id"]
        shown = second.get(f"/api/datasets/{dataset['id']}").json()
        assert shown["metadata"] == dataset["metadata"]
        assert second.get(f"/api/runs/{run['id']}").json() == run
        response = second.get(f"/api/runs/{run['id']}/files/synthetic.csv")
        assert response.status_code == 200 and len(pd.read_csv(io.BytesIO(response.content))) == 150
        runs_after = {r["id"]: r for r in second.get("/api/runs").json()}
        assert set(runs_after) == {r["id"] for r in runs_before}
        interrupted = runs_after[long["id"]]
        log = second.get(f"/api/runs/{long['id']}/log").json()["lines"]
        assert interrupted["status"] == "interrupted", log
        assert "run it again" in interrupted["error"]
        assert second.get("/api/audit").json()[-len(audit_before) :] == audit_before
        rerun = second.post(f"/api/runs/{long['id']}/rerun").json()
        assert rerun["status"] in ("queued", "running") and rerun["rerun_of"] == long["id"]
        second.post(f"/api/runs/{rerun['id']}/cancel")


def test_a_run_left_running_by_a_crash_is_marked_interrupted(tmp_path, mds_csv):
    app = make_app(tmp_path)
    with TestClient(app, headers=auth(app)) as client:
        dataset = upload(client, mds_csv)
        run = client.post("/api/runs", json={"dataset_id": dataset["id"], **QUICK_RUN}).json()
        client.post(f"/api/runs/{run['id']}/cancel")
    # As if the server had died while a worker wrote a half-finished artifact.
    with sqlite3.connect(tmp_path / "fedsynth.sqlite3") as con:
        con.execute("UPDATE runs SET status = 'running', pid = 999999 WHERE id = ?", (run["id"],))
    partial = tmp_path / "runs" / f"{run['id']}.partial"
    partial.mkdir()
    (partial / "synthetic.csv").write_text("half,a,file")
    app = make_app(tmp_path)
    with TestClient(app, headers=auth(app)) as client:
        shown = client.get(f"/api/runs/{run['id']}").json()
        assert shown["status"] == "interrupted"
        assert not partial.exists()  # never served, and cleaned
        assert client.get(f"/api/runs/{run['id']}/files/synthetic.csv").status_code == 404
        client.get("/api/health")
