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

from fedsynth.core.metrics import FAMILIES
from fedsynth.core.registry import available_generators, get_generator_class
from fedsynth.exceptions import DataWarning, FedsynthError, MetadataError
from fedsynth.tabular.metadata import Metadata
from fedsynth.web.db import Database, DatasetRecord, RunRecord, now
from fedsynth.web.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PrivacyGateError,
)
from fedsynth.web.inspection import ColumnChoice, edit_metadata, inspect_table
from fedsynth.web.jobs import JobManager
from fedsynth.web.release import GATED, RELEASED, released
from fedsynth.web.schemas import RunIn
from fedsynth.web.security import Principal
from fedsynth.web.settings import WebSettings
from fedsynth.web.storage import Storage
from fedsynth.web.summary import column_summaries
from fedsynth.web.uploads import check_content, display_name, format_of, read_upload, save_upload

#: Strategies that average weights, and so need a generator with weights.
WEIGHT_STRATEGIES = frozenset({"fedavg", "fedprox"})
MEDIA_TYPES = {
    ".csv": "text/csv",
    ".parquet": "application/vnd.apache.parquet",
    ".html": "text/html",
    ".json": "application/json",
    ".zip": "application/zip",
    ".png": "image/png",
}


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
            table = read_upload(path, file_format, filename=shown)
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
            notes=found.notes,
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
        return read_upload(path, record.file_format, filename=record.filename)

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
        self.db.update_dataset_metadata(
            dataset_id, found.metadata.to_dict(), found.problems, found.notes
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
            Listing every setting that cannot be used, each with what was expected.
        """
        dataset = self.dataset(request.dataset_id)
        config = self._run_config(request, dataset)
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

    def _run_config(self, request: RunIn, dataset: DatasetRecord) -> dict[str, Any]:
        problems: list[str] = []
        if not dataset.ready:
            problems += [
                ("" if p["column"] is None else f"column {p['column']!r}: ") + p["message"]
                for p in dataset.problems
            ]
            raise InvalidRequestError(
                f"dataset {dataset.name!r} has {len(problems)} problem(s) to fix in its metadata "
                "first:\n  - " + "\n  - ".join(problems)
            )
        metadata = Metadata.from_dict(dataset.metadata)
        problems += _generator_problems(request)
        problems += _condition_problems(request, metadata)
        problems += _rebalance_problems(request, metadata, self, dataset)
        sources = [_source(dataset)]
        if request.federated is not None:
            federated_problems, extra = self._federation_problems(request, dataset, metadata)
            problems += federated_problems
            sources += extra
        if problems:
            raise InvalidRequestError(
                f"{len(problems)} problem(s) with the run settings:\n  - " + "\n  - ".join(problems)
            )
        families = [f for f in FAMILIES if f in {*request.families, "privacy"}]
        config = request.model_dump(mode="json")
        config.update(
            families=families,
            metadata=dataset.metadata,
            sources=sources,
            title=f"{dataset.name}, {request.generator}"
            + (" (federated)" if request.federated else ""),
        )
        return config

    def _federation_problems(
        self, request: RunIn, dataset: DatasetRecord, metadata: Metadata
    ) -> tuple[list[str], list[dict[str, Any]]]:
        settings = request.federated
        assert settings is not None
        problems: list[str] = []
        sources: list[dict[str, Any]] = []
        if request.conditions or request.rebalance:
            problems.append("conditions and rebalancing are for central runs, not federated ones")
        if request.epochs is not None:
            problems.append("federated sites train local_epochs per round: leave epochs empty")
        if request.public_domain:
            problems.append("public_domain is for central runs; the sites share their domain")
        if bool(settings.site_column) == bool(settings.site_datasets):
            problems.append(
                "choose the sites either by a site column or by one dataset per site (not both)"
            )
        if settings.secure_aggregation and not WEIGHT_STRATEGIES & set(settings.strategies):
            problems.append(
                "secure_aggregation applies to the strategies that average weights (fedavg, "
                "fedprox); choose one of them"
            )
        if settings.site_column:
            column = metadata.columns.get(settings.site_column)
            summary = {s["name"]: s for s in dataset.summary}.get(settings.site_column)
            if column is None or column.kind == "identifier":
                problems.append(
                    f"site column {settings.site_column!r} is not a column of {dataset.name!r} "
                    "(or is an excluded identifier)"
                )
            elif summary is not None and summary["distinct"] < 2:
                problems.append(
                    f"site column {settings.site_column!r} has {summary['distinct']} value(s); "
                    "a federation needs at least 2 sites"
                )
        names = [dataset.name]
        seen = {dataset.id}
        columns = set(metadata.columns)
        for other_id in settings.site_datasets:
            other = self.db.get_dataset(other_id)
            if other is None:
                problems.append(f"no dataset with id {other_id!r} (site datasets)")
                continue
            if other.id in seen:
                problems.append(f"dataset {other.name!r} is named twice as a site")
                continue
            seen.add(other.id)
            if not other.ready:
                problems.append(f"site dataset {other.name!r} has problems to fix first")
            other_columns = set(other.metadata["columns"])
            if other_columns != columns:
                missing = sorted(columns - other_columns)
                extra = sorted(other_columns - columns)
                problems.append(
                    f"site dataset {other.name!r} has other columns than {dataset.name!r}: "
                    f"missing {missing}, extra {extra}"
                )
            sources.append(_source(other, unique_site(other.name, names)))
            names.append(sources[-1]["site"])
        cls = get_generator_class(request.generator)
        averaging = sorted(WEIGHT_STRATEGIES & set(settings.strategies))
        if averaging and not cls.has_weights:
            neural = [n for n in available_generators() if get_generator_class(n).has_weights]
            problems.append(
                f"{request.generator} has no trainable weights to average "
                f"({', '.join(averaging)}); use synthetic_sharing or generator_sharing, or a "
                f"neural generator ({', '.join(neural)})"
            )
        return problems, sources

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


def _new_run_id(db: Database) -> str:
    from fedsynth.web.storage import new_id

    run_id = new_id()
    while db.get_run(run_id) is not None:  # 64 random bits: practically never
        run_id = new_id()
    return run_id


def _source(dataset: DatasetRecord, site: str | None = None) -> dict[str, Any]:
    return {
        "dataset_id": dataset.id,
        "file_format": dataset.file_format,
        "filename": dataset.filename,
        "site": site or dataset.name,
    }


def unique_site(name: str, taken: list[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... when already taken."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def _generator_problems(request: RunIn) -> list[str]:
    cls = get_generator_class(request.generator)
    params = cls._param_names()
    problems = []
    if request.epochs is not None and "epochs" not in params:
        neural = [
            n for n in available_generators() if "epochs" in get_generator_class(n)._param_names()
        ]
        problems.append(
            f"{request.generator} is not trained in epochs: leave epochs empty, or choose one "
            f"of {', '.join(neural)}"
        )
    if request.public_domain and request.epsilon is None:
        problems.append("public_domain only matters with differential privacy: set epsilon")
    if request.epsilon is not None and "dp" not in params:
        private = [
            n for n in available_generators() if "dp" in get_generator_class(n)._param_names()
        ]
        problems.append(
            f"{request.generator} has no differential privacy: leave epsilon empty, or choose "
            f"one of {', '.join(private)}"
        )
    return problems


def _condition_problems(request: RunIn, metadata: Metadata) -> list[str]:
    problems = []
    if request.conditions and request.rebalance:
        problems.append("choose conditions or rebalancing, not both")
    for column, value in request.conditions.items():
        col = metadata.columns.get(column)
        if col is None or col.kind == "identifier":
            why = "an excluded identifier" if col is not None else "not a column of the dataset"
            problems.append(f"condition on {column!r}: it is {why}")
        elif col.is_discrete and col.categories is not None:
            allowed = [str(c) for c in col.categories]
            if str(value) not in allowed and not _same_number(value, col.categories):
                problems.append(
                    f"condition {column}={value!r}: not a value of the column; expected one of "
                    f"{allowed[:20]}"
                )
        elif col.is_continuous:
            try:
                float(value)
            except (TypeError, ValueError):
                problems.append(f"condition {column}={value!r}: {column!r} is numeric")
    return problems


def _same_number(value: Any, categories: list) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return any(isinstance(c, (int, float)) and float(c) == number for c in categories)


def _rebalance_problems(
    request: RunIn, metadata: Metadata, services: Services, dataset: DatasetRecord
) -> list[str]:
    settings = request.rebalance
    if settings is None:
        return []
    from fedsynth.tabular.augmentation import rebalance_plan
    from fedsynth.web.pipeline import category_shares

    if request.rows is not None:
        return ["rows is set by the rebalancing (the rows each group needs): leave it empty"]
    try:
        shares = category_shares(metadata, settings.column, settings.shares)
        rebalance_plan(services.table(dataset), settings.column, shares)
    except (ValueError, MetadataError) as exc:
        return [f"rebalancing: {exc}"]
    return []
