"""Bayesian network generator with the greedy structure of PrivBayes, and PrivBayes itself.

Every column becomes a discrete variable: discrete columns keep their categories, numeric and
duration columns are cut into quantile bins, and a missing value is a state of its own. The
network is grown greedily as in PrivBayes: each step adds the (column, parent set) pair with the
best score among the columns not yet placed and the parent sets of at most ``max_parents`` placed
columns. Conditionals are normalised counts.

The two places where a differentially private mode plugs in are explicit: structure selection is
a score function plus a selection rule (:func:`learn_structure` takes both; the exponential
mechanism replaces :func:`select_best`), and every conditional is computed from a table of counts
(:func:`family_counts`), to which noise can be added before :func:`conditional_from_counts`.
With ``dp=`` the generator is PrivBayes (Zhang et al. 2017): the structure is chosen by the
exponential mechanism on :func:`independence_distance`, and the counts get Laplace noise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import xlogy

from fedsynth.core.privacy.accounting import PrivacyLedger
from fedsynth.core.privacy.config import DPConfig, DPSettings, resolve_dp
from fedsynth.core.privacy.mechanisms import exponential_mechanism, laplace_mechanism
from fedsynth.core.registry import register
from fedsynth.exceptions import ConditionError, ConditionWarning
from fedsynth.tabular.generators._discrete import from_codes, to_codes
from fedsynth.tabular.generators._discretize import Bins, public_bins, quantile_bins
from fedsynth.tabular.generators.base import BaseGenerator
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.privacy.dp_statistics import (
    ColumnDomain,
    release_domains,
)

#: ``score(codes, n_states, parents, children)``: one score per child for one parent set.
ScoreFunction = Callable[[np.ndarray, np.ndarray, tuple[int, ...], np.ndarray], np.ndarray]
#: ``select(scores, rng)``: index of the chosen candidate in a flat array of scores.
SelectionRule = Callable[[np.ndarray, np.random.Generator], int]

# Conditioned rows are drawn in chunks, each from its own importance pool of ancestor draws; a
# pool whose weights concentrate (effective size below a tenth of the chunk) is drawn once more,
# larger, before warning.
_CONDITIONED_CHUNK = 2_000
_POOL_SIZE = 20_000
_LARGE_POOL_SIZE = 200_000
#: Add/remove sensitivity of :func:`independence_distance` (proved in its docstring).
INDEPENDENCE_DISTANCE_SENSITIVITY = 2.0
# PrivBayes's usefulness: a conditional table is worth releasing when its cells hold on average
# at least this many times the noise scale (Zhang et al. 2017 take theta = 4).
_THETA = 4.0
# Share of the budget (after the domain) spent on the noisy row count that the usefulness rule
# needs: small, since a count has sensitivity 1.
_COUNT_SHARE = 0.01


# ---------------------------------------------------------------------- structure
def parent_index(codes: np.ndarray, n_states: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """Index of each row's parent configuration (mixed radix over ``parents``, in order)."""
    index = np.zeros(len(codes), dtype=np.int64)
    for p in parents:
        index = index * int(n_states[p]) + codes[:, p]
    return index


def _entropies(counts: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Entropy (nats) of each segment of ``counts`` beginning at ``starts``; each sums to ``n``."""
    return math.log(n) - np.add.reduceat(xlogy(counts, counts), starts) / n


def mutual_information(
    codes: np.ndarray, n_states: np.ndarray, parents: tuple[int, ...], children: np.ndarray
) -> np.ndarray:
    """Plug-in mutual information I(child; parents), in nats, of each child with one parent set.

    All children are counted in one ``np.bincount`` over offset joint codes, a table of
    ``prod(parent states) * sum(child states)`` cells.
    """
    children = np.asarray(children, dtype=np.int64)
    if not parents:
        return np.zeros(len(children))
    n = len(codes)
    pa = parent_index(codes, n_states, parents)
    n_pa = math.prod(int(n_states[p]) for p in parents)
    states = n_states[children]
    child_codes = codes[:, children]
    sizes = n_pa * states
    joint_starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    joint = np.bincount(
        (pa[:, None] * states + child_codes + joint_starts).ravel(), minlength=int(sizes.sum())
    )
    child_starts = np.concatenate(([0], np.cumsum(states)[:-1]))
    marginal = np.bincount((child_codes + child_starts).ravel(), minlength=int(states.sum()))
    h_parents = _entropies(np.bincount(pa, minlength=n_pa), np.array([0]), n)
    return _entropies(marginal, child_starts, n) + h_parents - _entropies(joint, joint_starts, n)


def penalised_mutual_information(
    codes: np.ndarray, n_states: np.ndarray, parents: tuple[int, ...], children: np.ndarray
) -> np.ndarray:
    """Mutual information less its expected value under independence.

    The plug-in estimate is biased upwards by about ``(r_child - 1)(r_parents - 1) / (2n)``
    (Miller-Madow), which would make a pair of 20-bin parents look informative for any child.
    The correction uses the domain sizes, not the data, so it leaves the score's sensitivity
    unchanged for a private mode.
    """
    children = np.asarray(children, dtype=np.int64)
    n_parent_states = math.prod(int(n_states[p]) for p in parents)
    bias = (n_states[children] - 1) * (n_parent_states - 1) / (2 * len(codes))
    return mutual_information(codes, n_states, parents, children) - bias


def independence_distance(
    codes: np.ndarray, n_states: np.ndarray, parents: tuple[int, ...], children: np.ndarray
) -> np.ndarray:
    """Rows that would have to move to make each child independent of the parents.

    ``Q = 1/2 sum |c(x, p) - c(x) c(p) / n|`` over child states ``x`` and parent configurations
    ``p``: ``n`` times the R score of PrivBayes (Zhang et al. 2017, section 4.3), the L1
    distance between the joint distribution and the product of its marginals. It is the score of
    the private mode because its sensitivity is small and does not depend on ``n``: adding one
    row changes one joint count by 1 and the products ``c(x) c(p) / n`` by less than 3 in total
    (they rise by 1 overall, and what falls, ``(n - c(x0))(n - c(p0)) / (n (n + 1))``, is below
    1), so ``Q`` changes by less than ``(1 + 3) / 2 = 2``; removing a row is the same step
    backwards. The empty parent set scores 0.
    """
    children = np.asarray(children, dtype=np.int64)
    if not parents:
        return np.zeros(len(children))
    n = len(codes)
    pa = parent_index(codes, n_states, parents)
    n_pa = math.prod(int(n_states[p]) for p in parents)
    parent_counts = np.bincount(pa, minlength=n_pa).astype(float)
    out = np.empty(len(children))
    for i, child in enumerate(children):
        k = int(n_states[child])
        joint = np.bincount(pa * k + codes[:, child], minlength=n_pa * k).reshape(n_pa, k)
        expected = np.outer(parent_counts, joint.sum(axis=0)) / n
        out[i] = 0.5 * np.abs(joint - expected).sum()
    return out


def select_best(scores: np.ndarray, rng: np.random.Generator) -> int:
    """The selection rule without privacy: the highest score (the first one on ties)."""
    return int(np.argmax(scores))


def learn_structure(
    codes: np.ndarray,
    n_states: np.ndarray,
    max_parents: int,
    rng: np.random.Generator,
    *,
    score: ScoreFunction = penalised_mutual_information,
    select: SelectionRule = select_best,
    max_cells: float | None = None,
) -> tuple[list[int], dict[int, tuple[int, ...]]]:
    """Greedy network construction of PrivBayes (Zhang et al., 2017, algorithm 4).

    The first variable is drawn at random; then each step scores every pair of a variable not yet
    placed and a parent set of at most ``max_parents`` placed variables (the empty set scores 0)
    and adds the pair chosen by ``select``. A score depends only on its pair, so each parent set
    is scored once, when its last member is placed, against the variables still unplaced: the
    work is about ``C(d, max_parents + 1)`` scores instead of that times ``d``. Parent sets with
    more configurations than rows are left out: their conditional tables would be mostly empty
    and grow as the product of the parents' domains. With ``max_cells`` the limit is on the
    conditional table instead (parent configurations times child states), and uses no count
    of rows: the private mode's rule.

    Parameters
    ----------
    codes : ndarray of int, shape (n, d)
        State of each variable in each row.
    n_states : ndarray of int, shape (d,)
        Number of states of each variable.
    max_parents : int
        Largest parent set.
    rng : Generator
        Draws the first variable (and is passed to ``select``).
    score, select
        The score of a (child, parent set) pair and the rule choosing among the scores.
    max_cells : float, optional
        Largest conditional table a (child, parent set) pair may have.

    Returns
    -------
    order : list of int
        Variables in the order they were placed (a topological order).
    parents : dict of int to tuple of int
        Parent set of each variable.
    """
    d = codes.shape[1]
    root = int(rng.integers(d))
    order, parents = [root], {root: ()}
    unplaced = np.ones(d, dtype=bool)
    unplaced[root] = False
    candidate_sets: list[tuple[int, ...]] = [()]
    set_scores: list[np.ndarray] = [np.zeros(d)]

    def add_sets_ending_with(variable: int) -> None:
        children = np.flatnonzero(unplaced)
        for subset in [s for s in candidate_sets if len(s) < max_parents]:
            new = (*subset, variable)
            configurations = math.prod(int(n_states[p]) for p in new)
            if max_cells is None:
                allowed = children if configurations <= len(codes) else children[:0]
            else:
                allowed = children[configurations * n_states[children] <= max_cells]
            if not len(allowed):
                continue
            row = np.full(d, -np.inf)
            row[allowed] = score(codes, n_states, new, allowed)
            candidate_sets.append(new)
            set_scores.append(row)

    if unplaced.any():
        add_sets_ending_with(root)
    while unplaced.any():
        children = np.flatnonzero(unplaced)
        table = np.vstack(set_scores)[:, children]
        chosen_set, chosen_child = divmod(select(table.ravel(), rng), len(children))
        child = int(children[chosen_child])
        parents[child] = candidate_sets[chosen_set]
        order.append(child)
        unplaced[child] = False
        if unplaced.any():
            add_sets_ending_with(child)
    return order, parents


# ---------------------------------------------------------------------- conditionals
def family_counts(
    codes: np.ndarray, n_states: np.ndarray, child: int, parents: Sequence[int]
) -> np.ndarray:
    """Counts of (parent configuration, child state), shape ``(prod(parent states), states)``."""
    n_child = int(n_states[child])
    n_pa = math.prod(int(n_states[p]) for p in parents)
    keys = parent_index(codes, n_states, parents) * n_child + codes[:, child]
    return np.bincount(keys, minlength=n_pa * n_child).reshape(n_pa, n_child).astype(float)


def conditional_from_counts(counts: np.ndarray, smoothing: float) -> np.ndarray:
    """P(child | parents) from family counts, smoothed towards the child's marginal.

    Each parent configuration gets ``smoothing`` pseudo-rows spread as the child's marginal, so
    a configuration seen rarely (or never) falls back on the marginal rather than on a uniform
    guess, and a state never seen has probability 0 everywhere.
    """
    marginal = counts.sum(axis=0)
    prior = marginal / marginal.sum()
    smoothed = counts + smoothing * prior
    totals = smoothed.sum(axis=1, keepdims=True)
    return np.where(totals > 0, smoothed / np.where(totals > 0, totals, 1.0), prior)


# ---------------------------------------------------------------------- generator
@register("bayesian_network")
class BayesianNetwork(BaseGenerator):
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
       :func:`fedsynth.tabular.privacy.declare_public`), ``domain_fraction`` of epsilon and delta
       releases them (:mod:`fedsynth.tabular.privacy.dp_statistics`); nothing otherwise. Numeric
       columns are then cut into ``n_bins`` bins of equal width over their public or released
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

    native_conditioning = True

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
    def _check_params(self) -> DPSettings | None:
        problems = []
        if not _is_int(self.max_parents) or self.max_parents < 0:
            problems.append(f"max_parents must be an integer >= 0, got {self.max_parents!r}")
        if not _is_int(self.n_bins) or self.n_bins < 2:
            problems.append(f"n_bins must be an integer >= 2, got {self.n_bins!r}")
        if not _is_number(self.smoothing) or self.smoothing < 0:
            problems.append(f"smoothing must be a finite number >= 0, got {self.smoothing!r}")
        if not _is_number(self.structure_fraction) or not 0 < self.structure_fraction < 1:
            problems.append(
                f"structure_fraction must be a number in (0, 1), got {self.structure_fraction!r}"
            )
        if problems:
            raise ValueError(
                f"invalid {type(self).__name__} parameters:\n  - " + "\n  - ".join(problems)
            )
        return resolve_dp(self.dp)

    def _fit(self, data: pd.DataFrame, metadata: Metadata, rng: np.random.Generator) -> None:
        settings = self._check_params()
        if settings is not None:
            self._fit_private(data, metadata, rng, settings)
            return
        self.privacy_spent_ = None
        columns = list(data.columns)
        bins: dict[str, Bins] = {}
        codes = np.empty((len(data), len(columns)), dtype=np.int64)
        n_states = np.empty(len(columns), dtype=np.int64)
        for i, name in enumerate(columns):
            col = metadata.columns[name]
            if col.is_continuous:
                values = pd.to_numeric(data[name], errors="coerce").to_numpy(dtype=float)
                bins[name] = quantile_bins(values, int(self.n_bins), integer=bool(col.integer))
                codes[:, i] = bins[name].codes(values)
                n_states[i] = bins[name].n_states
            else:
                found = to_codes(data[name], col.categories)
                missing = found < 0
                found[missing] = len(col.categories)
                codes[:, i] = found
                n_states[i] = len(col.categories) + int(missing.any())
        order, parents = learn_structure(codes, n_states, int(self.max_parents), rng)
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

    def _fit_private(
        self,
        data: pd.DataFrame,
        metadata: Metadata,
        rng: np.random.Generator,
        settings: DPSettings,
    ) -> None:
        """PrivBayes: the budget spent as the class docstring lists."""
        ledger = PrivacyLedger(settings.max_epsilon)
        ledger.check("PrivBayes fit", "domain, count, structure, conditionals", settings.epsilon)
        epsilon, columns, d = settings.epsilon, list(data.columns), data.shape[1]
        domains, share = release_domains(data, metadata, settings, ledger=ledger, rng=rng)
        codes, n_states, bins = self._private_codes(data, metadata, domains)

        remaining = (1.0 - share) * epsilon
        epsilon_count = _COUNT_SHARE * remaining
        ledger.charge("row count", "laplace", epsilon_count, sensitivity=1.0)
        n_noisy = float(
            laplace_mechanism(len(data), sensitivity=1.0, epsilon=epsilon_count, rng=rng)
        )
        epsilon_structure = float(self.structure_fraction) * (remaining - epsilon_count)
        epsilon_tables = remaining - epsilon_count - epsilon_structure
        max_cells = max(n_noisy, 0.0) * epsilon_tables / (_THETA * d)
        smallest_families = np.sort(n_states)[:2]
        if self.max_parents == 0 or d < 2 or smallest_families.prod() > max_cells:
            # No parent set can be useful: the structure is data-independent (no parents, a
            # random order), so its share goes to the tables.
            epsilon_tables += epsilon_structure
            epsilon_structure = 0.0
            order = [int(v) for v in rng.permutation(d)]
            parents: dict[int, tuple[int, ...]] = {v: () for v in order}
        else:
            step = epsilon_structure / (d - 1)
            ledger.charge(
                "structure",
                "exponential",
                epsilon_structure,
                selections=d - 1,
                epsilon_each=step,
                score="independence_distance",
                sensitivity=INDEPENDENCE_DISTANCE_SENSITIVITY,
                max_cells=max_cells,
            )

            def select(scores: np.ndarray, rng: np.random.Generator) -> int:
                return exponential_mechanism(
                    scores, sensitivity=INDEPENDENCE_DISTANCE_SENSITIVITY, epsilon=step, rng=rng
                )

            order, parents = learn_structure(
                codes,
                n_states,
                int(self.max_parents),
                rng,
                score=independence_distance,
                select=select,
                max_cells=max_cells,
            )
        scale = d / epsilon_tables
        ledger.charge("conditional tables", "laplace", epsilon_tables, tables=d, noise_scale=scale)
        conditionals = {}
        for v in order:
            counts = family_counts(codes, n_states, v, parents[v])
            noisy = laplace_mechanism(counts, sensitivity=1.0, epsilon=epsilon_tables / d, rng=rng)
            conditionals[columns[v]] = conditional_from_counts(
                np.maximum(noisy, 0.0) + scale, float(self.smoothing)
            )
        self.privacy_spent_ = ledger
        self._set_network(
            columns,
            [columns[v] for v in order],
            {columns[v]: [columns[p] for p in parents[v]] for v in order},
            conditionals,
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
                values = pd.to_numeric(data[name], errors="coerce").to_numpy(dtype=float)
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
                found = to_codes(data[name], domain.categories)
                # Missing values, and values of categories that were not released, take the
                # missing state (which a column with released categories always has).
                found[found < 0] = len(domain.categories)
                codes[:, i] = found
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
            if conditionals[c].shape[1] == len(labels) and all(_is_int(label) for label in labels)
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

    def _sample_conditioned(
        self, n: int, conditions: dict[str, Any], rng: np.random.Generator
    ) -> pd.DataFrame:
        """Rows meeting ``conditions``: evidence clamped, its ancestors by likelihood weighting.

        Raises
        ------
        ConditionError
            When a condition has probability 0 under the network.

        Warns
        -----
        ConditionWarning
            When the importance weights concentrate (effective sample size below a tenth of
            the rows drawn from the pool).
        """
        position = {name: i for i, name in enumerate(self._columns)}
        evidence: dict[int, int] = {}
        for name, value in conditions.items():
            v = position[name]
            if name in self.bins_:
                code = self.bins_[name].code_of(value)
            else:
                code = int(to_codes(pd.Series([value], dtype=object), self._categories[name])[0])
            if not self.conditionals_[name][:, code].any():
                raise ConditionError(
                    f"cannot sample with {name}={value!r}: the value never occurs in the "
                    "training data, so the network gives it probability 0"
                )
            evidence[v] = code
        ancestors = self._ancestors(evidence)
        if not ancestors:
            # The evidence's parents are all evidence: one configuration, one weight to check.
            row = np.zeros((1, len(self._columns)), dtype=np.int64)
            row[0, list(evidence)] = list(evidence.values())
            if self._evidence_weights(row, evidence)[0] == 0:
                raise ConditionError(
                    f"cannot sample with {conditions}: the network gives these conditions "
                    "together probability 0"
                )
        codes = np.zeros((n, len(self._columns)), dtype=np.int64)
        codes[:, list(evidence)] = list(evidence.values())
        worst_ess, worst_rows = math.inf, 1
        for start in range(0, n if ancestors else 0, _CONDITIONED_CHUNK):
            rows = min(_CONDITIONED_CHUNK, n - start)
            drawn, ess = self._weighted_ancestors(rows, evidence, ancestors, conditions, rng)
            codes[start : start + rows, ancestors] = drawn
            if ess / rows < worst_ess / worst_rows:
                worst_ess, worst_rows = ess, rows
        if worst_ess < worst_rows / 10:
            warnings.warn(
                f"conditional sampling on {conditions}: the importance weights are concentrated "
                f"(effective sample size {worst_ess:.0f} for {worst_rows} rows), so the columns "
                "that influence the conditions repeat values more than the model would; "
                "the conditions are rare under the model",
                ConditionWarning,
                stacklevel=3,
            )
        self._forward(
            codes, [v for v in self._order_idx if v not in evidence and v not in ancestors], rng
        )
        out = self._decode(codes, rng)
        for name, value in conditions.items():
            if name in self.bins_:
                out[name] = float(value)
        return out

    def _ancestors(self, variables: dict[int, int]) -> list[int]:
        """Ancestors of ``variables`` that are not themselves in it, in network order."""
        found: set[int] = set()
        stack = list(variables)
        while stack:
            for p in self._parent_idx[stack.pop()]:
                if p not in found:
                    found.add(p)
                    stack.append(p)
        return [v for v in self._order_idx if v in found and v not in variables]

    def _weighted_ancestors(
        self,
        rows: int,
        evidence: dict[int, int],
        ancestors: list[int],
        conditions: dict[str, Any],
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, float]:
        """Ancestor states of ``rows`` rows drawn by likelihood weighting, and the pool's ESS."""
        for size in (_POOL_SIZE, _LARGE_POOL_SIZE):
            pool = np.zeros((size, len(self._columns)), dtype=np.int64)
            for v, code in evidence.items():
                pool[:, v] = code
            self._forward(pool, ancestors, rng)
            weights = self._evidence_weights(pool, evidence)
            total = weights.sum()
            ess = total**2 / np.sum(weights**2) if total > 0 else 0.0
            if ess >= rows / 10:
                break
        if total == 0:
            raise ConditionError(
                f"cannot sample with {conditions}: none of {size:,} draws of the network can "
                "meet these conditions together (they are impossible or extremely rare)"
            )
        chosen = rng.choice(size, size=rows, p=weights / total)
        return pool[np.ix_(chosen, ancestors)], float(ess)

    def _evidence_weights(self, codes: np.ndarray, evidence: dict[int, int]) -> np.ndarray:
        """Probability of the evidence given its parents, for each row of ``codes``."""
        weights = np.ones(len(codes))
        for v, code in evidence.items():
            pa = parent_index(codes, self._n_states, self._parent_idx[v])
            weights *= self.conditionals_[self._columns[v]][pa, code]
        return weights

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
        if self.privacy_spent_ is not None:
            state["privacy"] = self.privacy_spent_.to_dict()
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        privacy = state.get("privacy")
        self.privacy_spent_ = None if privacy is None else PrivacyLedger.from_dict(privacy)
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


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )
