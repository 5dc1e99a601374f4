"""Bad input through the web app: uploads read in their dialect or refused naming the file,
inference notes, and the limits on what one request may ask (413, 429, 422, OPTIONS)."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.bad_inputs.conftest import LATIN1, cohort, european_csv
from tests.web.conftest import auth, make_app, upload


def test_a_european_export_is_ready_with_numeric_lab_values_and_survival(web):
    client = web()
    dataset = upload(client, european_csv(cohort()), "eu.csv")
    assert dataset["ready"], dataset["problems"]
    assert dataset["survival"] == ["os_months", "os_status"]
    assert dataset["metadata"]["columns"]["hb"]["kind"] == "numeric"
    table_notes = [n["message"] for n in dataset["notes"] if n["column"] is None]
    assert table_notes == ["read as semicolon-separated, decimal comma, utf-8"]
    page = client.get(f"/datasets/{dataset['id']}").text
    assert "read as semicolon-separated, decimal comma, utf-8" in page


def test_the_read_as_note_survives_a_metadata_edit(web):
    client = web()
    dataset = upload(client, european_csv(cohort()), "eu.csv")
    body = {"columns": {"age": {"kind": "categorical"}}}
    edited = client.put(f"/api/datasets/{dataset['id']}/metadata", json=body).json()
    assert "read as semicolon-separated, decimal comma, utf-8" in [
        n["message"] for n in edited["notes"]
    ]


#: name -> (file name, content, columns expected, the dialect in words).
READ = {
    "tab in .csv": ("t.csv", cohort().to_csv(index=False, sep="\t").encode(),
                    list(cohort().columns), "tab-separated, decimal point, utf-8"),
    "latin-1": ("l.csv", LATIN1, ["ville", "âge", "hb"],
                "semicolon-separated, decimal point, cp1252"),
    "byte-order mark": ("b.csv", b"\xef\xbb\xbfage,sex\n61,F\n70,M\n", ["age", "sex"],
                        "comma-separated, decimal point, utf-8-sig"),
    "quoted delimiters": ("q.csv", b'drugs;age\n"aza; ven";61\n"len";70\n', ["drugs", "age"],
                          "semicolon-separated, decimal point, utf-8"),
}  # fmt: skip


@pytest.mark.parametrize("case", READ, ids=list(READ))
def test_uploads_are_read_in_their_dialect(web, case):
    name, content, columns, described = READ[case]
    dataset = upload(web(), content, name)
    assert [c["name"] for c in dataset["columns"]] == columns
    assert {"column": None, "message": f"read as {described}"} in dataset["notes"]


#: name -> (file name, content, words of the 422 answer).
REFUSED = {
    "one column": ("one.csv", b"age sex\n61 F\n", "'one.csv' reads as a single column"),
    "header only": ("h.csv", b"age;sex\n", "'h.csv' has no data rows (2 columns, 0 rows)"),
    "ragged rows": ("r.csv", b"age;sex\n61;F\n70;M;x\n", "'r.csv' line 3 has 3 field(s)"),
}  # fmt: skip


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_unreadable_uploads_are_refused_naming_the_file(web, case):
    name, content, message = REFUSED[case]
    client = web()
    response = client.post("/api/datasets", files={"file": (name, content)})
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert client.get("/api/datasets").json() == []


def test_a_yes_no_event_keeps_the_survival_pair(web):
    frame = cohort().assign(os_status=lambda f: np.where(f.os_status == 1, "yes", "no"))
    dataset = upload(web(), frame.to_csv(index=False).encode(), "yn.csv")
    assert dataset["survival"] == ["os_months", "os_status"]
    assert dataset["metadata"]["columns"]["os_status"]["categories"] == ["no", "yes"]


def test_an_event_coded_0_1_2_is_kept_as_competing_risks_with_a_note(web):
    frame = cohort().assign(os_status=[i % 3 for i in range(40)])
    dataset = upload(web(), frame.to_csv(index=False).encode(), "cr.csv")
    assert dataset["survival"] == ["os_months", "os_status"]
    column = {c["name"]: c for c in dataset["columns"]}["os_status"]
    assert any("competing-risks event with 2 causes" in note for note in column["notes"])


def test_an_event_coded_1_2_gets_a_note_on_its_column(web):
    frame = cohort().assign(os_status=[1 + i % 2 for i in range(40)])
    dataset = upload(web(), frame.to_csv(index=False).encode(), "r.csv")
    assert dataset["survival"] is None
    column = {c["name"]: c for c in dataset["columns"]}["os_status"]
    assert any("set the kinds to duration and event" in note for note in column["notes"])


@pytest.mark.parametrize(
    ("column", "values", "reason"),
    [
        ("record_no", np.random.default_rng(5).choice(np.arange(10**5, 10**6), 40, replace=False),
         "record number"),
        ("ref", np.random.default_rng(4).choice(np.arange(10**6, 10**7), 40, replace=False),
         "random codes"),
        ("notes", [f"seen in clinic {i % 7}, reports fatigue grade {i % 3}" for i in range(40)],
         "free text"),
    ],
    ids=["record_no", "random codes", "free text"],
)  # fmt: skip
def test_identifier_like_columns_are_excluded_saying_why(web, column, values, reason):
    dataset = upload(web(), cohort().assign(**{column: values}).to_csv(index=False).encode())
    assert dataset["identifiers"] == [column]
    notes = {c["name"]: c for c in dataset["columns"]}[column]["notes"]
    assert any(reason in note for note in notes), notes


def test_413_states_the_configured_limit(web):
    client = web(max_upload_mb=0.5)
    response = client.post("/api/datasets", files={"file": ("big.csv", b"1,2\n" * 400_000)})
    assert response.status_code == 413
    assert "upload limit of 0.5 MB" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/datasets", "GET, OPTIONS, POST"),
        ("/api/runs", "GET, OPTIONS, POST"),
        ("/api/health", "GET, OPTIONS"),
        ("/login", "GET, OPTIONS, POST"),
    ],
)
def test_options_and_405_name_every_allowed_method(web, path, allowed):
    client = web()
    options = client.options(path)
    assert options.status_code == 204 and options.headers["allow"] == allowed
    refused = client.patch(path)
    assert refused.status_code == 405 and refused.headers["allow"] == allowed


@pytest.fixture
def idle(tmp_path):
    """``idle(**settings)``: a client of an app whose job dispatcher is not started, so that
    runs stay queued; and a ready dataset's id."""

    def start(**settings) -> tuple[TestClient, str]:
        app = make_app(tmp_path / "idle", **settings)
        client = TestClient(app, headers=auth(app))
        dataset = upload(client, cohort().to_csv(index=False).encode(), "c.csv")
        return client, dataset["id"]

    return start


def test_too_many_queued_runs_get_429_with_retry_after(idle):
    client, dataset_id = idle(max_queued_runs=2)
    for _ in range(2):
        assert client.post("/api/runs", json={"dataset_id": dataset_id}).status_code == 202
    response = client.post("/api/runs", json={"dataset_id": dataset_id})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "60"
    assert "max_queued_runs=2" in response.json()["detail"]
    assert len(client.get("/api/runs").json()) == 2


def test_rows_above_the_cap_get_422_naming_rows(idle):
    client, dataset_id = idle(max_run_rows=100)
    response = client.post("/api/runs", json={"dataset_id": dataset_id, "rows": 101})
    assert response.status_code == 422
    assert "rows=101 is above this server's limit of 100" in response.json()["detail"]
    assert client.post("/api/runs", json={"dataset_id": dataset_id, "rows": 100}).status_code == 202


@pytest.mark.parametrize(
    ("epsilon", "message"),
    [
        ("NaN", "Input should be a finite number"),
        ("Infinity", "Input should be a finite number"),
        ("-1", "Input should be greater than 0"),
        ('"high"', "Input should be a valid number"),
    ],
)
def test_epsilon_that_is_not_a_positive_number_gets_422_naming_epsilon(idle, epsilon, message):
    client, dataset_id = idle()
    body = (
        f'{{"dataset_id": "{dataset_id}", "generator": "bayesian_network", "epsilon": {epsilon}}}'
    )
    response = client.post("/api/runs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "epsilon" in detail and message in detail
    assert "less than or equal to" not in detail
