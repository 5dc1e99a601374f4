"""The REST API under ``/api`` (its schema: ``GET /api/openapi.json``, with the token)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse

from fedsynth import __version__
from fedsynth.web import views
from fedsynth.web.deps import ServicesDep, User
from fedsynth.web.inspection import ColumnChoice
from fedsynth.web.schemas import (
    ArtifactName,
    AuditOut,
    DatasetOut,
    DatasetSummaryOut,
    ErrorOut,
    GeneratorOut,
    HealthOut,
    LogOut,
    MetadataUpdateIn,
    OverrideIn,
    RunIn,
    RunOut,
)
from fedsynth.web.security import REPORT_POLICY, require_steward
from fedsynth.web.storage import ID_PATTERN

DatasetId = Annotated[str, Path(pattern=ID_PATTERN, description="A dataset id.")]
RunId = Annotated[str, Path(pattern=ID_PATTERN, description="A run id.")]
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No valid access token or session."},
    403: {"model": ErrorOut, "description": "Missing CSRF token, or refused by a check."},
    404: {"model": ErrorOut, "description": "No such dataset, run or file."},
    409: {"model": ErrorOut, "description": "Not possible in the current state."},
    413: {"model": ErrorOut, "description": "The request is larger than the upload limit."},
    422: {"model": ErrorOut, "description": "Invalid request or unusable data; each problem."},
}

#: The answer to a user who already has as many queued runs as the server allows.
TOO_MANY_RUNS: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorOut,
        "description": "Too many queued runs for this user (max_queued_runs); see Retry-After.",
    }
}

router = APIRouter(prefix="/api", responses=ERROR_RESPONSES)
#: The health check: the one route without a token (and so without error answers).
public_router = APIRouter(prefix="/api")


@public_router.get("/health", tags=["health"])
def health() -> HealthOut:
    """Whether the server answers (the only route that needs no token)."""
    return HealthOut(status="ok", version=__version__)


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, user: User) -> dict[str, Any]:
    """The OpenAPI schema of this API."""
    return request.app.openapi()


@router.get("/generators", tags=["runs"])
def list_generators(user: User) -> list[GeneratorOut]:
    """The generators and the options each takes."""
    return views.generators()


# ---------------------------------------------------------------------- datasets
@router.get("/datasets", tags=["datasets"])
def list_datasets(user: User, services: ServicesDep) -> list[DatasetSummaryOut]:
    """Every uploaded dataset, newest first."""
    return [views.dataset_summary(record) for record in services.datasets()]


@router.post(
    "/datasets",
    status_code=201,
    tags=["datasets"],
    responses={415: {"model": ErrorOut, "description": "Not a CSV/TSV or Parquet file."}},
)
def upload_dataset(
    user: User,
    services: ServicesDep,
    file: Annotated[UploadFile, File(description="A CSV, TSV or Parquet table.")],
    name: Annotated[str | None, Form(max_length=200, description="Display name.")] = None,
) -> DatasetOut:
    """Upload a table: its metadata is inferred and checked. Problems are listed by column;
    fix them with ``PUT /api/datasets/{id}/metadata`` before starting a run."""
    chunks = iter(lambda: file.file.read(1024 * 1024), b"")
    return views.dataset(services.upload_dataset(user, file.filename, chunks, name))


@router.get("/datasets/{dataset_id}", tags=["datasets"])
def get_dataset(dataset_id: DatasetId, user: User, services: ServicesDep) -> DatasetOut:
    """A dataset's metadata, column summaries (aggregates only) and problems."""
    return views.dataset(services.dataset(dataset_id))


@router.put("/datasets/{dataset_id}/metadata", tags=["datasets"])
def update_metadata(
    dataset_id: DatasetId, body: MetadataUpdateIn, user: User, services: ServicesDep
) -> DatasetOut:
    """Change the kind (and genomic flag) of some columns; the table is checked again."""
    choices = {
        name: ColumnChoice(kind=choice.kind, genomic=choice.genomic)
        for name, choice in body.columns.items()
    }
    return views.dataset(services.update_metadata(user, dataset_id, choices))


@router.delete("/datasets/{dataset_id}", status_code=204, tags=["datasets"])
def delete_dataset(dataset_id: DatasetId, user: User, services: ServicesDep) -> Response:
    """Delete a dataset and its file (finished runs keep their artifacts)."""
    services.delete_dataset(user, dataset_id)
    return Response(status_code=204)


# ---------------------------------------------------------------------- runs
@router.get("/runs", tags=["runs"])
def list_runs(user: User, services: ServicesDep) -> list[RunOut]:
    """Every run, newest first."""
    return [views.run(record) for record in services.runs()]


@router.post("/runs", status_code=202, tags=["runs"], responses=TOO_MANY_RUNS)
def create_run(body: RunIn, user: User, services: ServicesDep) -> RunOut:
    """Queue a run; follow it with ``GET /api/runs/{id}`` and its log."""
    return views.run(services.create_run(user, body))


@router.get("/runs/{run_id}", tags=["runs"])
def get_run(run_id: RunId, user: User, services: ServicesDep) -> RunOut:
    """A run's status, progress and, once done, scores and files."""
    return views.run(services.run(run_id))


@router.get("/runs/{run_id}/log", tags=["runs"])
def get_log(
    run_id: RunId,
    user: User,
    services: ServicesDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="Lines after this number.")] = 0,
) -> LogOut:
    """A run's log lines after ``after``."""
    lines = services.log(run_id, after)
    return LogOut(lines=lines, next=lines[-1]["seq"] if lines else after)


@router.post("/runs/{run_id}/cancel", tags=["runs"])
def cancel_run(run_id: RunId, user: User, services: ServicesDep) -> RunOut:
    """Cancel a queued or running run (its worker process is stopped)."""
    return views.run(services.cancel_run(user, run_id))


@router.post("/runs/{run_id}/rerun", status_code=202, tags=["runs"], responses=TOO_MANY_RUNS)
def rerun(run_id: RunId, user: User, services: ServicesDep) -> RunOut:
    """Queue a new run with the settings of an ended one (interrupted, failed, cancelled...)."""
    return views.run(services.rerun(user, run_id))


@router.get("/runs/{run_id}/report", tags=["runs"])
def get_report(run_id: RunId, user: User, services: ServicesDep) -> dict[str, Any]:
    """The SAFE validation report of a finished run (scores, flags, every metric)."""
    return services.report(run_id)


@router.post("/runs/{run_id}/privacy-override", tags=["runs"])
def override_privacy(run_id: RunId, body: OverrideIn, user: User, services: ServicesDep) -> RunOut:
    """Release synthetic data that did not pass SAFE's privacy check: recorded, with the
    reason, in the audit log. Stewards only."""
    require_steward(user, "record a privacy override")
    return views.run(services.override_privacy(user, run_id, body.reason))


@router.get(
    "/runs/{run_id}/files/{name}",
    tags=["runs"],
    response_class=FileResponse,
    responses={
        200: {
            "description": "The file.",
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in (
                    "text/csv",
                    "application/vnd.apache.parquet",
                    "text/html",
                    "application/json",
                    "application/zip",
                    "image/png",
                )
            },
        }
    },
)
def download(
    run_id: RunId, name: Annotated[ArtifactName, Path()], user: User, services: ServicesDep
) -> FileResponse:
    """Download a run's file. Synthetic data and the model are refused (403) while SAFE's
    privacy check has not passed and no override is recorded."""
    found = services.download(user, run_id, name)
    response = FileResponse(found.path, media_type=found.media_type, filename=found.filename)
    if name.endswith(".html"):
        response.headers["Content-Security-Policy"] = REPORT_POLICY
    return response


# ---------------------------------------------------------------------- audit
@router.get("/audit", tags=["audit"])
def audit_log(
    user: User,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[AuditOut]:
    """The newest entries of the audit log (uploads, runs, downloads, overrides, logins)."""
    return [AuditOut(**entry) for entry in services.db.list_audit(limit=limit)]
