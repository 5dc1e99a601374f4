"""The four federated strategies, each with exactly what leaves a site.

A strategy has two roles. At the server it writes the instructions of a round
(:meth:`Strategy.instructions`) and combines the sites' replies (:meth:`Strategy.aggregate`),
rejecting any reply it cannot use; at a site, :meth:`Strategy.site_task` turns the instructions
and the site's rows into the reply, and that reply is *everything* the strategy lets leave the
site. Every strategy also receives the shared schema (metadata and encoder built from aggregate
statistics, see :mod:`~fedsynth.federated.encoder_stats`) and sends back the site's name and row
count.

================== ==========================================================================
strategy           what leaves a site each round (besides its name and row count)
================== ==========================================================================
fedavg             the generator's weights after local training (every module's parameters
                   and buffers, e.g. batch-norm running means), the last epoch's losses; for a
                   generator with data-derived state (VAE-BGM's latent mixture), that state
                   recomputed for the previous global weights
fedprox            the same as fedavg (the proximal term only changes local training)
synthetic_sharing  synthetic rows only (as many as the site has rows), drawn from a generator
                   trained at the site, with no copy of a unique training row (copy guard)
generator_sharing  the site's trained generator: its saved files (hyperparameters, shared
                   metadata and encoder, weights, data-derived state, training losses), without
                   the copy guard's fingerprints of the training rows
================== ==========================================================================

A site whose generator is trained with differential privacy (``params={"dp": {...}}``) also
sends the (epsilon, delta) its training spent; each round's log gives every site's total so far
(``epsilon/<site>``, ``delta/<site>``): the sum over rounds for weight averaging, where each
round trains anew, and the site model's own ledger for the sharing strategies, where the site's
model lives on.

With ``secure_aggregation`` on, fedavg's and fedprox's weights leave a site masked, as an update
the server can only sum with the other sites' (:mod:`~fedsynth.federated.secure_aggregation`
lists what still travels in clear).

The same strategies train image generators (:mod:`~fedsynth.federated.image_sites`): what
leaves a site is the same with "image" for "row" (fedavg/fedprox: the weights; generator sharing:
the site's generator, which samples the site's own label mix); ``synthetic_sharing`` is for
tables only. With ``checked_release``, an image run ends with generator sharing's release, each
synthetic image checked at every site (:mod:`~fedsynth.federated.checked_release`): a site then
also sends one boolean per synthetic image the server sent it (too close to one of its images,
or not), nothing of its images, distances or reference distance.

No strategy sends a training row, a row identifier or a per-row value. The server sends every
site the same things: the shared schema, the round's settings and, for fedavg and fedprox, the
global weights (and, for a checked release, the synthetic images to check).

Flower's own ``FedAvg`` averages every reply it gets; these strategies check each reply first
(NaN, infinite or misshapen weights, tables that do not fit the shared metadata) and record
which sites took part in each round, which were rejected and why. They run in lock-step: one
message per site per round carries the work of every strategy of an experiment, so that a
comparison costs one ClientApp start per site and round rather than one per strategy.

The strategies live in :mod:`~fedsynth.federated.averaging` (fedavg, fedprox) and
:mod:`~fedsynth.federated.sharing` (synthetic_sharing, generator_sharing), on the interface of
:mod:`~fedsynth.federated.strategy_base`; every one of them touches a generator only through its
public API and the federable protocol (:class:`~fedsynth.core.federable.Federable`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedsynth.federated.averaging import FedAvg, FedProx
from fedsynth.federated.encoder_stats import SharedSchema
from fedsynth.federated.sharing import GeneratorSharing, SyntheticSharing
from fedsynth.federated.strategy_base import Strategy

__all__ = [
    "STRATEGIES",
    "FedAvg",
    "FedProx",
    "GeneratorSharing",
    "Strategy",
    "SyntheticSharing",
    "make_strategy",
]

#: Strategy name to class.
STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (FedAvg, FedProx, SyntheticSharing, GeneratorSharing)
}


def make_strategy(
    name: str,
    *,
    model: str,
    params: Mapping[str, Any],
    schema: SharedSchema,
    local_epochs: int,
    proximal_mu: float = 0.01,
) -> Strategy:
    """A strategy by name; an unknown name fails and lists the known ones."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(STRATEGIES)}")
    kwargs: dict[str, Any] = {
        "model": model,
        "params": params,
        "schema": schema,
        "local_epochs": local_epochs,
    }
    if name == "fedprox":
        kwargs["proximal_mu"] = proximal_mu
    return STRATEGIES[name](**kwargs)
