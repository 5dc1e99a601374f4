"""The shared encoder, built by the server from aggregate statistics only.

Federated averaging needs every site to encode its table into the same matrix layout, so the
encoder (mixture modes of the numeric columns, category slots, missing indicators) must be one
and the same everywhere. Each site computes :func:`site_statistics` on its own table and sends
only that; the server merges them with :func:`build_schema`. What a site sends, per column:

* every column: whether values are missing, and how many when at least ``min_count``;
* a discrete column (categorical, binary, event, site): the count of each category of the shared
  metadata; counts below ``min_count`` (zero included) are not sent one by one but merged into
  one "rare" total, so that a category held by one or two patients is not revealed;
* a numeric column with at most ``max_modes`` distinct values, each held by at least
  ``min_count`` rows: those values and their counts;
* any other numeric column: the modes of a Bayesian Gaussian mixture fitted at the site (mean,
  standard deviation, weight), keeping only modes that carry at least ``min_count`` rows, so that
  no mode sits on one patient's value. Durations are summarised on the ``log1p`` scale, as the
  encoder models them.

No row, no value of a single patient, no identifier leaves the site. Category sets and numeric
bounds come from the shared metadata (agreed by the sites beforehand, or inferred on pooled data in
a simulation), not from the sites' data, so the shared metadata must give them
(:func:`check_shared_metadata`).

The server pools the category counts, and for numeric columns the union of the sites' modes
weighted by site size, reduced to ``max_modes`` by merging the pair of modes that least changes
the mixture (Runnalls 2007, moment-preserving merges).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from fedsynth._version import __version__
from fedsynth.exceptions import MetadataError, Problem
from fedsynth.federated.errors import SiteRefusedError
from fedsynth.tabular.metadata import ColumnMetadata, Metadata
from fedsynth.tabular.metadata.inference import numeric_view
from fedsynth.tabular.transforms import ModeNormalizer, TableEncoder
from fedsynth.tabular.transforms.categorical import category_codes
from fedsynth.tabular.transforms.dtypes import plain

#: Fewest rows behind any count, value or mode that a site sends (k-anonymity style, k = 5).
MIN_COUNT = 5


def check_shared_metadata(metadata: Metadata) -> None:
    """Check that ``metadata`` gives what no site may send: categories and numeric bounds.

    Raises
    ------
    MetadataError
        Naming each discrete column without categories and each numeric column without bounds.
    """
    problems = []
    for name, col in metadata.columns.items():
        if col.is_discrete and not col.categories:
            problems.append(
                Problem(name, "a shared metadata must list the categories of discrete columns")
            )
        elif col.is_continuous and col.bounds is None:
            problems.append(
                Problem(name, "a shared metadata must give the bounds (low, high) of numbers")
            )
    if problems:
        raise MetadataError(problems)


def check_site(data: pd.DataFrame, metadata: Metadata, site: str) -> None:
    """Refuse a site whose table does not fit the shared metadata.

    Raises
    ------
    SiteRefusedError
        Naming the site and every column that does not fit (unknown or absent columns, unseen
        categories, text in numeric columns, values outside the shared bounds...).
    """
    from fedsynth.tabular.metadata.checks import check_table

    problems, _ = check_table(data, metadata)
    for name, col in metadata.columns.items():
        if name in data.columns and col.is_continuous and col.bounds is not None:
            numbers = numeric_view(data[name])
            if numbers is None:
                continue
            low, high = col.bounds
            outside = int(((numbers < low) | (numbers > high)).sum())
            if outside:
                message = f"{outside} value(s) outside the shared bounds [{low:g}, {high:g}]"
                problems.append(Problem(name, message))
    if problems:
        raise SiteRefusedError(site, problems)


# ---------------------------------------------------------------------- at a site
def site_statistics(
    data: pd.DataFrame,
    metadata: Metadata,
    *,
    min_count: int = MIN_COUNT,
    max_modes: int = 10,
    weight_threshold: float = 0.005,
    max_fit_rows: int = 20_000,
    seed: int | None = 0,
) -> dict[str, Any]:
    """The aggregate statistics a site sends to build the shared encoder (see the module doc).

    Parameters
    ----------
    data : DataFrame
        The site's table, already checked with :func:`check_site`.
    metadata : Metadata
        The shared metadata.
    min_count : int, default 5
        Fewest rows behind any count, value or mode that is sent.
    max_modes, weight_threshold, max_fit_rows, seed
        As for :class:`~fedsynth.tabular.transforms.TableEncoder`.

    Returns
    -------
    dict
        JSON-ready: ``{"n_rows": int, "columns": {name: summary}}``.

    Examples
    --------
    >>> df = pd.DataFrame({"sex": ["F"] * 7 + ["M"] * 2})
    >>> md = Metadata({"sex": {"kind": "categorical", "categories": ["F", "M"]}})
    >>> site_statistics(df, md)["columns"]["sex"]["counts"]
    [7, None]
    """
    rng = np.random.default_rng(seed)
    columns = {}
    for name, col in metadata.columns.items():
        if col.kind == "identifier":
            continue
        series = data[name]
        if col.is_discrete:
            columns[name] = _discrete_summary(series, col, min_count)
        else:
            columns[name] = _continuous_summary(
                series,
                col,
                min_count=min_count,
                max_modes=max_modes,
                weight_threshold=weight_threshold,
                max_fit_rows=max_fit_rows,
                rng=rng,
            )
    return {"n_rows": len(data), "min_count": min_count, "columns": columns}


def _suppressed(count: int, min_count: int) -> int | None:
    return int(count) if count >= min_count else None


def _missing_summary(n_missing: int, min_count: int) -> dict[str, Any]:
    return {"any": bool(n_missing), "count": _suppressed(n_missing, min_count)}


def _discrete_summary(series: pd.Series, col: ColumnMetadata, min_count: int) -> dict[str, Any]:
    categories = [plain(c) for c in col.categories]
    codes, _ = category_codes(series, categories)
    counts = np.bincount(codes[codes >= 0], minlength=len(categories))
    shown = [_suppressed(c, min_count) for c in counts]
    rare = int(sum(c for c, s in zip(counts, shown, strict=True) if s is None))
    return {
        "type": "discrete",
        "counts": shown,
        "rare": rare,
        "missing": _missing_summary(int((codes == -1).sum()), min_count),
    }


def _continuous_summary(
    series: pd.Series,
    col: ColumnMetadata,
    *,
    min_count: int,
    max_modes: int,
    weight_threshold: float,
    max_fit_rows: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    numbers = numeric_view(series).to_numpy(dtype=np.float64, na_value=np.nan)
    present = numbers[~np.isnan(numbers)]
    summary: dict[str, Any] = {
        "type": "continuous",
        "n_present": len(present),
        "missing": _missing_summary(len(numbers) - len(present), min_count),
        "values": None,
        "log": False,
        "modes": None,
    }
    if len(present) < min_count:
        return summary
    distinct, counts = np.unique(present, return_counts=True)
    if len(distinct) <= max_modes and counts.min() >= min_count:
        summary["values"] = {"values": distinct.tolist(), "counts": counts.tolist()}
        return summary
    log = col.kind == "duration" and len(distinct) > max_modes
    scaled = np.log1p(present) if log else present
    modes = None
    if len(distinct) > max_modes:
        fitted = ModeNormalizer.from_values(
            scaled,
            max_modes=max_modes,
            weight_threshold=weight_threshold,
            max_fit_rows=max_fit_rows,
            rng=rng,
        )
        # A mode carrying fewer than min_count rows could sit on one patient's value.
        keep = fitted.weights * len(present) >= min_count
        if keep.any():
            modes = (fitted.means[keep], fitted.stds[keep], fitted.weights[keep])
    if modes is None:  # few rows, or rare values: one mode describes the column
        modes = (np.array([scaled.mean()]), np.array([scaled.std()]), np.array([1.0]))
    means, stds, weights = modes
    summary["log"] = log
    summary["modes"] = {
        "means": means.tolist(),
        "stds": stds.tolist(),
        "weights": (weights / weights.sum()).tolist(),
    }
    return summary


# ---------------------------------------------------------------------- at the server
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
    specs: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    for name in columns:
        col = metadata.columns[name]
        summaries = {site: stats["columns"][name] for site, stats in statistics.items()}
        weights = {site: site_rows[site] for site in summaries}
        constant = _constant_value(col, summaries, weights)
        if constant is not _NOT_CONSTANT:
            constants[name] = constant
            continue
        key = f"t{len(specs)}"
        if col.is_discrete:
            spec, column_arrays = _discrete_column(name, col, summaries, key)
        else:
            spec, column_arrays = _continuous_column(name, col, summaries, key, max_modes)
        specs.append(spec)
        arrays.update(column_arrays)
    params = {
        "max_modes": max_modes,
        "weight_threshold": weight_threshold,
        "max_fit_rows": max_fit_rows,
        "mode_assignment": "argmax",
        "seed": seed,
    }
    encoder_config = {
        "format": "fedsynth-table-encoder",
        "format_version": 1,
        "fedsynth_version": __version__,
        "params": params,
        "n_rows": sum(site_rows.values()),
        "metadata": metadata.to_dict(),
        "transforms": specs,
    }
    return SharedSchema(
        metadata=metadata,
        encoder=TableEncoder.from_state(encoder_config, arrays),
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


def _discrete_column(
    name: str, col: ColumnMetadata, summaries: Mapping[str, Mapping[str, Any]], key: str
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    categories = [plain(c) for c in col.categories]
    has_missing = any(s["missing"]["any"] for s in summaries.values())
    counts = np.zeros(len(categories) + has_missing)
    for summary in summaries.values():
        shown = summary["counts"]
        hidden = [i for i, c in enumerate(shown) if c is None]
        for i, c in enumerate(shown):
            if c is not None:
                counts[i] += c
        # Rare categories are known only as a total: spread it evenly over them.
        if hidden:
            counts[hidden] += summary["rare"] / len(hidden)
        if has_missing:
            counts[-1] += _missing_count(summary)
    spec = {
        "type": "categorical",
        "name": name,
        "kind": col.kind,
        "categories": categories,
        "has_missing": has_missing,
        "dtype": _discrete_dtype(col.dtype, categories),
        "missing_value": None,
    }
    return spec, {f"{key}.counts": np.round(counts).astype(np.int64)}


def _discrete_dtype(dtype: str | None, categories: list[Any]) -> Any:
    """The dtype description a categorical transform saves (a category dtype with its values)."""
    if dtype == "category":
        return {"name": "category", "categories": categories, "ordered": False}
    return dtype or "object"


def _missing_count(summary: Mapping[str, Any]) -> float:
    """Missing rows of a site: exact when sent, else half the suppression threshold."""
    missing = summary["missing"]
    if not missing["any"]:
        return 0.0
    return float(missing["count"]) if missing["count"] is not None else MIN_COUNT / 2


def _continuous_column(
    name: str,
    col: ColumnMetadata,
    summaries: Mapping[str, Mapping[str, Any]],
    key: str,
    max_modes: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    low, high = (float(b) for b in col.bounds)
    point_values: dict[float, float] = {}
    gaussian: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    log = any(s["log"] for s in summaries.values())
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
        values = np.array(sorted(point_values))
        normalizer = ModeNormalizer(
            values, np.zeros(len(values)), [point_values[v] for v in values]
        )
        log = False
    else:
        scale = np.log1p if log else (lambda x: x)
        spread = float(scale(high) - scale(low)) or 1.0
        floor = 1e-3 * spread
        means = [m for m, _, _ in gaussian]
        stds = [np.maximum(s, floor) for _, s, _ in gaussian]
        weights = [w for _, _, w in gaussian]
        if point_values:
            values = np.array(sorted(point_values))
            means.append(scale(values))
            stds.append(np.full(len(values), floor))
            weights.append(np.array([point_values[v] for v in values]))
        if not means:  # every site suppressed everything: one wide mode over the bounds
            means = [np.array([scale(low) + spread / 2])]
            stds, weights = [np.array([spread / 4])], [np.ones(1)]
        merged = merge_modes(
            np.concatenate(means), np.concatenate(stds), np.concatenate(weights), max_modes
        )
        normalizer = ModeNormalizer(*merged)
    spec = {
        "type": "continuous",
        "name": name,
        "kind": col.kind,
        "log": bool(log),
        "whole": bool(col.integer) or _integer_dtype(col.dtype),
        "bounds": [low, high],
        "has_missing": any(s["missing"]["any"] for s in summaries.values()),
        "dtype": col.dtype or "float64",
        "missing_value": None,
    }
    arrays = {
        f"{key}.means": normalizer.means,
        f"{key}.stds": normalizer.stds,
        f"{key}.weights": normalizer.weights,
    }
    return spec, arrays


def _integer_dtype(dtype: str | None) -> bool:
    if dtype is None:
        return False
    try:
        resolved = pd.api.types.pandas_dtype(dtype)
    except TypeError:
        return False
    return pd.api.types.is_integer_dtype(resolved) or pd.api.types.is_bool_dtype(resolved)


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
