"""The one place where federated training reaches into a generator's private hooks.

Federated training needs four things the public generator API does not offer yet:

1. a generator built on a *given* encoder without data (the server holds no row, and every site
   must encode with the shared encoder): :func:`initialize` performs the steps of
   ``BaseGenerator.fit`` and ``NeuralGenerator._fit`` minus fitting the encoder and training;
2. the data-derived state a neural generator computes after training (e.g. VAE-BGM's mixture over
   latent means): read and loaded (:func:`extra_state`, :func:`load_extra_state`), and skipped
   when a site trains weights that are only averaged (:func:`without_post_training`,
   :func:`has_post_training_state`);
3. a proximal term added to a site's training loss (FedProx): :func:`proximal_term`;
4. merging several sites' extra states: ``merge_extra_states`` looked up on the generator class.

Each function says which steps it repeats, so that it can be replaced by a public hook of
``NeuralGenerator`` (requested; see the federated package's notes) without changing its callers.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fedsynth._version import __version__
from fedsynth.exceptions import FedsynthWarning
from fedsynth.tabular.generators.base import BaseGenerator
from fedsynth.tabular.privacy.guards import CopyGuard

if TYPE_CHECKING:
    from fedsynth.federated.encoder_stats import SharedSchema

ExtraState = tuple[dict[str, Any], dict[str, np.ndarray]]


def initialize(generator: BaseGenerator, schema: SharedSchema, *, n_fits: int = 0) -> BaseGenerator:
    """Make ``generator`` a fitted, untrained model on ``schema``, without data.

    Repeats, with the shared encoder instead of one fitted on data: ``NeuralGenerator._fit``
    (parameter checks, device, encoder, ``n_fits_``, ``history_``, ``_build`` with a seeded torch
    generator) and the bookkeeping of ``BaseGenerator.fit`` (metadata, columns, constants, dtypes,
    copy guard, sample stream). The copy guard starts empty: rows are added by the training
    calls made where the rows are (``fit(..., warm_start=True)`` at a site).

    Parameters
    ----------
    generator : BaseGenerator
        A new neural generator (``has_weights``).
    schema : SharedSchema
        The shared metadata and encoder.
    n_fits : int, default 0
        Trainings already done: a site starting round ``r`` passes ``r - 1`` so that each round
        shuffles its rows differently.
    """
    import torch

    from fedsynth.tabular.generators._neural import resolve_device

    generator._check_training_params()
    generator.device_ = resolve_device(generator.device)
    generator.encoder_ = schema.encoder
    generator.n_fits_ = n_fits
    generator.history_ = []
    seed = np.random.default_rng(generator.seed).integers(0, 2**62)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        generator._build(schema.encoder)
    metadata = schema.metadata
    generator.metadata_ = metadata
    generator.columns_ = list(schema.columns)
    generator.learned_columns_ = list(schema.learned_columns)
    generator.constants_ = dict(schema.constants)
    generator.dtypes_ = dict(schema.dtypes)
    generator.n_rows_ = schema.n_rows
    generator.fitted_at_ = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    generator.fedsynth_version_ = __version__
    continuous = [c for c in schema.learned_columns if metadata.columns[c].is_continuous]
    generator.guard_ = CopyGuard(schema.learned_columns, continuous)
    generator._reset_sample_stream()
    return generator


def has_post_training_state(generator: BaseGenerator) -> bool:
    """Whether the generator learns something from its rows after training (it overrides
    ``NeuralGenerator._after_training``, as VAE-BGM does with its latent mixture)."""
    from fedsynth.tabular.generators._neural import NeuralGenerator

    hook = getattr(type(generator), "_after_training", None)
    return hook is not None and hook is not NeuralGenerator._after_training


@contextlib.contextmanager
def without_post_training(generator: BaseGenerator) -> Iterator[None]:
    """Train without the post-training step while the context is open.

    A site's weights under weight averaging are sent and averaged: what the generator would
    derive from them after training (VAE-BGM's mixture, several Gaussian-mixture fits) is never
    used, as the server needs it for the averaged weights (see
    :func:`fedsynth.federated.task.refresh_extra_state`). An instance attribute shadows
    ``_after_training`` with a no-op, and is removed on exit.
    """
    generator._after_training = _no_post_training
    try:
        yield
    finally:
        del generator._after_training


def _no_post_training(data: Any, rng: np.random.Generator) -> None:
    return None


def extra_state(generator: BaseGenerator) -> ExtraState:
    """The data-derived state saved besides the weights (``_extra_state``); empty for most."""
    return generator._extra_state()


def load_extra_state(generator: BaseGenerator, state: ExtraState) -> None:
    """Load what :func:`extra_state` returned (``_load_extra_state``)."""
    config, arrays = state
    generator._load_extra_state(config, arrays)


def merge_extra_states(
    generator: BaseGenerator, states: Sequence[ExtraState], weights: Sequence[float]
) -> ExtraState:
    """One extra state for averaged weights, from the sites' states and their sizes.

    Uses the generator class's ``merge_extra_states(states, weights)`` when it has one. Without
    it, a state that is a Gaussian mixture (arrays ``weights``, ``means``, ``covariances``, as
    VAE-BGM's latent mixture) becomes the union of the sites' mixtures, each component weighted
    by its site's share of the rows (the mixture of the pooled rows' distribution), and any other
    array of the state the size-weighted mean of the sites' arrays. Any other state is taken from
    the largest site, with a warning: each site's state describes its own rows only.
    """
    merge = getattr(type(generator), "merge_extra_states", None)
    if merge is not None:
        return merge(list(states), list(weights))
    arrays = [state[1] for state in states]
    if all(set(a) >= _MIXTURE for a in arrays) and all(not state[0] for state in states):
        return {}, _union_of_mixtures(arrays, weights)
    warnings.warn(
        f"{type(generator).__name__} has no merge_extra_states(states, weights); the global "
        "model uses the extra state computed at the largest site",
        FedsynthWarning,
        stacklevel=2,
    )
    return states[int(np.argmax(weights))]


_MIXTURE = {"weights", "means", "covariances"}


def _union_of_mixtures(
    arrays: Sequence[dict[str, np.ndarray]], sizes: Sequence[float]
) -> dict[str, np.ndarray]:
    shares = np.asarray(sizes, dtype=np.float64) / np.sum(sizes)
    merged = {
        "weights": np.concatenate([a["weights"] * s for a, s in zip(arrays, shares, strict=True)]),
        "means": np.concatenate([a["means"] for a in arrays]),
        "covariances": np.concatenate([a["covariances"] for a in arrays]),
    }
    merged["weights"] = merged["weights"] / merged["weights"].sum()
    for key in set(arrays[0]) - _MIXTURE:
        merged[key] = sum(a[key] * s for a, s in zip(arrays, shares, strict=True))
    return merged


@contextlib.contextmanager
def proximal_term(generator: BaseGenerator, mu: float) -> Iterator[None]:
    """Add ``mu / 2 * ||w - w_global||^2`` to every training loss while the context is open.

    The global weights are those loaded when the context opens. The term's gradient,
    ``mu * (w - w_global)``, is added to each parameter's gradient by a tensor hook, which is
    exactly FedProx's proximal term (Li et al. 2020) whatever the loss and the optimiser, and
    needs no change to the generator's training loop.
    """
    if mu <= 0:
        yield
        return
    handles = []
    for module in generator._modules().values():
        for parameter in module.parameters():
            if not parameter.requires_grad:
                continue
            anchor = parameter.detach().clone()
            handles.append(
                parameter.register_hook(
                    lambda grad, p=parameter, a=anchor: grad + mu * (p.detach() - a)
                )
            )
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
