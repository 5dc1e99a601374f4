"""Conditional sampling of a Bayesian network: the evidence clamped, its ancestors drawn by
likelihood weighting.

:class:`EvidenceSampling` is the part of
:class:`~fedsynth.tabular.generators.bayesian_network.BayesianNetwork` that samples rows meeting
conditions. Columns downstream of the evidence are sampled forward as usual; the evidence's
ancestors cannot be, since the evidence tells about them: they are drawn from a pool of forward
draws weighted by the probability of the evidence given its parents (likelihood weighting),
chunk by chunk, each chunk from a pool of its own.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.exceptions import ConditionError, ConditionWarning
from fedsynth.tabular.generators._bayesian_structure import parent_index
from fedsynth.tabular.generators._discretize import Bins
from fedsynth.tabular.privacy.dp_statistics import category_codes

# Conditioned rows are drawn in chunks, each from its own importance pool of ancestor draws; a
# pool whose weights concentrate (effective size below a tenth of the chunk) is drawn once more,
# larger, before warning.
_CONDITIONED_CHUNK = 2_000
_POOL_SIZE = 20_000
_LARGE_POOL_SIZE = 200_000


class EvidenceSampling:
    """Rows of a fitted network that meet conditions (see the module docstring).

    It reads the network the generator stores (``_columns``, ``_order_idx``, ``_parent_idx``,
    ``_n_states``, ``conditionals_``, ``bins_``, ``_categories``) and samples with its
    ``_forward`` and ``_decode``.
    """

    _columns: list[str]
    _order_idx: list[int]
    _parent_idx: dict[int, list[int]]
    _n_states: np.ndarray
    _categories: dict[str, list[Any]]
    conditionals_: dict[str, np.ndarray]
    bins_: dict[str, Bins]

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
                labels = pd.Series([value], dtype=object)
                code = int(category_codes(labels, self._categories[name])[0])
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
