"""The fedsynth web app: upload, check metadata, generate, watch, read the report, download.

Started by ``fedsynth serve``; :func:`create_app` builds the FastAPI application for a data
directory. The pieces, one module each:

* :mod:`~fedsynth.web.settings`: where the data live and the limits;
* :mod:`~fedsynth.web.db`: SQLite records of datasets, runs, their logs, sessions and the audit
  log; :mod:`~fedsynth.web.storage`: the files under the data directory, written atomically;
* :mod:`~fedsynth.web.security`: API tokens, login sessions, roles and CSRF protection;
  :mod:`~fedsynth.web.accounts`: users (analyst, steward), hashed passwords and API tokens;
* :mod:`~fedsynth.web.uploads` and :mod:`~fedsynth.web.summary`: reading an uploaded table and
  describing its columns without showing a row;
* :mod:`~fedsynth.web.inspection`: the inferred metadata, its edits and the problems by column;
* :mod:`~fedsynth.web.services`: the operations (upload, edit metadata, start, cancel, rerun,
  download) that the REST API (:mod:`~fedsynth.web.routes_api`, bodies in
  :mod:`~fedsynth.web.schemas`) and the pages (:mod:`~fedsynth.web.routes_pages`) share;
* :mod:`~fedsynth.web.release`: the privacy gate on synthetic data;
  :mod:`~fedsynth.web.approval` and :mod:`~fedsynth.web.routes_release`: a steward's approval
  and the signed release bundle, the accounts page;
* :mod:`~fedsynth.web.jobs`: background worker processes; :mod:`~fedsynth.web.worker` and
  :mod:`~fedsynth.web.pipeline`: what a worker does for one run.

FastAPI, Uvicorn and Jinja2 are imported only here, never by ``import fedsynth``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WebSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so that a worker process (``python -m fedsynth.web.worker``) does not import FastAPI.
    if name == "create_app":
        from fedsynth.web.app import create_app

        return create_app
    if name == "WebSettings":
        from fedsynth.web.settings import WebSettings

        return WebSettings
    raise AttributeError(f"module 'fedsynth.web' has no attribute {name!r}")
