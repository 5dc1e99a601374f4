"""Reversible encoders of clinical tables for neural generators.

:class:`TableEncoder` turns a table into one float32 matrix (mode-specific normalisation with a
Bayesian Gaussian mixture for numeric columns, log-time for durations, one-hot for discrete
columns, missingness kept as its own dimension) and a generated matrix back into a table with the
input's columns and dtypes. :class:`Span` describes the matrix layout to a generator;
:class:`ModeNormalizer` is the mixture of one continuous column.

An encoder is fitted on a table, or built without rows from aggregate statistics
(:meth:`TableEncoder.from_statistics`): :class:`CategoryCounts` for each discrete column and
:class:`NumericModes` (a mixture on the modelled scale, see :func:`uses_log_scale`) for each
continuous one, e.g. pooled by a federated server from the sites' summaries.

Modules: ``encoder`` (the table encoder), ``layout`` (its fitted spans), ``state`` (its saved
form), ``numeric``, ``modes``, ``categorical`` and ``constant`` (the column transforms), ``base``
(their contract), ``dtypes`` (dtypes as JSON).
"""

from fedsynth.tabular.transforms.base import Span
from fedsynth.tabular.transforms.categorical import CategoryCounts
from fedsynth.tabular.transforms.encoder import TableEncoder
from fedsynth.tabular.transforms.modes import ModeNormalizer
from fedsynth.tabular.transforms.numeric import NumericModes, to_model_scale, uses_log_scale

__all__ = [
    "CategoryCounts",
    "ModeNormalizer",
    "NumericModes",
    "Span",
    "TableEncoder",
    "to_model_scale",
    "uses_log_scale",
]
