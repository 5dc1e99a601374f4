"""What the neural generators share: encoding, devices, seeding, the training loop, weights.

A neural generator (CTGAN, TVAE, VAE-BGM) encodes the table with :class:`TableEncoder`, builds
plain PyTorch modules and optimisers (so that Opacus can wrap them for DP-SGD), and trains them
epoch by epoch. Its weights are exposed as a list of arrays for federated averaging, and
``fit(..., epochs=k, warm_start=True)`` continues training without touching the encoder.
The weights as arrays and the saved state are :mod:`~fedsynth.tabular.generators._neural_weights`'s
(a mixin of the base class); the device, torch seeds and shuffled batches
:mod:`~fedsynth.tabular.generators._neural_torch`'s.

A subclass implements ``_build`` (modules and optimisers), ``_modules``, ``_train_epoch`` and
``_generate``; optionally ``_validation_loss`` (enables early stopping), ``_after_training``,
``_extra_state``/``_load_extra_state`` and ``_batch_sampler`` (which rows make each batch).
``_train_epoch`` receives a DataLoader yielding ``(batch,)`` tuples whose rows are already on
the model's device.

With ``dp=`` the base class does what every neural generator shares (see
:meth:`~fedsynth.tabular.generators._neural_private.PrivateFitting._fit_private`): the domains come
from DP statistics, the encoder and the pretraining (:meth:`PrivateFitting._pretrain`) from a
DP proxy generator, the loader draws Poisson batches (:meth:`_batch_sampler`), the DP-SGD run
is planned, checked against the budget cap and recorded in ``privacy_spent_`` before it
starts, and what the training saves (``history_``) holds no loss computed on real rows. While
a private run is on, ``self._dp_plan`` is its :class:`~fedsynth.core.privacy.dp_sgd.PrivateTraining`
and ``_train_epoch`` takes each step with
:func:`~fedsynth.tabular.generators._neural_private.private_step`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fedsynth.core.privacy.config import DPSettings
from fedsynth.core.progress import training_progress
from fedsynth.core.torch_device import resolve_device, torch_seed
from fedsynth.exceptions import FedsynthError, ParameterError
from fedsynth.tabular.generators._neural_private import (
    _EARLY_STOPPING_UNDER_DP,
    PrivateFitting,
    _training_spend,
)
from fedsynth.tabular.generators._neural_torch import ShuffledBatches
from fedsynth.tabular.generators._neural_weights import NeuralWeights
from fedsynth.tabular.generators.base import BaseGenerator
from fedsynth.tabular.generators.federable import FederableGenerator
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.metadata.values import model_frame
from fedsynth.tabular.privacy.dp_statistics import released_view
from fedsynth.tabular.transforms import TableEncoder

if TYPE_CHECKING:
    import torch

    from fedsynth.core.privacy.dp_sgd import PrivateTraining

#: Rows generated and decoded together when sampling (see ``_decode_blocks``): ctgan on
#: SUPPORT2 (327 matrix columns) drew 47,000-47,800 rows per CPU s in blocks of 2,048 or 4,096
#: rows, 41,500-45,700 in blocks of 10,000 and 33,500 in blocks of 25,000.
SAMPLE_BLOCK = 4_096


class NeuralGenerator(NeuralWeights, FederableGenerator, PrivateFitting, BaseGenerator):
    """Base class of the PyTorch generators (see the module docstring)."""

    has_weights = True
    privacy_parts = "domains, proxy or encoder statistics, dp-sgd"
    _warm_start = False
    #: The DP-SGD plan of the training run in progress; ``None`` outside private training.
    _dp_plan: PrivateTraining | None = None

    epochs: int
    batch_size: int
    lr: float
    device: str
    verbose: bool
    early_stopping: bool
    patience: int
    validation_fraction: float
    dp: Mapping[str, Any] | None

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        data: pd.DataFrame,
        metadata: Metadata | Any = None,
        *,
        epochs: int | None = None,
        warm_start: bool = False,
    ) -> NeuralGenerator:
        """Train on ``data``; see :meth:`BaseGenerator.fit`.

        Parameters
        ----------
        epochs : int, optional
            Epochs of this call (default: the ``epochs`` hyperparameter). With ``warm_start``,
            0 trains nothing and only refits what is learned after training (VAE-BGM's latent
            mixture) on ``data``, e.g. after :meth:`set_weights` loaded averaged weights.
        warm_start : bool, default False
            Continue training the fitted model on ``data`` (same columns) instead of starting
            again: the encoder and metadata are kept, as federated rounds need. A model trained
            with ``dp=`` goes on at the noise it was trained with; the epochs' cost is added to
            ``privacy_spent_``, after checking it against the budget cap.

        Raises
        ------
        PrivacyBudgetError
            Under ``dp=``, when the training would take the privacy loss above ``max_epsilon``;
            nothing is trained then.
        """
        # epochs=0 with warm_start only redoes the post-training step (e.g. VAE-BGM's mixture)
        # on ``data``: what a site needs after loading averaged weights.
        lowest = 0 if warm_start else 1
        if epochs is not None and (
            not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < lowest
        ):
            raise ParameterError(
                f"epochs must be an integer >= {lowest}{' with warm_start' if warm_start else ''}, "
                f"got {epochs!r}"
            )
        self._epochs_this_fit = epochs
        self._warm_start = warm_start
        return super().fit(data, metadata)

    def _check_params(self, settings: DPSettings | None) -> None:
        self._check_training_params()
        resolve_device(self.device)  # a device that is not there fails before any work
        if settings is not None and self.early_stopping:
            raise ParameterError(_EARLY_STOPPING_UNDER_DP)

    def _continues_training(self) -> bool:
        return self._warm_start and self.is_fitted

    def _fit_more(self, data: pd.DataFrame, settings: DPSettings | None) -> None:
        """A warm start: this call's epochs on ``data`` with the fitted encoder and metadata."""
        ledger, plan = self._continued_privacy(len(data), self._epochs_this_fit, settings)
        if ledger is not None:
            data = released_view(data, self._released_domains(data.columns))
        self.metadata_.check(data)
        data = model_frame(data, self.metadata_, list(data.columns))
        if plan is not None:  # refused here, before any weight changes, when above the cap
            ledger.check(*_training_spend(plan)[0])
        if ledger is not None:
            self.privacy_spent_ = ledger
        rng = np.random.default_rng(None if self.seed is None else self.seed + self.n_fits_)
        self._train(self._training_matrix(data[self.learned_columns_], rng), rng, plan)
        self.guard_.add(data)
        self.n_rows_ = len(data)
        self._reset_sample_stream()

    def _fit(self, data: pd.DataFrame, metadata: Metadata, rng: np.random.Generator) -> None:
        self.encoder_ = TableEncoder(seed=self.seed).fit(data, metadata)
        self._start_training(data, rng)

    def _start_training(
        self,
        data: pd.DataFrame,
        rng: np.random.Generator,
        plan: PrivateTraining | None = None,
        proxy: pd.DataFrame | None = None,
        pretrain_epochs: int = 0,
    ) -> None:
        """Build the modules on ``encoder_``, pretrain on ``proxy`` if any, train on ``data``
        (under DP-SGD with ``plan``)."""
        self.device_ = resolve_device(self.device)
        self._build_untrained(self.encoder_, rng)
        if proxy is not None:
            self._pretrain(self._training_matrix(proxy, rng), rng, pretrain_epochs)
        self._train(self._training_matrix(data, rng), rng, plan)

    def _build_untrained(self, encoder: TableEncoder, rng: np.random.Generator) -> None:
        """The modules on ``encoder``, untrained, seeded from ``rng``, with no training done:
        what :meth:`_start_training` trains, and what a federated model starts from
        (:meth:`~fedsynth.tabular.generators.federable.FederableGenerator.init_from_schema`)."""
        import torch

        self.encoder_ = encoder
        self.n_fits_ = 0
        self.history_: list[dict[str, float]] = []
        # Module initialisation draws from torch's global generator: seed it inside a fork so
        # that the caller's own torch random state is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch_seed(rng))
            self._build(encoder)

    def _training_matrix(self, data: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """The rows :meth:`_train` learns from: the encoded table, unless a generator learns
        from a form of its own (TabDDPM's model space)."""
        return self.encoder_.transform(data)

    def _epochs_of_this_fit(self) -> int:
        return int(self.epochs if self._epochs_this_fit is None else self._epochs_this_fit)

    def _check_training_params(self) -> None:
        problems = []
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            problems.append(f"lr must be a positive number, got {self.lr!r}")
        if not isinstance(self.validation_fraction, float) or not (
            0 < self.validation_fraction < 0.5
        ):
            problems.append(
                f"validation_fraction must be a float in (0, 0.5), got {self.validation_fraction!r}"
            )
        self._raise_invalid_params(problems)

    def _train(
        self,
        matrix: np.ndarray,
        rng: np.random.Generator,
        plan: PrivateTraining | None = None,
        *,
        pretraining: bool = False,
    ) -> None:
        """Train for this call's epochs, with progress and optional early stopping; under DP
        (``plan``), record the spend of the planned steps first, then take them.

        ``pretraining`` (on a DP proxy, see :meth:`_pretrain`): the epochs are not recorded in
        ``history_`` (which counts the epochs on the rows) and nothing is done after them.
        """
        import torch

        epochs = self._epochs_of_this_fit()
        if plan is not None:
            # Recorded before training: a run that stops half way has still seen the rows.
            spend, details = _training_spend(plan)
            self.privacy_spent_.charge(*spend, **details)
        # The table is small next to the model's work: it moves to the device once.
        data = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32)).to(self.device_)
        validation = None
        if self.early_stopping and len(data) >= 20:
            order = torch.from_numpy(rng.permutation(len(data))).to(self.device_)
            n_val = max(1, round(self.validation_fraction * len(data)))
            validation = data[order[:n_val]]
            data = data[order[n_val:]]
        generator = torch.Generator().manual_seed(torch_seed(rng))
        # A DataLoader whose sampler yields whole index batches: fetching rows one by one and
        # collating them cost as much as the VAE's training steps on a CPU. Its own generator,
        # else each epoch's iterator draws its seed from torch's global one.
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(data),
            batch_size=None,
            sampler=self._batch_sampler(len(data), generator),
            generator=generator,
        )
        if plan is None and not pretraining:  # DP-SGD runs the epochs its accounting planned
            epochs = self._epochs_within_cap(epochs, len(loader))
        best, best_state, waited = math.inf, None, 0
        self._dp_plan = plan
        try:
            title = f"{'Pretraining' if pretraining else 'Training'} {type(self).__name__}"
            with training_progress(self.verbose, title, epochs) as advance:
                for epoch in range(epochs):
                    for module in self._modules().values():
                        module.train()
                    losses = self._train_epoch(loader, generator)
                    if validation is not None:
                        with torch.no_grad():
                            for module in self._modules().values():
                                module.eval()
                            losses["validation"] = float(
                                self._validation_loss(validation, generator)
                            )
                    # Under DP the losses are computed on real rows without noise: shown on
                    # the progress bar, to whoever holds the rows, but kept out of the model.
                    saved = losses if plan is None else {}
                    if not pretraining:
                        self.history_.append({"epoch": len(self.history_) + 1, **saved})
                    advance(epoch + 1, losses)
                    if validation is None:
                        continue
                    if losses["validation"] < best - 1e-6:
                        best, waited = losses["validation"], 0
                        best_state = copy.deepcopy(self._state_dicts())
                    else:
                        waited += 1
                        if waited >= self.patience:
                            break
        finally:
            self._dp_plan = None
        if best_state is not None:  # early stopping keeps the best epoch, not the last
            for name, module in self._modules().items():
                module.load_state_dict(best_state[name])
        for module in self._modules().values():
            module.eval()
        if pretraining:
            return
        self.n_fits_ += 1
        if self._skip_after_training:  # federated weights that are only averaged
            return
        with torch.no_grad():
            self._after_training(torch.from_numpy(np.asarray(matrix, dtype=np.float32)), rng)

    # ------------------------------------------------------------------ sampling
    def _sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        generator = self._torch_generator(rng)
        return self._decode_blocks(n, lambda size: self._generate(size, generator), rng)

    def _decode_blocks(
        self, n: int, generate: Callable[[int], torch.Tensor], rng: np.random.Generator
    ) -> pd.DataFrame:
        """``n`` rows from ``generate(size)`` (activated matrices), decoded block by block.

        Each block is generated and decoded at once: its matrix stays in the CPU's cache
        through the activation and the decoding passes, which makes sampling about twice as
        fast as one pass over a 100,000-row matrix (and bounds the memory for any ``n``).
        """
        import torch

        with torch.no_grad():
            blocks = (
                generate(min(SAMPLE_BLOCK, n - start)).detach().cpu().numpy()
                for start in range(0, n, SAMPLE_BLOCK)
            )
            return self._decode_matrices(blocks, rng)

    def _decode_matrices(
        self, matrices: Iterable[np.ndarray], rng: np.random.Generator
    ) -> pd.DataFrame:
        """The rows of activated matrices, in order: each softmax span's slot drawn from its
        probabilities, or read off where the generator has drawn them already."""
        # A drawn span is one-hot, so its argmax is the draw; reading it skips a uniform and a
        # cumulative sum per span and row (0.24 of the 1.8 CPU s vae_bgm took per 102,400
        # rows of SUPPORT2).
        return self.encoder_.inverse_transform_blocks(
            matrices, sample=not self._draws_discrete_spans(), rng=rng
        )

    def _draws_discrete_spans(self) -> bool:
        """Whether :meth:`_generate` returns every softmax span one-hot (drawn), rather than
        as probabilities."""
        return False

    def _batch_sampler(self, n: int, generator: torch.Generator) -> Iterable[torch.Tensor]:
        """The row indices of each batch of one epoch over ``n`` rows (a DataLoader sampler):
        shuffled batches, or under DP-SGD the plan's Poisson batches (each row drawn
        independently, as the accountant assumes; their sizes vary)."""
        if self._dp_plan is not None:
            return self._dp_plan.sampler(n, generator)
        return ShuffledBatches(n, self.batch_size, generator)

    def _torch_generator(self, rng: np.random.Generator) -> torch.Generator:
        """A torch generator on the model's device, seeded from ``rng``."""
        import torch

        return torch.Generator(device=self.device_).manual_seed(torch_seed(rng))

    # ------------------------------------------------------------------ subclass hooks
    def _build(self, encoder: TableEncoder) -> None:
        raise NotImplementedError

    def _modules(self) -> dict[str, torch.nn.Module]:
        raise NotImplementedError

    def _train_epoch(self, loader, generator: torch.Generator) -> dict[str, float]:
        raise NotImplementedError

    def _validation_loss(self, data: torch.Tensor, generator: torch.Generator) -> float:
        raise FedsynthError(f"{self.name} has no validation loss: set early_stopping=False")

    def _epochs_within_cap(self, epochs: int, steps_per_epoch: int) -> int:
        """Epochs of a non-private fit within the generator's cap on optimiser steps (none)."""
        return epochs

    def _after_training(self, data: torch.Tensor, rng: np.random.Generator) -> None:
        """Work done once training ends (e.g. VAE-BGM fits its latent mixture)."""

    def _generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def _extra_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {}

    def _load_extra_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`_extra_state` saved."""
