"""The operations of the web app, shared by the REST API and the pages.

Each operation checks its input against the stored state, raises a
:class:`~fedsynth.web.errors.WebError` (or a fedsynth error) that names what is wrong, and writes
the audit log for uploads, metadata edits, runs, cancellations, overrides and downloads.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fedsynth.exceptions import DataWarning, FedsynthError
from fedsynth.tabular.metadata import Metadata
from fedsynth.web.db import Database, DatasetRecord, RunRecord, now
from fedsynth.web.errors import (
    ConflictError,
    NotFoundError,
    PrivacyGateError,
    TooManyRunsError,
)
from fedsynth.web.image_datasets import ImageDatasets
from fedsynth.web.inspection import ColumnChoice, edit_metadata, inspect_table
from fedsynth.web.jobs import JobManager
from fedsynth.web.release import GATED, RELEASED, STEWARDS_ONLY, released
from fedsynth.web.run_requests import run_config
from fedsynth.web.schemas import RunIn
from fedsynth.web.security import Principal, require_steward
from fedsynth.web.settings import RETRY_AFTER_SECONDS, WebSettings
from fedsynth.web.storage import Storage
from fedsynth.web.summary import column_summaries
from fedsynth.web.uploads import check_content, display_name, format_of, read_upload, save_upload

#: Media types of the files a run offers, by suffix.
MEDIA_TYPES = {
    ".csv": "text/csv",
    ".parquet": "application/vnd.apache.parquet",
    ".html": "text/html",
    ".json": "application/json",
    ".zip": "application/zip",
    ".png": "image/png",
}


#: Start of the note that says how a text upload was read.
READ_AS = "read as"


@dataclass(frozen=True)
class Download:
    """A file to send: where it is, its media type, and the name the browser saves it as."""

    path: Path
    media_type: str
    filename: str


class Services:
    """The operations on datasets and runs.

    Parameters
    ----------
    settings : WebSettings
        Limits.
    db : Database
        Records.
    storage : Storage
        Files.
    jobs : JobManager
        The background runs.
    """

    def __init__(self, settings: WebSettings, db: Database, storage: Storage, jobs: JobManager):
        self.settings = settings
        self.db = db
        self.storage = storage
        self.jobs = jobs
        #: The image datasets (uploaded zips) and their runs.
        self.images = ImageDatasets(db, storage.root / "image_datasets")

    def audit(self, who: Principal, action: str, target: str, **detail: Any) -> None:
        """Append to the audit log."""
        self.db.add_audit(who.actor, who.client, action, target, detail)

    # ------------------------------------------------------------------ datasets
    def upload_dataset(
        self, who: Principal, filename: str | None, chunks: Iterable[bytes], name: str | None
    ) -> DatasetRecord:
        """Store an uploaded table, infer its metadata and check it.

        A table with problems is stored all the same, so that its metadata can be fixed in the
        editable table; runs refuse it until no problem is left.

        Raises
        ------
        UnsupportedUploadError, UploadTooLargeError, InvalidDataError
            For a file of another type, above the size limit, empty or not parseable.
        """
        shown = display_name(filename)
        dataset_id, tmp = self.storage.new_dataset_dir()
        try:
            file_format = format_of(shown)
            path = tmp / f"source.{file_format}"
            size = save_upload(
                chunks, path, filename=shown, max_bytes=self.settings.max_upload_bytes
            )
            check_content(path, file_format, filename=shown)
            table, dialect = read_upload(path, file_format, filename=shown)
            found = inspect_table(table)
            summary = column_summaries(table, found.metadata)
            self.storage.publish(tmp, self.storage.dataset_dir(dataset_id))
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, FedsynthError):
                self.audit(who, "upload refused", shown, reason=str(exc))
            raise
        record = DatasetRecord(
            id=dataset_id,
            name=(name or "").strip()[:200] or Path(shown).stem or shown,
            filename=shown,
            file_format=file_format,
            size_bytes=size,
            n_rows=len(table),
            n_columns=table.shape[1],
            created=now(),
            metadata=found.metadata.to_dict(),
            problems=found.problems,
            notes=_read_as(dialect) + found.notes,
            summary=summary,
        )
        self.db.add_dataset(record)
        self.audit(
            who,
            "upload",
            dataset_id,
            filename=shown,
            rows=record.n_rows,
            columns=record.n_columns,
            bytes=size,
            problems=len(found.problems),
        )
        return record

    def dataset(self, dataset_id: str) -> DatasetRecord:
        """The dataset with this id (``NotFoundError`` if none)."""
        record = self.db.get_dataset(dataset_id)
        if record is None:
            raise NotFoundError(f"no dataset with id {dataset_id!r}")
        return record

    def datasets(self) -> list[DatasetRecord]:
        """Every dataset, newest first."""
        return self.db.list_datasets()

    def table(self, record: DatasetRecord) -> pd.DataFrame:
        """The stored table of a dataset (read on the server only; never sent)."""
        path = self.storage.dataset_file(record.id, record.file_format)
        return read_upload(path, record.file_format, filename=record.filename)[0]

    def update_metadata(
        self, who: Principal, dataset_id: str, choices: Mapping[str, ColumnChoice]
    ) -> DatasetRecord:
        """Apply new column kinds (and genomic flags), check the table again, store the result.

        Raises
        ------
        MetadataError
            When a choice cannot be applied; nothing is stored then.
        """
        record = self.dataset(dataset_id)
        if self.db.active_dataset_runs(dataset_id):
            raise ConflictError("a run on this dataset is queued or running; edit it afterwards")
        current = Metadata.from_dict(record.metadata)
        table = self.table(record)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            found = edit_metadata(table, current, choices)
        changed = {
            name: {
                "kind": found.metadata.columns[name].kind,
                "group": found.metadata.columns[name].group,
            }
            for name in choices
            if current.columns[name].to_dict() != found.metadata.columns[name].to_dict()
        }
        read_as = [
            n for n in record.notes if n["column"] is None and n["message"].startswith(READ_AS)
        ]
        self.db.update_dataset_metadata(
            dataset_id, found.metadata.to_dict(), found.problems, read_as + found.notes
        )
        self.audit(
            who, "metadata edited", dataset_id, changed=changed, problems=len(found.problems)
        )
        return self.dataset(dataset_id)

    def delete_dataset(self, who: Principal, dataset_id: str) -> None:
        """Delete a dataset (its finished runs and their artifacts stay)."""
        record = self.dataset(dataset_id)
        if self.db.active_dataset_runs(dataset_id):
            raise ConflictError("a run on this dataset is queued or running; cancel it first")
        self.db.delete_dataset(dataset_id)
        self.storage.remove_dataset(dataset_id)
        self.audit(who, "dataset deleted", dataset_id, name=record.name)

    # ------------------------------------------------------------------ runs
    def create_run(
        self, who: Principal, request: RunIn, *, rerun_of: str | None = None
    ) -> RunRecord:
        """Check a run's settings against its dataset(s) and queue it.

            Raises
            ------
            NotFoundError
                For an unknown dataset.
            InvalidRequestError
                Listing every setting that cannot be used, each with what was expected (``rows``
            above the server's ``max_run_rows`` included).
        TooManyRunsError
            When the user already has ``max_queued_runs`` runs waiting (429, with Retry-After).
        """
        requester = who.user or who.actor
        queued = self.db.queued_runs_of(requester)
        if queued >= self.settings.max_queued_runs:
            raise TooManyRunsError(
                f"{requester} already has {queued} run(s) waiting in the queue, the most this "
                f"server allows (max_queued_runs={self.settings.max_queued_runs}); wait for "
                "some to start, or cancel some, then ask again",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        dataset = self.dataset(request.dataset_id)
        config = run_config(
            request, dataset, self.db, self.table, max_rows=self.settings.max_run_rows
        )
        config["requested_by"] = requester
        record = RunRecord(
            id=_new_run_id(self.db),
            dataset_id=dataset.id,
            dataset_name=dataset.name,
            kind="federated" if request.federated else "central",
            config=config,
            status="queued",
            created=now(),
            stage="queued",
            rerun_of=rerun_of,
        )
        self.db.add_run(record)
        self.db.append_log(record.id, "queued" + (f" (rerun of {rerun_of})" if rerun_of else ""))
        self.audit(
            who,
            "run created",
            record.id,
            dataset=dataset.id,
            kind=record.kind,
            generator=request.generator,
            epsilon=request.epsilon,
            public_domain=request.public_domain,
            rerun_of=rerun_of,
        )
        self.jobs.wake()
        return record

    def run(self, run_id: str) -> RunRecord:
        """The run with this id (``NotFoundError`` if none)."""
        record = self.db.get_run(run_id)
        if record is None:
            raise NotFoundError(f"no run with id {run_id!r}")
        return record

    def runs(self) -> list[RunRecord]:
        """Every run, newest first."""
        return self.db.list_runs()

    def log(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        """A run's log lines after sequence number ``after``."""
        self.run(run_id)
        return self.db.get_log(run_id, after=after)

    def cancel_run(self, who: Principal, run_id: str) -> RunRecord:
        """Cancel a queued or running run.

        Raises
        ------
        ConflictError
            When the run has already ended.
        """
        record = self.run(run_id)
        if not self.jobs.cancel(record):
            raise ConflictError(
                f"run {run_id} has already ended ({record.status}); nothing to cancel"
            )
        self.audit(who, "run cancelled", run_id)
        return self.run(run_id)

    def rerun(self, who: Principal, run_id: str) -> RunRecord:
        """Queue a new run with the settings of an ended one (interrupted, failed...), on its
        dataset as it is now (metadata edits since included)."""
        record = self.run(run_id)
        if record.active:
            raise ConflictError(f"run {run_id} is still {record.status}; cancel it first")
        if record.kind == "imaging":
            from fedsynth.web.image_datasets import RUN_SETTINGS

            settings = {k: v for k, v in record.config.items() if k in RUN_SETTINGS}
            rerun = self.images.create_run(
                who,
                record.dataset_id,
                settings,
                max_queued=self.settings.max_queued_runs,
                rerun_of=run_id,
            )
            self.audit(
                who, "image run created", rerun.id, dataset=record.dataset_id, rerun_of=run_id
            )
            self.jobs.wake()
            return rerun
        request = RunIn.model_validate(
            {k: v for k, v in record.config.items() if k in RunIn.model_fields}
        )
        return self.create_run(who, request, rerun_of=run_id)

    def report(self, run_id: str) -> dict[str, Any]:
        """The SAFE report of a finished run, as JSON data (aggregates only)."""
        record = self.run(run_id)
        if record.status != "done" or "report.json" not in record.artifacts:
            raise NotFoundError(f"run {run_id} has no report ({record.status})")
        return json.loads((self.storage.run_dir(run_id) / "report.json").read_text())

    def override_privacy(self, who: Principal, run_id: str, reason: str) -> RunRecord:
        """Release a run's synthetic data despite SAFE's privacy check; audited with the reason.

        Raises
        ------
        ConflictError
            When the run is not done, or its privacy check passed (no override needed).
        """
        record = self.run(run_id)
        if record.status != "done":
            raise ConflictError(f"run {run_id} is {record.status}; only finished runs are released")
        if record.privacy in RELEASED:
            raise ConflictError(
                f"run {run_id} passed the privacy check ({record.privacy}); no override is needed"
            )
        override = {"reason": reason, "actor": who.actor, "time": now()}
        self.db.set_override(run_id, override)
        self.audit(who, "privacy override", run_id, privacy=record.privacy, reason=reason)
        return self.run(run_id)

    def download(self, who: Principal, run_id: str, name: str) -> Download:
        """A run's artifact, after the privacy gate; audited.

        Raises
        ------
        NotFoundError
            When the run has not finished or lacks this file.
        PrivacyGateError
            For synthetic data whose privacy check failed (or could not run), without override.
        """
        record = self.run(run_id)
        if record.status != "done" or name not in record.artifacts:
            raise NotFoundError(f"run {run_id} ({record.status}) has no file {name!r}")
        if name in STEWARDS_ONLY:
            require_steward(who, f"open {name}, which shows real images")
        if name in GATED and not released(record.privacy, record.override):
            self.audit(who, "download refused", run_id, file=name, privacy=record.privacy)
            raise PrivacyGateError(
                f"the synthetic data of run {run_id} did not pass SAFE's privacy check "
                f"(verdict: {record.privacy}); read the report, and record an override with a "
                "reason to release it anyway"
            )
        path = self.storage.run_dir(run_id) / name
        if not path.is_file():
            raise NotFoundError(f"the file {name!r} of run {run_id} is missing from the disk")
        self.audit(
            who,
            "download",
            run_id,
            file=name,
            privacy=record.privacy,
            override=record.override is not None and name in GATED,
        )
        return Download(path, MEDIA_TYPES[path.suffix], f"fedsynth-{run_id}-{name}")


def _read_as(dialect: str | None) -> list[dict[str, Any]]:
    """The table note that says how a text upload was read (delimiter, decimal mark, encoding)."""
    return [] if dialect is None else [{"column": None, "message": f"{READ_AS} {dialect}"}]


def _new_run_id(db: Database) -> str:
    from fedsynth.web.storage import new_id

    run_id = new_id()
    while db.get_run(run_id) is not None:  # 64 random bits: practically never
        run_id = new_id()
    return run_id
