"""Pages of clinical notes: text generation runs (upload, progress, report, gated download) and
the blinded expert review (:mod:`fedsynth.web.notes_store`).

Every route needs a signed-in user (session cookie with its CSRF token, or an API token); the
review and its aggregates show or derive from real notes, so they need a role of
:data:`~fedsynth.web.notes_store.REVIEW_ROLES` (stewards), and so do overrides of the gate.
"""

from __future__ import annotations

import io
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import UploadFile

from fedsynth.web.deps import ServicesDep, User
from fedsynth.web.errors import InvalidRequestError
from fedsynth.web.notes_store import CRITERIA, REVIEW_ROLES, NotesStore, eta_text
from fedsynth.web.release import RELEASED
from fedsynth.web.routes_pages import render, see_other
from fedsynth.web.security import AuthError, Principal, require_steward
from fedsynth.web.storage import ID_PATTERN

router = APIRouter(include_in_schema=False)
RunId = Annotated[str, Path(pattern=ID_PATTERN)]
ItemId = Annotated[str, Path(pattern=ID_PATTERN)]


def store_of(request: Request) -> NotesStore:
    """The app's notes store (made at first use, in the data directory's ``notes`` folder)."""
    state = request.app.state
    if getattr(state, "notes_store", None) is None:
        services = state.services
        state.notes_store = NotesStore(services.db, state.settings.data_dir / "notes")
    return state.notes_store


def require_reviewer(who: Principal) -> None:
    """Refuse (403) a user whose role may not see real notes."""
    if who.role not in REVIEW_ROLES:
        raise AuthError(
            f"the review shows real notes: only {', '.join(sorted(REVIEW_ROLES))}s may open it; "
            f"{who.user} is an {who.role}",
            403,
        )


def _number(form: Any, name: str, kind: type) -> Any:
    raw = form.get(name)
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"{name}: expected a {kind.__name__}, got {raw!r}") from None


@router.get("/notes")
def notes_page(request: Request, who: User) -> Response:
    """Text runs, and the upload form of a new one."""
    return render(request, "notes.html", who, nav="notes", runs=store_of(request).list_runs())


@router.post("/notes")
async def start_notes(request: Request, who: User, services: ServicesDep) -> Response:
    """Store the uploaded notes and start a text run."""
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidRequestError("file: upload a .csv with a 'text' column or a .zip of .txt")
    config = {
        "notes": _number(form, "notes", int),
        "epsilon": _number(form, "epsilon", float),
        "prompts": 4,
        "candidates": 4,
        # Candidates in several public styles (an extension of DP-ICL; no epsilon).
        "candidate_styles": "clinical" if form.get("styles") else None,
        "max_tokens": 160,
    }
    store = store_of(request)
    run_id = store.create_run(
        who.user or who.actor, upload.filename or "", await upload.read(), config
    )
    services.audit(
        who, "text run started", run_id, notes=config["notes"], epsilon=config["epsilon"]
    )
    state = request.app.state
    store.start(
        run_id,
        backend=getattr(state, "notes_backend", "local"),
        embedder=getattr(state, "notes_embedder", None),
    )
    return see_other(f"/notes/{run_id}")


@router.get("/api/notes/{run_id}")
def notes_run_json(request: Request, run_id: RunId, who: User) -> dict[str, Any]:
    """A text run's progress, verdict and report (aggregates only)."""
    run = store_of(request).get_run(run_id)
    run["released"] = run["verdict"] in RELEASED or run["override"] is not None
    return run


@router.get("/notes/{run_id}")
def notes_run_page(request: Request, run_id: RunId, who: User) -> Response:
    """A text run's progress (the page reloads itself while it runs), its report and gate."""
    run = store_of(request).get_run(run_id)
    released = run["verdict"] in RELEASED or run["override"] is not None
    return render(
        request,
        "notes_run.html",
        who,
        nav="notes",
        run=run,
        released=released,
        eta=eta_text(run["eta"]),
        reviewer=who.role in REVIEW_ROLES,
    )


@router.get("/notes/{run_id}/synthetic.csv")
def download_notes(request: Request, run_id: RunId, who: User, services: ServicesDep) -> Response:
    """The synthetic notes, after the privacy gate; audited."""
    store = store_of(request)
    run = store.get_run(run_id)
    if run["status"] != "done":
        raise InvalidRequestError(f"text run {run_id} is {run['status']}: nothing to download")
    if run["verdict"] not in RELEASED and run["override"] is None:
        raise AuthError(
            f"the privacy gate holds these notes back (verdict: {run['verdict']}); a steward "
            "may record an override with a reason on the run's page",
            403,
        )
    buffer = io.StringIO()
    notes = store.synthetic(run_id)
    pd.DataFrame({"note_id": range(1, len(notes) + 1), "text": notes}).to_csv(buffer, index=False)
    services.audit(who, "text download", run_id, verdict=run["verdict"])
    return StreamingResponse(
        iter([buffer.getvalue()]),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="notes-{run_id}.csv"'},
    )


@router.post("/notes/{run_id}/override")
async def override_notes(
    request: Request, run_id: RunId, who: User, services: ServicesDep
) -> Response:
    """A steward releases notes the gate holds back, with a reason (audited)."""
    require_steward(who, "override the privacy gate")
    reason = str((await request.form()).get("reason") or "").strip()
    if len(reason) < 10:
        raise InvalidRequestError("reason: say why, in at least 10 characters")
    store_of(request).set_override(run_id, who.user or who.actor, reason)
    services.audit(who, "text override", run_id, reason=reason)
    return see_other(f"/notes/{run_id}")


@router.post("/notes/{run_id}/review")
def open_review(request: Request, run_id: RunId, who: User, services: ServicesDep) -> Response:
    """Put the run's synthetic notes and as many real ones up for blinded review."""
    require_reviewer(who)
    count = store_of(request).build_review(run_id)
    services.audit(who, "review opened", run_id, items=count)
    return see_other(f"/notes/{run_id}/review")


@router.get("/notes/{run_id}/review")
def review_page(request: Request, run_id: RunId, who: User) -> Response:
    """The blinded review: notes in this rater's own order, without their source."""
    require_reviewer(who)
    store = store_of(request)
    store.get_run(run_id)
    items = store.review_items(run_id, who.user or who.actor)
    return render(
        request, "review.html", who, nav="notes", run_id=run_id, items=items, criteria=CRITERIA
    )


@router.post("/review/{item_id}")
async def rate_item(
    request: Request, item_id: ItemId, who: User, services: ServicesDep
) -> Response:
    """Record (or replace) this rater's scores of one note."""
    require_reviewer(who)
    store = store_of(request)
    form = await request.form()
    replaced = store.rate(item_id, who.user or who.actor, {c: form.get(c) for c in CRITERIA})
    run_id = store.run_of_item(item_id)
    services.audit(who, "review rating updated" if replaced else "review rating", run_id)
    return see_other(f"/notes/{run_id}/review#item-{item_id}")


@router.get("/notes/{run_id}/review/report")
def review_report(request: Request, run_id: RunId, who: User) -> Response:
    """Mean, spread and count of the ratings, real against synthetic; number of raters."""
    require_reviewer(who)
    store = store_of(request)
    store.get_run(run_id)
    summary = store.aggregates(run_id)
    if "application/json" in request.headers.get("accept", ""):
        return Response(content=_json(summary), media_type="application/json")
    return render(
        request,
        "review_report.html",
        who,
        nav="notes",
        run_id=run_id,
        summary=summary,
        criteria=CRITERIA,
    )


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
