"""FastAPI dependencies: the services, and who makes the request (authenticated, CSRF-checked)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from fedsynth.web.security import Guard, Principal, bearer_scheme, cookie_scheme
from fedsynth.web.services import Services


def get_services(request: Request) -> Services:
    """The app's :class:`~fedsynth.web.services.Services`."""
    return request.app.state.services


def get_guard(request: Request) -> Guard:
    """The app's :class:`~fedsynth.web.security.Guard`."""
    return request.app.state.guard


async def authenticated(
    request: Request,
    guard: Annotated[Guard, Depends(get_guard)],
    # Declared so that the OpenAPI schema lists both ways in; the guard reads the request.
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    _cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> Principal:
    """Who makes the request; raises :class:`~fedsynth.web.security.AuthError` otherwise."""
    principal = guard.principal(request)
    await guard.check_csrf(request, principal)
    return principal


ServicesDep = Annotated[Services, Depends(get_services)]
User = Annotated[Principal, Depends(authenticated)]
