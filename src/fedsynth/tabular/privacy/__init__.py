"""Privacy of tables: differentially private statistics of columns, and the copy guard.

:func:`declare_public` marks what is known without the data (bounds, category lists) so that a
DP fit spends nothing on it; :class:`CopyGuard` refuses synthetic rows that copy a training row,
with or without DP.
"""

from fedsynth.tabular.privacy.dp_statistics import PrivateDomainError, declare_public
from fedsynth.tabular.privacy.guards import CopyGuard, row_fingerprints

__all__ = ["CopyGuard", "PrivateDomainError", "declare_public", "row_fingerprints"]
