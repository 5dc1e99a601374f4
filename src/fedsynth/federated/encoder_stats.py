"""The shared encoder, built by the server from the sites' aggregate statistics only.

Each site sends :func:`~fedsynth.federated.site_statistics.site_statistics` (nothing about a
single patient; see that module). The server merges them here, column by column, and hands the
merged statistics to :meth:`TableEncoder.from_statistics
<fedsynth.tabular.transforms.TableEncoder.from_statistics>`, which alone decides what the encoder
makes of them:

* a discrete column: the sites' category counts are pooled (a site's "rare" total is shared
  evenly among the categories it hid) into :class:`~fedsynth.tabular.transforms.CategoryCounts`;
* a numeric column: the union of the sites' modes, weighted by site size, with the sites' exact
  values as narrow modes, reduced to ``max_modes`` by merging the pair of modes that least
  changes the mixture (Runnalls 2007, moment-preserving merges), into
  :class:`~fedsynth.tabular.transforms.NumericModes`; when the sites sent only few exact values,
  those values are the modes (point masses);
* a column holding one value (or none) at every site is not encoded but kept in
  :attr:`SharedSchema.constants`.

The site-side functions are importable from here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fedsynth.federated.site_statistics import (
    MIN_COUNT,
    check_shared_metadata,
    check_site,
    site_statistics,
)
from fedsynth.tabular.metadata import ColumnMetadata, Metadata
from fedsynth.tabular.transforms import (
    CategoryCounts,
    ModeNormalizer,
    NumericModes,
    TableEncoder,
    to_model_scale,
)
from fedsynth.tabular.transforms.categorical import category_order
from fedsynth.tabular.transforms.dtypes import plain

__all__ = [
    "MIN_COUNT",
    "SharedSchema",
    "build_schema",
    "check_shared_metadata",
    "check_site",
    "merge_modes",
    "site_statistics",
]


@dataclass
class SharedSchema:
    """What every site and the server share: metadata, encoder, and the columns learned.

    Attributes
    ----------
    metadata : Metadata
        The shared metadata.
    encoder : TableEncoder
        The shared encoder (fitted from aggregate statistics).
    columns : list of str
        Output columns (identifiers excluded), in metadata order.
    learned_columns : list of str
        Columns the generator learns (constant columns excluded).
    constants : dict
        Columns holding one value at every site, and that value (NaN for all missing).
    dtypes : dict of str to str
        The dtype of each output column, from the metadata.
    site_rows : dict of str to int
        Rows of each site that sent statistics.
    """

    metadata: Metadata
    encoder: TableEncoder
    columns: list[str]
    learned_columns: list[str]
    constants: dict[str, Any]
    dtypes: dict[str, str]
    site_rows: dict[str, int]

    @property
    def n_rows(self) -> int:
        """Rows of all sites together."""
        return sum(self.site_rows.values())

    def for_synthetic(self) -> SharedSchema:
        """This schema with identifier columns left out of the metadata, for synthetic tables
        (which have none)."""
        kept = Metadata({name: self.metadata.columns[name] for name in self.columns})
        return replace(self, metadata=kept)

    def to_payload(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-ready description and arrays (no pickle), e.g. to send to the sites."""
        encoder_config, arrays = self.encoder.get_state()
        config = {
            "metadata": self.metadata.to_dict(),
            "encoder": encoder_config,
            "columns": self.columns,
            "learned_columns": self.learned_columns,
            "constants": {k: _json_value(v) for k, v in self.constants.items()},
            "dtypes": self.dtypes,
            "site_rows": self.site_rows,
        }
        return config, arrays

    @classmethod
    def from_payload(
        cls, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
    ) -> SharedSchema:
        """Inverse of :meth:`to_payload`."""
        return cls(
            metadata=Metadata.from_dict(config["metadata"]),
            encoder=TableEncoder.from_state(dict(config["encoder"]), dict(arrays)),
            columns=list(config["columns"]),
            learned_columns=list(config["learned_columns"]),
            constants={k: np.nan if v is None else v for k, v in config["constants"].items()},
            dtypes=dict(config["dtypes"]),
            site_rows={k: int(v) for k, v in config["site_rows"].items()},
        )


def build_schema(
    metadata: Metadata,
    statistics: Mapping[str, Mapping[str, Any]],
    *,
    max_modes: int = 10,
    weight_threshold: float = 0.005,
    max_fit_rows: int = 20_000,
    seed: int | None = 0,
) -> SharedSchema:
    """Merge the sites' :func:`site_statistics` into the shared encoder.

    Parameters
    ----------
    metadata : Metadata
        The shared metadata (see :func:`check_shared_metadata`).
    statistics : mapping of site name to dict
        What each site sent.
    max_modes, weight_threshold, max_fit_rows, seed
        As for :class:`~fedsynth.tabular.transforms.TableEncoder`.

    Returns
    -------
    SharedSchema
    """
    check_shared_metadata(metadata)
    if not statistics:
        raise ValueError("no site statistics to build the shared encoder from")
    site_rows = {site: int(stats["n_rows"]) for site, stats in statistics.items()}
    columns = [n for n, c in metadata.columns.items() if c.kind != "identifier"]
    constants: dict[str, Any] = {}
    merged: dict[str, CategoryCounts | NumericModes] = {}
    for name in columns:
        col = metadata.columns[name]
        summaries = {site: stats["columns"][name] for site, stats in statistics.items()}
        constant = _constant_value(col, summaries, site_rows)
        if constant is not _NOT_CONSTANT:
            constants[name] = constant
        elif col.is_discrete:
            merged[name] = _merged_counts(col, summaries)
        else:
            merged[name] = _merged_modes(col, summaries, max_modes)
    encoder = TableEncoder.from_statistics(
        metadata,
        merged,
        n_rows=sum(site_rows.values()),
        max_modes=max_modes,
        weight_threshold=weight_threshold,
        max_fit_rows=max_fit_rows,
        seed=seed,
    )
    return SharedSchema(
        metadata=metadata,
        encoder=encoder,
        columns=columns,
        learned_columns=[c for c in columns if c not in constants],
        constants=constants,
        dtypes={c: _dtype_of(metadata.columns[c]) for c in columns},
        site_rows=site_rows,
    )


_NOT_CONSTANT = object()


def _constant_value(
    col: ColumnMetadata, summaries: Mapping[str, Mapping[str, Any]], rows: Mapping[str, int]
) -> Any:
    """The value of a column that holds one value (or none) at every site, else a sentinel."""
    if any(s["missing"]["any"] for s in summaries.values()):
        if col.is_continuous and all(s["n_present"] == 0 for s in summaries.values()):
            return np.nan
        return _NOT_CONSTANT
    found = set()
    for site, summary in summaries.items():
        if col.is_discrete:
            if summary["rare"]:
                return _NOT_CONSTANT
            held = [i for i, c in enumerate(summary["counts"]) if c]
            if len(held) != 1 or summary["counts"][held[0]] != rows[site]:
                return _NOT_CONSTANT
            found.add(held[0])
        else:
            values = summary["values"]
            if values is None or len(values["values"]) != 1:
                return _NOT_CONSTANT
            found.add(values["values"][0])
    if len(found) != 1:
        return _NOT_CONSTANT
    (value,) = found
    if col.is_discrete:
        return plain(col.categories[value])
    return int(value) if col.integer and float(value).is_integer() else value


def _dtype_of(col: ColumnMetadata) -> str:
    if col.dtype is not None:
        return col.dtype
    return "float64" if col.is_continuous else "object"


def _merged_counts(
    col: ColumnMetadata, summaries: Mapping[str, Mapping[str, Any]]
) -> CategoryCounts:
    """The sites' category counts pooled; missing rows too."""
    counts = np.zeros(len(category_order(col)))
    missing = 0.0
    for summary in summaries.values():
        shown = summary["counts"]
        hidden = [i for i, c in enumerate(shown) if c is None]
        for i, c in enumerate(shown):
            if c is not None:
                counts[i] += c
        # Rare categories are known only as a total: spread it evenly over them.
        if hidden:
            counts[hidden] += summary["rare"] / len(hidden)
        missing += _missing_count(summary)
    return CategoryCounts(counts, missing)


def _missing_count(summary: Mapping[str, Any]) -> float:
    """Missing rows of a site: exact when sent, else half the suppression threshold."""
    missing = summary["missing"]
    if not missing["any"]:
        return 0.0
    return float(missing["count"]) if missing["count"] is not None else MIN_COUNT / 2


def _merged_modes(
    col: ColumnMetadata, summaries: Mapping[str, Mapping[str, Any]], max_modes: int
) -> NumericModes:
    """The sites' modes and exact values merged into at most ``max_modes`` modes."""
    low, high = (float(b) for b in col.bounds)
    point_values: dict[float, float] = {}
    gaussian: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    # The sites' modes are on the modelled scale: log1p wherever a site modelled it so.
    log = any(s["log"] for s in summaries.values())
    has_missing = any(s["missing"]["any"] for s in summaries.values())
    for summary in summaries.values():
        if summary["values"] is not None:
            for value, count in zip(
                summary["values"]["values"], summary["values"]["counts"], strict=True
            ):
                point_values[value] = point_values.get(value, 0.0) + count
        elif summary["modes"] is not None:
            modes = summary["modes"]
            gaussian.append(
                (
                    np.asarray(modes["means"], dtype=np.float64),
                    np.asarray(modes["stds"], dtype=np.float64),
                    np.asarray(modes["weights"], dtype=np.float64) * summary["n_present"],
                )
            )
    if not gaussian and 0 < len(point_values) <= max_modes:
        # Only few exact values: point masses, on the input scale where they are exact.
        values = np.array(sorted(point_values))
        masses = ModeNormalizer(values, np.zeros(len(values)), [point_values[v] for v in values])
        return NumericModes(masses, False, has_missing)
    spread = float(to_model_scale(high, log) - to_model_scale(low, log)) or 1.0
    floor = 1e-3 * spread
    means = [m for m, _, _ in gaussian]
    stds = [np.maximum(s, floor) for _, s, _ in gaussian]
    weights = [w for _, _, w in gaussian]
    if point_values:
        values = np.array(sorted(point_values))
        means.append(to_model_scale(values, log))
        stds.append(np.full(len(values), floor))
        weights.append(np.array([point_values[v] for v in values]))
    if not means:  # every site suppressed everything: one wide mode over the bounds
        means = [np.array([to_model_scale(low, log) + spread / 2])]
        stds, weights = [np.array([spread / 4])], [np.ones(1)]
    merged = merge_modes(
        np.concatenate(means), np.concatenate(stds), np.concatenate(weights), max_modes
    )
    return NumericModes(ModeNormalizer(*merged), log, has_missing)


def merge_modes(
    means: np.ndarray, stds: np.ndarray, weights: np.ndarray, max_modes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reduce a 1-D Gaussian mixture to at most ``max_modes`` modes, preserving its moments.

    The pair whose merge costs least (Runnalls' bound on the Kullback-Leibler divergence) is
    merged into one mode with the pair's weight, mean and variance, until ``max_modes`` remain.

    Returns
    -------
    means, stds, weights : ndarray
        Sorted by mean; ``weights`` sum to 1.

    Examples
    --------
    >>> m, s, w = merge_modes(np.array([0.0, 0.1, 10.0]), np.ones(3), np.ones(3), 2)
    >>> np.round(m, 2).tolist(), np.round(w, 2).tolist()
    ([0.05, 10.0], [0.67, 0.33])
    """
    means = np.asarray(means, dtype=np.float64).copy()
    variances = np.asarray(stds, dtype=np.float64) ** 2
    weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    modes = list(zip(weights, means, variances, strict=True))
    while len(modes) > max_modes:
        best, pair = np.inf, (0, 1)
        for i in range(len(modes)):
            for j in range(i + 1, len(modes)):
                cost = _merge_cost(modes[i], modes[j])
                if cost < best:
                    best, pair = cost, (i, j)
        i, j = pair
        merged = _merge(modes[i], modes[j])
        modes = [m for k, m in enumerate(modes) if k not in pair] + [merged]
    modes.sort(key=lambda m: m[1])
    w, m, v = (np.array(x) for x in zip(*modes, strict=True))
    return m, np.sqrt(v), w / w.sum()


def _merge(a: tuple[float, float, float], b: tuple[float, float, float]):
    (wa, ma, va), (wb, mb, vb) = a, b
    w = wa + wb
    m = (wa * ma + wb * mb) / w
    v = (wa * (va + (ma - m) ** 2) + wb * (vb + (mb - m) ** 2)) / w
    return w, m, v


def _merge_cost(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    w, _, v = _merge(a, b)
    return 0.5 * (w * np.log(v) - a[0] * np.log(a[2]) - b[0] * np.log(b[2]))


def _json_value(value: Any) -> Any:
    value = plain(value)
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
