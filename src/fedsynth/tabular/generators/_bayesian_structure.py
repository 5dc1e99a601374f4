"""The Bayesian network's building blocks: scores of a (column, parent set) pair, the greedy
structure of PrivBayes, and conditionals from counts.

The two places where a differentially private mode plugs in are explicit: structure selection is
a score function plus a selection rule (:func:`learn_structure` takes both; the exponential
mechanism replaces :func:`select_best`), and every conditional is computed from a table of counts
(:func:`family_counts`), to which noise can be added before :func:`conditional_from_counts`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy.special import xlogy

#: ``score(codes, n_states, parents, children)``: one score per child for one parent set.
ScoreFunction = Callable[[np.ndarray, np.ndarray, tuple[int, ...], np.ndarray], np.ndarray]
#: ``select(scores, rng)``: index of the chosen candidate in a flat array of scores.
SelectionRule = Callable[[np.ndarray, np.random.Generator], int]
#: Add/remove sensitivity of :func:`independence_distance` (proved in its docstring).
INDEPENDENCE_DISTANCE_SENSITIVITY = 2.0


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


#: Rows the greedy search scores parent sets on, at most, without DP (a random subsample of a
#: larger table; the conditionals are still counted on every row). The search scores about
#: ``C(d, max_parents)`` parent sets against every unplaced column, each score a pass over the
#: rows: on a 100,000-row, 50-column table it took 231 of the fit's 243 s (profiled, on a
#: loaded machine), and would take ten times as long on 1,000,000 rows. Tables up to this size
#: (all the benchmarks' own) are scored on every row, as before.
STRUCTURE_ROWS = 50_000


def learn_structure(
    codes: np.ndarray,
    n_states: np.ndarray,
    max_parents: int,
    rng: np.random.Generator,
    *,
    score: ScoreFunction = penalised_mutual_information,
    select: SelectionRule = select_best,
    max_cells: float | None = None,
    max_rows: int | None = None,
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
    max_rows : int, optional
        Score on this many rows, drawn at random without replacement from ``rng`` first, when
        there are more (see :data:`STRUCTURE_ROWS`); all rows without it.

    Returns
    -------
    order : list of int
        Variables in the order they were placed (a topological order).
    parents : dict of int to tuple of int
        Parent set of each variable.
    """
    if max_rows is not None and len(codes) > max_rows:
        codes = codes[np.sort(rng.choice(len(codes), size=max_rows, replace=False))]
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
