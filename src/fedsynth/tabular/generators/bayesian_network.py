"""Bayesian network generator with the greedy structure of PrivBayes, and PrivBayes itself.

Every column becomes a discrete variable: discrete columns keep their categories, numeric and
duration columns are cut into quantile bins, and a missing value is a state of its own. The
network is grown greedily as in PrivBayes: each step adds the (column, parent set) pair with the
best score among the columns not yet placed and the parent sets of at most ``max_parents`` placed
columns (scored on 50,000 rows drawn at random from a larger table). Conditionals are normalised
counts of every row.

The scores, the greedy structure and the conditionals from counts live in
:mod:`~fedsynth.tabular.generators._bayesian_structure` (and are importable from here);
sampling under conditions (likelihood weighting of the evidence's ancestors) in
:mod:`~fedsynth.tabular.generators._bayesian_conditioning`. With
``dp=`` the generator is PrivBayes (Zhang et al. 2017,
:mod:`~fedsynth.tabular.generators._privbayes`): the structure is chosen by the exponential
mechanism on :func:`independence_distance`, and the counts get Laplace noise.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.core.privacy.accounting import PrivacyLedger
from fedsynth.core.privacy.config import DPConfig
from fedsynth.core.registry import register
from fedsynth.tabular.generators._bayesian_conditioning import EvidenceSampling
from fedsynth.tabular.generators._bayesian_structure import (
    INDEPENDENCE_DISTANCE_SENSITIVITY,
    STRUCTURE_ROWS,
    ScoreFunction,
    SelectionRule,
    conditional_from_counts,
    family_counts,
    independence_distance,
    learn_structure,
    mutual_information,
    parent_index,
    penalised_mutual_information,
    select_best,
)
from fedsynth.tabular.generators._discrete import (
    category_states,
    from_codes,
    numeric_values,
)
from fedsynth.tabular.generators._discretize import Bins, public_bins, quantile_bins
from fedsynth.tabular.generators._privbayes import private_network
from fedsynth.tabular.generators.statistical import StatisticalGenerator, is_int, is_number
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.privacy.dp_statistics import ColumnDomain

__all__ = [
    "INDEPENDENCE_DISTANCE_SENSITIVITY",
    "BayesianNetwork",
    "ScoreFunction",
    "SelectionRule",
    "conditional_from_counts",
    "family_counts",
    "independence_distance",
    "learn_structure",
    "mutual_information",
    "parent_index",
    "penalised_mutual_information",
    "select_best",
]


#: Above this many columns a fit warns that structure learning will take long.
WIDE_COLUMNS = 1000


def warn_if_wide(columns: int) -> None:
    """Warn before structure learning on a wide table: it scores pairs of columns, so its time
    grows about with the square of their number (measured on an expression array of 124 rows:
    500 / 1,000 / 2,000 columns took 3.9 / 16.9 / 85 CPU s; 15,000 would take hours)."""
    if columns > WIDE_COLUMNS:
        warnings.warn(
            f"bayesian_network: {columns} columns; structure learning scores pairs of columns "
            "and its time grows about with their square (2,000 columns took 85 CPU s here). "
            "Select the columns to synthesise if this is an expression array or similar.",
            UserWarning,
            stacklevel=3,
        )


@register("bayesian_network")
class BayesianNetwork(EvidenceSampling, StatisticalGenerator):
    """Bayesian network over discretised columns, structure learned greedily as in PrivBayes.

    Discrete columns (categorical, binary, event, site) use their categories as states; numeric
    and duration columns are cut into at most ``n_bins`` quantile bins (a value holding at least
    ``1 / n_bins`` of the rows is a bin of its own) and sampled back uniformly within their bin,
    as whole numbers for whole-number columns. A missing value is a state of its own, so missing
    values come back at the training rate. No training value or row is stored: the model is the
    bin bounds and the conditional probability tables.

    Sampling is ancestral and vectorised. Conditional sampling is native: the conditioned columns
    are clamped to their values (a numeric value clamps its bin and is emitted exactly); when a
    conditioned column has unconditioned ancestors, these are drawn by likelihood weighting (a
    pool forward-sampled with the evidence clamped, weighted by the probability of the evidence
    given its parents, then resampled), and the rest of each row is sampled forward. A
    ``ConditionWarning`` says when the weights concentrate on few pool draws.

    With ``dp=`` the network is PrivBayes, (epsilon, delta)-differentially private for
    add/remove neighbours, and the budget is spent in this order (each part recorded in
    ``privacy_spent_``):

    1. the domain: when some numeric bounds or category lists are not declared public (see
       :func:`fedsynth.tabular.privacy.declare_public`), ``domain_fraction`` of epsilon (and
       of delta for category lists) releases them
       (:mod:`fedsynth.tabular.privacy.dp_statistics`); nothing otherwise. Numeric columns are
       then cut into ``n_bins`` bins of equal width over their public or released
       bounds (in ``log1p`` for durations), never at the data's quantiles;
    2. 1% of what remains: a Laplace-noised row count, for PrivBayes's usefulness rule: a
       (column, parents) pair is a candidate only when its conditional table has at most
       ``n * epsilon_2 / (4 d)`` cells, so that its average count is 4 times the noise (theta);
    3. ``structure_fraction`` (beta) of the rest: the structure, by ``d - 1`` draws of the
       exponential mechanism on :func:`independence_distance` (sensitivity 2), each with an
       equal share. Skipped when the usefulness rule leaves no parent set at all;
    4. the rest, epsilon_2: Laplace noise of scale ``d / epsilon_2`` on each of the ``d``
       tables of counts of a column and its parents (sensitivity 1 each). Negative counts are
       set to 0 and each cell gets a pseudo-count equal to the noise scale (post-processing),
       so that a table drowned in noise falls back on the uniform distribution.

    The total is the sum of the parts (basic composition): epsilon as asked, and delta as asked
    when a domain was released, else 0. Outside the guarantee, from the shared base class:
    the exact row count ``n_rows_``, which columns are constant and their value, and the copy
    guard (fingerprints of training rows saved with the model, and refusing synthetic rows
    equal to a training row).

    Parameters
    ----------
    max_parents : int, default 2
        Largest number of parents of a column (the degree ``k`` of PrivBayes). Parent sets with
        more joint states than training rows are not considered. Fitting scores up to
        ``C(d, max_parents + 1)`` (column, parent set) pairs for ``d`` columns: about a second
        for 45 columns and 5,000 rows with 2 parents, about ten with 3.
    n_bins : int, default 20
        Largest number of bins of a numeric or duration column (at least 2).
    smoothing : float, default 1.0
        Pseudo-rows added to each parent configuration, spread as the column's marginal
        distribution; 0 gives the raw conditional frequencies.
    dp : dict, optional
        Differential privacy, e.g. ``{"epsilon": 1.0, "delta": 1e-5}`` (see
        :class:`~fedsynth.core.privacy.DPConfig`); ``None`` for none.
    structure_fraction : float, default 0.3
        With ``dp``: share of the budget that selects the structure (beta of PrivBayes, which
        found 0.3 to work well); the rest goes to the conditional tables.
    seed : int or None, default 0
        Seed of the first column of the network, of the noise and of sampling.

    Attributes
    ----------
    order_ : list of str
        Columns in the order they were added to the network (parents come first).
    parents_ : dict of str to list of str
        Parents of each column.
    conditionals_ : dict of str to ndarray
        ``P(column state | parent states)``, one row per parent configuration (mixed radix over
        the parents, the first parent most significant).
    bins_ : dict of str to Bins
        Bins of each numeric and duration column.
    privacy_spent_ : PrivacyLedger or None
        With ``dp``: every spend and their total (``.epsilon``, ``.delta``); ``None`` without.

    References
    ----------
    Zhang, J., Cormode, G., Procopiuc, C. M., Srivastava, D. and Xiao, X. (2017). PrivBayes:
    a private data release via Bayesian networks. ACM Transactions on Database Systems 42(4).

    Examples
    --------
    >>> import fedsynth
    >>> real = fedsynth.datasets.mds_cohort(n=500, seed=0)
    >>> gen = fedsynth.make("bayesian_network", max_parents=2, seed=0).fit(real)
    >>> gen.parents_["TP53"]
    ['ipssm_risk', 'complex_karyotype']
    >>> gen.sample(100, conditions={"TP53": 1})["TP53"].unique()
    array([1])
    >>> private = fedsynth.make("bayesian_network", dp={"epsilon": 1.0, "delta": 1e-5})
    >>> private.fit(real).privacy_spent_.epsilon  # doctest: +SKIP
    1.0
    """

    privacy_parts = "domain, count, structure, conditionals"

    def __init__(
        self,
        *,
        max_parents: int = 2,
        n_bins: int = 20,
        smoothing: float = 1.0,
        dp: DPConfig | None = None,
        structure_fraction: float = 0.3,
        seed: int | None = 0,
    ):
        self.max_parents = max_parents
        self.n_bins = n_bins
        self.smoothing = smoothing
        self.dp = dp
        self.structure_fraction = structure_fraction
        self.seed = seed

    # ------------------------------------------------------------------ fitting
    def _param_problems(self) -> list[str]:
        problems = []
        if not is_int(self.max_parents) or self.max_parents < 0:
            problems.append(f"max_parents must be an integer >= 0, got {self.max_parents!r}")
        if not is_int(self.n_bins) or self.n_bins < 2:
            problems.append(f"n_bins must be an integer >= 2, got {self.n_bins!r}")
        if not is_number(self.smoothing) or self.smoothing < 0:
            problems.append(f"smoothing must be a finite number >= 0, got {self.smoothing!r}")
        if not is_number(self.structure_fraction) or not 0 < self.structure_fraction < 1:
            problems.append(
                f"structure_fraction must be a number in (0, 1), got {self.structure_fraction!r}"
            )
        return problems

    def _fit(self, data: pd.DataFrame, metadata: Metadata, rng: np.random.Generator) -> None:
        warn_if_wide(data.shape[1])
        columns = list(data.columns)
        bins: dict[str, Bins] = {}
        codes = np.empty((len(data), len(columns)), dtype=np.int64)
        n_states = np.empty(len(columns), dtype=np.int64)
        for i, name in enumerate(columns):
            col = metadata.columns[name]
            if col.is_continuous:
                values = numeric_values(data[name])
                bins[name] = quantile_bins(values, int(self.n_bins), integer=bool(col.integer))
                codes[:, i] = bins[name].codes(values)
                n_states[i] = bins[name].n_states
            else:
                codes[:, i] = category_states(data[name], col.categories)
                n_states[i] = len(col.categories) + int((codes[:, i] == len(col.categories)).any())
        order, parents = learn_structure(
            codes, n_states, int(self.max_parents), rng, max_rows=STRUCTURE_ROWS
        )
        conditionals = {
            columns[v]: conditional_from_counts(
                family_counts(codes, n_states, v, parents[v]), float(self.smoothing)
            )
            for v in order
        }
        self._set_network(
            columns,
            [columns[v] for v in order],
            {columns[v]: [columns[p] for p in parents[v]] for v in order},
            conditionals,
            bins,
            categories={c: metadata.columns[c].categories for c in columns if c not in bins},
        )

    def _fit_released(
        self,
        data: pd.DataFrame,
        metadata: Metadata,
        domains: dict[str, ColumnDomain],
        epsilon: float,
        delta: float,
        ledger: PrivacyLedger,
        rng: np.random.Generator,
    ) -> None:
        """PrivBayes: the budget spent as the class docstring lists (no delta beyond the
        domains: Laplace and exponential mechanisms only)."""
        warn_if_wide(data.shape[1])
        columns = list(data.columns)
        codes, n_states, bins = self._private_codes(data, metadata, domains)
        order, parents, conditionals = private_network(
            codes,
            n_states,
            epsilon=epsilon,
            max_parents=int(self.max_parents),
            structure_fraction=float(self.structure_fraction),
            smoothing=float(self.smoothing),
            ledger=ledger,
            rng=rng,
        )
        self._set_network(
            columns,
            [columns[v] for v in order],
            {columns[v]: [columns[p] for p in parents[v]] for v in order},
            {columns[v]: conditionals[v] for v in order},
            bins,
            categories={c: domains[c].categories for c in columns if c not in bins},
        )

    def _private_codes(
        self, data: pd.DataFrame, metadata: Metadata, domains: dict[str, ColumnDomain]
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Bins]]:
        """States of every row over the public or released domains (bins of equal width)."""
        bins: dict[str, Bins] = {}
        codes = np.empty(data.shape, dtype=np.int64)
        n_states = np.empty(data.shape[1], dtype=np.int64)
        for i, name in enumerate(data.columns):
            col, domain = metadata.columns[name], domains[name]
            if domain.bounds is not None:
                values = numeric_values(data[name])
                bins[name] = public_bins(
                    *domain.bounds,
                    int(self.n_bins),
                    integer=bool(col.integer),
                    log=col.kind == "duration",
                    has_missing=domain.missing,
                )
                codes[:, i] = bins[name].codes(values)
                n_states[i] = bins[name].n_states
            else:
                # Missing values, and values of categories that were not released, take the
                # missing state (which a column with released categories always has).
                codes[:, i] = category_states(data[name], domain.categories)
                n_states[i] = len(domain.categories) + int(domain.missing)
        return codes, n_states, bins

    def _set_network(
        self,
        columns: list[str],
        order: list[str],
        parents: dict[str, list[str]],
        conditionals: dict[str, np.ndarray],
        bins: dict[str, Bins],
        categories: dict[str, list[Any]],
    ) -> None:
        """Store the fitted network and derive what sampling needs (fit and load share it)."""
        self.order_ = order
        self.parents_ = parents
        self.conditionals_ = conditionals
        self.bins_ = bins
        self._columns = columns
        self._categories = categories
        position = {name: i for i, name in enumerate(columns)}
        self._order_idx = [position[c] for c in order]
        self._parent_idx = {position[c]: [position[p] for p in parents[c]] for c in columns}
        self._n_states = np.array([conditionals[c].shape[1] for c in columns], dtype=np.int64)
        # Whole-number labels (mutation flags, events) of columns without missing values are
        # emitted as integers rather than Python objects: the same values, far cheaper to cast.
        self._integer_labels = {
            c: np.array(labels, dtype=np.int64)
            for c, labels in categories.items()
            if conditionals[c].shape[1] == len(labels)
            and all(is_int(label) and -(2**63) <= label < 2**63 for label in labels)
        }
        # The CDF of each column without its last entry (always 1), one row per state, so that
        # sampling gathers one contiguous row per state: a row's state is the number of CDF
        # entries of its parent configuration at or below its uniform draw.
        self._cdf = {}
        for c in columns:
            cdf = np.cumsum(conditionals[c], axis=1)[:, :-1]
            self._cdf[position[c]] = np.ascontiguousarray(cdf.T)

    # ------------------------------------------------------------------ sampling
    def _sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        codes = np.zeros((n, len(self._columns)), dtype=np.int64)
        self._forward(codes, self._order_idx, rng)
        return self._decode(codes, rng)

    def _forward(self, codes: np.ndarray, variables: list[int], rng: np.random.Generator) -> None:
        """Sample ``variables`` (in network order) into ``codes``, their parents already set."""
        for v in variables:
            pa = parent_index(codes, self._n_states, self._parent_idx[v])
            u = rng.random(len(codes))
            states = np.zeros(len(codes), dtype=np.int64)
            for upper in self._cdf[v]:
                states += upper[pa] <= u
            codes[:, v] = states

    def _decode(self, codes: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        out = {}
        for i, name in enumerate(self._columns):
            if name in self.bins_:
                out[name] = self.bins_[name].sample(codes[:, i], rng)
            elif name in self._integer_labels:
                out[name] = self._integer_labels[name][codes[:, i]]
            else:
                # The missing state is len(categories), which from_codes reads as missing.
                out[name] = from_codes(codes[:, i], self._categories[name]).to_numpy()
        return pd.DataFrame(out)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays: dict[str, np.ndarray] = {}
        for i, name in enumerate(self._columns):
            arrays[f"conditional_{i}"] = self.conditionals_[name]
            if name in self.bins_:
                arrays[f"bins_low_{i}"] = self.bins_[name].low
                arrays[f"bins_high_{i}"] = self.bins_[name].high
        state = {
            "columns": self._columns,
            "order": self.order_,
            "parents": self.parents_,
            "bins": {
                name: {"integer": b.integer, "has_missing": b.has_missing}
                for name, b in self.bins_.items()
            },
        }
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        columns = list(state["columns"])
        bins = {
            name: Bins(
                arrays[f"bins_low_{columns.index(name)}"],
                arrays[f"bins_high_{columns.index(name)}"],
                bool(info["integer"]),
                bool(info["has_missing"]),
            )
            for name, info in state["bins"].items()
        }
        self._set_network(
            columns,
            list(state["order"]),
            {name: list(p) for name, p in state["parents"].items()},
            {name: arrays[f"conditional_{i}"] for i, name in enumerate(columns)},
            bins,
            categories={c: self.metadata_.columns[c].categories for c in columns if c not in bins},
        )
