"""Data augmentation with a fitted generator: rebalance a cohort towards target group shares.

:func:`rebalance_plan` works out how many rows each group of a column needs so that the listed
groups reach their target shares while every real row is kept; :func:`rebalance` draws exactly
those rows from a generator, each group with the generator's conditional sampling, and returns
the real rows followed by the synthetic ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.exceptions import ConditionError
from fedsynth.tabular.generators.base import BaseGenerator

TargetShare = Mapping[Any, float] | float


def rebalance_plan(
    real: pd.DataFrame, column: str, target_share: TargetShare, *, n: int | None = None
) -> pd.DataFrame:
    """How many rows of each group of ``column`` a rebalanced cohort has, and how many are added.

    The cohort keeps every real row and only adds rows. Each listed group gets its target share
    of the cohort; the other groups share the rest in their real proportions; rows whose
    ``column`` is missing are kept as they are and never added.

    Parameters
    ----------
    real : DataFrame
        The real cohort.
    column : str
        A discrete column (categories, binary flags).
    target_share : dict or float
        ``{value: share}``, each share in (0, 1], the shares summing to at most 1. A float is the
        target share of the column's rarest value.
    n : int, optional
        Size of the rebalanced cohort. By default, the smallest size at which no group would
        need fewer rows than it has.

    Returns
    -------
    DataFrame
        One row per value (index), with columns ``real`` (rows in ``real``), ``final`` (rows in
        the rebalanced cohort), ``added`` (``final - real``) and ``share`` (``final / n``).
        Shares match the targets to within rounding (one row per group).

    Raises
    ------
    ValueError
        When the column is missing, a share is out of range, the shares cannot be met by adding
        rows, or ``n`` is smaller than the cohort that meets them; each names the column, the
        value and what would work.

    Examples
    --------
    >>> import pandas as pd
    >>> real = pd.DataFrame({"TP53": [0] * 90 + [1] * 10})
    >>> rebalance_plan(real, "TP53", {1: 0.25})  # doctest: +NORMALIZE_WHITESPACE
          real  final  added  share
    TP53
    0       90     90      0   0.75
    1       10     30     20   0.25
    """
    if column not in real.columns:
        raise ValueError(f"{column!r} is not a column of the cohort; columns: {list(real.columns)}")
    values = real[column]
    counts = values.value_counts(dropna=True)
    # Plain labels: a categorical index would refuse a target value absent from the data.
    counts.index = pd.Index(list(counts.index), dtype=object)
    n_missing = int(values.isna().sum())
    targets = _targets(column, counts, target_share)
    listed_share = sum(targets.values())
    for value in targets:
        if value not in counts.index:
            counts.loc[value] = 0
    others = [v for v in counts.index if v not in targets]
    n_others = int(counts[others].sum()) + n_missing
    if listed_share >= 1.0 and n_others:
        raise ValueError(
            f"{column!r}: the target shares sum to {listed_share:g}, leaving no room for the "
            f"{n_others} real rows of the other values; rebalancing only adds rows"
        )
    if listed_share < 1.0 and not counts[others].sum():
        raise ValueError(
            f"{column!r}: the target shares sum to {listed_share:g} but no other value is there "
            "to fill the rest; give every value a share summing to 1"
        )
    # The smallest cohort in which no group needs fewer rows than it has: each listed value
    # needs count / share rows in all, the other values (missing included) count / (1 - shares).
    needed = {f"value {v!r}": (int(counts[v]), share) for v, share in targets.items()}
    if others:
        needed["the other values"] = (n_others, 1.0 - listed_share)
    binding = max(needed, key=lambda k: needed[k][0] / needed[k][1])
    has, share = needed[binding]
    smallest = math.ceil(has / share - 1e-9)
    if n is None:
        n = smallest
    elif isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < smallest:
        raise ValueError(
            f"{column!r}: n={n!r} is too small: {binding} ({has} real rows) must make up "
            f"{share:g} of the cohort, which needs at least {smallest} rows"
        )
    exact = {v: share * n for v, share in targets.items()}
    rest = n * (1.0 - listed_share) - n_missing
    exact.update({v: rest * counts[v] / counts[others].sum() for v in others})
    final = _apportion(exact, n - n_missing)
    plan = pd.DataFrame(
        {"real": counts.astype("int64"), "final": pd.Series(final, dtype="int64")}
    ).loc[[v for v in counts.index if v in exact]]
    plan["added"] = plan["final"] - plan["real"]
    plan["share"] = plan["final"] / n
    plan.index.name = column
    return plan


def rebalance(
    generator: BaseGenerator,
    real: pd.DataFrame,
    column: str,
    target_share: TargetShare,
    *,
    n: int | None = None,
    seed: int | None = None,
) -> pd.DataFrame:
    """Augment a cohort with synthetic rows until groups of ``column`` reach target shares.

    Rows are drawn with ``generator.sample(k, conditions={column: value})``, exactly as many as
    :func:`rebalance_plan` says each group needs, so the work is bounded by the generator's own
    conditional sampling (native where it has it, bounded rejection otherwise).

    Parameters
    ----------
    generator : BaseGenerator
        A generator fitted on ``real`` (or on data like it), e.g. ``fedsynth.make("vae_bgm")``.
    real : DataFrame
        The real cohort; it is not modified.
    column : str
        A discrete column of the generator's data, e.g. ``"ipssm_risk"`` or ``"TP53"``.
    target_share : dict or float
        ``{value: share}``, or a float: the target share of the rarest value. See
        :func:`rebalance_plan`.
    n : int, optional
        Size of the returned cohort (default: the smallest that keeps every real row).
    seed : int, optional
        Seed of the draws: the same seed gives the same rows.

    Returns
    -------
    DataFrame
        The real rows (index reset), then the synthetic rows, with ``real``'s columns and dtypes;
        a column the generator does not emit (an identifier) is missing on synthetic rows.

    Raises
    ------
    ValueError
        When the targets cannot be met (see :func:`rebalance_plan`) or ``column`` is numeric.
    ConditionError
        When the generator cannot draw rows of a value; the message names the column, the value
        and the generator's reason.

    Examples
    --------
    >>> import fedsynth
    >>> from fedsynth.tabular.augmentation import rebalance
    >>> real = fedsynth.datasets.mds_cohort(n=500, seed=0)
    >>> gen = fedsynth.make("bayesian_network").fit(real)  # doctest: +SKIP
    >>> cohort = rebalance(gen, real, "ipssm_risk", {"Very High": 0.3}, seed=0)  # doctest: +SKIP
    >>> cohort["ipssm_risk"].value_counts(normalize=True)["Very High"].round(2)  # doctest: +SKIP
    0.3
    """
    generator._check_is_fitted()
    known = generator.metadata_.columns.get(column)
    if known is not None and known.is_continuous:
        raise ValueError(
            f"{column!r} is numeric; rebalancing needs a discrete column (cut it into groups "
            "first, e.g. with pandas.cut, and fit the generator on the grouped column)"
        )
    plan = rebalance_plan(real, column, target_share, n=n)
    rng = np.random.default_rng(seed)
    parts = [real.reset_index(drop=True)]
    for value, added in plan["added"].items():
        if added <= 0:
            continue
        draw_seed = None if seed is None else int(rng.integers(2**31 - 1))
        try:
            parts.append(generator.sample(int(added), conditions={column: value}, seed=draw_seed))
        except ConditionError as exc:
            raise ConditionError(
                f"cannot add {added} rows with {column}={value!r} from {generator.name}: {exc}"
            ) from exc
    cohort = pd.concat(parts, ignore_index=True)
    # Concatenation widens a categorical column whose categories differ between the parts.
    for name, dtype in real.dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype) and cohort[name].dtype != dtype:
            cohort[name] = cohort[name].astype(dtype)
    return cohort[list(real.columns)]


def _targets(column: str, counts: pd.Series, target_share: TargetShare) -> dict[Any, float]:
    if isinstance(target_share, Mapping):
        targets = dict(target_share)
    elif isinstance(target_share, (float, int)) and not isinstance(target_share, bool):
        if counts.empty:
            raise ValueError(f"{column!r} has no values to rebalance")
        rarest = counts[counts == counts.min()].index.tolist()
        if len(rarest) > 1:
            raise ValueError(
                f"{column!r}: values {rarest} are equally rare; name the one to rebalance, "
                f"e.g. target_share={{{rarest[0]!r}: {target_share}}}"
            )
        targets = {rarest[0]: float(target_share)}
    else:
        raise ValueError(
            f"target_share must be a dict {{value: share}} or a float, got {target_share!r}"
        )
    if not targets:
        raise ValueError(f"{column!r}: target_share names no value")
    problems = [
        f"value {v!r}: share {s!r} is not in (0, 1]"
        for v, s in targets.items()
        if isinstance(s, bool) or not isinstance(s, (float, int)) or not 0.0 < s <= 1.0
    ]
    if problems:
        raise ValueError(f"{column!r}: " + "; ".join(problems))
    if sum(targets.values()) > 1.0 + 1e-9:
        raise ValueError(
            f"{column!r}: the target shares sum to {sum(targets.values()):g}, more than 1"
        )
    return {v: float(s) for v, s in targets.items()}


def _apportion(exact: dict[Any, float], total: int) -> dict[Any, int]:
    """Whole counts summing to ``total``: each group's floor, then the largest remainders."""
    floors = {v: math.floor(x + 1e-9) for v, x in exact.items()}
    short = total - sum(floors.values())
    by_remainder = sorted(exact, key=lambda v: exact[v] - floors[v], reverse=True)
    for v in by_remainder[:short]:
        floors[v] += 1
    return floors
