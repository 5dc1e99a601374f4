"""CTGAN's training without DP: training-by-sampling, critic updates with WGAN-GP, generator
updates with the conditional and moment terms (see the Notes of
:class:`~fedsynth.tabular.generators.ctgan.CTGAN`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fedsynth.core.torch_device import torch_seed
from fedsynth.tabular.generators._ctgan_networks import (
    PENALTY_WEIGHT,
    moment_distance,
    with_conditions,
)
from fedsynth.tabular.generators._ctgan_sampler import TrainingSampler

if TYPE_CHECKING:
    import torch

    from fedsynth.core.privacy.dp_sgd import PrivateTraining


class AdversarialTraining:
    """CTGAN's training loop and steps, mixed into
    :class:`~fedsynth.tabular.generators.ctgan.CTGAN` (whose networks, optimisers, layout and
    parameters they use); ``_train`` wraps :class:`NeuralGenerator`'s."""

    def _train(
        self,
        matrix: np.ndarray,
        rng: np.random.Generator,
        plan: PrivateTraining | None = None,
        *,
        pretraining: bool = False,
    ) -> None:
        import torch

        # Under DP the real rows and their conditions come from the loader's Poisson batches
        # (never training-by-sampling, whose counts are not private); pretraining on a DP
        # proxy samples the proxy's rows by training-by-sampling.
        private = getattr(self, "privacy_spent_", None) is not None and not pretraining
        self._sampler = None if private else TrainingSampler(matrix, self.layout_, self.device_)
        # Dropout draws from torch's global generator, so every draw of a step does too: it is
        # seeded from ``rng`` inside a fork, which leaves the caller's random state untouched.
        devices = []
        if self.device_.type == "cuda":
            devices = [
                torch.cuda.current_device() if self.device_.index is None else self.device_.index
            ]
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(torch_seed(rng))
                super()._train(matrix, rng, plan, pretraining=pretraining)
        finally:
            del self._sampler

    def _train_epoch(self, loader, generator: torch.Generator) -> dict[str, float]:
        import torch

        if self._dp_plan is not None:
            return self._private_epoch(loader, generator)
        # Real rows come from training-by-sampling, not from the loader's batches; the loader
        # only sets the epoch's length (n // batch_size steps, as in CTGAN).
        totals = torch.zeros(5, device=self.device_)
        steps = len(loader)
        for _ in range(steps):
            totals += self._step()
        generator_loss, conditional, moments, critic, penalty = (totals / steps).tolist()
        return {
            "generator": generator_loss,
            "conditional": conditional,
            "moments": moments,
            "discriminator": critic,
            "penalty": penalty,
        }

    def _step(self) -> torch.Tensor:
        """``discriminator_steps`` critic updates, then one generator update.

        Returns the generator's critic loss, conditional cross-entropy and moment distance,
        and the critic's mean Wasserstein loss and gradient penalty, as one tensor (read once
        per epoch, so that a GPU is not synchronised at every step).
        """
        import torch

        n = int(self.batch_size)
        critic = torch.zeros(2, device=self.device_)
        for k in range(int(self.discriminator_steps)):
            last = k == int(self.discriminator_steps) - 1
            if self._sampler.n_columns:
                cond, column, category = self._sampler.conditions(n)
            else:
                cond = column = category = None
            # The last critic step's fake rows are kept, with their graph, for the generator's
            # update (as in PyTorch's DCGAN example): one generator pass per step, not two.
            with torch.set_grad_enabled(last):
                raw = self._fake(n, cond)
                fake = with_conditions(self._activate(raw), cond)
            # Real rows under the same conditions as the fake ones, each holding its condition.
            rows = self._sampler.rows(column, category, n)
            real = with_conditions(rows, cond)
            critic += self._critic_update(real, fake.detach())
        generator_losses = self._update_generator(raw, fake, column, category, rows)
        return torch.cat([generator_losses, critic / (k + 1)])

    def _update_generator(
        self,
        raw: torch.Tensor,
        fake: torch.Tensor,
        column: torch.Tensor | None,
        category: torch.Tensor | None,
        real: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One generator update from its rows ``fake`` (with their conditional vectors, raw
        output ``raw``); returns its critic loss, conditional cross-entropy and moment distance.

        ``real`` are encoded real rows drawn under the same conditions, for the moment term;
        ``None`` (under DP, where the generator reads no real row) leaves the term out.
        """
        import torch

        # Only the generator's weights are updated now: the critic's need no gradient.
        self.discriminator_.requires_grad_(False)
        try:
            loss = -self.discriminator_(fake).mean()
        finally:
            self.discriminator_.requires_grad_(True)
        conditional = (
            self.layout_.condition_loss(raw, column, category)
            if column is not None
            else torch.zeros((), device=self.device_)
        )
        moments = torch.zeros((), device=self.device_)
        if real is not None and self.moment_weight > 0:
            moments = moment_distance(fake[:, : real.shape[1]], real)
        self.generator_optimizer_.zero_grad(set_to_none=True)
        (loss + conditional + float(self.moment_weight) * moments).backward()
        self.generator_optimizer_.step()
        return torch.stack([loss.detach(), conditional.detach(), moments.detach()])

    def _activate(self, raw: torch.Tensor) -> torch.Tensor:
        """The generator's raw output as the critic sees it in training (see the Notes)."""
        return self.layout_.activate(raw, gumbel=self._gumbel())

    def _gumbel(self) -> bool:
        """``gumbel_softmax``, or by default ``False`` without ``dp`` and ``True`` under it."""
        if self.gumbel_softmax is not None:
            return bool(self.gumbel_softmax)
        return self.dp is not None

    def _fake(self, n: int, cond: torch.Tensor | None) -> torch.Tensor:
        """Raw generator output for ``n`` rows under the conditional vectors ``cond``."""
        import torch

        noise = torch.randn((n, int(self.embedding_dim)), device=self.device_)
        return self.generator_(with_conditions(noise, cond))

    def _critic_update(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """One critic update; returns its (Wasserstein loss, gradient penalty)."""
        import torch

        loss = self.discriminator_(fake).mean() - self.discriminator_(real).mean()
        penalty = self._gradient_penalty(real, fake)
        self.discriminator_optimizer_.zero_grad(set_to_none=True)
        (loss + penalty).backward()
        self.discriminator_optimizer_.step()
        return torch.stack([loss.detach(), penalty.detach()])

    def _gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """WGAN-GP penalty on the critic's gradient norm, one interpolation weight per pack."""
        import torch

        pac, width = self.pac_, real.shape[1]
        alpha = torch.rand((len(real) // pac, 1, 1), device=real.device)
        alpha = alpha.expand(-1, pac, width).reshape(-1, width)
        mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        (gradient,) = torch.autograd.grad(
            self.discriminator_(mixed).sum(), mixed, create_graph=True
        )
        norms = gradient.reshape(-1, pac * width).norm(2, dim=1)
        return PENALTY_WEIGHT * ((norms - 1) ** 2).mean()
