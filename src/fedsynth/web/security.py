"""Access control: API tokens, login sessions, roles, CSRF protection and response headers.

Every route but the health check, the login page and the static files (a stylesheet and a
script, no data) needs either

* a user's API token in an ``Authorization: Bearer <token>`` header (scripts, the REST API), or
* a login session cookie, obtained with a name and password on the login page. Requests that change
  something (POST, PUT, DELETE) with a session cookie must also carry the session's CSRF token,
  in a ``csrf_token`` form field or an ``X-CSRF-Token`` header, and must not come from another
  origin; the cookie is ``HttpOnly`` and ``SameSite=Strict``.

Tokens and sessions are stored by their hash, passwords by a salted scrypt hash (see
:mod:`~fedsynth.web.accounts`), so that a copy of the database opens nothing. Some operations
need the ``steward`` role (:func:`require_steward`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.security import APIKeyCookie, HTTPBearer

from fedsynth.web.accounts import Accounts
from fedsynth.web.db import Database

SESSION_COOKIE = "fedsynth_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_HOURS = 12
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Declared in the OpenAPI schema as the two ways in; checked by :meth:`Guard.principal`.
bearer_scheme = HTTPBearer(auto_error=False, description="A user's API token.")
cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="The login session of the pages."
)


class AuthError(Exception):
    """No valid token or session (401), or a missing or wrong CSRF token (403)."""

    def __init__(self, message: str, status_code: int = 401):
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Principal:
    """Who made a request, as written in the audit log.

    Attributes
    ----------
    actor : str
        ``"token:<user>"`` for an API token, ``"user:<user>"`` for a login session.
    client : str
        The client's address.
    session : str or None
        The session id (the cookie), for the CSRF token of the pages.
    user : str or None
        The account's name (``None`` before login).
    role : str or None
        The account's role: ``"analyst"`` or ``"steward"``.
    """

    actor: str
    client: str
    session: str | None = None
    user: str | None = None
    role: str | None = None

    @property
    def steward(self) -> bool:
        """Whether the user has the steward role."""
        return self.role == "steward"


def require_steward(who: Principal, action: str) -> None:
    """Refuse (403) ``action`` to a user without the steward role."""
    if not who.steward:
        raise AuthError(f"only a data steward may {action}; {who.user} is an {who.role}", 403)


def read_or_create_secret(path: Path) -> str:
    """The secret in ``path``, created (owner-only permissions) on the first call."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it meanwhile
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def client_of(request: Request) -> str:
    """The client's address as text."""
    return request.client.host if request.client else "unknown"


class Guard:
    """Checks tokens, sessions and CSRF tokens.

    Parameters
    ----------
    secret : str
        Key of the CSRF tokens.
    db : Database
        Where sessions are stored.
    accounts : Accounts
        The users and their API tokens.
    """

    def __init__(self, secret: str, db: Database, accounts: Accounts):
        self._secret = secret.encode("utf-8")
        self.db = db
        self.accounts = accounts

    # ------------------------------------------------------------------ sessions
    def open_session(self, user: str) -> str:
        """A new session id of ``user``, stored until it expires."""
        session = secrets.token_urlsafe(32)
        expires = _dt.datetime.now(_dt.UTC) + _dt.timedelta(hours=SESSION_HOURS)
        self.db.add_session(_hash(session), expires.isoformat(timespec="seconds"), user)
        return session

    def close_session(self, session: str) -> None:
        """End a session (logout)."""
        self.db.delete_session(_hash(session))

    def csrf_token(self, session: str) -> str:
        """The CSRF token of a session (an HMAC of its id: nothing to store)."""
        return hmac.new(self._secret, session.encode("utf-8"), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ requests
    def principal(self, request: Request) -> Principal:
        """Who makes ``request``; raises :class:`AuthError` when no valid credential is given."""
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if header and scheme.lower() == "bearer":
            account = self.accounts.token_account(credential.strip()) if credential else None
            if account is not None:
                return Principal(
                    f"token:{account.name}", client_of(request), None, account.name, account.role
                )
            raise AuthError("invalid access token")
        session = request.cookies.get(SESSION_COOKIE)
        user = self.db.session_user(_hash(session)) if session else None
        account = self.accounts.get(user) if user else None
        if account is not None:
            return Principal(
                f"user:{account.name}", client_of(request), session, account.name, account.role
            )
        raise AuthError(
            "authentication required: send an API token as 'Authorization: Bearer <token>' "
            "or log in"
        )

    async def check_csrf(self, request: Request, principal: Principal) -> None:
        """Refuse a state-changing request made with a session but without its CSRF token."""
        if request.method not in UNSAFE_METHODS or principal.session is None:
            return
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            raise AuthError(f"cross-origin request from {origin} refused", 403)
        supplied = request.headers.get(CSRF_HEADER)
        if supplied is None and _is_form(request):
            supplied = (await request.form()).get(CSRF_FIELD)
        expected = self.csrf_token(principal.session)
        if not isinstance(supplied, str) or not hmac.compare_digest(supplied, expected):
            raise AuthError(
                "missing or wrong CSRF token: reload the page and submit the form again", 403
            )


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


#: Headers added to every response. The pages load their script and stylesheet from this server
#: only; report pages get a stricter policy (see ``REPORT_POLICY``).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'self'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    # Not "no-referrer": with it, browsers send "Origin: null" on form posts, which the
    # cross-origin check refuses.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
#: The SAFE report is a self-contained page with inline styles and base64 plots: no script,
#: no request anywhere, sandboxed.
REPORT_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"
