"""Pages and API of images: upload a zip of images, start an image run, read its report.

Image runs are runs of the app (kind ``imaging``): their progress, log, cancel and rerun are the
run pages'; their downloads go through the same privacy gate, override and steward approval as
tables' (:mod:`fedsynth.web.release`, :mod:`fedsynth.web.approval`). What differs is the
report: it shows images. Every signed-in user sees the metrics and flags; the synthetic images
(their grids and the zip) once the privacy gate releases them; the grids of real images only a
steward, the role trusted with the private data (as for the review of real notes).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as FormFile

from fedsynth.exceptions import FedsynthError
from fedsynth.web.db import RunRecord
from fedsynth.web.deps import ServicesDep, User
from fedsynth.web.errors import NotFoundError, status_of
from fedsynth.web.image_datasets import (
    IMAGE_GENERATORS,
    RUN_SETTINGS,
    ImageDataset,
    dataset_error,
)
from fedsynth.web.image_pipeline import PRIVATE_REPORT, REPORT
from fedsynth.web.release import GATED, released
from fedsynth.web.routes_api import ERROR_RESPONSES, TOO_MANY_RUNS
from fedsynth.web.routes_pages import render, see_other
from fedsynth.web.schemas import ErrorOut, RunOut
from fedsynth.web.security import REPORT_POLICY, Principal
from fedsynth.web.services import Services
from fedsynth.web.storage import ID_PATTERN

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/images", tags=["images"], responses=ERROR_RESPONSES)
DatasetId = Annotated[str, Path(pattern=ID_PATTERN)]
RunId = Annotated[str, Path(pattern=ID_PATTERN)]
#: Report pages a browser may open inline.
SHOWN = (REPORT, PRIVATE_REPORT)
_CHUNK = 1024 * 1024


class ImageDatasetOut(BaseModel):
    """A stored image upload (counts, shape, channels, label columns; never a pixel)."""

    id: str
    name: str
    filename: str
    created: str
    size_bytes: int
    layout: str
    n_images: int
    shape: list[int]
    channels: list[str]
    labels: list[dict[str, Any]]


class ImageRunIn(BaseModel):
    """The settings of an image run (empty: the generator's defaults)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    generator: Literal[IMAGE_GENERATORS] = "latent_diffusion"  # type: ignore[valid-type]
    epochs: int | None = Field(None, description="Training epochs (default: the generator's).")
    epsilon: float | None = Field(None, description="Differential privacy budget (dp_gan).")
    delta: float = 1e-5
    images: int | None = Field(None, description="Synthetic images (default: training images).")
    label_columns: list[str] = Field([], description="Label columns to condition on.")
    holdout_fraction: float = 0.25
    seed: int = 0
    report_epochs: int = Field(10, description="Epochs of the report's feature encoder.")


def _upload(services: Services, who: Principal, upload: Any, name: Any) -> ImageDataset:
    chunks = iter(lambda: upload.file.read(_CHUNK), b"")
    try:
        record = services.images.upload(
            upload.filename,
            chunks,
            name if isinstance(name, str) else None,
            max_bytes=services.settings.max_upload_bytes,
        )
    except FedsynthError as error:
        services.audit(who, "image upload refused", upload.filename or "", reason=str(error))
        raise
    services.audit(
        who,
        "image upload",
        record.id,
        filename=record.filename,
        images=record.n_images,
        shape=record.shape,
        bytes=record.size_bytes,
    )
    return record


def _start(services: Services, who: Principal, dataset_id: str, settings: dict) -> RunRecord:
    record = services.images.create_run(
        who, dataset_id, settings, max_queued=services.settings.max_queued_runs
    )
    services.audit(
        who,
        "image run created",
        record.id,
        dataset=dataset_id,
        generator=record.config["generator"],
        epsilon=record.config["epsilon"],
    )
    services.jobs.wake()
    return record


# ---------------------------------------------------------------------- pages
@router.get("/images")
def images_page(request: Request, who: User, services: ServicesDep) -> Response:
    """The image datasets, the upload form and the image runs."""
    return _images(request, who, services)


def _images(
    request: Request, who: Principal, services: Services, error: Any = None, status: int = 200
) -> Response:
    from fedsynth.web import views

    runs = [views.run(r) for r in services.runs() if r.kind == "imaging"]
    return render(
        request,
        "images.html",
        who,
        status,
        nav="images",
        datasets=services.images.list(),
        runs=runs,
        error=error,
        max_upload_mb=f"{services.settings.max_upload_mb:g}",
    )


@router.post("/images")
async def upload_images(request: Request, who: User, services: ServicesDep) -> Response:
    """Upload a zip of images; show the dataset, or the list with the error naming the file."""
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, FormFile) or not upload.filename:
        error = {"message": "choose a .zip of images to upload", "problems": []}
        return _images(request, who, services, error, 422)
    try:
        record = await run_in_threadpool(_upload, services, who, upload, form.get("name"))
    except FedsynthError as exc:
        return _images(request, who, services, dataset_error(exc), status_of(exc))
    return see_other(f"/images/{record.id}")


@router.get("/images/{dataset_id}")
def image_dataset_page(
    request: Request, dataset_id: DatasetId, who: User, services: ServicesDep
) -> Response:
    """An image dataset's summary and the form of a run on it."""
    return _dataset(request, who, services, services.images.get(dataset_id))


def _dataset(
    request: Request,
    who: Principal,
    services: Services,
    dataset: ImageDataset,
    form: dict | None = None,
    error: Any = None,
    status: int = 200,
) -> Response:
    shown = {**RUN_SETTINGS, **(form or {})}
    return render(
        request,
        "image_dataset.html",
        who,
        status,
        nav="images",
        d=dataset,
        form={k: "" if v is None else v for k, v in shown.items()},
        generators=IMAGE_GENERATORS,
        error=error,
    )


@router.post("/images/{dataset_id}/runs")
async def start_image_run(
    request: Request, dataset_id: DatasetId, who: User, services: ServicesDep
) -> Response:
    """Start an image run from the form; show it, or the form again with every problem."""
    dataset = services.images.get(dataset_id)
    raw = await request.form()
    form: dict[str, Any] = {
        key: str(raw.get(key) or "").strip() for key in RUN_SETTINGS if key != "label_columns"
    }
    form["label_columns"] = [v for v in raw.getlist("label_columns") if isinstance(v, str)]
    try:
        record = await run_in_threadpool(_start, services, who, dataset_id, form)
    except FedsynthError as exc:
        return _dataset(request, who, services, dataset, form, dataset_error(exc), status_of(exc))
    return see_other(f"/runs/{record.id}")


def image_report_page(
    request: Request, record: RunRecord, who: Principal, services: Services
) -> Response:
    """The report page of a finished image run (see the module's docstring for who sees
    what); :func:`fedsynth.web.routes_pages.report_page` hands image runs here."""
    from fedsynth.web import views

    report = services.report(record.id)
    allowed = released(record.privacy, record.override)
    shown = PRIVATE_REPORT if who.steward else REPORT if allowed else None
    return render(
        request,
        "image_report.html",
        who,
        nav="images",
        r=views.run(record),
        report=report,
        gated=GATED,
        shown=shown,
        approval=request.app.state.releases.approval(record.id),
    )


@router.get("/runs/{run_id}/images/{name}")
def view_image_report(run_id: RunId, name: str, who: User, services: ServicesDep) -> Response:
    """An image run's report page, shown inside the run's report (gated; audited)."""
    if name not in SHOWN:
        raise NotFoundError(f"run {run_id} has nothing to show as {name!r}")
    found = services.download(who, run_id, name)
    response = FileResponse(found.path, media_type="text/html")
    response.headers["Content-Security-Policy"] = REPORT_POLICY
    return response


# ---------------------------------------------------------------------- API
@api_router.post(
    "",
    status_code=201,
    responses={415: {"model": ErrorOut, "description": "Not a zip archive."}},
)
def upload_images_api(
    user: User,
    services: ServicesDep,
    file: Annotated[UploadFile, File(description="A zip of images (see the module).")],
    name: Annotated[str | None, Form(max_length=200, description="Display name.")] = None,
) -> ImageDatasetOut:
    """Upload a zip of images: PNG/TIFF with one labels CSV (column ``file``), NIfTI volumes,
    or one DICOM series. A refusal (422) names the zip and the member at fault."""
    return ImageDatasetOut(**_upload(services, user, file, name).__dict__)


@api_router.get("")
def list_images_api(user: User, services: ServicesDep) -> list[ImageDatasetOut]:
    """Every image dataset, newest first."""
    return [ImageDatasetOut(**d.__dict__) for d in services.images.list()]


@api_router.post("/{dataset_id}/runs", status_code=201, responses=TOO_MANY_RUNS)
def start_image_run_api(
    dataset_id: DatasetId, body: ImageRunIn, user: User, services: ServicesDep
) -> RunOut:
    """Queue an image run; follow it at ``/api/runs/{id}`` like any run."""
    from fedsynth.web import views

    return views.run(_start(services, user, dataset_id, body.model_dump()))
