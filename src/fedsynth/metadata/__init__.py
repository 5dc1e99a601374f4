"""Column kinds of a clinical table: inference, overrides, checks, saving.

The kinds are ``numeric``, ``categorical``, ``binary`` (mutation flags, group ``genomic``),
``duration`` and ``event`` (the survival pair), ``identifier`` (dropped) and ``site``.
"""

from fedsynth.metadata.columns import KINDS, ColumnMetadata
from fedsynth.metadata.table import Metadata

__all__ = ["KINDS", "ColumnMetadata", "Metadata"]
