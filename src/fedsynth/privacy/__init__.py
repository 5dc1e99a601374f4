"""Privacy: differential privacy settings, mechanisms and accounting; release guards.

``dp={"epsilon": ..., "delta": ...}`` on a generator (see :class:`DPConfig`) trains it under
differential privacy; ``gen.privacy_spent_`` is its :class:`PrivacyLedger`, saved with the model.
:class:`CopyGuard` refuses synthetic rows that copy a training row, with or without DP.
"""

from fedsynth.privacy.accounting import PrivacyBudgetError, PrivacyLedger, Spend
from fedsynth.privacy.config import DPConfig, DPSettings, PrivacyConfigError, resolve_dp
from fedsynth.privacy.dp_statistics import PrivateDomainError, declare_public
from fedsynth.privacy.guards import CopyGuard, row_fingerprints

__all__ = [
    "CopyGuard",
    "DPConfig",
    "DPSettings",
    "PrivacyBudgetError",
    "PrivacyConfigError",
    "PrivacyLedger",
    "PrivateDomainError",
    "Spend",
    "declare_public",
    "resolve_dp",
    "row_fingerprints",
]
