"""The federable protocol: what a trainable generator offers federated training.

Federated strategies (:mod:`fedsynth.federated`) never reach into a generator: they build it on
the schema the sites agreed on, train it where the rows are, move its weights and its
data-derived state between sites and server, and send it whole as bytes, through the methods
below and nothing else. A generator of any modality (tables, images, notes) that implements them
can be federated by every strategy; its capability flags say which strategies apply.

The methods follow one round of federated averaging:

1. the server and every site build the same untrained model from the shared schema
   (:meth:`Federable.init_from_schema`): no data, as the server holds no row;
2. each site loads the global weights and trains a few epochs on its rows
   (:meth:`Federable.train_local`), and sends :meth:`Federable.get_weights`;
3. the server averages them and loads the average (:meth:`Federable.set_weights`);
4. a generator with data-derived state (``has_extra_state``; e.g. VAE-BGM's mixture over the
   latent means of the training rows) recomputes that state at each site for the global weights
   (:meth:`Federable.export_extra_state` after a zero-epoch :meth:`Federable.train_local`), and
   the server merges the sites' states (:meth:`Federable.merge_extra_states`).

Generator sharing sends the whole model (:meth:`Federable.to_bytes`,
:meth:`Federable.from_bytes`): the saved model files, without pickle.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, Self, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import torch


class ExtraState(NamedTuple):
    """The state a generator derives from its rows after training, besides its weights.

    ``config`` holds JSON values, ``arrays`` numeric arrays; both empty for most generators.
    """

    config: dict[str, Any]
    arrays: dict[str, np.ndarray]


@runtime_checkable
class Federable(Protocol):
    """A generator that federated strategies can train, average and send (see the module
    docstring).

    ``isinstance(generator, Federable)`` tells whether a generator implements the protocol.

    Examples
    --------
    >>> import fedsynth
    >>> from fedsynth.core.federable import Federable
    >>> isinstance(fedsynth.make("tvae"), Federable)
    True
    """

    #: Whether the model has trainable weights that weight averaging can exchange.
    has_weights: ClassVar[bool]
    #: Whether the model derives state from its rows after training (see :class:`ExtraState`),
    #: which averaged weights need recomputed at the sites.
    has_extra_state: ClassVar[bool]

    def init_from_schema(self, schema: Any, *, n_fits: int = 0) -> Self:
        """Become an untrained model on ``schema``, without data.

        The server holds no row, and every site must encode its rows the same way: the model is
        built on the shared schema (for tables, the shared metadata and encoder of
        :class:`fedsynth.federated.encoder_stats.SharedSchema`). What the model keeps of its
        training rows (the copy guard) starts empty and grows with each :meth:`train_local`.

        Parameters
        ----------
        schema : object
            The schema the sites agreed on, of the generator's modality.
        n_fits : int, default 0
            Trainings already done: a site starting round ``r`` passes ``r - 1``, so that each
            round shuffles its rows differently.

        Returns
        -------
        self
        """
        ...

    def train_local(
        self,
        data: Any,
        *,
        epochs: int,
        weights: Sequence[np.ndarray] | None = None,
        proximal_mu: float = 0.0,
        extra_state: bool = True,
    ) -> dict[str, float]:
        """Train ``epochs`` more epochs on a site's ``data``.

        Parameters
        ----------
        data : object
            The site's rows (for tables, a DataFrame with the schema's columns).
        epochs : int
            Epochs to train; 0 trains nothing and only recomputes the extra state.
        weights : list of ndarray, optional
            Weights to start from (the global weights of the round), loaded first.
        proximal_mu : float, default 0.0
            FedProx's proximal term: ``proximal_mu / 2 * ||w - w_start||^2`` is added to every
            training loss, ``w_start`` being the weights held when training starts.
        extra_state : bool, default True
            Compute the data-derived state after training. Weights that are only sent to be
            averaged do not need it.

        Returns
        -------
        dict of str to float
            The losses of the last epoch (empty when no loss may leave the site, e.g. under
            differential privacy).
        """
        ...

    def get_weights(self) -> list[np.ndarray]:
        """The trainable weights, as arrays in a fixed order."""
        ...

    def set_weights(self, weights: Sequence[np.ndarray]) -> Self:
        """Load weights from :meth:`get_weights` of a model built on the same schema.

        Returns
        -------
        self
        """
        ...

    def export_extra_state(self) -> ExtraState:
        """The data-derived state of the current model (empty when ``has_extra_state`` is
        false)."""
        ...

    def load_extra_state(self, state: ExtraState) -> None:
        """Load a state from :meth:`export_extra_state` or :meth:`merge_extra_states`."""
        ...

    @classmethod
    def merge_extra_states(cls, states: Sequence[ExtraState], sizes: Sequence[float]) -> ExtraState:
        """One state for averaged weights, from each site's state for them and its size.

        Parameters
        ----------
        states : list of ExtraState
            One per site, each computed on that site's rows.
        sizes : list of float
            Each site's rows.
        """
        ...

    def to_bytes(self, *, keep_guard: bool = True) -> bytes:
        """The fitted model as bytes: its saved files, without pickle.

        Parameters
        ----------
        keep_guard : bool, default True
            Keep the copy guard's fingerprints of the training rows. Leave them out of anything
            that leaves a site: they tell whoever holds a patient's full record whether it was
            trained on.
        """
        ...

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """The model that :meth:`to_bytes` wrote.

        Raises
        ------
        ModelFileError
            When ``data`` does not hold a model of this class.
        """
        ...


@contextlib.contextmanager
def proximal_term(modules: Iterable[torch.nn.Module], mu: float) -> Iterator[None]:
    """Add ``mu / 2 * ||w - w_start||^2`` to every training loss while the context is open.

    ``w_start`` are the weights of ``modules`` when the context opens. The term's gradient,
    ``mu * (w - w_start)``, is added to each trainable parameter's gradient by a tensor hook:
    exactly FedProx's proximal term (Li et al. 2020) whatever the loss and the optimiser, with
    no change to the training loop. Nothing is added when ``mu <= 0``.
    """
    if mu <= 0:
        yield
        return
    handles = []
    for module in modules:
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
