"""The variational autoencoder that TVAE and VAE-BGM share: training, loss, decoding, conditioning.

It is the VAE of TVAE (Xu et al. 2019) on a table encoded by :class:`TableEncoder`. An MLP
encoder gives the mean and log-variance of a Gaussian posterior over the latent space; an MLP
decoder gives, for each ``tanh`` span, the mean of a Gaussian over the normalised value (its
standard deviation, one per value column, is learned) and, for each ``softmax`` span, the logits
of a categorical distribution. The loss of a row is ``loss_factor`` times the negative
log-likelihood of its reconstruction plus the KL divergence of its posterior from N(0, I).

A new row is a latent code decoded into those distributions, each feature then drawn from its
own; with ``autoregressive``, the discrete spans are drawn in order, each also given those
before it (:mod:`fedsynth.tabular.generators._autoregressive`). The two generators differ only
in where the latent codes come from (:meth:`_latent`). The networks and the span layout are in
:mod:`fedsynth.tabular.generators._vae_networks`.

Under ``dp=`` every step is DP-SGD on the whole autoencoder: each row's gradient (encoder,
decoder and the decoder's sigmas, which the loss uses outside the decoder's ``forward``) is
computed with ``torch.func``, clipped and noised (see ``_neural_private.private_step``).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fedsynth.core.privacy.config import DPConfig
from fedsynth.exceptions import ConditionError, ConditionWarning
from fedsynth.tabular.generators._neural import NeuralGenerator
from fedsynth.tabular.generators._neural_private import private_step
from fedsynth.tabular.generators._vae_networks import SpanLayout, build_modules
from fedsynth.tabular.transforms import TableEncoder
from fedsynth.tabular.transforms.numeric import ContinuousColumn

if TYPE_CHECKING:
    import torch

# Bounds of the learned standard deviation of a normalised value (TVAE's): below, one value
# column could drive the likelihood to infinity; above, the noise would cover the whole [-1, 1].
_SIGMA_RANGE = (0.01, 1.0)
# Learning rate of the discrete context, relative to the network's (see ``_build``).
_CONTEXT_LR_FACTOR = 10.0
# Rows decoded at once when scoring latent codes for conditional sampling (bounded memory).
_CHUNK = 65_536
# Output rows conditioned at once; each block gets its own pool of weighted latent codes.
_CONDITIONED_BLOCK = 10_000


class VAEGenerator(NeuralGenerator):
    """A TVAE-style variational autoencoder; subclasses choose the latent codes of new rows.

    See :class:`fedsynth.tabular.generators.tvae.TVAE` for the parameters.
    """

    native_conditioning = True

    def __init__(
        self,
        *,
        epochs: int = 120,
        max_steps: int | None = 10_000,
        batch_size: int = 500,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        latent_dim: int = 16,
        hidden_dims: tuple[int, ...] = (128, 128),
        loss_factor: float = 2.0,
        autoregressive: bool = True,
        early_stopping: bool = False,
        patience: int = 10,
        validation_fraction: float = 0.1,
        dp: DPConfig | None = None,
        device: str = "auto",
        verbose: bool = False,
        seed: int | None = 0,
    ):
        self.epochs = epochs
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.loss_factor = loss_factor
        self.autoregressive = autoregressive
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
        if self.max_steps is not None and not _positive_int(self.max_steps):
            problems.append(f"max_steps must be a positive integer or None, got {self.max_steps!r}")
        if not _positive_int(self.latent_dim):
            problems.append(f"latent_dim must be a positive integer, got {self.latent_dim!r}")
        if not isinstance(self.hidden_dims, (tuple, list)) or not all(
            _positive_int(size) for size in self.hidden_dims
        ):
            problems.append(
                f"hidden_dims must be a tuple of positive integers, got {self.hidden_dims!r}"
            )
        if isinstance(self.loss_factor, bool) or not (
            isinstance(self.loss_factor, (int, float)) and self.loss_factor > 0
        ):
            problems.append(f"loss_factor must be a positive number, got {self.loss_factor!r}")
        if not isinstance(self.autoregressive, (bool, np.bool_)):
            problems.append(f"autoregressive must be True or False, got {self.autoregressive!r}")
        if isinstance(self.weight_decay, bool) or not (
            isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0
        ):
            problems.append(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        self._raise_invalid_params(problems)

    def _epochs_within_cap(self, epochs: int, steps_per_epoch: int) -> int:
        """At most ``max_steps`` optimiser steps, in whole epochs (at least one)."""
        if self.max_steps is None or epochs * steps_per_epoch <= self.max_steps:
            return epochs
        return max(1, int(self.max_steps) // max(steps_per_epoch, 1))

    def _build(self, encoder: TableEncoder) -> None:
        import torch

        encoder_net, decoder_net = build_modules(
            encoder, tuple(self.hidden_dims), int(self.latent_dim), bool(self.autoregressive)
        )
        self.encoder_net_ = encoder_net.to(self.device_)
        self.decoder_net_ = decoder_net.to(self.device_)
        self.layout_ = SpanLayout(encoder, self.device_)
        context = self.decoder_net_.context
        rest = [
            p
            for p in [*self.encoder_net_.parameters(), *self.decoder_net_.parameters()]
            if context is None or p is not context.weight
        ]
        groups = [{"params": rest}]
        if context is not None:
            # The context starts at zero and must travel to logit shifts of several units (an
            # exclusive pair needs about -5), while Adam moves a weight by about lr per step:
            # at the network's rate that takes thousands of steps, more than a default fit has.
            groups.append({"params": [context.weight], "lr": _CONTEXT_LR_FACTOR * self.lr})
        self.optimizer_ = torch.optim.Adam(groups, lr=self.lr, weight_decay=self.weight_decay)

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"encoder": self.encoder_net_, "decoder": self.decoder_net_}

    def _loss(
        self,
        x: torch.Tensor,
        noise: torch.Tensor | None,
        params: dict[str, dict[str, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """Summed loss of the rows ``x``; the posterior mean is decoded when ``noise`` is None.

        With ``params`` (``{"encoder": {...}, "decoder": {...}}``) the networks run with those
        tensors in place of their parameters, as :func:`torch.func.grad` needs.
        """
        import torch
        from torch.func import functional_call

        encoder, decoder = self.encoder_net_, self.decoder_net_
        if params is None:
            mean, log_var = encoder(x)
        else:
            mean, log_var = functional_call(encoder, params["encoder"], (x,))
        z = mean if noise is None else mean + torch.exp(0.5 * log_var) * noise
        if params is None:
            raw, sigma = decoder(z, x), decoder.sigma
        else:
            raw = functional_call(decoder, params["decoder"], (z, x))
            sigma = params["decoder"]["sigma"]
        nll = self.layout_.nll(raw, x, sigma)
        kl = -0.5 * (1 + log_var - mean**2 - log_var.exp()).sum()
        return self.loss_factor * nll + kl

    def _train_epoch(self, loader, generator: torch.Generator) -> dict[str, float]:
        import torch

        if self._dp_plan is not None:
            return self._private_epoch(loader, generator)
        total, rows = 0.0, 0
        sigma = self.decoder_net_.sigma
        for (batch,) in loader:
            x = batch.to(self.device_)
            noise = torch.randn((len(x), int(self.latent_dim)), generator=generator)
            loss = self._loss(x, noise.to(self.device_))
            self.optimizer_.zero_grad(set_to_none=True)
            (loss / len(x)).backward()
            self.optimizer_.step()
            with torch.no_grad():
                sigma.clamp_(*_SIGMA_RANGE)
            total += loss.item()
            rows += len(x)
        return {"loss": total / max(rows, 1)}

    def _private_epoch(self, loader, generator: torch.Generator) -> dict[str, float]:
        """An epoch of DP-SGD over the loader's Poisson batches (see the module docstring)."""
        import torch

        plan = self._dp_plan
        latent = int(self.latent_dim)

        def row_loss(params, x, noise):
            loss = self._loss(x[None], noise[None], params)
            return loss, loss.detach()

        total, rows = 0.0, 0
        for (batch,) in loader:
            x = batch.to(self.device_)
            noise = torch.randn((len(x), latent), generator=generator).to(self.device_)
            losses = private_step(
                plan,
                self._modules(),
                row_loss,
                (x, noise),
                optimizer=self.optimizer_,
                generator=generator,
                mean_of=plan.expected_batch_size,
            )
            with torch.no_grad():
                self.decoder_net_.sigma.clamp_(*_SIGMA_RANGE)
            total += float(sum(part.sum() for part in losses))
            rows += len(x)
        return {"loss": total / max(rows, 1)}

    def _validation_loss(self, data: torch.Tensor, generator: torch.Generator) -> float:
        # The posterior mean rather than a draw: a noiseless score for early stopping.
        return float(self._loss(data, None)) / len(data)

    def _generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        raw, drawn = self.decoder_net_.decode(self._latent(n, generator), generator)
        return self.layout_.activate(raw, self.decoder_net_.sigma, generator, drawn)

    def _draws_discrete_spans(self) -> bool:
        # The discrete context draws every softmax span (see ``DISCRETE_ROLES``).
        return self.decoder_net_.context is not None

    @classmethod
    def _from_saved(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]):
        # Models saved before the discrete context existed decode every feature independently;
        # those saved before the step cap trained (and go on training) without one.
        params = {"autoregressive": False, "max_steps": None, **config["params"]}
        return super()._from_saved({**config, "params": params}, arrays)

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(state, arrays)
        for module in self._modules().values():
            module.eval()

    # ------------------------------------------------------------------ latent codes
    def _latent(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Latent codes of ``n`` new rows."""
        raise NotImplementedError

    def _conditioned_latent(
        self, n: int, generator: torch.Generator, conditions: dict[str, Any]
    ) -> torch.Tensor:
        """Latent codes proposed for rows meeting ``conditions`` before likelihood weighting:
        those of :meth:`_latent` unless a subclass knows better."""
        return self._latent(n, generator)

    def _raw_offset(self, conditions: dict[str, Any]) -> torch.Tensor | None:
        """A shift of the decoder's raw outputs for rows meeting ``conditions`` (VAE-BGM's
        per-site offsets after federated training), or ``None``."""
        return None

    def encode_latent(self, data: pd.DataFrame) -> np.ndarray:
        """Posterior means of the latent codes of ``data``'s rows (same columns as fitted).

        Returns
        -------
        ndarray of shape (len(data), latent_dim)
        """
        import torch

        self._check_is_fitted()
        matrix = torch.from_numpy(self.encoder_.transform(data[self.learned_columns_]))
        with torch.no_grad():
            return self._posterior(matrix)[0].cpu().numpy()

    def _posterior(self, matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior means and log-variances of the encoded rows, in bounded chunks."""
        import torch

        parts = [
            self.encoder_net_(matrix[start : start + _CHUNK].to(self.device_))
            for start in range(0, len(matrix), _CHUNK)
        ]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    # ------------------------------------------------------------------ conditional sampling
    def _sample_conditioned(
        self, n: int, conditions: dict[str, Any], rng: np.random.Generator
    ) -> pd.DataFrame:
        """Rows meeting ``conditions`` by likelihood weighting in the latent space.

        Sampling-importance-resampling: a pool of candidate rows is drawn from the model with
        the conditions imposed, each weighted by the probability the model gives the conditions
        (a density for a numeric condition), and ``n`` candidates are resampled by weight. A
        candidate is a latent code and, with the discrete context, its discrete spans drawn in
        order with the conditioned ones set (their weight is their probability given the code
        and the spans before them); without it, the features are independent given the code,
        so a candidate is only its code. The other features are then drawn from their decoded
        distributions. The pool grows until its effective sample size reaches the block of
        rows, within a bounded budget.

        Raises
        ------
        ConditionError
            When the model gives the conditions probability 0.

        Warns
        -----
        ConditionWarning
            When the weights concentrate (effective sample size below a tenth of the rows), as
            for conditions that are rare under the model: rows then share fewer latent codes.
        """
        import torch

        clamp: dict[int, int] = {}
        terms = [self._condition_term(column, value, clamp) for column, value in conditions.items()]
        terms = [term for term in terms if term is not None]
        generator = self._torch_generator(rng)
        matrices, worst = [], math.inf
        with torch.no_grad():
            for start in range(0, n, _CONDITIONED_BLOCK):
                rows = min(_CONDITIONED_BLOCK, n - start)
                raw, drawn, ess = self._weighted_rows(rows, terms, clamp, conditions, generator)
                worst = min(worst, ess / rows)
                sigma = self.decoder_net_.sigma
                matrices.append(self.layout_.activate(raw, sigma, generator, drawn).cpu().numpy())
        if worst < 0.1:
            warnings.warn(
                f"conditional sampling on {conditions}: the latent weights are concentrated "
                f"(effective sample size {worst:.1%} of the rows), so rows share latent codes "
                "more than the model would; the conditions are rare under the model",
                ConditionWarning,
                stacklevel=3,
            )
        out = self._decode_matrices(matrices, rng)
        for column, value in conditions.items():
            out[column] = pd.Series([value] * n, dtype=object)
        return out

    def _weighted_rows(
        self,
        rows: int,
        terms: list,
        clamp: dict[int, int],
        conditions: dict[str, Any],
        generator: torch.Generator,
    ):
        """Raw outputs of ``rows`` candidates resampled by the conditions' likelihood, their
        discrete spans as drawn (with a context, else ``None``), and the pool's effective
        sample size."""
        import torch

        decoder, context = self.decoder_net_, self.decoder_net_.context
        budget = max(200 * rows, 100_000)
        offset = self._raw_offset(conditions)

        def decode(z: torch.Tensor) -> torch.Tensor:
            return decoder(z) if offset is None else decoder(z) + offset

        codes, slots, log_weights = [], [], []
        drawn, ess = 0, 0.0
        while drawn < budget and ess < rows:
            size = min(max(4 * rows, 20_000), budget - drawn, _CHUNK)
            z = self._conditioned_latent(size, generator, conditions)
            raw = decode(z)
            log_weight, drawn_slots = torch.zeros(size, device=z.device), None
            if context is not None:
                drawn_slots, log_weight = context.draw(raw, generator, clamp)
                # Slot numbers are small: int16 keeps a pool of millions of rows in memory.
                slots.append(drawn_slots.to(torch.int16 if _small(context) else torch.int32))
            log_weight = sum((term(raw, drawn_slots) for term in terms), log_weight)
            codes.append(z)
            log_weights.append(log_weight)
            drawn += size
            weights = torch.cat(log_weights).double()
            if torch.isfinite(weights).any():
                ess = math.exp(
                    2 * torch.logsumexp(weights, 0).item() - torch.logsumexp(2 * weights, 0).item()
                )
        if ess == 0.0:
            raise ConditionError(
                f"cannot sample with {conditions}: the model gives these conditions probability "
                f"0 in all {drawn:,} latent codes drawn"
            )
        probabilities = torch.softmax(weights, 0)
        chosen = torch.multinomial(
            probabilities.to(torch.float32), rows, replacement=True, generator=generator
        )
        raw = decode(torch.cat(codes)[chosen])
        drawn = None if context is None else context.one_hot(torch.cat(slots)[chosen].long())
        return raw, drawn, ess

    def _condition_term(self, column: str, value: Any, clamp: dict[int, int]):
        """Function of the decoded raw outputs (and, with the discrete context, the slots it
        drew) giving each row's log-likelihood of the condition.

        With the discrete context, the condition's discrete spans (its category; for a number,
        the "present" slot of its missingness indicator and, for a value held by a point mass,
        that mode) are entered in ``clamp`` instead, as :meth:`DiscreteContext.draw` scores
        them, and a number's density is taken within the mode drawn; ``None`` when nothing is
        left for a term."""
        import torch

        encoder = self.encoder_
        transform = encoder.transforms_[encoder.columns_.index(column)]
        spans = {span.role: span for span in encoder.output_info_ if span.column == column}
        # The context draws every softmax span (categories, missingness flags, modes).
        context = self.decoder_net_.context
        positions = None if context is None else context.positions
        if not isinstance(transform, ContinuousColumn):
            slot = encoder.category_slot(column, value)
            span = spans["category"]
            if positions is not None:
                clamp[positions[(column, "category")]] = slot - span.start
                return None
            return lambda raw, _: torch.log_softmax(raw[:, span.slice], dim=1)[:, slot - span.start]
        x = float(np.log1p(value) if transform.log else value)
        normalizer = transform.normalizer
        missing = spans.get("missing")
        if missing is not None and positions is not None:
            clamp[positions[(column, "missing")]] = 0  # [present, missing]
            missing = None  # scored by the context

        def present(raw: torch.Tensor) -> torch.Tensor:
            if missing is None:
                return torch.zeros(len(raw), device=raw.device)
            return torch.log_softmax(raw[:, missing.slice], dim=1)[:, 0]

        mode = spans.get("mode")

        def mode_log_probs(raw: torch.Tensor) -> torch.Tensor:
            if mode is None:
                return torch.zeros((len(raw), 1), device=raw.device)
            return torch.log_softmax(raw[:, mode.slice], dim=1)

        if normalizer.point_masses:
            matches = np.flatnonzero(np.isclose(normalizer.means, x, rtol=1e-9, atol=1e-9))
            if not len(matches):
                raise ConditionError(
                    f"cannot sample with {column}={value!r}: the value never occurs in the "
                    "training data, so the model gives it probability 0"
                )
            k = int(matches[0])
            if positions is not None:  # the mode is drawn by the context: set it there
                if mode is not None:
                    clamp[positions[(column, "mode")]] = k
                return None
            return lambda raw, _: mode_log_probs(raw)[:, k] + present(raw)
        # The value's offset within each mode, kept in [-1, 1] as decoding clips it: a value
        # beyond a mode's reach is scored at its edge, which the clipped draws pile up on.
        device = self.device_
        alpha = torch.tensor(
            np.clip((x - normalizer.means) / (4 * normalizer.stds), -1, 1), device=device
        ).float()
        log_scale = torch.tensor(np.log(4 * normalizer.stds), device=device).float()
        position = spans["value"].start

        def log_likelihood(raw: torch.Tensor, slots: torch.Tensor | None) -> torch.Tensor:
            mean = torch.tanh(raw[:, position : position + 1])
            sigma = self.decoder_net_.sigma[self._value_index[column]]
            gaussian = -0.5 * ((alpha - mean) / sigma) ** 2 - torch.log(sigma) - log_scale
            if positions is None:  # the value's density, summed over its modes
                return torch.logsumexp(mode_log_probs(raw) + gaussian, dim=1) + present(raw)
            # With a context the mode was drawn with the other discrete spans (the proposal):
            # the weight is the value's density within the mode drawn.
            if mode is None:
                return gaussian[:, 0]
            drawn = slots[:, positions[(column, "mode")]].long()
            return gaussian.gather(1, drawn[:, None])[:, 0]

        return log_likelihood

    @property
    def _value_index(self) -> dict[str, int]:
        """Position of each continuous column's value in the decoder's sigmas."""
        values = [s.column for s in self.encoder_.output_info_ if s.activation == "tanh"]
        return {column: i for i, column in enumerate(values)}


def _small(context: torch.nn.Module) -> bool:
    """Whether every slot number of the context's spans fits in an int16."""
    return all(last - first <= 32_767 for first, last in context.bounds)


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0
