"""The pages: server-rendered templates over the same operations as the REST API.

Forms post back here (with the session's CSRF token); a form with errors is shown again with
the user's entries and each problem, and a successful one redirects (303) to the resulting page.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from fedsynth.core.metrics import FAMILIES
from fedsynth.exceptions import FedsynthError
from fedsynth.federated.strategies import STRATEGIES
from fedsynth.tabular.metadata import KINDS
from fedsynth.web import views
from fedsynth.web.deps import ServicesDep, User
from fedsynth.web.errors import InvalidRequestError, NotFoundError, problems_of, status_of
from fedsynth.web.inspection import ColumnChoice
from fedsynth.web.release import GATED
from fedsynth.web.schemas import RunIn
from fedsynth.web.security import (
    REPORT_POLICY,
    SESSION_COOKIE,
    SESSION_HOURS,
    Principal,
    client_of,
    require_steward,
)
from fedsynth.web.storage import ID_PATTERN

router = APIRouter(include_in_schema=False)
DatasetId = Annotated[str, Path(pattern=ID_PATTERN)]
RunId = Annotated[str, Path(pattern=ID_PATTERN)]
#: Files a page shows inline (aggregates only: never gated).
VIEWABLE = {"report.html": "text/html", "experiment-scores.png": "image/png"}


def render(
    request: Request, template: str, who: Principal | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A page, with the session's CSRF token for its forms."""
    guard = request.app.state.guard
    csrf = guard.csrf_token(who.session) if who and who.session else ""
    return request.app.state.templates.TemplateResponse(
        request,
        template,
        {"principal": who, "csrf": csrf, **context},
        status_code=status_code,
    )


def see_other(url: str) -> RedirectResponse:
    """Redirect after a successful form."""
    return RedirectResponse(url, status_code=303)


def _error(exc: Exception) -> dict[str, Any]:
    return {"message": str(exc), "problems": problems_of(exc)}


# ---------------------------------------------------------------------- login
@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    """The login form."""
    return render(request, "login.html", None, next=_safe_next(next), error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the name and password; open a session (cookie) and go on, or say they are wrong."""
    form = await request.form()
    guard = request.app.state.guard
    services = request.app.state.services
    target = _safe_next(str(form.get("next") or "/"))
    name, password = form.get("name"), form.get("password")
    account = None
    if isinstance(name, str) and isinstance(password, str):
        account = await run_in_threadpool(guard.accounts.authenticate, name.strip(), password)
    if account is None:
        shown = name.strip()[:64] if isinstance(name, str) else ""
        services.audit(Principal(f"login:{shown}", client_of(request)), "login refused", "session")
        return render(
            request, "login.html", None, 401, next=target, error="Wrong name or password."
        )
    session = guard.open_session(account.name)
    services.audit(Principal(f"user:{account.name}", client_of(request)), "login", "session")
    response = see_other(target)
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=SESSION_HOURS * 3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
def logout(request: Request, who: User) -> Response:
    """End the session."""
    if who.session:
        request.app.state.guard.close_session(who.session)
    response = see_other("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _safe_next(target: str) -> str:
    """Only paths of this site (no ``//host`` or scheme): no open redirect after login."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


# ---------------------------------------------------------------------- datasets
@router.get("/")
def datasets_page(request: Request, who: User, services: ServicesDep) -> Response:
    """The datasets and the upload form."""
    return _datasets(request, who, services)


def _datasets(
    request: Request,
    who: Principal,
    services: Any,
    upload_error: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "datasets.html",
        who,
        status_code,
        nav="datasets",
        datasets=[views.dataset_summary(d) for d in services.datasets()],
        upload_error=upload_error,
        max_upload_mb=f"{services.settings.max_upload_mb:g}",
    )


@router.post("/datasets")
async def upload(request: Request, who: User, services: ServicesDep) -> Response:
    """Upload a table from the form; show the dataset, or the list with the error."""
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _datasets(
            request, who, services, {"message": "choose a file to upload", "problems": []}, 422
        )
    name = form.get("name")
    chunks = iter(lambda: upload.file.read(1024 * 1024), b"")
    try:
        record = await run_in_threadpool(
            services.upload_dataset,
            who,
            upload.filename,
            chunks,
            name if isinstance(name, str) else None,
        )
    except FedsynthError as exc:
        return _datasets(request, who, services, _error(exc), status_of(exc))
    return see_other(f"/datasets/{record.id}")


@router.get("/datasets/{dataset_id}")
def dataset_page(
    request: Request, dataset_id: DatasetId, who: User, services: ServicesDep, saved: int = 0
) -> Response:
    """A dataset's editable metadata, column summaries and problems."""
    record = services.dataset(dataset_id)
    return _dataset(request, who, views.dataset(record), saved=bool(saved))


def _dataset(
    request: Request,
    who: Principal,
    shown: Any,
    *,
    saved: bool = False,
    edit_error: dict[str, Any] | None = None,
    choices: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    edit_problems: dict[str, list[str]] = {}
    for problem in (edit_error or {}).get("problems", []):
        edit_problems.setdefault(problem["column"], []).append(problem["message"])
    return render(
        request,
        "dataset.html",
        who,
        status_code,
        nav="datasets",
        d=shown,
        kinds=KINDS,
        saved=saved,
        edit_error=edit_error,
        edit_problems=edit_problems,
        choices=choices or {},
    )


@router.post("/datasets/{dataset_id}/metadata")
async def edit_metadata(
    request: Request, dataset_id: DatasetId, who: User, services: ServicesDep
) -> Response:
    """Apply the kinds chosen in the editable table."""
    record = services.dataset(dataset_id)
    form = await request.form()
    choices: dict[str, ColumnChoice] = {}
    for index, summary in enumerate(record.summary):
        kind = form.get(f"kind_{index}")
        if not isinstance(kind, str):
            continue
        name = summary["name"]
        genomic = f"genomic_{index}" in form if kind == "binary" else None
        choices[name] = ColumnChoice(kind=kind, genomic=genomic)
    try:
        await run_in_threadpool(services.update_metadata, who, dataset_id, choices)
    except FedsynthError as exc:
        return _dataset(
            request,
            who,
            views.dataset(record),
            edit_error=_error(exc),
            choices={name: choice.kind for name, choice in choices.items()},
            status_code=status_of(exc),
        )
    return see_other(f"/datasets/{dataset_id}?saved=1")


@router.post("/datasets/{dataset_id}/delete")
def delete_dataset(dataset_id: DatasetId, who: User, services: ServicesDep) -> Response:
    """Delete a dataset."""
    services.delete_dataset(who, dataset_id)
    return see_other("/")


# ---------------------------------------------------------------------- runs
_FORM_DEFAULTS: dict[str, Any] = {
    "dataset_id": "",
    "generator": "gaussian_copula",
    "epochs": "",
    "epsilon": "",
    "delta": "1e-05",
    "public_domain": "",
    "seed": "0",
    "rows": "",
    "conditions": "",
    "rebalance_column": "",
    "rebalance_shares": "",
    "holdout_fraction": "0.3",
    "families": list(FAMILIES),
    "mode": "central",
    "site_source": "column",
    "site_column": "",
    "site_datasets": [],
    "strategies": ["synthetic_sharing"],
    "rounds": "3",
    "local_epochs": "5",
    "secure_aggregation": "",
}


@router.get("/runs/new")
def new_run_page(request: Request, who: User, services: ServicesDep, dataset: str = "") -> Response:
    """The form of a new run."""
    form = {**_FORM_DEFAULTS, "dataset_id": dataset}
    return _new_run(request, who, services, form)


def _new_run(
    request: Request,
    who: Principal,
    services: Any,
    form: dict[str, Any],
    error: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    ready = [views.dataset_summary(d) for d in services.datasets() if d.ready]
    return render(
        request,
        "run_new.html",
        who,
        status_code,
        nav="new",
        datasets=ready,
        generators=views.generators(),
        strategies=list(STRATEGIES),
        families=FAMILIES,
        form=form,
        error=error,
    )


@router.post("/runs")
async def start_run(request: Request, who: User, services: ServicesDep) -> Response:
    """Start a run from the form; show it, or the form again with every problem."""
    raw = await request.form()
    form = _form_values(raw)
    try:
        body = RunIn.model_validate(_run_request(form))
        record = await run_in_threadpool(services.create_run, who, body)
    except ValidationError as exc:
        problems = [
            {
                "column": None,
                "message": f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}",
            }
            for e in exc.errors()
        ]
        error = {"message": f"{len(problems)} problem(s) with the settings", "problems": problems}
        return _new_run(request, who, services, form, error, 422)
    except (FedsynthError, ValueError) as exc:
        code = status_of(exc) if isinstance(exc, FedsynthError) else 422
        return _new_run(request, who, services, form, _error(exc), code)
    return see_other(f"/runs/{record.id}")


def _form_values(raw: FormData) -> dict[str, Any]:
    form = dict(_FORM_DEFAULTS)
    for key in _FORM_DEFAULTS:
        if isinstance(_FORM_DEFAULTS[key], list):
            form[key] = [v for v in raw.getlist(key) if isinstance(v, str)]
        elif isinstance(raw.get(key), str):
            form[key] = raw.get(key).strip()  # type: ignore[union-attr]
    return form


def _run_request(form: dict[str, Any]) -> dict[str, Any]:
    """The REST API's run request from the form's fields (empty fields: defaults)."""
    request: dict[str, Any] = {
        "dataset_id": form["dataset_id"],
        "generator": form["generator"],
        "families": form["families"],
        "conditions": _pairs(form["conditions"], "conditions", "COLUMN=VALUE"),
    }
    for key in ("epochs", "epsilon", "delta", "seed", "rows", "holdout_fraction"):
        if form[key] != "":
            request[key] = form[key]
    if form["public_domain"]:
        request["public_domain"] = True
    if form["rebalance_column"]:
        shares = _pairs(form["rebalance_shares"], "target shares", "VALUE=SHARE")
        request["rebalance"] = {"column": form["rebalance_column"], "shares": shares}
    if form["mode"] == "federated":
        federated: dict[str, Any] = {
            "strategies": form["strategies"],
            "rounds": form["rounds"] or 3,
            "local_epochs": form["local_epochs"] or 5,
        }
        if form["secure_aggregation"]:
            federated["secure_aggregation"] = True
        if form["site_source"] == "datasets":
            federated["site_datasets"] = form["site_datasets"]
        else:
            federated["site_column"] = form["site_column"] or None
        request["federated"] = federated
    return request


def _pairs(text: str, what: str, shape: str) -> dict[str, str]:
    """``"a=1\\nb=2"`` -> ``{"a": "1", "b": "2"}``; a line without ``=`` is an error."""
    pairs = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise InvalidRequestError(
                f"{what}: expected one {shape} per line, got {line.strip()!r}"
            )
        pairs[key.strip()] = value.strip()
    return pairs


@router.get("/runs")
def runs_page(request: Request, who: User, services: ServicesDep) -> Response:
    """Every run."""
    return render(
        request, "runs.html", who, nav="runs", runs=[views.run(r) for r in services.runs()]
    )


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: RunId, who: User, services: ServicesDep) -> Response:
    """A run's live progress and log."""
    record = services.run(run_id)
    return render(
        request,
        "run.html",
        who,
        nav="runs",
        r=views.run(record),
        log=services.log(run_id),
    )


@router.post("/runs/{run_id}/cancel")
def cancel_run(run_id: RunId, who: User, services: ServicesDep) -> Response:
    """Cancel a run."""
    services.cancel_run(who, run_id)
    return see_other(f"/runs/{run_id}")


@router.post("/runs/{run_id}/rerun")
def rerun(run_id: RunId, who: User, services: ServicesDep) -> Response:
    """Run an ended run again."""
    record = services.rerun(who, run_id)
    return see_other(f"/runs/{record.id}")


@router.get("/runs/{run_id}/report")
def report_page(request: Request, run_id: RunId, who: User, services: ServicesDep) -> Response:
    """The SAFE report, the privacy verdict and the downloads."""
    record = services.run(run_id)
    if record.kind == "imaging":
        from fedsynth.web.routes_images import image_report_page

        return image_report_page(request, record, who, services)
    report = services.report(run_id)
    experiment = None
    if "experiment-summary.csv" in record.artifacts:
        text = (services.storage.run_dir(run_id) / "experiment-summary.csv").read_text()
        rows = list(csv.reader(io.StringIO(text)))
        experiment = [rows[0]] + [
            [
                cell if i == 0 or not _is_float(cell) else f"{float(cell):.3f}"
                for i, cell in enumerate(row)
            ]
            for row in rows[1:]
        ]
    return render(
        request,
        "report.html",
        who,
        nav="runs",
        r=views.run(record),
        report=report,
        gated=GATED,
        experiment=experiment,
        approval=request.app.state.releases.approval(run_id),
    )


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return "." in text


@router.get("/runs/{run_id}/view/{name}")
def view_file(run_id: RunId, name: str, who: User, services: ServicesDep) -> Response:
    """A report or plot shown inside a page (aggregates only; downloads go through the API)."""
    record = services.run(run_id)
    if name not in VIEWABLE or record.status != "done" or name not in record.artifacts:
        raise NotFoundError(f"run {run_id} has nothing to show as {name!r}")
    response = FileResponse(services.storage.run_dir(run_id) / name, media_type=VIEWABLE[name])
    if name == "report.html":
        response.headers["Content-Security-Policy"] = REPORT_POLICY
    return response


@router.post("/runs/{run_id}/override")
async def override(request: Request, run_id: RunId, who: User, services: ServicesDep) -> Response:
    """Record a privacy override from the report page (stewards only)."""
    require_steward(who, "record a privacy override")
    form = await request.form()
    reason = str(form.get("reason") or "").strip()
    if form.get("confirm") != "true":
        raise InvalidRequestError("tick the box that confirms the release to record an override")
    if len(reason) < 10:
        raise InvalidRequestError("give a reason of at least 10 characters; the audit log keeps it")
    services.override_privacy(who, run_id, reason)
    return see_other(f"/runs/{run_id}/report")


# ---------------------------------------------------------------------- audit
@router.get("/audit")
def audit_page(request: Request, who: User, services: ServicesDep) -> Response:
    """The audit log."""
    return render(request, "audit.html", who, nav="audit", entries=services.db.list_audit())
