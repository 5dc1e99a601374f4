"""Generators of synthetic tables, behind one interface.

``fedsynth.make(name, **params)`` creates one by name; ``fedsynth.load(path)`` restores a saved one.
Each generator lives in its own module (``gaussian_copula``, ``bayesian_network``, ...) and is
imported only when asked for.
"""

from fedsynth.core.registry import available_generators, make, register
from fedsynth.tabular.generators.base import BaseGenerator, load

__all__ = ["BaseGenerator", "available_generators", "load", "make", "register"]
