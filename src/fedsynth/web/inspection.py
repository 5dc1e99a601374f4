"""The metadata of an uploaded table as the pages show and edit it, with every problem found.

:func:`inspect_table` infers the metadata and checks the table; :func:`edit_metadata` applies
the kinds and genomic flags chosen in the editable table. Both report problems per column, as
``{"column": name or None, "message": text}``, so that each is shown next to its column.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fedsynth.exceptions import DataWarning, MetadataError, Problem
from fedsynth.tabular.metadata import KINDS, ColumnMetadata, Metadata
from fedsynth.tabular.metadata.checks import check_table
from fedsynth.tabular.metadata.inference import (
    competing_notes,
    identifier_reason,
    survival_notes,
)
from fedsynth.tabular.metadata.table import column_for_kind

GENOMIC = "genomic"
IDENTIFIER_NOTE = (
    "excluded as an identifier: never learned, never in the synthetic data (change the kind "
    "to keep it)"
)


@dataclass
class Inspection:
    """Metadata of a table and what its checks found.

    Attributes
    ----------
    metadata : Metadata
        The metadata (inferred, then edited).
    problems : list of dict
        What must be fixed before a run can start.
    notes : list of dict
        What is handled but worth knowing (identifiers excluded, constant columns).
    """

    metadata: Metadata
    problems: list[dict[str, Any]]
    notes: list[dict[str, Any]]


@dataclass(frozen=True)
class ColumnChoice:
    """What the user chose for one column in the editable table.

    ``genomic`` ``None`` keeps the column's current group.
    """

    kind: str
    genomic: bool | None = None


def _as_dicts(problems: list[Problem]) -> list[dict[str, Any]]:
    return [{"column": p.column, "message": p.message} for p in problems]


def check(table: pd.DataFrame, metadata: Metadata) -> Inspection:
    """Check ``table`` against ``metadata``; collect problems and notes."""
    problems, notes = check_table(table, metadata)
    excluded = []
    for name in metadata.identifiers:
        reason = identifier_reason(name, table[name]) if name in table.columns else None
        excluded.append(
            Problem(name, IDENTIFIER_NOTE + (f"; taken for {reason}" if reason else ""))
        )
    notes = [
        *excluded,
        *survival_notes(table, metadata.columns),
        *competing_notes(metadata.columns),
        *notes,
    ]
    return Inspection(metadata, _as_dicts(problems), _as_dicts(notes))


def inspect_table(table: pd.DataFrame) -> Inspection:
    """Infer the metadata of an uploaded table and check it.

    Examples
    --------
    >>> df = pd.DataFrame({"mrn": [f"A{i}" for i in range(30)], "age": range(30, 60)})
    >>> found = inspect_table(df)
    >>> found.metadata.kinds["mrn"], found.notes[0]["column"]
    ('identifier', 'mrn')
    """
    with warnings.catch_warnings():
        # Identifiers are reported as notes next to their column instead.
        warnings.simplefilter("ignore", DataWarning)
        metadata = Metadata.infer(table)
    return check(table, metadata)


def edit_metadata(
    table: pd.DataFrame, current: Metadata, choices: Mapping[str, ColumnChoice]
) -> Inspection:
    """Apply the user's kinds and genomic flags, then check the table again.

    A column whose kind changes gets the facts of its new kind from the data (categories,
    bounds), as :meth:`Metadata.infer` does for an override.

    Raises
    ------
    MetadataError
        Listing every choice that cannot be applied (unknown column or kind, a genomic flag on
        a column that is not binary, two survival pairs...), each naming its column.
    """
    problems: list[Problem] = []
    columns: dict[str, ColumnMetadata] = dict(current.copy().columns)
    for name, choice in choices.items():
        if name not in columns or name not in table.columns:
            problems.append(Problem(name, "is not a column of the table"))
            continue
        if choice.kind not in KINDS:
            problems.append(
                Problem(name, f"unknown kind {choice.kind!r}; expected one of {', '.join(KINDS)}")
            )
            continue
        column = columns[name]
        if choice.kind != column.kind:
            column = column_for_kind(table[name], choice.kind)
        if choice.genomic and choice.kind != "binary":
            problems.append(
                Problem(
                    name,
                    "only binary columns (mutation flags) can be genomic; this one is "
                    f"{choice.kind}",
                )
            )
            continue
        if choice.genomic is not None:
            column.group = GENOMIC if choice.genomic else None
        elif choice.kind != "binary":
            column.group = None
        columns[name] = column
    if problems:
        raise MetadataError(problems)
    return check(table, Metadata(columns))
