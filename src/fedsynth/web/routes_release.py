"""Routes of releases and accounts: a steward's approval, the signed bundle, the server's public
key, and the accounts page (users, API tokens, passwords)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from fedsynth.web.approval import MIN_COMMENT, Releases
from fedsynth.web.deps import User
from fedsynth.web.errors import InvalidRequestError, NotFoundError
from fedsynth.web.routes_api import ERROR_RESPONSES
from fedsynth.web.routes_pages import render, see_other
from fedsynth.web.security import require_steward
from fedsynth.web.storage import ID_PATTERN

RunId = Annotated[str, Path(pattern=ID_PATTERN, description="A run id.")]
router = APIRouter(responses=ERROR_RESPONSES)


class ApproveIn(BaseModel):
    """A steward's approval of a run's release."""

    comment: str = Field(min_length=MIN_COMMENT, max_length=2000, description="Why it may go.")


class ApprovalOut(BaseModel):
    """An approved release."""

    run_id: str
    manifest_sha256: str
    approved_by: str
    approved_at: str
    comment: str


def _releases(request: Request) -> Releases:
    return request.app.state.releases


def _bundle(path, run_id: str) -> FileResponse:
    return FileResponse(path, media_type="application/zip", filename=path.name)


# ---------------------------------------------------------------------- REST API
@router.post("/api/runs/{run_id}/approve", tags=["releases"])
def approve_api(request: Request, run_id: RunId, body: ApproveIn, user: User) -> ApprovalOut:
    """Approve a run's release (stewards only): its bundle is built and signed with the
    server's key; the audit log keeps the approval and the manifest's SHA-256."""
    approval = _releases(request).approve(user, run_id, body.comment)
    return ApprovalOut(**approval.__dict__)


@router.get("/api/runs/{run_id}/approval", tags=["releases"])
def approval_api(request: Request, run_id: RunId, user: User) -> ApprovalOut:
    """The approval of a run's release (404 if none)."""
    approval = _releases(request).approval(run_id)
    if approval is None:
        raise NotFoundError(f"run {run_id} has no approved release")
    return ApprovalOut(**approval.__dict__)


@router.get(
    "/api/runs/{run_id}/release",
    tags=["releases"],
    response_class=FileResponse,
    responses={
        200: {
            "description": "The signed bundle.",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
def release_api(request: Request, run_id: RunId, user: User) -> FileResponse:
    """The signed release bundle (zip) of an approved run; 404 until a steward approves it."""
    return _bundle(_releases(request).download(user, run_id), run_id)


@router.get("/api/release-key", tags=["releases"], response_class=PlainTextResponse)
def release_key(request: Request, user: User) -> PlainTextResponse:
    """The server's public key (PEM): receiving sites verify releases with it
    (``fedsynth release verify BUNDLE --public-key KEY``)."""
    return PlainTextResponse(_releases(request).public_key_pem().decode("ascii"))


# ---------------------------------------------------------------------- pages
@router.post("/runs/{run_id}/approve", include_in_schema=False)
async def approve_page(request: Request, run_id: RunId, who: User) -> Response:
    """Approve a release from the report page."""
    form = await request.form()
    if form.get("confirm") != "true":
        raise InvalidRequestError("tick the box that confirms the approval")
    comment = str(form.get("comment") or "")
    await run_in_threadpool(_releases(request).approve, who, run_id, comment)
    return see_other(f"/runs/{run_id}/report#release")


@router.get("/runs/{run_id}/release", include_in_schema=False)
def release_page(request: Request, run_id: RunId, who: User) -> FileResponse:
    """Download the signed bundle of an approved run."""
    return _bundle(_releases(request).download(who, run_id), run_id)


@router.get("/accounts", include_in_schema=False)
def accounts_page(request: Request, who: User) -> Response:
    """The user's account (password, API tokens) and, for stewards, every account."""
    return _accounts(request, who)


def _accounts(request: Request, who, status_code: int = 200, **shown) -> Response:
    accounts = request.app.state.guard.accounts
    return render(
        request,
        "accounts.html",
        who,
        status_code,
        nav="accounts",
        accounts=accounts.list_accounts() if who.steward else [],
        tokens=accounts.tokens(who.user),
        **{"new_token": None, "message": None, "error": None, **shown},
    )


@router.post("/accounts", include_in_schema=False)
async def create_account(request: Request, who: User) -> Response:
    """Create an account (stewards only)."""
    require_steward(who, "create accounts")
    form = await request.form()
    name, role = str(form.get("name") or "").strip(), str(form.get("role") or "")
    accounts = request.app.state.guard.accounts
    await run_in_threadpool(accounts.create, name, role, str(form.get("password") or ""))
    request.app.state.services.audit(who, "account created", name, role=role)
    return _accounts(request, who, message=f"Account {name} ({role}) created.")


@router.post("/accounts/token", include_in_schema=False)
async def new_token(request: Request, who: User) -> Response:
    """Make an API token for the signed-in user; it is shown once."""
    form = await request.form()
    label = str(form.get("label") or "script").strip() or "script"
    token = request.app.state.guard.accounts.issue_token(who.user, label)
    request.app.state.services.audit(who, "api token created", who.user, label=label)
    return _accounts(request, who, new_token=token)


@router.post("/accounts/password", include_in_schema=False)
async def change_password(request: Request, who: User) -> Response:
    """Change the signed-in user's password (the current one is asked again)."""
    form = await request.form()
    accounts = request.app.state.guard.accounts
    current = str(form.get("current") or "")
    if await run_in_threadpool(accounts.authenticate, who.user, current) is None:
        return _accounts(request, who, 403, error="The current password is wrong.")
    await run_in_threadpool(accounts.set_password, who.user, str(form.get("password") or ""))
    request.app.state.services.audit(who, "password changed", who.user)
    return _accounts(request, who, message="Password changed.")
