"""A run request checked against its dataset(s), and the settings stored with the run.

Every problem is collected and reported at once, each naming the setting and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from fedsynth.core.metrics import FAMILIES
from fedsynth.core.registry import available_generators, get_generator_class, make
from fedsynth.exceptions import MetadataError
from fedsynth.federated import STRATEGIES
from fedsynth.tabular.metadata import Metadata
from fedsynth.web.db import Database, DatasetRecord
from fedsynth.web.errors import InvalidRequestError
from fedsynth.web.schemas import RunIn

#: Strategies that average weights, and so need a generator with weights (as they declare).
WEIGHT_STRATEGIES: tuple[str, ...] = tuple(
    name for name, strategy in STRATEGIES.items() if strategy.averages_weights
)


def run_config(
    request: RunIn,
    dataset: DatasetRecord,
    db: Database,
    read: Callable[[DatasetRecord], pd.DataFrame],
    *,
    max_rows: int,
) -> dict[str, Any]:
    """The settings stored with a run: the request checked against its dataset(s) (``read``
    gives a dataset's table, for a rebalancing plan), with their metadata and files; ``rows``
    may not pass ``max_rows``.

    Raises
    ------
    InvalidRequestError
        Listing every setting that cannot be used, each with what was expected.
    """
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
    if request.rows is not None and request.rows > max_rows:
        problems.append(
            f"rows={request.rows:,} is above this server's limit of {max_rows:,} synthetic rows "
            "per run (max_run_rows); ask for fewer rows"
        )
    problems += _generator_problems(request)
    problems += _condition_problems(request, metadata)
    problems += _rebalance_problems(request, metadata, dataset, read)
    sources = [_source(dataset)]
    if request.federated is not None:
        federated_problems, extra = _federation_problems(request, dataset, metadata, db)
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
    request: RunIn, dataset: DatasetRecord, metadata: Metadata, db: Database
) -> tuple[list[str], list[dict[str, Any]]]:
    settings = request.federated
    assert settings is not None
    problems: list[str] = []
    sources: list[dict[str, Any]] = []
    averaging = [name for name in settings.strategies if name in WEIGHT_STRATEGIES]
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
    if settings.secure_aggregation and not averaging:
        problems.append(
            "secure_aggregation applies to the strategies that average weights "
            f"({', '.join(WEIGHT_STRATEGIES)}); choose one of them"
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
        other = db.get_dataset(other_id)
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
    if averaging and not get_generator_class(request.generator).has_weights:
        neural = [n for n in available_generators("tabular") if get_generator_class(n).has_weights]
        others = [name for name in STRATEGIES if name not in WEIGHT_STRATEGIES]
        problems.append(
            f"{request.generator} has no trainable weights to average "
            f"({', '.join(averaging)}); use {' or '.join(others)}, or a "
            f"neural generator ({', '.join(neural)})"
        )
    return problems, sources


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
    params = _parameters(request.generator)
    problems = []
    if request.epochs is not None and "epochs" not in params:
        neural = [n for n in available_generators("tabular") if "epochs" in _parameters(n)]
        problems.append(
            f"{request.generator} is not trained in epochs: leave epochs empty, or choose one "
            f"of {', '.join(neural)}"
        )
    if request.public_domain and request.epsilon is None:
        problems.append("public_domain only matters with differential privacy: set epsilon")
    if request.epsilon is not None and "dp" not in params:
        private = [n for n in available_generators("tabular") if "dp" in _parameters(n)]
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
    request: RunIn,
    metadata: Metadata,
    dataset: DatasetRecord,
    read: Callable[[DatasetRecord], pd.DataFrame],
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
        rebalance_plan(read(dataset), settings.column, shares)
    except (ValueError, MetadataError) as exc:
        return [f"rebalancing: {exc}"]
    return []


def _parameters(generator: str) -> set[str]:
    """The hyperparameters a generator takes (its defaults are cheap to build)."""
    return set(make(generator).get_params())
