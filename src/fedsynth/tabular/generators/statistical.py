"""The statistical tier: generators whose model is a set of statistics of the columns.

:class:`StatisticalGenerator` is what the Gaussian copula and the Bayesian network (PrivBayes)
share beside the neural tier: native conditioning, hyperparameters checked before any data
work, and the first step of a fit under ``dp=``, the domains. The base class has resolved
``dp``, created the ledger and checked the whole budget against the cap; here the bounds and
category lists that are not declared public are released (``domain_fraction`` of epsilon, and
of delta when a category list is released, nothing when every domain is public,
:func:`~fedsynth.tabular.privacy.dp_statistics.release_domains`) and published into the
metadata; a generator spends the rest of the budget in ``_fit_released``. Values of categories
that DP left out count as missing: such a column always has the missing state
(:func:`~fedsynth.tabular.generators._discrete.category_states`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.core.privacy.accounting import PrivacyLedger
from fedsynth.core.privacy.config import DPSettings
from fedsynth.tabular.generators.base import BaseGenerator
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.privacy.dp_statistics import ColumnDomain, release_domains


class StatisticalGenerator(BaseGenerator):
    """Base class of the statistical generators (see the module docstring).

    A subclass implements ``_fit`` (no DP), ``_fit_released`` (under DP, the domains
    released), ``_sample``, ``_sample_conditioned`` and its state, and lists what is wrong with
    its hyperparameters in ``_param_problems``.
    """

    native_conditioning = True

    def _check_params(self, settings: DPSettings | None) -> None:
        self._raise_invalid_params(self._param_problems())

    def _param_problems(self) -> list[str]:
        """One line per invalid hyperparameter (none by default)."""
        return []

    def _fit_private(
        self,
        data: pd.DataFrame,
        metadata: Metadata,
        rng: np.random.Generator,
        settings: DPSettings,
        ledger: PrivacyLedger,
    ) -> None:
        domains, epsilon, delta = release_domains(data, metadata, settings, ledger=ledger, rng=rng)
        self._fit_released(
            data,
            metadata,
            domains,
            settings.epsilon - epsilon,
            settings.delta - delta,
            ledger,
            rng,
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
        """Fit under DP over the public or released ``domains``, spending (``epsilon``,
        ``delta``), what the domains left, each spend charged to ``ledger``."""
        raise NotImplementedError


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (``True`` and ``False`` are not)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite real number (``True`` and ``False`` are not)."""
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )
