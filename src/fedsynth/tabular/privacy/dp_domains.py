"""The domain of each column under DP: public knowledge, or released with DP.

Public knowledge
----------------
A generator under ``dp=`` must not take a column's domain from the data: the largest value, or
a category held by one patient, would be released exactly. A domain fact is *public* when

* the column's metadata marks it so: ``extra={"public": ["bounds", "categories"]}``, which
  :func:`declare_public` writes. Declare it from outside the data (a data dictionary, clinical
  ranges, a code list): fedsynth cannot check where it came from;
* or the kind fixes it: an event column's ``[0, 1]``, a binary column whose values are
  ``[0, 1]`` or ``[False, True]``;
* or the kind fixes it: a survival time's lower bound 0 (the metadata checks refuse a negative
  one);
* or it is schema: the column names, kinds and dtypes. A column whose dtype cannot hold a
  missing value (``int64``, ``bool``) is taken to have none; any other column may be missing.
  A pandas ``category`` column's categories are part of its dtype, hence declared: build it
  from a code list (``pd.Categorical(values, categories=[...])``), not with
  ``astype("category")``, which takes them from the data (a CSV file has no such column).

Every other bounds or category list is released with DP by :func:`private_domains`, from
``domain_fraction`` of the budget (default 10 %), shared by need: a numeric column's bounds by
:func:`~fedsynth.tabular.privacy.dp_bounds.private_bounds` (pure epsilon, never fails), a
category list by a thresholded noisy histogram (partition selection), which needs a noisy
count above ``1 + ln(1 / (2 delta)) / epsilon`` and so gets twice a numeric column's share and
the whole delta of the domains. A category held by a few patients is then left out; declare the
list to keep it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.core.privacy.accounting import PrivacyLedger
from fedsynth.core.privacy.config import DPSettings
from fedsynth.core.privacy.mechanisms import laplace_mechanism
from fedsynth.exceptions import DataWarning, FedsynthError, MetadataError, Problem
from fedsynth.tabular.metadata import ColumnMetadata, Metadata
from fedsynth.tabular.metadata.inference import sorted_categories
from fedsynth.tabular.privacy.dp_bounds import private_bounds

#: Marker in ``ColumnMetadata.extra`` listing the facts declared as public knowledge.
PUBLIC = "public"
#: Column kinds that never hold a missing value (the metadata checks refuse one).
SURVIVAL_KINDS = frozenset({"duration", "event"})
#: Share of the domain budget of a private category list against a numeric column's bounds
#: (partition selection needs counts above ``ln(1 / (2 delta)) / epsilon``, the bounds far less).
CATEGORY_WEIGHT = 2.0


class PrivateDomainError(FedsynthError, ValueError):
    """A column's domain cannot be released with the budget given to it."""


@dataclass(frozen=True)
class ColumnDomain:
    """The domain of one column under DP.

    Parameters
    ----------
    name : str
        The column.
    categories : list or None
        States of a discrete column (``None`` for a continuous one).
    bounds : tuple of float or None
        ``(low, high)`` of a continuous column (``None`` for a discrete one).
    missing : bool
        Whether the column gets a "missing" state: its dtype can hold missing values and it is
        not a survival column (the metadata refuses missing survival values), or its categories
        were released with DP (values of the categories left out become missing).
    estimated : bool
        Whether the domain was released with DP rather than declared public.
    """

    name: str
    categories: list[Any] | None
    bounds: tuple[float, float] | None
    missing: bool
    estimated: bool


# ---------------------------------------------------------------------- public knowledge
def declare_public(
    metadata: Metadata,
    *,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    categories: Mapping[str, Sequence[Any]] | None = None,
) -> Metadata:
    """Set domain facts known from outside the data, and mark them public; returns ``metadata``.

    Examples
    --------
    >>> md = Metadata({"age": "numeric", "sex": "categorical"})
    >>> md = declare_public(md, bounds={"age": (18, 100)}, categories={"sex": ["F", "M"]})
    >>> md.columns["age"].extra
    {'public': ['bounds']}
    """
    for fact, given in (("bounds", bounds or {}), ("categories", categories or {})):
        for column, value in given.items():
            if column not in metadata.columns:
                raise MetadataError([Problem(column, "not in the metadata")])
            col = metadata.columns[column]
            marked = sorted({*col.extra.get(PUBLIC, []), fact})
            value = (float(value[0]), float(value[1])) if fact == "bounds" else list(value)
            metadata.update_column(column, **{fact: value, "extra": {**col.extra, PUBLIC: marked}})
    return metadata


def public_categories(col: ColumnMetadata, dtype: Any = None) -> list[Any] | None:
    """The categories of ``col`` when they are public knowledge, else ``None``.

    ``dtype`` is the column's pandas dtype: a ``category`` dtype declares its categories
    (schema, see the module docstring), used unless the metadata declares its own.

    Examples
    --------
    >>> col = ColumnMetadata("categorical", categories=["F"])
    >>> public_categories(col, pd.CategoricalDtype(["F", "M"]))
    ['F', 'M']
    >>> public_categories(col, np.dtype(object)) is None
    True
    """
    if col.categories is not None and "categories" in (col.extra.get(PUBLIC) or []):
        return list(col.categories)
    if isinstance(dtype, pd.CategoricalDtype):
        return list(dtype.categories)
    if col.categories is None:
        return None
    fixed = [[0, 1], [False, True]]
    if col.kind == "event" or (col.kind == "binary" and list(col.categories) in fixed):
        return list(col.categories)
    return None


def public_bounds(col: ColumnMetadata) -> tuple[float, float] | None:
    """The bounds of ``col`` when they are public knowledge, else ``None``."""
    if col.bounds is not None and "bounds" in (col.extra.get(PUBLIC) or []):
        return float(col.bounds[0]), float(col.bounds[1])
    return None


def _warn_dtype_categories(metadata: Metadata, data: pd.DataFrame) -> None:
    """Say which category lists are taken from a pandas ``category`` dtype as public: that is
    right for a dtype built from a code list, not for one built from the data."""
    from_dtype = [
        name
        for name in data.columns
        if isinstance(data[name].dtype, pd.CategoricalDtype)
        and metadata.columns[name].is_discrete
        and public_categories(metadata.columns[name]) is None
    ]
    if from_dtype:
        warnings.warn(
            f"dp: the categories of column(s) {from_dtype} are taken from their pandas "
            "'category' dtype as public knowledge and released without noise; if that dtype "
            "was built from the data (astype('category'), a Parquet dictionary), a rare "
            "category is not protected: declare the lists with "
            "fedsynth.tabular.privacy.declare_public, or pass the columns as text",
            DataWarning,
            stacklevel=4,
        )


def can_be_missing(dtype: str) -> bool:
    """Whether a column of pandas ``dtype`` can hold missing values (schema, so public)."""
    return not (dtype.startswith(("int", "uint")) or dtype == "bool")


# ---------------------------------------------------------------------- released domains
def private_columns(metadata: Metadata, data: pd.DataFrame) -> list[str]:
    """The columns of ``data`` whose domain (bounds or categories) is not public knowledge."""
    return [
        name
        for name in data.columns
        if (
            public_categories(metadata.columns[name], data[name].dtype)
            if metadata.columns[name].is_discrete
            else public_bounds(metadata.columns[name])
        )
        is None
    ]


def domain_weights(metadata: Metadata, data: pd.DataFrame) -> dict[str, float]:
    """Each private column's share of the domain budget, by need (summing to 1).

    A numeric column weighs 1 and a category list :data:`CATEGORY_WEIGHT`: its partition
    selection needs counts above ``ln(1 / (2 delta)) / epsilon`` where the bounds work from
    a few values per ``1 / epsilon``. Public columns need nothing.

    Examples
    --------
    >>> md = Metadata({"age": "numeric", "hb": "numeric", "sex": "categorical"})
    >>> domain_weights(md, pd.DataFrame({"age": [50], "hb": [9.0], "sex": ["F"]}))
    {'age': 0.25, 'hb': 0.25, 'sex': 0.5}
    """
    private = private_columns(metadata, data)
    raw = {name: CATEGORY_WEIGHT if metadata.columns[name].is_discrete else 1.0 for name in private}
    total = sum(raw.values())
    return {name: weight / total for name, weight in raw.items()}


def partition_threshold(epsilon: float, delta: float) -> float:
    """Noisy count above which a key seen in the data may be released.

    With Laplace noise of scale ``1 / epsilon`` on the count of every key present, a key held by
    a single patient (count 1, absent from the neighbour) passes ``1 + ln(1 / (2 delta)) /
    epsilon`` with probability ``delta``: the release is (epsilon, delta)-DP (Korolova et al.
    2009; Wilson et al. 2020, "partition selection").
    """
    return 1.0 + math.log(1.0 / (2.0 * delta)) / epsilon


def release_keys(
    keys: np.ndarray, *, epsilon: float, delta: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The keys (one per row) whose noisy count passes :func:`partition_threshold`.

    Returns
    -------
    kept : ndarray
        Released keys, sorted.
    counts : ndarray of float
        Their noisy counts.
    """
    distinct, counts = np.unique(keys, return_counts=True)
    noisy = laplace_mechanism(counts, sensitivity=1.0, epsilon=epsilon, rng=rng)
    kept = noisy > partition_threshold(epsilon, delta)
    return distinct[kept], noisy[kept]


def dp_categories(
    values: pd.Series, *, epsilon: float, delta: float, rng: np.random.Generator
) -> list[Any]:
    """Categories of ``values`` (missing values left aside) released by partition selection.

    Examples
    --------
    >>> values = pd.Series(["a"] * 300 + ["b"] * 200 + ["rare"])
    >>> dp_categories(values, epsilon=1.0, delta=1e-6, rng=np.random.default_rng(0))
    ['a', 'b']
    """
    present = values.dropna()
    order = sorted_categories(present)
    codes = pd.Categorical(present, categories=order).codes
    kept, _ = release_keys(np.asarray(codes), epsilon=epsilon, delta=delta, rng=rng)
    return [order[i] for i in kept]


def private_domains(
    data: pd.DataFrame,
    metadata: Metadata,
    *,
    epsilon: float,
    delta: float,
    ledger: PrivacyLedger,
    rng: np.random.Generator,
) -> dict[str, ColumnDomain]:
    """The domain of every column of ``data``: declared facts, the others released with DP.

    The columns whose domain is not public share ``epsilon`` by :func:`domain_weights`; the
    category lists share ``delta`` equally (the bounds need none). Each release is recorded in
    ``ledger``; nothing is spent when every domain is public. Bounds are always released
    (:func:`~fedsynth.tabular.privacy.dp_bounds.private_bounds`); a survival time's lower
    bound is 0.

    Raises
    ------
    PrivateDomainError
        When no category of a column could be released (too few rows for its share of the
        budget); the message names the columns and says to declare their categories or to
        give the domain more budget.
    """
    _warn_dtype_categories(metadata, data)
    weights = domain_weights(metadata, data)
    n_lists = sum(metadata.columns[name].is_discrete for name in weights)
    share_delta = delta / max(n_lists, 1)
    domains: dict[str, ColumnDomain] = {}
    failed = []
    for name in data.columns:
        col = metadata.columns[name]
        # Survival columns never hold missing values (the metadata checks refuse them): a
        # schema rule, so public, and a missing state would only let noise emit missing times.
        missing = can_be_missing(str(data[name].dtype)) and col.kind not in SURVIVAL_KINDS
        if name not in weights:
            domains[name] = ColumnDomain(
                name,
                public_categories(col, data[name].dtype) if col.is_discrete else None,
                None if col.is_discrete else public_bounds(col),
                missing,
                estimated=False,
            )
            continue
        share = weights[name] * epsilon
        if col.is_discrete:
            threshold = partition_threshold(share, share_delta)
            ledger.charge(
                f"domain of {name!r} (categories)",
                "laplace partition selection",
                share,
                share_delta,
                threshold=threshold,
            )
            categories = dp_categories(data[name], epsilon=share, delta=share_delta, rng=rng)
            if not categories:
                failed.append((name, share, threshold))
            domains[name] = ColumnDomain(name, categories, None, True, estimated=True)
            continue
        low = 0.0 if col.kind == "duration" else None
        ledger.charge(
            f"domain of {name!r} (bounds)",
            "exponential (private bounds: centre, then each bound)",
            share,
            0.0,
            public_low=low,
        )
        values = pd.to_numeric(data[name], errors="coerce").to_numpy(dtype=float)
        release = private_bounds(values, epsilon=share, rng=rng, low=low)
        bounds = (release.low, release.high)
        if col.integer:
            bounds = (float(math.floor(bounds[0])), float(math.ceil(bounds[1])))
        domains[name] = ColumnDomain(name, None, bounds, missing, estimated=True)
    if failed:
        detail = "; ".join(
            f"{name!r} with epsilon={share:.3g} (a category needs a noisy count above "
            f"{threshold:.0f} rows)"
            for name, share, threshold in failed
        )
        raise PrivateDomainError(
            f"dp: no category of column(s) {[name for name, _, _ in failed]} could be released: "
            f"{detail}; declare their categories as public knowledge with "
            "fedsynth.tabular.privacy.declare_public (or give the column a pandas category "
            "dtype built from the code list), or raise epsilon or domain_fraction"
        )
    return domains


def release_domains(
    data: pd.DataFrame,
    metadata: Metadata,
    settings: DPSettings,
    *,
    ledger: PrivacyLedger,
    rng: np.random.Generator,
) -> tuple[dict[str, ColumnDomain], float, float]:
    """The domains of ``data``'s columns under a ``dp=`` setting, published into ``metadata``.

    ``settings.domain_fraction`` of epsilon is spent by :func:`private_domains` when some
    domain is not public knowledge, and the same fraction of delta when some category list is
    not: nothing otherwise. Returns the domains and the epsilon and delta spent on them, which
    the caller's other parts of the budget leave out.
    """
    weights = domain_weights(metadata, data)
    epsilon = settings.domain_fraction * settings.epsilon if weights else 0.0
    lists = any(metadata.columns[name].is_discrete for name in weights)
    delta = settings.domain_fraction * settings.delta if lists else 0.0
    domains = private_domains(data, metadata, epsilon=epsilon, delta=delta, ledger=ledger, rng=rng)
    publish_domains(metadata, domains)
    return domains, epsilon, delta


def publish_domains(metadata: Metadata, domains: Mapping[str, ColumnDomain]) -> None:
    """Replace the domain facts of ``metadata`` by the released ones, in place.

    A generator calls it on the metadata it was fitted with, so that the model it saves, the
    bounds it clips to and the categories it accepts in conditions hold no fact taken from the
    data outside DP.
    """
    for name, domain in domains.items():
        col = metadata.columns[name]
        if domain.categories is not None:
            metadata.columns[name] = replace(col, categories=list(domain.categories))
        elif domain.bounds is not None:
            metadata.columns[name] = replace(col, bounds=domain.bounds)


def category_codes(values: pd.Series, categories: Sequence[Any]) -> np.ndarray:
    """Index of each value in ``categories``; -1 for missing values and for other values.

    Values equal as numbers (``1``, ``1.0``, ``True``) share a code, as they do in the checks.

    Examples
    --------
    >>> category_codes(pd.Series(["b", None, "a", "z"]), ["a", "b"]).tolist()
    [1, -1, 0, -1]
    """
    lookup = {c: i for i, c in enumerate(categories)}
    return values.map(lambda v: lookup.get(v, -1) if not pd.isna(v) else -1).to_numpy(np.int64)


def released_view(data: pd.DataFrame, domains: Mapping[str, ColumnDomain]) -> pd.DataFrame:
    """``data`` with the values of categories that were not released made missing.

    What a model trained under DP sees of a column whose categories were released with DP
    (such a column always has a missing state); ``data`` itself is not modified. Such a column
    always comes back as objects, whether or not a row held a category left out: a model that
    reads a missing state from the dtype (an integer column cannot hold one) must not learn
    from the dtype whether the rows hold such a category.
    """
    out = data.copy()
    for name, domain in domains.items():
        if domain.categories is None or not domain.estimated:
            continue
        unreleased = category_codes(data[name], domain.categories) < 0
        out[name] = data[name].astype(object).where(~unreleased, np.nan)
    return out
