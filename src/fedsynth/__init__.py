"""fedsynth: privacy-preserving synthetic clinical data, central or federated, validated.

The core imports numpy, pandas, scipy and scikit-learn only; torch and the other heavy parts are
imported where they are used.
"""

from fedsynth import datasets
from fedsynth._version import __version__
from fedsynth.exceptions import (
    DataWarning,
    FedsynthError,
    InvalidDataError,
    MetadataError,
    NotFittedError,
)
from fedsynth.federated import federate
from fedsynth.tabular.augmentation import rebalance, rebalance_plan
from fedsynth.tabular.generators import available_generators, load, make
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.validation import compare, validate

__all__ = [
    "DataWarning",
    "FedsynthError",
    "InvalidDataError",
    "Metadata",
    "MetadataError",
    "NotFittedError",
    "__version__",
    "available_generators",
    "compare",
    "datasets",
    "federate",
    "load",
    "make",
    "rebalance",
    "rebalance_plan",
    "validate",
]
