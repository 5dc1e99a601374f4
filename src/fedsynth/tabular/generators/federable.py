"""The federable protocol (:class:`~fedsynth.core.federable.Federable`) for the neural table
generators.

:class:`FederableGenerator` is a mixin of
:class:`~fedsynth.tabular.generators._neural.NeuralGenerator`: it implements the protocol with
the generator's own hooks (``_check_training_params``, ``_build_untrained``, ``_modules``,
``_extra_state``/``_load_extra_state``) and the base's fitted state (``_set_fitted_state``), so
that federated training never touches a generator from outside. ``get_weights``,
``set_weights``, ``to_bytes`` and ``from_bytes`` come from the generator classes themselves.

A generator with data-derived state (``has_extra_state``) overrides
:meth:`FederableGenerator.merge_extra_states` with the merge its state calls for (VAE-BGM: the
union of the sites' latent mixtures).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

import numpy as np
import pandas as pd

from fedsynth.core.federable import ExtraState, proximal_term
from fedsynth.core.torch_device import resolve_device
from fedsynth.exceptions import FedsynthWarning
from fedsynth.tabular.generators._site_offsets import merge_site_offsets
from fedsynth.tabular.privacy.guards import CopyGuard

if TYPE_CHECKING:
    from fedsynth.tabular.metadata import Metadata
    from fedsynth.tabular.transforms import TableEncoder


class TableSchema(Protocol):
    """What a table generator is built on without data: the metadata and the encoder the sites
    agreed on, and the bookkeeping of a fitted generator (as
    :class:`fedsynth.federated.encoder_stats.SharedSchema` holds them)."""

    metadata: Metadata
    encoder: TableEncoder
    columns: list[str]
    learned_columns: list[str]
    constants: dict[str, Any]
    dtypes: dict[str, str]

    @property
    def n_rows(self) -> int:
        """Rows of all the sites together."""
        ...


class FederableGenerator:
    """Implements :class:`~fedsynth.core.federable.Federable` for a neural table generator
    (see the module docstring)."""

    has_extra_state: ClassVar[bool] = False
    #: Set while :meth:`train_local` trains without the post-training step.
    _skip_after_training: bool = False

    def init_from_schema(self, schema: TableSchema, *, n_fits: int = 0) -> Self:
        """Become an untrained model on the shared ``schema``, without data.

        The modules are built on the shared encoder as :meth:`fit` would build them (same seed,
        same initial weights); the copy guard starts empty and :meth:`train_local` adds the rows
        it trains on.

        Parameters
        ----------
        schema : SharedSchema
            The shared metadata and encoder.
        n_fits : int, default 0
            Trainings already done: a site starting round ``r`` passes ``r - 1``, so that each
            round shuffles its rows differently.

        Returns
        -------
        self
        """
        self._check_training_params()
        self.device_ = resolve_device(self.device)
        self._build_untrained(schema.encoder, np.random.default_rng(self.seed))
        self.n_fits_ = n_fits
        metadata = schema.metadata
        continuous = [c for c in schema.learned_columns if metadata.columns[c].is_continuous]
        self._set_fitted_state(
            metadata,
            columns=schema.columns,
            learned_columns=schema.learned_columns,
            constants=schema.constants,
            dtypes=schema.dtypes,
            n_rows=schema.n_rows,
            guard=CopyGuard(schema.learned_columns, continuous),
        )
        self._stamp()
        return self

    def train_local(
        self,
        data: pd.DataFrame,
        *,
        epochs: int,
        weights: Sequence[np.ndarray] | None = None,
        proximal_mu: float = 0.0,
        extra_state: bool = True,
    ) -> dict[str, float]:
        """Train ``epochs`` more epochs on ``data`` (``fit(data, epochs=epochs,
        warm_start=True)``), from ``weights`` when given.

        Parameters
        ----------
        data : DataFrame
            The site's rows.
        epochs : int
            Epochs to train; 0 only recomputes the data-derived state (VAE-BGM's mixture).
        weights : list of ndarray, optional
            Weights loaded before training.
        proximal_mu : float, default 0.0
            With ``proximal_mu > 0``, every loss gets FedProx's proximal term towards the
            weights held when training starts.
        extra_state : bool, default True
            Redo the post-training step (VAE-BGM's mixture); weights that are only averaged do
            not need it.

        Returns
        -------
        dict of str to float
            The losses of the last epoch trained (none under DP: they are computed on real
            rows without noise).

        Examples
        --------
        >>> gen.init_from_schema(schema)  # doctest: +SKIP
        >>> gen.train_local(site_rows, epochs=2, proximal_mu=0.01)  # doctest: +SKIP
        {'loss': 1.93}
        """
        if weights is not None:
            self.set_weights(list(weights))
        done = len(self.history_)
        skip = contextlib.nullcontext() if extra_state else self._without_after_training()
        with self._proximal_term(proximal_mu), skip:
            self.fit(data, epochs=epochs, warm_start=True)
        history = self.history_[done:]
        if not history:
            return {}
        return {k: float(v) for k, v in history[-1].items() if k != "epoch"}

    def export_extra_state(self) -> ExtraState:
        """The data-derived state saved besides the weights (empty for most generators)."""
        config, arrays = self._extra_state()
        return ExtraState(dict(config), dict(arrays))

    def load_extra_state(self, state: ExtraState) -> None:
        """Load a state from :meth:`export_extra_state` or :meth:`merge_extra_states`."""
        config, arrays = state
        self._load_extra_state(dict(config), dict(arrays))

    @classmethod
    def merge_extra_states(cls, states: Sequence[ExtraState], sizes: Sequence[float]) -> ExtraState:
        """One state for averaged weights: the largest site's, with a warning when the states
        differ (each describes its own site's rows only); a generator with data-derived state
        overrides this with the merge its state calls for.
        """
        if not states:
            raise ValueError("no extra state to merge")
        largest = states[int(np.argmax(sizes))]
        if cls.has_extra_state:
            warnings.warn(
                f"{cls.__name__} does not merge its sites' extra states; the global model uses "
                "the extra state computed at the largest site",
                FedsynthWarning,
                stacklevel=2,
            )
        return ExtraState(*largest)

    # ------------------------------------------------------------------ training helpers
    @contextlib.contextmanager
    def _without_after_training(self) -> Iterator[None]:
        self._skip_after_training = True
        try:
            yield
        finally:
            del self._skip_after_training

    def _proximal_term(self, mu: float) -> contextlib.AbstractContextManager[None]:
        """FedProx's proximal term on every training loss while open (see
        :func:`fedsynth.core.federable.proximal_term`)."""
        return proximal_term(self._modules().values(), mu)


def union_of_mixtures(states: Sequence[ExtraState], sizes: Sequence[float]) -> ExtraState:
    """Gaussian mixtures of several sites (arrays ``weights``, ``means``, ``covariances``) as
    one: every site's components, each weighted by its site's share of the rows, which is the
    mixture of the pooled rows' distribution. A per-component array (``sites``: p(site |
    component)) is concatenated with the components. Any other array becomes the size-weighted
    mean of the sites' arrays.

    Examples
    --------
    >>> one = ExtraState({}, {"weights": np.ones(1), "means": np.zeros((1, 2)),
    ...                       "covariances": np.eye(2)[None]})
    >>> union_of_mixtures([one, one], [3, 1]).arrays["weights"]
    array([0.75, 0.25])
    """
    arrays = [state.arrays for state in states]
    missing = [i for i, a in enumerate(arrays) if not set(a) >= _MIXTURE]
    if missing:
        raise ValueError(f"states {missing} are not Gaussian mixtures (need {sorted(_MIXTURE)})")
    shares = np.asarray(sizes, dtype=np.float64) / np.sum(sizes)
    merged = {
        "weights": np.concatenate([a["weights"] * s for a, s in zip(arrays, shares, strict=True)]),
        "means": np.concatenate([a["means"] for a in arrays]),
        "covariances": np.concatenate([a["covariances"] for a in arrays]),
    }
    merged["weights"] = merged["weights"] / merged["weights"].sum()
    # Per-component arrays follow their components; one any site lacks (an older model file)
    # is dropped, as it would describe only some of them.
    for key in sorted(_PER_COMPONENT & set(arrays[0])):
        if all(key in a for a in arrays):
            merged[key] = np.concatenate([a[key] for a in arrays])
    # Per-site output offsets: one row per site category, from the sites that have its rows.
    if all(set(a) >= _PER_SITE for a in arrays):
        merged["site_offsets"], merged["site_rows"] = merge_site_offsets(
            [a["site_offsets"] for a in arrays], [a["site_rows"] for a in arrays]
        )
    for key in sorted(set(arrays[0]) - _MIXTURE - _PER_COMPONENT - _PER_SITE):
        merged[key] = sum(a[key] * s for a, s in zip(arrays, shares, strict=True))
    return ExtraState({}, merged)


_MIXTURE = {"weights", "means", "covariances"}
#: Optional arrays with one row per component.
_PER_COMPONENT = {"sites"}
#: Arrays with one row per site category (see :mod:`._site_offsets`).
_PER_SITE = {"site_offsets", "site_rows"}
