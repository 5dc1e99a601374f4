"""Federated training on Flower: hospitals train generators together without sharing a row.

* :func:`federate` runs a federation (one or several strategies in lock-step) on Flower's
  deployment runtime, started on this machine (a SuperLink and one SuperNode per site on
  loopback); :mod:`~fedsynth.federated.runtime` also writes the Flower app for a real deployment.
* :mod:`~fedsynth.federated.strategies`: ``fedavg``, ``fedprox``, ``synthetic_sharing`` and
  ``generator_sharing``, each documented with exactly what leaves a site. They reach a generator
  only through its public API and the federable protocol
  (:class:`~fedsynth.core.federable.Federable`) that every trainable generator implements.
* :mod:`~fedsynth.federated.encoder_stats`: the shared encoder, built from aggregate statistics.
* :mod:`~fedsynth.federated.partition`: sites from a site column, from files, or simulated.
* :mod:`~fedsynth.experiments.runner`: centralized vs isolated vs each strategy, scored per
  round.

Flower itself (``flwr``) is imported only when a federation runs.
"""

from fedsynth.federated import partition
from fedsynth.federated.errors import FederationError, SiteRefusedError
from fedsynth.federated.federation import FederationResult, federate, shared_metadata
from fedsynth.federated.strategies import STRATEGIES

__all__ = [
    "STRATEGIES",
    "FederationError",
    "FederationResult",
    "SiteRefusedError",
    "federate",
    "partition",
    "shared_metadata",
]
