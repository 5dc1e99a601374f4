"""Privacy: release guards (no copies of training rows); DP settings and accounting come later."""

from fedsynth.privacy.guards import CopyGuard, row_fingerprints

__all__ = ["CopyGuard", "row_fingerprints"]
