"""Records shaped for answers: what the API returns and the pages render (never a real row)."""

from __future__ import annotations

from typing import Any

from fedsynth.core.registry import available_generators, get_generator_class
from fedsynth.web.db import DatasetRecord, RunRecord
from fedsynth.web.release import released
from fedsynth.web.schemas import (
    ColumnOut,
    DatasetOut,
    DatasetSummaryOut,
    GeneratorOut,
    OverrideOut,
    ProblemOut,
    RunOut,
)


def generators() -> list[GeneratorOut]:
    """Every generator and the options it takes."""
    out = []
    for name in available_generators("tabular"):
        cls = get_generator_class(name)
        params = cls().get_params()  # a generator's defaults are cheap to build
        out.append(
            GeneratorOut(
                name=name,
                epochs="epochs" in params,
                dp="dp" in params,
                weights=bool(cls.has_weights),
                native_conditioning=bool(cls.native_conditioning),
            )
        )
    return out


def dataset_summary(record: DatasetRecord) -> DatasetSummaryOut:
    """A dataset in the list."""
    return DatasetSummaryOut(
        id=record.id,
        name=record.name,
        filename=record.filename,
        rows=record.n_rows,
        columns=record.n_columns,
        created=record.created,
        ready=record.ready,
        problems=len(record.problems),
    )


def dataset(record: DatasetRecord) -> DatasetOut:
    """A dataset with its metadata, column summaries and problems (by column)."""
    columns: dict[str, Any] = record.metadata["columns"]
    by_column: dict[str | None, dict[str, list[str]]] = {}
    for key, found in (("problems", record.problems), ("notes", record.notes)):
        for item in found:
            by_column.setdefault(item["column"], {"problems": [], "notes": []})[key].append(
                item["message"]
            )
    shown = []
    for summary in record.summary:
        name = summary["name"]
        column = columns.get(name, {"kind": "?"})
        extra = by_column.get(name, {"problems": [], "notes": []})
        shown.append(
            ColumnOut(
                name=name,
                kind=column["kind"],
                group=column.get("group"),
                dtype=summary["dtype"],
                missing=summary["missing"],
                distinct=summary["distinct"],
                details=summary["details"],
                problems=extra["problems"],
                notes=extra["notes"],
            )
        )
    kinds = {name: column["kind"] for name, column in columns.items()}
    duration = [n for n, k in kinds.items() if k == "duration"]
    event = [n for n, k in kinds.items() if k == "event"]
    sites = [n for n, k in kinds.items() if k == "site"]
    return DatasetOut(
        id=record.id,
        name=record.name,
        filename=record.filename,
        file_format=record.file_format,
        size_bytes=record.size_bytes,
        rows=record.n_rows,
        created=record.created,
        ready=record.ready,
        survival=[duration[0], event[0]] if len(duration) == 1 and len(event) == 1 else None,
        site=sites[0] if len(sites) == 1 else None,
        genomic=[n for n, column in columns.items() if column.get("group") == "genomic"],
        identifiers=[n for n, k in kinds.items() if k == "identifier"],
        columns=shown,
        problems=[ProblemOut(**p) for p in record.problems],
        notes=[ProblemOut(**p) for p in record.notes],
        metadata=record.metadata,
    )


#: Settings of a run shown to users (the metadata snapshot and file sources stay internal).
_SHOWN_SETTINGS = (
    "generator",
    "epochs",
    "epsilon",
    "delta",
    "public_domain",
    "rows",
    "conditions",
    "rebalance",
    "holdout_fraction",
    "families",
    "seed",
    "federated",
    "images",
    "label_columns",
)


def run(record: RunRecord) -> RunOut:
    """A run's state and results."""
    return RunOut(
        id=record.id,
        dataset_id=record.dataset_id,
        dataset_name=record.dataset_name,
        kind=record.kind,  # type: ignore[arg-type]
        status=record.status,  # type: ignore[arg-type]
        progress=record.progress,
        stage=record.stage,
        error=record.error,
        created=record.created,
        started=record.started,
        finished=record.finished,
        rerun_of=record.rerun_of,
        config={k: record.config.get(k) for k in _SHOWN_SETTINGS},
        artifacts=record.artifacts,
        scores=record.scores,
        privacy=record.privacy,  # type: ignore[arg-type]
        download_allowed=record.status == "done" and released(record.privacy, record.override),
        override=OverrideOut(**record.override) if record.override else None,
    )
