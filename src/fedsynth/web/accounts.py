"""User accounts of the web app: names, roles, hashed passwords and API tokens.

Roles: an ``analyst`` uploads, runs and reads reports; a ``steward`` also records privacy
overrides, approves releases and manages accounts. Passwords are stored as scrypt hashes with
a random salt per user (``scrypt$n$r$p$salt$hash``), compared in constant time. API tokens, for
scripts, are random 256-bit strings stored by their SHA-256 (a high-entropy secret needs no
slow hash); a copy of the database opens no account.

The first account, a steward, is created at set-up (the first start on an empty data
directory); its API token is the set-up token (``access-token`` in the data directory, or the
``token`` setting), which scripts written for the single access token keep using.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from fedsynth.web.db import Database, now
from fedsynth.web.errors import ConflictError, InvalidRequestError

ROLES = ("analyst", "steward")
#: scrypt cost (n = 2**14, r = 8, p = 1: 16 MiB and some 50 ms per check).
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 12
FIRST_ACCOUNT = "admin"


@dataclass(frozen=True)
class Account:
    """A user: name and role."""

    name: str
    role: str

    @property
    def steward(self) -> bool:
        """Whether the user may approve releases, record overrides and manage accounts."""
        return self.role == "steward"


def hash_password(password: str) -> str:
    """The scrypt hash of ``password`` with a fresh random salt, as one string."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    parts = [str(_SCRYPT[k]) for k in ("n", "r", "p")]
    return "$".join(["scrypt", *parts, _b64(salt), _b64(digest)])


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a :func:`hash_password` string (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=32,
        )
    except ValueError:
        return False
    return hmac.compare_digest(candidate, base64.b64decode(digest))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def token_hash(token: str) -> str:
    """How an API token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


#: Checked against when the name is unknown, so that a wrong name costs as long as a wrong
#: password (the answer's timing does not tell which names exist).
_DUMMY = hash_password(secrets.token_urlsafe(16))


class Accounts:
    """The accounts and API tokens stored in the web app's database.

    Parameters
    ----------
    db : Database
        Where they are stored.
    """

    def __init__(self, db: Database):
        self.db = db

    def get(self, name: str) -> Account | None:
        """The account called ``name``, or ``None``."""
        with self.db.connect() as con:
            row = con.execute("SELECT name, role FROM users WHERE name = ?", (name,)).fetchone()
        return None if row is None else Account(row["name"], row["role"])

    def list_accounts(self) -> list[Account]:
        """Every account, in the order they were created."""
        with self.db.connect() as con:
            rows = con.execute("SELECT name, role FROM users ORDER BY created, rowid").fetchall()
        return [Account(row["name"], row["role"]) for row in rows]

    def create(self, name: str, role: str, password: str) -> Account:
        """Add an account.

        Raises
        ------
        InvalidRequestError
            Naming each problem with the name, role or password.
        ConflictError
            When the name is taken.
        """
        problems = []
        if not _NAME.match(name):
            problems.append(
                "name: 1 to 64 letters, digits and . _ @ -, starting with a letter or digit"
            )
        if role not in ROLES:
            problems.append(f"role: one of {', '.join(ROLES)}, got {role!r}")
        if len(password) < MIN_PASSWORD:
            problems.append(f"password: at least {MIN_PASSWORD} characters")
        if problems:
            raise InvalidRequestError("cannot create the account:\n  - " + "\n  - ".join(problems))
        if self.get(name) is not None:
            raise ConflictError(f"an account called {name!r} exists already")
        with self.db.connect() as con:
            con.execute(
                "INSERT INTO users (name, role, password, created) VALUES (?, ?, ?, ?)",
                (name, role, hash_password(password), now()),
            )
        return Account(name, role)

    def set_password(self, name: str, password: str) -> None:
        """Replace a user's password (at least ``MIN_PASSWORD`` characters)."""
        if len(password) < MIN_PASSWORD:
            raise InvalidRequestError(f"password: at least {MIN_PASSWORD} characters")
        with self.db.connect() as con:
            con.execute(
                "UPDATE users SET password = ? WHERE name = ?", (hash_password(password), name)
            )

    def authenticate(self, name: str, password: str) -> Account | None:
        """The account when ``password`` is its password, else ``None``."""
        with self.db.connect() as con:
            row = con.execute(
                "SELECT name, role, password FROM users WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            check_password(password, _DUMMY)
            return None
        if not check_password(password, row["password"]):
            return None
        return Account(row["name"], row["role"])

    def issue_token(self, name: str, label: str, token: str | None = None) -> str:
        """A new API token of user ``name`` (returned once; only its hash is stored)."""
        token = token or secrets.token_urlsafe(32)
        with self.db.connect() as con:
            con.execute(
                "INSERT OR IGNORE INTO api_tokens (token_hash, user, label, created) "
                "VALUES (?, ?, ?, ?)",
                (token_hash(token), name, label[:100], now()),
            )
        return token

    def token_account(self, token: str) -> Account | None:
        """The account an API token belongs to, or ``None``."""
        with self.db.connect() as con:
            row = con.execute(
                "SELECT users.name, users.role FROM api_tokens JOIN users "
                "ON users.name = api_tokens.user WHERE token_hash = ?",
                (token_hash(token),),
            ).fetchone()
        return None if row is None else Account(row["name"], row["role"])

    def tokens(self, name: str) -> list[dict[str, str]]:
        """Labels and creation times of a user's API tokens (never the tokens)."""
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT label, created FROM api_tokens WHERE user = ? ORDER BY created", (name,)
            ).fetchall()
        return [dict(row) for row in rows]

    def set_up(self, token: str) -> str | None:
        """Create the first account (a steward) on an empty database; keep ``token`` as an API
        token of the first account. Returns the new account's password, or ``None`` when
        accounts existed already."""
        accounts = self.list_accounts()
        if accounts:
            first = next((a for a in accounts if a.steward), accounts[0])
            self.issue_token(first.name, "set-up token", token)
            return None
        password = secrets.token_urlsafe(12)
        self.create(FIRST_ACCOUNT, "steward", password)
        self.issue_token(FIRST_ACCOUNT, "set-up token", token)
        return password
