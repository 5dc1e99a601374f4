"""Differential privacy for every modality: settings, mechanisms, accounting and DP-SGD.

``dp={"epsilon": ..., "delta": ...}`` on a generator (see :class:`DPConfig`) trains it under
differential privacy; ``gen.privacy_spent_`` is its :class:`PrivacyLedger`, saved with the model.
What is specific to tables (private domains of columns, the copy guard) lives in
:mod:`fedsynth.tabular.privacy`.
"""

from fedsynth.core.privacy.accounting import PrivacyBudgetError, PrivacyLedger, Spend
from fedsynth.core.privacy.config import DPConfig, DPSettings, PrivacyConfigError, resolve_dp

__all__ = [
    "DPConfig",
    "DPSettings",
    "PrivacyBudgetError",
    "PrivacyConfigError",
    "PrivacyLedger",
    "Spend",
    "resolve_dp",
]
