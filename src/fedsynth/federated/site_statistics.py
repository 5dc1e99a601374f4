"""What a site computes and sends to build the shared encoder: aggregate statistics only.

Federated averaging needs every site to encode its table into the same matrix layout, so the
encoder (mixture modes of the numeric columns, category slots, missing indicators) must be one
and the same everywhere. Each site checks its table against the shared metadata
(:func:`check_site`), computes :func:`site_statistics` and sends only that; the server merges
them (:func:`fedsynth.federated.encoder_stats.build_schema`). What a site sends, per column:

* every column: whether values are missing, and how many when at least ``min_count``;
* a discrete column (categorical, binary, event, site): the count of each category of the shared
  metadata; counts below ``min_count`` (zero included) are not sent one by one but merged into
  one "rare" total, so that a category held by one or two patients is not revealed;
* a numeric column with at most ``max_modes`` distinct values, each held by at least
  ``min_count`` rows: those values and their counts;
* any other numeric column: the modes of a Bayesian Gaussian mixture fitted at the site (mean,
  standard deviation, weight), keeping only modes that carry at least ``min_count`` rows, so that
  no mode sits on one patient's value. Durations are summarised on the scale the encoder models
  them (:func:`~fedsynth.tabular.transforms.uses_log_scale`).

No row, no value of a single patient, no identifier leaves the site. Category sets and numeric
bounds come from the shared metadata (agreed by the sites beforehand, or inferred on pooled data in
a simulation), not from the sites' data, so the shared metadata must give them
(:func:`check_shared_metadata`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fedsynth.exceptions import MetadataError, Problem
from fedsynth.federated.errors import SiteRefusedError
from fedsynth.tabular.metadata import ColumnMetadata, Metadata
from fedsynth.tabular.metadata.values import encoding_of, read_numbers
from fedsynth.tabular.transforms import (
    CategoryCounts,
    ModeNormalizer,
    to_model_scale,
    uses_log_scale,
)
from fedsynth.tabular.transforms.categorical import category_codes, category_order

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
            numbers = read_numbers(data[name], encoding_of(col))
            if numbers is None:
                continue
            low, high = col.bounds
            outside = int(((numbers < low) | (numbers > high)).sum())
            if outside:
                message = f"{outside} value(s) outside the shared bounds [{low:g}, {high:g}]"
                problems.append(Problem(name, message))
    if problems:
        raise SiteRefusedError(site, problems)


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
    categories = category_order(col)
    codes, _ = category_codes(series, categories)
    counted = CategoryCounts.from_codes(codes, len(categories))
    shown = [_suppressed(c, min_count) for c in counted.counts]
    rare = int(sum(c for c, s in zip(counted.counts, shown, strict=True) if s is None))
    return {
        "type": "discrete",
        "counts": shown,
        "rare": rare,
        "missing": _missing_summary(int(counted.missing), min_count),
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
    numbers = read_numbers(series).to_numpy(dtype=np.float64, na_value=np.nan)
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
    log = uses_log_scale(col.kind, len(distinct), max_modes)
    scaled = to_model_scale(present, log)
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
