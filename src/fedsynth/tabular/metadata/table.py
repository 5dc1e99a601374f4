"""The :class:`Metadata` of a table: one :class:`ColumnMetadata` per column, and their roles."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.exceptions import DataWarning, InvalidDataError, MetadataError, Problem
from fedsynth.tabular.metadata.checks import check_column_names, check_metadata, check_table
from fedsynth.tabular.metadata.columns import KINDS, ColumnMetadata, dtype_name
from fedsynth.tabular.metadata.inference import (
    competing_codes,
    competing_notes,
    event_labels,
    gene_symbol,
    identifier_reason,
    infer_column,
    infer_roles,
    numeric_metadata,
    numeric_view,
    sorted_categories,
    survival_notes,
    text_numeric_metadata,
)
from fedsynth.tabular.metadata.values import ENCODING_KEY, read_numbers, read_text, text_labels

FORMAT_VERSION = 1
ColumnSpec = ColumnMetadata | Mapping[str, Any] | str


class Metadata:
    """Kinds of the columns of a clinical table, and their roles (survival pair, site, genomic).

    Build it with :meth:`infer` from a DataFrame, override what the rules got wrong, and save it
    to edit by hand. Generators infer it themselves when none is given.

    Parameters
    ----------
    columns : mapping of str to ColumnMetadata, dict or str
        Column name to its description; a bare string is the kind.

    Examples
    --------
    >>> import pandas as pd
    >>> from fedsynth.tabular.metadata import Metadata
    >>> df = pd.DataFrame({"age": [61, 70, 55], "TP53": [0, 1, 0],
    ...                    "os_months": [12.0, 3.5, 40.1], "os_status": [1, 1, 0]})
    >>> md = Metadata.infer(df)
    >>> md.survival
    ('os_months', 'os_status')
    >>> md.genomic_columns
    ['TP53']
    """

    def __init__(self, columns: Mapping[str, ColumnSpec]):
        self.columns: dict[str, ColumnMetadata] = {
            str(name): spec if isinstance(spec, ColumnMetadata) else ColumnMetadata.from_dict(spec)
            for name, spec in columns.items()
        }
        problems = check_metadata(self)
        if problems:
            raise MetadataError(problems)

    # ------------------------------------------------------------------ inference
    @classmethod
    def infer(
        cls,
        data: pd.DataFrame,
        *,
        duration: str | None = None,
        event: str | None = None,
        site: str | None = None,
        identifiers: Iterable[str] | None = None,
        genomic: Iterable[str] | None = None,
        overrides: Mapping[str, ColumnSpec] | Metadata | str | os.PathLike | None = None,
    ) -> Metadata:
        """Infer the metadata of ``data``, then apply what the user knows better.

        Parameters
        ----------
        data : DataFrame
            The table (it is not modified).
        duration, event : str, optional
            The survival time and event columns, when their names do not tell.
        site : str, optional
            The column naming each row's hospital.
        identifiers : iterable of str, optional
            Further columns to exclude as identifiers.
        genomic : iterable of str, optional
            Binary columns of the genomic group (default: binary columns named after known genes).
        overrides : mapping, Metadata or path, optional
            Column descriptions that replace the inferred ones (a kind string, a dict as in
            :meth:`to_dict`, or a JSON/YAML file holding such a mapping).

        Warns
        -----
        DataWarning
            For each column excluded as an identifier.
        """
        if not isinstance(data, pd.DataFrame):
            raise InvalidDataError(
                [Problem(None, f"expected a pandas DataFrame, got {type(data).__name__}")]
            )
        problems: list[Problem] = []
        if data.shape[1] == 0 or len(data) == 0:
            raise InvalidDataError(
                [Problem(None, f"the table is empty ({len(data)} rows x {data.shape[1]} columns)")]
            )
        name_problems = check_column_names(data)
        if name_problems:
            raise InvalidDataError(name_problems)
        columns = {str(c): infer_column(str(c), data[c]) for c in data.columns}
        named = {"duration": duration, "event": event, "site": site}
        for role, name in named.items():
            if name is not None and name not in columns:
                problems.append(Problem(name, f"named as the {role} column but not in the table"))
        for name in identifiers or ():
            if name not in columns:
                problems.append(Problem(name, "named as an identifier but not in the table"))
        for name in genomic or ():
            if name not in columns:
                problems.append(Problem(name, "named as genomic but not in the table"))
        override_specs = _read_overrides(overrides)
        for name, spec in override_specs.items():
            if name not in columns:
                problems.append(Problem(name, "has an override but is not in the table"))
            elif spec.kind not in KINDS:
                problems.append(
                    Problem(name, f"unknown kind {spec.kind!r}; expected one of {', '.join(KINDS)}")
                )
        if problems:
            raise MetadataError(problems)

        auto_duration, auto_event, auto_site = infer_roles(data, columns)
        if duration is None and event is None:
            duration, event = auto_duration, auto_event
        site = site if site is not None else auto_site
        for role, name in (("duration", duration), ("event", event), ("site", site)):
            if name is not None:
                columns[name] = column_for_kind(data[name], role)
        for name in identifiers or ():
            columns[name] = ColumnMetadata(kind="identifier", dtype=str(data[name].dtype))
        if genomic is not None:
            wanted = set(genomic)
            for name, col in columns.items():
                if name in wanted:
                    if col.kind != "binary":
                        col = column_for_kind(data[name], "binary")
                    col.group = "genomic"
                    columns[name] = col
                elif col.group == "genomic":
                    col.group = None
        for name, spec in override_specs.items():
            columns[name] = _merge_override(data[name], columns[name], spec)

        metadata = cls(columns)
        declared = set(identifiers or ())
        for name in metadata.identifiers:
            reason = None if name in declared else identifier_reason(name, data[name])
            kept = "numeric" if read_numbers(data[name]) is not None else "categorical"
            warnings.warn(
                f"column {name!r} looks like an identifier: "
                f"{reason or 'a unique value per row, or a name such as id/mrn/name/dob'}; it "
                "is excluded from learning and never emitted. To keep it, override its kind: "
                f"overrides={{{name!r}: {kept!r}}}.",
                DataWarning,
                stacklevel=2,
            )
        for note in [*survival_notes(data, metadata.columns), *competing_notes(metadata.columns)]:
            warnings.warn(f"column {note.column!r} {note.message}", DataWarning, stacklevel=2)
        return metadata

    # ------------------------------------------------------------------ roles
    def columns_of_kind(self, kind: str) -> list[str]:
        """Names of the columns of one kind, in table order."""
        return [name for name, col in self.columns.items() if col.kind == kind]

    @property
    def kinds(self) -> dict[str, str]:
        """Column name to kind."""
        return {name: col.kind for name, col in self.columns.items()}

    @property
    def duration(self) -> str | None:
        """The survival time column, if any."""
        found = self.columns_of_kind("duration")
        return found[0] if found else None

    @property
    def event(self) -> str | None:
        """The survival event column (0 = censored, 1 = event or 1..K = causes), if any."""
        found = self.columns_of_kind("event")
        return found[0] if found else None

    @property
    def survival(self) -> tuple[str, str] | None:
        """``(duration, event)`` when the table has a survival outcome."""
        if self.duration is None or self.event is None:
            return None
        return self.duration, self.event

    @property
    def site(self) -> str | None:
        """The site column, if any."""
        found = self.columns_of_kind("site")
        return found[0] if found else None

    @property
    def identifiers(self) -> list[str]:
        """Columns excluded from learning and never emitted."""
        return self.columns_of_kind("identifier")

    @property
    def genomic_columns(self) -> list[str]:
        """Binary columns of the ``"genomic"`` group (e.g. mutation flags)."""
        return [name for name, col in self.columns.items() if col.group == "genomic"]

    def learnable_columns(self, data: pd.DataFrame | None = None) -> list[str]:
        """Columns a generator learns: not identifiers and, when ``data`` is given, not constant."""
        names = [name for name, col in self.columns.items() if col.kind != "identifier"]
        if data is None:
            return names
        return [n for n in names if n in data.columns and data[n].nunique(dropna=False) > 1]

    # ------------------------------------------------------------------ editing
    def update_column(self, name: str, **changes: Any) -> Metadata:
        """Change fields of one column (e.g. ``kind="categorical"``); returns ``self``.

        Changing the kind clears the facts that belong to the old kind (categories, bounds),
        which are then taken from the data at fit time.
        """
        if name not in self.columns:
            raise MetadataError([Problem(name, "not in the metadata")])
        col = self.columns[name]
        unknown = set(changes) - set(ColumnMetadata.__dataclass_fields__)
        if unknown:
            raise MetadataError([Problem(name, f"unknown field(s) {sorted(unknown)}")])
        if "kind" in changes and changes["kind"] != col.kind:
            col = ColumnMetadata(kind=changes["kind"], dtype=col.dtype, group=col.group)
        for key, value in changes.items():
            setattr(col, key, value)
        problems = [p for p in check_metadata(self._with(name, col)) if p.column in (name, None)]
        if problems:
            raise MetadataError(problems)
        self.columns[name] = col
        return self

    def _with(self, name: str, col: ColumnMetadata) -> Metadata:
        new = object.__new__(Metadata)
        new.columns = {**self.columns, name: col}
        return new

    def copy(self) -> Metadata:
        """An independent copy."""
        return Metadata.from_dict(self.to_dict())

    def resolve(self, data: pd.DataFrame) -> Metadata:
        """A copy whose unset facts (dtype, bounds, categories, integer) come from ``data``."""
        resolved = {}
        for name, col in self.columns.items():
            if name not in data.columns:
                resolved[name] = col
                continue
            derived = column_for_kind(data[name], col.kind)
            resolved[name] = ColumnMetadata(
                kind=col.kind,
                dtype=col.dtype or derived.dtype,
                integer=col.integer if col.integer is not None else derived.integer,
                decimals=col.decimals if col.decimals is not None else derived.decimals,
                bounds=col.bounds if col.bounds is not None else derived.bounds,
                categories=col.categories if col.categories is not None else derived.categories,
                group=col.group,
                extra={**derived.extra, **col.extra},
            )
        return Metadata(resolved)

    # ------------------------------------------------------------------ checking
    def check(self, data: pd.DataFrame) -> None:
        """Check ``data`` against this metadata; raise one error that lists every problem.

        Raises
        ------
        InvalidDataError
            Naming each column and what was expected.

        Warns
        -----
        DataWarning
            For constant or entirely missing columns (kept as they are).
        """
        problems, notes = check_table(data, self)
        if problems:
            raise InvalidDataError(problems)
        for note in notes:
            warnings.warn(str(note), DataWarning, stacklevel=2)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready description."""
        return {
            "fedsynth_metadata": FORMAT_VERSION,
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Metadata:
        """Inverse of :meth:`to_dict` (a plain ``{column: kind}`` mapping is accepted too)."""
        columns = data.get("columns", data) if isinstance(data, Mapping) else None
        if not isinstance(columns, Mapping):
            raise MetadataError([Problem(None, "expected a mapping of column names")])
        columns = {k: v for k, v in columns.items() if k != "fedsynth_metadata"}
        problems = []
        for name, spec in columns.items():
            if not isinstance(spec, (str, Mapping, ColumnMetadata)) or (
                isinstance(spec, Mapping) and "kind" not in spec
            ):
                problems.append(Problem(name, "expected a kind or a mapping with a 'kind' key"))
        if problems:
            raise MetadataError(problems)
        return cls(columns)

    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``path`` as JSON, or as YAML when it ends in ``.yaml``/``.yml``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        else:
            path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Metadata:
        """Read a file written by :meth:`save` (or by hand)."""
        return cls.from_dict(_read_mapping(path))

    # ------------------------------------------------------------------ display
    def summary(self) -> pd.DataFrame:
        """One row per column: kind, dtype, group, bounds, number of categories."""
        rows = []
        for name, col in self.columns.items():
            rows.append(
                {
                    "column": name,
                    "kind": col.kind,
                    "dtype": col.dtype,
                    "group": col.group or "",
                    "integer": col.integer,
                    "bounds": col.bounds,
                    "n_categories": None if col.categories is None else len(col.categories),
                }
            )
        return pd.DataFrame(rows).set_index("column")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Metadata) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for col in self.columns.values():
            counts[col.kind] = counts.get(col.kind, 0) + 1
        parts = [f"{counts[k]} {k}" for k in ("numeric", "categorical", "binary") if k in counts]
        if self.genomic_columns:
            parts.append(f"{len(self.genomic_columns)} genomic")
        if self.survival:
            parts.append(f"survival: {self.duration}/{self.event}")
        if self.site:
            parts.append(f"site: {self.site}")
        if self.identifiers:
            parts.append(f"{len(self.identifiers)} identifier(s) excluded")
        return f"<Metadata: {len(self.columns)} columns ({', '.join(parts)})>"


def column_for_kind(series: pd.Series, kind: str) -> ColumnMetadata:
    """Describe ``series`` as a column of the given kind (facts taken from its values)."""
    dtype = dtype_name(series)
    if kind in {"numeric", "duration"}:
        reading = read_text(series)
        if reading is not None:  # text read as numbers (or dates), written back the same way
            col = text_numeric_metadata(dtype, reading)
        else:
            numbers = read_numbers(series)
            if numbers is None:  # labels: leave facts unset, the checks report the column
                return ColumnMetadata(kind=kind, dtype=dtype)
            col = numeric_metadata(dtype, numbers.dropna())
            if pd.api.types.is_datetime64_any_dtype(series):
                col.extra[ENCODING_KEY] = {"as": "datetime"}
            elif pd.api.types.is_timedelta64_dtype(series):
                col.extra[ENCODING_KEY] = {"as": "timedelta"}
        col.kind = kind
        return col
    if kind == "identifier":
        return ColumnMetadata(kind=kind, dtype=dtype)
    values = text_labels(series.dropna())
    if kind == "event":
        categories = event_labels(series) or competing_codes(series) or [0, 1]
        return ColumnMetadata(kind=kind, dtype=dtype, categories=categories)
    if kind == "binary":
        categories = sorted_categories(values)
        if pd.api.types.is_bool_dtype(series):
            categories = [False, True]
        elif numeric_view(series) is not None and set(np.unique(values)) <= {0, 1}:
            categories = [0, 1]
        group = "genomic" if gene_symbol(str(series.name)) else None
        return ColumnMetadata(kind=kind, dtype=dtype, categories=categories, group=group)
    return ColumnMetadata(kind=kind, dtype=dtype, categories=sorted_categories(values))


def _merge_override(series: pd.Series, inferred: ColumnMetadata, spec: ColumnMetadata):
    """The override's fields over facts derived from the data for the override's kind."""
    base = inferred if spec.kind == inferred.kind else column_for_kind(series, spec.kind)
    return ColumnMetadata(
        kind=spec.kind,
        dtype=spec.dtype or base.dtype,
        integer=spec.integer if spec.integer is not None else base.integer,
        decimals=spec.decimals if spec.decimals is not None else base.decimals,
        bounds=spec.bounds if spec.bounds is not None else base.bounds,
        categories=spec.categories if spec.categories is not None else base.categories,
        group=spec.group if spec.group is not None else base.group,
        extra={**base.extra, **spec.extra},
    )


def _read_mapping(path: str | os.PathLike) -> Mapping[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MetadataError([Problem(None, f"metadata file {str(path)!r} does not exist")])
    text = path.read_text()
    try:
        if path.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        problem = Problem(None, f"cannot read metadata file {str(path)!r}: {exc}")
        raise MetadataError([problem]) from exc
    if not isinstance(data, Mapping):
        raise MetadataError([Problem(None, f"{str(path)!r} does not hold a mapping of columns")])
    return data


def _read_overrides(overrides) -> dict[str, ColumnMetadata]:
    if overrides is None:
        return {}
    if isinstance(overrides, Metadata):
        return dict(overrides.columns)
    if isinstance(overrides, (str, os.PathLike)):
        overrides = _read_mapping(overrides)
    columns = overrides.get("columns", overrides)
    problems = []
    specs = {}
    for name, spec in columns.items():
        if name == "fedsynth_metadata":
            continue
        if isinstance(spec, Mapping) and "kind" not in spec:
            problems.append(Problem(name, "override needs a 'kind'"))
            continue
        specs[str(name)] = (
            spec if isinstance(spec, ColumnMetadata) else ColumnMetadata.from_dict(spec)
        )
    if problems:
        raise MetadataError(problems)
    return specs
