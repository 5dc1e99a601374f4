"""TabDDPM: a denoising diffusion model for mixed clinical tables (Kotelnikov et al. 2023)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fedsynth.core.privacy.config import DPConfig
from fedsynth.core.registry import register
from fedsynth.tabular.generators._ddpm_diffusion import MixedDiffusion, Multistep
from fedsynth.tabular.generators._ddpm_networks import build_denoiser
from fedsynth.tabular.generators._ddpm_space import ModelSpace, quantile_knots
from fedsynth.tabular.generators._neural import NeuralGenerator
from fedsynth.tabular.generators._neural_private import private_step
from fedsynth.tabular.transforms import TableEncoder

if TYPE_CHECKING:
    import torch


@register("tab_ddpm")
class TabDDPM(NeuralGenerator):
    """Tabular denoising diffusion (TabDDPM, Kotelnikov et al. 2023).

    The table is encoded by :class:`~fedsynth.tabular.transforms.TableEncoder`, as for TVAE
    (mixture modes of numbers, one-hot categories, missingness indicators, log durations), then
    mapped to the model space of :mod:`fedsynth.tabular.generators._ddpm_space`: each number
    becomes one normal score ``Phi^-1(F(x))``, ``F`` TabDDPM's quantile transform of the
    training rows (under DP, of the private proxy the encoder is fitted on; a federated model,
    which has only the sites' statistics, and a private fit without a proxy use the encoder's
    mixture), a value held by many rows spread over its share of the scores; and every
    one-hot span (a category, a missingness indicator, the mode of a column of few values)
    stays one-hot. New scores are read back straight to values, the whole range of the
    quantiles, not through the encoder's modes (clipped at 4 standard deviations). The scores
    diffuse as Gaussian diffusion and the spans as multinomial diffusion (Hoogeboom et al.
    2021), on one cosine schedule of ``timesteps`` steps; an MLP (TabDDPM's,
    with a sinusoidal step embedding) predicts each score's velocity and each span's clean
    category from the noisy row and its step (see
    :mod:`fedsynth.tabular.generators._ddpm_diffusion`, which also says why velocity and not
    TabDDPM's noise, and why the spans' loss adds a cross-entropy of the clean category). A
    new row starts from noise and is denoised in ``sampling_steps`` strided steps
    (DPM-Solver++(2M) for the scores, the multinomial posteriors marginalised over the
    predicted categories for the spans), all columns together: a duration and its event, a
    value and its missingness come out of one joint process. The weights sampled with are an
    exponential moving average of the training iterates (``ema_decay``), as TabDDPM's are.

    The mode-specific encoding itself is not diffused: its mode spans are most of the matrix
    (194 of SUPPORT2's 327 columns), and one score per number costs the sampler 2.5 times
    fewer inputs there.

    Parameters
    ----------
    epochs : int, default 70
        Passes over the training rows.
    batch_size : int, default 256
        Rows per optimisation step (at most the number of training rows).
    lr : float, default 2e-3
        AdamW learning rate.
    weight_decay : float, default 1e-4
        AdamW weight decay.
    hidden_dims : tuple of int, default (256, 256)
        Widths of the denoiser's hidden layers.
    embedding_dim : int, default 128
        Width of the row projection and of the step embedding.
    timesteps : int, default 30
        Diffusion steps ``T`` of training. TabDDPM uses 1000; within a CPU fit's few thousand
        optimiser steps, fewer and coarser steps are each trained more: on SUPPORT2 (60 epochs,
        before the x_0 term of the loss) SDMetrics quality was 0.870, 0.896 and 0.914 and TSTR
        AUROC 0.765, 0.819 and 0.877 with ``T`` = 1000, 100 and 30.
    sampling_steps : int, default 7
        Network passes per new row: the sampler visits this many of the ``T`` steps, evenly
        spaced, with the exact strided posteriors between them (``timesteps`` for the full
        chain). Sampling time is about proportional to it. SDMetrics quality with 6 / 7 / 8
        passes: 0.944 / 0.948 / 0.949 on SUPPORT2, 0.959 / 0.962 / 0.967 on FLCHAIN; 7 keeps
        SUPPORT2's sampling above 20,000 rows per CPU second.
    anneal_lr : bool, default True
        Decay the learning rate linearly from ``lr`` to 0 over each fit's epochs (TabDDPM's
        schedule); ``False`` keeps it constant.
    ema_decay : float, default 0.99
        After each fit, the denoiser's weights are replaced by their exponential moving
        average over its optimiser steps (decay per step; TabDDPM uses 0.999 over 30,000
        steps, a fit here takes about 2,000); 0 keeps the last iterate. Under ``dp`` the
        average is post-processing of the private iterates and costs no budget. FLCHAIN
        quality (SDMetrics, 6 sampling steps): 0.956 without, 0.959 with 0.99.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the rows and stop when their loss (at random steps)
        has not improved for ``patience`` epochs, keeping the best epoch.
    patience : int, default 10
        Epochs without improvement before early stopping.
    validation_fraction : float, default 0.1
        Share of the rows held out for early stopping.
    dp : dict, optional
        Differential privacy, e.g. ``{"epsilon": 1.0, "delta": 1e-5}``: the same plan as
        :class:`~fedsynth.tabular.generators.tvae.TVAE` (DP domains, a DP proxy for the encoder
        and pretraining, then DP-SGD on the denoiser, each spend in ``privacy_spent_``).
    device : str, default "auto"
        ``"auto"`` (CUDA when available, else the CPU), ``"cpu"`` or ``"cuda[:N]"``.
    verbose : bool, default False
        Show a progress bar with the losses.
    seed : int or None, default 0
        Seed of the encoder, the initial weights, the batches, the noise and the draws.

    Attributes
    ----------
    encoder_ : TableEncoder
        The fitted table encoder.
    denoiser_ : torch.nn.Module
        The denoising MLP (a plain module, for DP-SGD and federated averaging).
    diffusion_ : MixedDiffusion
        The schedule and the span layout of the diffusion.
    space_ : ModelSpace
        The map between the encoder's matrix and the model space; ``space_.quantiles`` holds
        the numbers' quantiles (saved with the model: like the encoder's mixture and bounds, a
        summary of the training rows' values, up to 1,000 quantiles and the shares of common
        values per column).
    history_ : list of dict
        Per epoch: ``epoch``, ``loss`` (per row) and, with early stopping, ``validation``;
        under ``dp`` only ``epoch``.
    privacy_spent_ : PrivacyLedger or None
        With ``dp``: every spend and their total.

    Notes
    -----
    Conditions are imposed by replacement (Song et al. 2021's imputation): at every step of
    the sampler the conditioned columns' entries are replaced by a draw from their own forward
    process ``q(x_s | value)``, so that the network denoises the others around them, and at the
    last step by the value itself: every row meets the conditions exactly, numeric ones
    included, with no rejection.

    References
    ----------
    Kotelnikov A, Baranchuk D, Rubachev I, Babenko A. TabDDPM: Modelling tabular data with
    diffusion models. ICML 2023.
    Hoogeboom E, Nielsen D, Jaini P, Forré P, Welling M. Argmax flows and multinomial
    diffusion. NeurIPS 2021.

    Examples
    --------
    >>> import fedsynth
    >>> real = fedsynth.datasets.mds_cohort(n=500, seed=0)
    >>> gen = fedsynth.make("tab_ddpm", epochs=20, seed=0).fit(real)  # doctest: +SKIP
    >>> gen.sample(3, conditions={"TP53": 1})["TP53"].tolist()  # doctest: +SKIP
    [1, 1, 1]
    """

    native_conditioning = True
    #: Rows the numbers' quantiles are taken from while a fit builds the model (else None).
    _quantile_rows: pd.DataFrame | None = None

    def __init__(
        self,
        *,
        epochs: int = 70,
        batch_size: int = 256,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        hidden_dims: tuple[int, ...] = (256, 256),
        embedding_dim: int = 128,
        timesteps: int = 30,
        sampling_steps: int = 7,
        anneal_lr: bool = True,
        ema_decay: float = 0.99,
        early_stopping: bool = False,
        patience: int = 10,
        validation_fraction: float = 0.1,
        dp: DPConfig | None = None,
        device: str = "auto",
        verbose: bool = False,
        seed: int | None = 0,
    ):
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.hidden_dims = hidden_dims
        self.embedding_dim = embedding_dim
        self.timesteps = timesteps
        self.sampling_steps = sampling_steps
        self.anneal_lr = anneal_lr
        self.ema_decay = ema_decay
        self.early_stopping = early_stopping
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.dp = dp
        self.device = device
        self.verbose = verbose
        self.seed = seed

    # ------------------------------------------------------------------ NeuralGenerator hooks
    def _check_training_params(self) -> None:
        super()._check_training_params()
        problems = []
        for name in ("embedding_dim", "timesteps", "sampling_steps"):
            if not _positive_int(getattr(self, name)):
                problems.append(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if _positive_int(self.embedding_dim) and self.embedding_dim < 2:
            problems.append(f"embedding_dim must be at least 2, got {self.embedding_dim!r}")
        if (
            _positive_int(self.timesteps)
            and _positive_int(self.sampling_steps)
            and self.sampling_steps > self.timesteps
        ):
            problems.append(
                f"sampling_steps ({self.sampling_steps}) must be at most timesteps "
                f"({self.timesteps})"
            )
        if not isinstance(self.hidden_dims, (tuple, list)) or not all(
            _positive_int(size) for size in self.hidden_dims
        ):
            problems.append(
                f"hidden_dims must be a tuple of positive integers, got {self.hidden_dims!r}"
            )
        if isinstance(self.ema_decay, bool) or not (
            isinstance(self.ema_decay, (int, float)) and 0 <= self.ema_decay < 1
        ):
            problems.append(f"ema_decay must be a number in [0, 1), got {self.ema_decay!r}")
        if not isinstance(self.anneal_lr, (bool, np.bool_)):
            problems.append(f"anneal_lr must be True or False, got {self.anneal_lr!r}")
        if isinstance(self.weight_decay, bool) or not (
            isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0
        ):
            problems.append(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        self._raise_invalid_params(problems)

    def _start_training(
        self,
        data: pd.DataFrame,
        rng: np.random.Generator,
        plan=None,
        proxy: pd.DataFrame | None = None,
        pretrain_epochs: int = 0,
    ) -> None:
        # The numbers' quantiles come from rows read at no privacy cost (see _ddpm_space): the
        # training rows of a plain fit, the proxy of a private one (none: the mixture's map).
        self._quantile_rows = data if plan is None else proxy
        try:
            super()._start_training(data, rng, plan, proxy, pretrain_epochs)
        finally:
            self._quantile_rows = None

    def _build(self, encoder: TableEncoder) -> None:
        import torch

        self.space_ = ModelSpace(encoder)
        if self._quantile_rows is not None:
            values = self.space_.values(self._quantile_rows)
            self.space_ = ModelSpace(
                encoder,
                {
                    column: quantile_knots(values[:, i])
                    for i, column in enumerate(self.space_.value_columns)
                    if np.isfinite(values[:, i]).any()
                },
            )
        self.diffusion_ = MixedDiffusion(
            self.space_.n_values, self.space_.widths, int(self.timesteps), self.device_
        )
        self.denoiser_ = build_denoiser(
            self.space_.dim, tuple(self.hidden_dims), int(self.embedding_dim)
        ).to(self.device_)
        self.optimizer_ = torch.optim.AdamW(
            self.denoiser_.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"denoiser": self.denoiser_}

    def _training_matrix(self, data: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """Model-space rows of ``data`` (see _ddpm_space): the numbers read from the table
        itself, unclipped, each tied value's score drawn within its quantiles' range."""
        space = self.space_
        return space.to_model(self.encoder_.transform(data), space.values(data), rng)

    def _train(self, matrix: np.ndarray, rng: np.random.Generator, plan=None, **kwargs) -> None:
        # The loop trains on model-space rows (_training_matrix), mapped once per fit. Each
        # call's learning rate decays linearly to 0 over its epochs, as TabDDPM anneals it:
        # measured on SUPPORT2, the last epochs at a small rate are what settles the weights.
        self._epoch_of_fit = 0
        self._ema, self._ema_updates = None, 0
        if self.ema_decay > 0:
            self._ema = [p.detach().clone() for p in self.denoiser_.parameters()]
        try:
            super()._train(matrix, rng, plan, **kwargs)
            if self._ema is not None:
                import torch

                with torch.no_grad():
                    for param, average in zip(self.denoiser_.parameters(), self._ema, strict=True):
                        param.copy_(average)
        finally:
            self._ema = None
            for group in self.optimizer_.param_groups:
                group["lr"] = self.lr

    def _update_ema(self) -> None:
        """Move the running average of the weights towards the weights of this step.

        The decay warms up as ``(1 + n) / (10 + n)`` over this fit's first ``n`` steps (capped
        at ``ema_decay``): a federated round or a warm start takes a few dozen steps, and an
        average that still weighed the starting weights at 0.99 per step would undo most of
        them (0.99 ** 30 = 0.74). A whole fit's average hardly changes: the cap is reached
        after 890 steps, and their share at the end of a 1,500-step fit is 0.99 ** 610 = 0.002.
        """
        if self._ema is None:
            return
        import torch

        self._ema_updates += 1
        n = self._ema_updates
        decay = min(float(self.ema_decay), (1 + n) / (10 + n))
        with torch.no_grad():
            torch._foreach_lerp_(self._ema, list(self.denoiser_.parameters()), 1 - decay)

    def _anneal(self) -> None:
        """Set this epoch's learning rate: ``lr`` times the share of this fit's epochs left."""
        if not self.anneal_lr:
            return
        epochs = self._epochs_of_this_fit()
        for group in self.optimizer_.param_groups:
            group["lr"] = self.lr * (1 - self._epoch_of_fit / max(epochs, 1))
        self._epoch_of_fit += 1

    def _noisy_batch(self, batch: torch.Tensor, generator: torch.Generator):
        """The batch (model space), random steps, the rows diffused to them and the noise."""
        import torch

        x0 = batch.to(self.device_)
        t = torch.randint(1, int(self.timesteps) + 1, (len(x0),), generator=generator)
        t = t.to(self.device_)
        xt, noise = self.diffusion_.noisy(x0, t, generator)
        return x0, xt, t, noise

    def _rows_loss(self, x0, xt, t, noise, params=None) -> torch.Tensor:
        """Each row's loss; with ``params`` the denoiser runs on them (for ``torch.func``)."""
        from torch.func import functional_call

        if params is None:
            output = self.denoiser_(xt, t)
        else:
            output = functional_call(self.denoiser_, params["denoiser"], (xt, t))
        return self.diffusion_.loss(output, x0, xt, t, noise)

    def _train_epoch(self, loader, generator: torch.Generator) -> dict[str, float]:
        self._anneal()
        if self._dp_plan is not None:
            return self._private_epoch(loader, generator)
        total, rows = 0.0, 0
        for (batch,) in loader:
            loss = self._rows_loss(*self._noisy_batch(batch, generator)).sum()
            self.optimizer_.zero_grad(set_to_none=True)
            (loss / len(batch)).backward()
            self.optimizer_.step()
            self._update_ema()
            total += loss.item()
            rows += len(batch)
        return {"loss": total / max(rows, 1)}

    def _private_epoch(self, loader, generator: torch.Generator) -> dict[str, float]:
        """An epoch of DP-SGD over the loader's Poisson batches: the noisy rows are drawn
        outside the per-row loss (they involve no weight), each row's gradient is clipped and
        the sum noised by :func:`private_step`."""
        plan = self._dp_plan

        def row_loss(params, x0, xt, t, noise):
            loss = self._rows_loss(x0[None], xt[None], t[None], noise[None], params).sum()
            return loss, loss.detach()

        total, rows = 0.0, 0
        for (batch,) in loader:
            losses = private_step(
                plan,
                self._modules(),
                row_loss,
                self._noisy_batch(batch, generator),
                optimizer=self.optimizer_,
                generator=generator,
                mean_of=plan.expected_batch_size,
            )
            self._update_ema()
            total += float(sum(part.sum() for part in losses))
            rows += len(batch)
        return {"loss": total / max(rows, 1)}

    def _validation_loss(self, data: torch.Tensor, generator: torch.Generator) -> float:
        # A Monte Carlo estimate at random steps: noisy, but unbiased for the training loss.
        return float(self._rows_loss(*self._noisy_batch(data, generator)).mean())

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(state, arrays)
        self.denoiser_.eval()

    def _extra_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        names = list(self.space_.quantiles)
        arrays = {f"quantiles_{i}": self.space_.quantiles[c] for i, c in enumerate(names)}
        return {"quantiles": names}, arrays

    def _load_extra_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        # Files saved before the quantiles were kept have none: the mixture's map, as then.
        names = state.get("quantiles", [])
        quantiles = {c: arrays[f"quantiles_{i}"] for i, c in enumerate(names)}
        self.space_ = ModelSpace(self.encoder_, quantiles)

    # ------------------------------------------------------------------ sampling
    def _generate(
        self,
        n: int,
        generator: torch.Generator,
        known: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``n`` new rows in model space, spans one-hot; with ``known`` (values, mask), those
        entries imposed at every step."""
        import torch

        diffusion = self.diffusion_
        steps = diffusion.schedule(int(self.sampling_steps))
        x = diffusion.prior(n, generator)
        if known is not None:
            x = diffusion.impose(x, *known, steps[0], generator)
        memory = Multistep()
        for t, s in itertools.pairwise(steps):
            # One step for every row: its embedding is computed once and broadcast.
            output = self.denoiser_(x, torch.full((1,), t, device=self.device_))
            x = diffusion.step(output, x, t, s, generator, memory)
            if known is not None:
                x = diffusion.impose(x, *known, s, generator)
        return x

    def _decode_matrices(self, matrices, rng: np.random.Generator) -> pd.DataFrame:
        """The rows of model-space matrices: spans decoded by the encoder, numbers read
        straight off their scores (not through a mode and an offset clipped at 4 standard
        deviations) and finished by their column's transform."""
        space = self.space_
        values: list[np.ndarray] = []

        def encoder_matrices():
            for model in matrices:
                values.append(space.values_of(model))
                yield space.to_encoder(model)

        out = super()._decode_matrices(encoder_matrices(), rng)
        if space.n_values and values:
            numbers = np.concatenate(values)
            for i, column in enumerate(space.value_columns):
                missing = out[column].isna().to_numpy()
                out[column] = space.column_of(i, numbers[:, i], missing)
        return out

    def _draws_discrete_spans(self) -> bool:
        return True  # the last step draws every softmax span one-hot

    def _sample_conditioned(
        self, n: int, conditions: dict[str, Any], rng: np.random.Generator
    ) -> pd.DataFrame:
        """Rows meeting ``conditions``, imposed by replacement at every step (class Notes)."""
        known = self._known(conditions)
        generator = self._torch_generator(rng)
        out = self._decode_blocks(n, lambda size: self._generate(size, generator, known), rng)
        # The encoded value decodes to the condition up to rounding: the value itself is kept.
        for column, value in conditions.items():
            out[column] = pd.Series([value] * n, dtype=object)
        return out

    def _known(self, conditions: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The conditions encoded as one model-space row and the mask of its entries."""
        import torch

        encoder = self.encoder_
        values = np.zeros((1, encoder.output_dim_), dtype=np.float32)
        mask = np.zeros((1, encoder.output_dim_), dtype=bool)
        for column, value in conditions.items():
            transform = encoder.transforms_[encoder.columns_.index(column)]
            spans = [span for span in encoder.output_info_ if span.column == column]
            if not spans:  # nothing in the matrix (restored as a constant)
                continue
            block = slice(spans[0].start, spans[-1].stop)
            encoded = np.zeros((1, transform.width), dtype=np.float32)
            problems = transform.encode(pd.Series([value], dtype=object), encoded, None)
            if problems:  # checked values encode; this guards a mismatch of the two checks
                raise ValueError(f"cannot encode the condition {column}={value!r}: {problems}")
            values[:, block] = encoded
            mask[:, block] = True
        numbers = self.space_.values(pd.DataFrame({c: [v] for c, v in conditions.items()}))
        known = torch.from_numpy(self.space_.to_model(values, numbers)).to(self.device_)
        return known, torch.from_numpy(self.space_.mask_to_model(mask)).to(self.device_)


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0
