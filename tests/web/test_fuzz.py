"""A schemathesis fuzz run of the REST API against its OpenAPI schema: no answer is a server
error (5xx), and every answer fits the schema (status code, content type, body).

The app runs without its job dispatcher (no lifespan), so that queued runs start no worker.
Half of the generated run requests and metadata edits are pointed at a real dataset, so that the
checks behind the ids are fuzzed too, not only the 404 of an unknown id.
"""

from __future__ import annotations

import zlib

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="the fuzz run needs schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import auth, make_app  # noqa: E402

pytestmark = pytest.mark.slow
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, mds_csv):
    """The app, and a dataset uploaded before the fuzz run."""
    from fastapi.testclient import TestClient

    app = make_app(tmp_path_factory.mktemp("fuzz"))
    client = TestClient(app, headers=auth(app))
    response = client.post("/api/datasets", files={"file": ("mds.csv", mds_csv)})
    assert response.status_code == 201
    return app, response.json()["id"]


def test_the_api_never_answers_with_a_server_error(fuzzed):
    app, dataset_id = fuzzed
    headers = auth(app)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        _fuzz(operation, headers, dataset_id)


def _fuzz(operation, headers: dict[str, str], dataset_id: str) -> None:
    """Hypothesis over one operation (schemathesis's pytest plugin does not run on pytest 9)."""

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(case=operation.as_strategy())
    def check(case) -> None:
        real_target = zlib.crc32(repr((case.body, case.path_parameters)).encode()) % 2 == 0
        if case.path == "/api/runs" and case.method == "POST" and isinstance(case.body, dict):
            if real_target:
                case.body["dataset_id"] = dataset_id
        elif case.path == "/api/datasets/{dataset_id}/metadata" and real_target:
            case.path_parameters = {**(case.path_parameters or {}), "dataset_id": dataset_id}
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)

    check()
