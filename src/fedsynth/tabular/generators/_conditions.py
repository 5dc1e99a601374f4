"""Conditions of ``sample(n, conditions=...)``: checked against the fitted columns, and met by
bounded rejection sampling where a generator cannot condition natively."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.exceptions import ConditionError, ConditionWarning
from fedsynth.tabular.metadata import Metadata

Conditions = Mapping[str, Any]


def check_conditions(
    conditions: Conditions,
    metadata: Metadata,
    columns: list[str],
    constants: Mapping[str, Any],
) -> dict[str, Any]:
    """Conditions with values mapped onto the fitted categories; every problem reported.

    Raises
    ------
    ConditionError
        Listing each condition that names no column of the data, an identifier, a category
        never seen, a value outside the training range or finer than the recorded decimals.
    """
    if not isinstance(conditions, Mapping):
        raise ConditionError("conditions must be a dict {column: value}")
    problems, checked = [], {}
    for column, value in conditions.items():
        col = metadata.columns.get(column)
        if col is None or col.kind == "identifier":
            why = "is an identifier" if col is not None else "is not a column of the data"
            problems.append(f"{column!r} {why}; condition on one of {columns}")
            continue
        if column in constants:
            if not equal(constants[column], value):
                problems.append(
                    f"{column!r} was constant ({constants[column]!r}) in the training "
                    f"data; {value!r} cannot be generated"
                )
            checked[column] = constants[column]
            continue
        if col.is_discrete:
            found = [c for c in col.categories if equal(c, value)]
            if not found and isinstance(value, str):  # "1" from a command line or a form
                number = pd.to_numeric(value, errors="coerce")
                found = [c for c in col.categories if not pd.isna(number) and equal(c, number)]
            if not found:
                problems.append(
                    f"{column!r} has no category {value!r}; expected one of {col.categories}"
                )
            else:
                checked[column] = found[0]
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            problems.append(f"{column!r} is numeric; got {value!r}")
            continue
        low, high = col.bounds
        decimals = 0 if col.integer else col.decimals
        if not (low <= number <= high):
            problems.append(
                f"{column!r}={number:g} is outside the training range [{low:g}, {high:g}]"
            )
        elif decimals is not None and round(number, decimals) != number:
            problems.append(
                f"{column!r} is recorded to {decimals} decimal(s); {number:g} cannot be "
                f"generated (use {round(number, decimals):g})"
            )
        checked[column] = number
    if problems:
        raise ConditionError("cannot sample with these conditions:\n  - " + "\n  - ".join(problems))
    return checked


def rejection_sample(
    draw: Callable[[int, np.random.Generator], pd.DataFrame],
    n: int,
    conditions: dict[str, Any],
    rng: np.random.Generator,
    *,
    max_draws: int,
) -> pd.DataFrame:
    """Keep drawing batches until ``n`` rows satisfy every condition, within ``max_draws`` rows.

    Raises
    ------
    ConditionError
        When the conditions are too rare to meet within ``max_draws`` drawn rows.
    """
    kept: list[pd.DataFrame] = []
    found = drawn = 0
    batch = max(n, 1_000)
    while found < n:
        if drawn >= max_draws:
            rate = found / max(drawn, 1)
            raise ConditionError(
                f"only {found} of {drawn:,} generated rows satisfied {dict(conditions)} "
                f"(acceptance {rate:.4%}); these conditions are too rare for this generator "
                "to meet within its bounded sampling budget"
            )
        size = min(batch, max_draws - drawn)
        rows = draw(size, rng)
        drawn += size
        mask = np.ones(size, dtype=bool)
        for column, value in conditions.items():
            mask &= matches(rows[column], value).to_numpy()
        kept.append(rows[mask])
        found += int(mask.sum())
        rate = max(found, 1) / drawn
        batch = int(min(max_draws, max(1_000, 1.2 * (n - found) / rate)))
    out = pd.concat(kept, ignore_index=True).iloc[:n]
    accepted = n / drawn
    if accepted < 0.05:
        warnings.warn(
            f"conditional sampling kept {accepted:.2%} of {drawn:,} generated rows for "
            f"{dict(conditions)}; rare conditions are slow and the rows may be less varied",
            ConditionWarning,
            stacklevel=3,
        )
    return out.reset_index(drop=True)


def matches(values: pd.Series, value: Any) -> pd.Series:
    """Whether each of ``values`` meets the condition ``value`` (NaN meets NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return values.isna()
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        numbers = pd.to_numeric(values, errors="coerce")
        return np.isclose(numbers.astype(float), float(value), rtol=0, atol=1e-9) & numbers.notna()
    return values.astype(object) == value


def equal(a: Any, b: Any) -> bool:
    """Whether a condition's value equals a category (strings only equal strings)."""
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    try:
        return bool(a == b) or (pd.isna(a) and pd.isna(b))
    except (TypeError, ValueError):
        return False
