"""Reversible encoders of clinical tables for neural generators.

:class:`TableEncoder` turns a table into one float32 matrix (mode-specific normalisation with a
Bayesian Gaussian mixture for numeric columns, log-time for durations, one-hot for discrete
columns, missingness kept as its own dimension) and a generated matrix back into a table with the
input's columns and dtypes. :class:`Span` describes the matrix layout to a generator;
:class:`ModeNormalizer` is the mixture of one continuous column, which can also be built from
parameters (e.g. aggregated across sites).
"""

from fedsynth.tabular.transforms.base import Span
from fedsynth.tabular.transforms.encoder import TableEncoder
from fedsynth.tabular.transforms.numeric import ModeNormalizer

__all__ = ["ModeNormalizer", "Span", "TableEncoder"]
