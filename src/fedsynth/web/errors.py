"""Errors of the web app, each with the HTTP status it is answered with.

Errors of the library itself (:class:`~fedsynth.exceptions.InvalidDataError` and the other
:class:`~fedsynth.exceptions.FedsynthError`) are user mistakes too: :func:`status_of` maps them to
422 with their message and their list of problems.
"""

from __future__ import annotations

from typing import Any

from fedsynth.exceptions import FedsynthError, Problem


class WebError(FedsynthError):
    """An error answered with ``status_code`` and this message."""

    status_code = 400

    def __init__(
        self,
        message: str,
        *,
        problems: list[Problem] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.problems = list(problems or [])
        #: HTTP headers of the answer (``Retry-After``...).
        self.headers = dict(headers or {})


class InvalidRequestError(WebError):
    """A request whose settings cannot be used (unknown column, option the generator lacks)."""

    status_code = 422


class NotFoundError(WebError):
    """No dataset, run or file with that id."""

    status_code = 404


class ConflictError(WebError):
    """The request does not fit the current state (cancelling a finished run...)."""

    status_code = 409


class PrivacyGateError(WebError):
    """Synthetic data that failed (or skipped) SAFE's privacy check, asked without override."""

    status_code = 403


class TooManyRunsError(WebError):
    """A user with as many queued runs as the server allows asked for one more."""

    status_code = 429


class UploadTooLargeError(WebError):
    """An upload above the size limit."""

    status_code = 413


class UnsupportedUploadError(WebError):
    """An upload that is not a CSV/TSV or Parquet table."""

    status_code = 415


def status_of(error: Exception) -> int:
    """The HTTP status for an error raised while serving a request (500 if unexpected)."""
    if isinstance(error, WebError):
        return error.status_code
    if isinstance(error, FedsynthError):
        return 422
    return 500


def problems_of(error: Exception) -> list[dict[str, Any]]:
    """The error's problems as ``{"column": ..., "message": ...}`` dicts (may be empty)."""
    problems = getattr(error, "problems", None) or []
    return [{"column": p.column, "message": p.message} for p in problems if isinstance(p, Problem)]
