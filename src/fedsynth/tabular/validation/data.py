"""The inputs of a validation, checked and aligned once for every metric.

Real, synthetic and holdout tables are reduced to the columns of the metadata (identifiers
dropped), discrete values are compared as canonical labels (``1``, ``1.0``, ``"1"`` and ``True``
are one label) and numeric values as floats. Heavy metrics draw seeded subsamples through
:meth:`ValidationData.subsample`, which records a note that the report shows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.exceptions import InvalidDataError, MetadataError, Problem
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.metadata.checks import check_column_names
from fedsynth.tabular.validation.distances import GowerEmbedding

#: Kinds compared as numbers.
NUMERIC_KINDS = frozenset({"numeric", "duration"})
#: Kinds compared as labels.
DISCRETE_KINDS = frozenset({"categorical", "binary", "event", "site"})
_TRUE_FALSE = {"true": "1", "false": "0"}


def label(value: Any) -> Any:
    """Canonical label of a discrete value: numbers written without a trailing ``.0``.

    Examples
    --------
    >>> [label(v) for v in (1, 1.0, "1", True, "F", 2.5)]
    ['1', '1', '1', '1', 'F', '2.5']
    """
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return np.nan
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value)
    if text.lower() in _TRUE_FALSE:
        return _TRUE_FALSE[text.lower()]
    try:
        return label(float(text))
    except ValueError:
        return text


def labels(series: pd.Series) -> pd.Series:
    """The canonical labels of a column (missing values stay ``NaN``), as an object Series."""
    uniques = pd.unique(series.dropna())
    mapping = {value: label(value) for value in uniques}
    return series.astype(object).map(mapping).astype(object)


@dataclass
class ValidationData:
    """Aligned inputs, column roles and a cache shared by the metrics.

    Attributes
    ----------
    real, synthetic : DataFrame
        Numeric columns as float64, discrete columns as canonical labels, identifiers dropped.
    holdout : DataFrame or None
        Real rows never seen by the generator, prepared the same way.
    metadata : Metadata
        Resolved on the real table.
    target : str or None
        The column that the utility models predict.
    group : str or None
        The discrete column whose levels get their own survival curves.
    max_rows : int
        Largest number of rows a heavy metric uses from each table.
    n_attacks : int
        Number of attacks of each Anonymeter evaluator.
    seed : int
        Seed of every subsample and model.
    notes : list of str
        What the report must say about the computation (subsamples, fallbacks).
    """

    real: pd.DataFrame
    synthetic: pd.DataFrame
    holdout: pd.DataFrame | None
    metadata: Metadata
    target: str | None
    group: str | None
    max_rows: int
    n_attacks: int
    seed: int
    notes: list[str] = field(default_factory=list)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ column roles
    @property
    def columns(self) -> list[str]:
        """Compared columns, in table order."""
        return list(self.real.columns)

    def kind(self, column: str) -> str:
        """The metadata kind of ``column``."""
        return self.metadata.columns[column].kind

    @property
    def numeric(self) -> list[str]:
        """Columns compared as numbers (numeric and survival duration)."""
        return [c for c in self.columns if self.kind(c) in NUMERIC_KINDS]

    @property
    def discrete(self) -> list[str]:
        """Columns compared as labels (categorical, binary, event, site)."""
        return [c for c in self.columns if self.kind(c) in DISCRETE_KINDS]

    @property
    def genomic(self) -> list[str]:
        """Binary columns of the genomic group."""
        return [c for c in self.metadata.genomic_columns if c in self.real.columns]

    @property
    def clinical(self) -> list[str]:
        """Every compared column outside the genomic group."""
        genomic = set(self.genomic)
        return [c for c in self.columns if c not in genomic]

    @property
    def survival(self) -> tuple[str, str] | None:
        """``(duration, event)`` when the table has a survival outcome."""
        return self.metadata.survival

    def categories(self, column: str) -> list[str]:
        """Labels of a discrete column: the metadata's, then any other seen in the real data."""

        def compute() -> list[str]:
            known = self.metadata.columns[column].categories or []
            ordered = list(dict.fromkeys(label(c) for c in known))
            seen = self.real[column].dropna().unique().tolist()
            return ordered + sorted(str(c) for c in seen if c not in set(ordered))

        return list(self.cached(f"categories:{column}", compute))

    # ------------------------------------------------------------------ tables
    def table(self, which: str) -> pd.DataFrame:
        """``"real"``, ``"synthetic"`` or ``"holdout"``."""
        frame = getattr(self, which)
        if frame is None:
            raise ValueError(f"no {which} table")
        return frame

    def subsample(self, which: str, purpose: str, n: int | None = None) -> pd.DataFrame:
        """At most ``n`` (default ``max_rows``) rows of a table, drawn with the seed.

        The same call always returns the same rows; a note names the purpose when rows are
        left out.
        """
        frame = self.table(which)
        n = self.max_rows if n is None else n
        if len(frame) <= n:
            return frame
        key = f"subsample:{which}:{n}"
        if key not in self._cache:
            rng = np.random.default_rng([self.seed, len(frame), n])
            index = np.sort(rng.choice(len(frame), size=n, replace=False))
            self._cache[key] = frame.iloc[index]
        self.note(f"{purpose}: {n:,} of {len(frame):,} {which} rows (random subsample)")
        return self._cache[key]

    def note(self, text: str) -> None:
        """Add a line to the report's notes (once)."""
        if text not in self.notes:
            self.notes.append(text)

    def embedding(self) -> GowerEmbedding:
        """The Gower embedding fitted on the real table (shared by the distance metrics)."""
        others = [f for f in (self.synthetic, self.holdout) if f is not None]
        return self.cached(
            "gower", lambda: GowerEmbedding(self.numeric, self.discrete).fit(self.real, *others)
        )

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per validation, shared by the metrics that need it."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


def prepare(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    *,
    holdout: pd.DataFrame | None,
    metadata: Metadata | Mapping[str, Any] | str | os.PathLike | None,
    target: str | None,
    group: str | None,
    max_rows: int,
    n_attacks: int,
    seed: int,
) -> ValidationData:
    """Check the inputs (every problem collected) and align them.

    Raises
    ------
    InvalidDataError
        Naming each missing column, unusable value or bad argument.
    """
    problems: list[Problem] = []
    for name, frame in (("real", real), ("synthetic", synthetic), ("holdout", holdout)):
        if frame is None and name == "holdout":
            continue
        if not isinstance(frame, pd.DataFrame):
            problems.append(Problem(None, f"{name}: expected a DataFrame, got {type(frame)}"))
        elif len(frame) < 2:
            problems.append(Problem(None, f"{name}: at least 2 rows are needed, got {len(frame)}"))
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 50:
        problems.append(Problem(None, f"max_rows must be an integer >= 50, got {max_rows!r}"))
    if isinstance(n_attacks, bool) or not isinstance(n_attacks, int) or n_attacks < 10:
        problems.append(Problem(None, f"n_attacks must be an integer >= 10, got {n_attacks!r}"))
    if problems:
        raise InvalidDataError(problems)

    md = _metadata_for(real, metadata).resolve(real)
    md.check(real)
    columns = [c for c, col in md.columns.items() if col.kind != "identifier"]
    for name, frame in (("synthetic", synthetic), ("holdout", holdout)):
        if frame is None:
            continue
        named = check_column_names(frame)
        if named:  # repeated names would make frame[column] a table below
            problems += [Problem(None, f"{name} table: {p.message}") for p in named]
            continue
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            problems.append(Problem(None, f"{name} table lacks column(s) {missing}"))
    for role, column in (("target", target), ("group", group)):
        if column is None:
            continue
        if column not in md.columns:
            problems.append(Problem(column, f"named as the {role} but not a column of the data"))
        elif md.columns[column].kind == "identifier":
            problems.append(Problem(column, f"is an identifier and cannot be the {role}"))
    if group is not None and group in md.columns and md.columns[group].kind in NUMERIC_KINDS:
        problems.append(Problem(group, "the group must be a discrete column (categories)"))
    if problems:
        raise InvalidDataError(problems)

    frames = {}
    for name, frame in (("real", real), ("synthetic", synthetic), ("holdout", holdout)):
        if frame is None:
            continue
        converted, bad = _convert(frame, columns, md)
        problems += [Problem(c, f"{name} table: {why}") for c, why in bad]
        frames[name] = converted
    if problems:
        raise InvalidDataError(problems)

    data = ValidationData(
        real=frames["real"],
        synthetic=frames["synthetic"],
        holdout=frames.get("holdout"),
        metadata=md,
        target=target if target is not None else md.event,
        group=group if group is not None else md.site,
        max_rows=max_rows,
        n_attacks=n_attacks,
        seed=seed,
    )
    ignored = [c for c in synthetic.columns if c not in md.columns]
    if ignored:
        data.note(f"synthetic columns not in the real data are ignored: {ignored}")
    if target is None and data.target is not None:
        data.note(f"utility target: the survival event column {data.target!r} (default)")
    return data


def _metadata_for(real: pd.DataFrame, metadata) -> Metadata:
    if metadata is None:
        return Metadata.infer(real)
    if isinstance(metadata, Metadata):
        return metadata
    if isinstance(metadata, (Mapping, str, os.PathLike)):
        return Metadata.infer(real, overrides=metadata)
    raise MetadataError(
        [Problem(None, f"metadata must be a Metadata, a mapping or a path, got {type(metadata)}")]
    )


def _convert(
    frame: pd.DataFrame, columns: list[str], metadata: Metadata
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Numeric columns as float64 and discrete columns as labels; unusable values listed."""
    out, bad = {}, []
    for column in columns:
        series = frame[column].reset_index(drop=True)
        if metadata.columns[column].kind in NUMERIC_KINDS:
            if isinstance(series.dtype, pd.CategoricalDtype):
                series = series.astype(object)
            numbers = pd.to_numeric(series, errors="coerce")
            text = series[numbers.isna() & series.notna()]
            if len(text):
                bad.append(
                    (column, f"{len(text)} value(s) that are not numbers, e.g. {text.iloc[0]!r}")
                )
            infinite = int(np.isinf(numbers.to_numpy(dtype="float64", na_value=np.nan)).sum())
            if infinite:
                bad.append((column, f"{infinite} infinite value(s); expected finite numbers"))
            out[column] = numbers.astype("float64")
        else:
            out[column] = labels(series)
    return pd.DataFrame(out), bad
