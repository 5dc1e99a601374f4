"""Column kinds of a clinical table: inference, overrides, checks, saving.

The kinds are ``numeric``, ``categorical``, ``binary`` (mutation flags, group ``genomic``),
``duration`` and ``event`` (the survival pair), ``identifier`` (dropped) and ``site``.
"""

from fedsynth.tabular.metadata.columns import KINDS, ColumnMetadata
from fedsynth.tabular.metadata.table import Metadata

__all__ = ["KINDS", "ColumnMetadata", "Metadata"]
