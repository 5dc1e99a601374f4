"""The FastAPI application: routers, error answers, security headers, upload size limit, jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fedsynth import __version__
from fedsynth.exceptions import FedsynthError
from fedsynth.web.accounts import Accounts
from fedsynth.web.approval import Releases
from fedsynth.web.db import Database
from fedsynth.web.errors import problems_of, status_of
from fedsynth.web.jobs import JobManager
from fedsynth.web.security import (
    CSRF_FIELD,
    SECURITY_HEADERS,
    AuthError,
    Guard,
    read_or_create_secret,
)
from fedsynth.web.services import Services
from fedsynth.web.settings import WebSettings
from fedsynth.web.storage import Storage
from fedsynth.web.uploads import megabytes

#: Bytes a request may carry on top of the largest upload (form fields, multipart framing).
REQUEST_OVERHEAD = 1024 * 1024


def create_app(settings: WebSettings) -> FastAPI:
    """Build the web app on ``settings.data_dir`` (created, with its database, when missing).

    The background job dispatcher starts with the app's lifespan (``uvicorn``, or a
    ``TestClient`` used as a context manager) and stops with it.

    Examples
    --------
    >>> from pathlib import Path
    >>> app = create_app(WebSettings(data_dir=Path("fedsynth-data")))  # doctest: +SKIP
    >>> app.state.setup_token  # doctest: +SKIP
    'the API token of the first account'
    """
    storage = Storage(settings.data_dir)
    db = Database(storage.database)
    token = settings.token or read_or_create_secret(storage.root / "access-token")
    accounts = Accounts(db)
    first_password = accounts.set_up(token)
    guard = Guard(read_or_create_secret(storage.root / "secret-key"), db, accounts)
    jobs = JobManager(db, storage, workers=settings.workers, poll_seconds=settings.poll_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        jobs.start()
        try:
            yield
        finally:
            jobs.stop()

    app = FastAPI(
        title="fedsynth",
        version=__version__,
        description=(
            "Privacy-preserving synthetic clinical data: upload a table, check its metadata, "
            "train a generator (central or federated, with or without differential privacy), "
            "read the SAFE validation report, have a data steward approve a signed release, "
            "download. "
            "Every route but /api/health needs a user's API token (the first one is printed by "
            "`fedsynth serve` at set-up), as `Authorization: Bearer <token>`."
        ),
        lifespan=lifespan,
        openapi_url=None,  # served at /api/openapi.json behind the token instead
        docs_url=None,  # Swagger UI would load scripts from a CDN: nothing leaves the network
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.guard = guard
    app.state.setup_token = token
    # The first account's password, shown once by ``fedsynth serve`` (None after set-up).
    app.state.first_password = first_password
    app.state.jobs = jobs
    app.state.services = Services(settings, db, storage, jobs)
    app.state.releases = Releases(app.state.services)
    app.state.templates = _templates()

    from fedsynth.web.routes_api import public_router
    from fedsynth.web.routes_api import router as api_router
    from fedsynth.web.routes_images import api_router as images_api_router
    from fedsynth.web.routes_images import router as images_router
    from fedsynth.web.routes_notes import router as notes_router
    from fedsynth.web.routes_pages import router as pages_router
    from fedsynth.web.routes_release import router as release_router

    routers = (
        public_router,
        api_router,
        pages_router,
        release_router,
        notes_router,
        images_router,
        images_api_router,
    )
    for router in routers:
        app.include_router(router)
    # Every route with its full path, for the Allow header of 405 and OPTIONS answers.
    app.state.routes = [route for router in routers for route in router.routes]
    app.mount("/static", StaticFiles(directory=str(files("fedsynth.web") / "static")), "static")
    _install_error_answers(app)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_upload_bytes + REQUEST_OVERHEAD,
        max_upload_bytes=settings.max_upload_bytes,
    )
    return app


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(files("fedsynth.web") / "templates"))
    templates.env.globals.update(csrf_field=CSRF_FIELD, version=__version__)
    templates.env.filters["percent"] = lambda value: f"{100 * float(value or 0):.0f} %"
    templates.env.filters["score"] = lambda value: "n/a" if value is None else f"{value:.3f}"
    return templates


def is_api(request: Request) -> bool:
    """Whether the request is for the REST API (JSON answers) rather than a page."""
    return request.url.path.startswith("/api")


def error_page(request: Request, status: int, message: str, problems: list | None = None):
    """An HTML page that says what went wrong."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "message": message, "problems": problems or [], "principal": None},
        status_code=status,
    )


def _install_error_answers(app: FastAPI) -> None:
    def answer(
        request: Request,
        status: int,
        message: str,
        problems: list[dict[str, Any]],
        headers: dict[str, str] | None = None,
    ):
        headers = dict(headers or {})
        if status == 401 and is_api(request):
            headers["WWW-Authenticate"] = "Bearer"
        if is_api(request):
            return JSONResponse(
                {"detail": message, "problems": problems}, status_code=status, headers=headers
            )
        response = error_page(request, status, message, problems)
        response.headers.update(headers)
        return response

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: AuthError) -> Response:
        if exc.status_code == 401 and not is_api(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return answer(request, exc.status_code, str(exc), [])

    @app.exception_handler(FedsynthError)
    async def fedsynth_error(request: Request, exc: FedsynthError) -> Response:
        headers = getattr(exc, "headers", None)
        return answer(request, status_of(exc), str(exc), problems_of(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {
                "column": None,
                "message": " → ".join(str(part) for part in error.get("loc", ()))
                + f": {error.get('msg', 'invalid')}",
            }
            for error in exc.errors()
        ]
        lines = "\n".join(f"  - {p['message']}" for p in problems)
        return answer(
            request, 422, f"{len(problems)} problem(s) with the request:\n{lines}", problems
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "error"
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and message == "Not Found":
            message = f"nothing at {request.url.path}"
        if exc.status_code == 405:
            # Starlette names the methods of the first route on the path only.
            allowed = allowed_methods(request.app, request.scope)
            headers["Allow"] = ", ".join(allowed)
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=headers)
            message = (
                f"{request.method} is not allowed on {request.url.path}; use {headers['Allow']}"
            )
        return answer(request, exc.status_code, message, [], headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        return answer(request, 500, f"internal error ({type(exc).__name__})", [])


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """The methods the routes on the request's path answer, with OPTIONS."""
    methods = {"OPTIONS"}
    for route in app.state.routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:  # PARTIAL: the path matches, the method does not
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


class SecurityHeaders:
    """Adds :data:`~fedsynth.web.security.SECURITY_HEADERS` to every HTTP response (a route
    may set a stricter Content-Security-Policy of its own)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodySizeLimit:
    """Answers 413 to a request body above ``max_bytes``, before it is all received: by its
    Content-Length, or by counting when it comes in chunks (then the app is told that the
    client left, and whatever it answers is replaced by the 413)."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        state = {"received": 0, "too_large": False, "answered": False}

        async def counting_receive() -> Message:
            if state["too_large"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["too_large"] = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not state["too_large"]:
                await send(message)
            elif not state["answered"]:
                state["answered"] = True
                await self._refuse(scope, send)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not state["too_large"]:
                raise
        if state["too_large"] and not state["answered"]:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        # The configured limit, as --max-upload-mb gave it (the request may carry a little
        # more, for its form fields).
        message = (
            f"the request is larger than the upload limit of {megabytes(self.max_upload_bytes)}; "
            "start the server with a larger --max-upload-mb to accept it"
        )
        response = JSONResponse({"detail": message, "problems": []}, status_code=413)
        await response(scope, _drain, send)


async def _drain() -> Message:
    return {"type": "http.disconnect"}
