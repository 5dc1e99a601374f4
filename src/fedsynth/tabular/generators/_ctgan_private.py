"""CTGAN under DP: DP-SGD critic updates on Poisson-drawn real rows (alone or in packs), and
generator updates that read no real row (see the Notes of
:class:`~fedsynth.tabular.generators.ctgan.CTGAN`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedsynth.tabular.generators._ctgan_networks import PENALTY_WEIGHT, with_conditions
from fedsynth.tabular.generators._neural_private import private_step

if TYPE_CHECKING:
    import torch


class PrivateCriticTraining:
    """CTGAN's epoch under DP, mixed into :class:`~fedsynth.tabular.generators.ctgan.CTGAN`
    (whose networks, optimisers, layout, DP plan and training steps it uses)."""

    def _private_epoch(self, loader, generator: torch.Generator) -> dict[str, float]:
        """An epoch under DP: a private critic update per Poisson batch, a generator update
        after every ``discriminator_steps`` of them (and after the epoch's last one)."""
        import torch

        every = int(self.discriminator_steps)
        critic = torch.zeros(2, device=self.device_)
        generator_losses = torch.zeros(3, device=self.device_)
        updates = pending = 0
        for (batch,) in loader:
            critic += self._private_critic_update(batch, generator)
            pending += 1
            if pending == every:
                generator_losses += self._private_generator_update()
                updates, pending = updates + 1, 0
        if pending:
            generator_losses += self._private_generator_update()
            updates += 1
        generator_loss, conditional, moments = (generator_losses / max(updates, 1)).tolist()
        critic_loss, penalty = (critic / max(len(loader), 1)).tolist()
        return {
            "generator": generator_loss,
            "conditional": conditional,
            "moments": moments,
            "discriminator": critic_loss,
            "penalty": penalty,
        }

    def _private_critic_update(self, batch: torch.Tensor, generator: torch.Generator):
        """One DP-SGD update of the critic on the Poisson-drawn real rows ``batch``.

        Returns the mean Wasserstein loss and gradient penalty of its packs.
        """
        import torch

        plan, device = self._dp_plan, self.device_
        pac = self.pac_
        if pac == 1:
            return self._private_critic_update_per_row(batch, generator)
        packs = int(self.batch_size) // pac
        # Each row joins a pack drawn for it alone, so that a row added to the data changes
        # one pack and no other (cutting the batch into consecutive packs would shift them all).
        pack = torch.randint(packs, (len(batch),), device=device)
        shuffled = torch.randperm(len(batch), device=device)
        order = shuffled[torch.argsort(pack[shuffled], stable=True)]
        pack, rows = pack[order], batch[order]
        counts = torch.bincount(pack, minlength=packs)
        rank = torch.arange(len(rows), device=device) - (torch.cumsum(counts, 0) - counts)[pack]
        kept = rank < pac
        rows, pack, position = rows[kept], pack[kept], pack[kept] * pac + rank[kept]
        # Fake rows under conditions drawn from the private category frequencies: nothing
        # here depends on the real rows, not even the generator's batch-norm statistics.
        slots = self._generation_conditions(packs * pac)
        cond = None if slots is None else self.layout_.one_hot(slots)
        with torch.no_grad():
            fake = with_conditions(self._activate(self._fake(packs * pac, cond)), cond)
        real = fake.clone()
        own = None if slots is None else self.layout_.one_hot(self._own_conditions(rows))
        real[position] = with_conditions(rows, own)
        active = torch.unique(pack)
        shape = (packs, pac, fake.shape[1])
        real, fake = real.view(shape)[active], fake.view(shape)[active]
        alpha = torch.rand((len(active), 1, 1), device=device)
        # A row changes one pack's gradient rather than adding one: see the class Notes.
        return self._private_critic_step(
            real, fake, alpha, generator, mean_of=packs, clip_norm=plan.max_grad_norm / 2
        )

    def _private_critic_update_per_row(self, batch: torch.Tensor, generator: torch.Generator):
        """The DP-SGD critic update when ``pac=1``: each real row is a sample of its own,
        scored against a fake row drawn for it alone, so a row added to the data adds one
        sample (sensitivity ``max_grad_norm``, not twice a halved clip as with packs) and every
        Poisson-drawn row is used."""
        import torch

        device = self.device_
        n, size = len(batch), int(self.batch_size)  # an empty batch is a step too: noise only
        # Fake rows in generator batches of the planned size, whatever the Poisson draw: the
        # generator's batch norm then never depends on how many real rows were drawn, so the
        # fake row of one sample does not move with the others (and a batch of one real row
        # still gets a batch to normalise).
        blocks = max(1, -(-n // size))
        slots = self._generation_conditions(blocks * size)
        cond = None if slots is None else self.layout_.one_hot(slots)
        with torch.no_grad():
            parts = []
            for start in range(0, blocks * size, size):
                part = None if cond is None else cond[start : start + size]
                parts.append(with_conditions(self._activate(self._fake(size, part)), part))
            fake = torch.cat(parts)[:n]
        own = None if slots is None else self.layout_.one_hot(self._own_conditions(batch))
        real = with_conditions(batch, own)
        alpha = torch.rand((n, 1, 1), device=device)
        # Packs of one row each.
        return self._private_critic_step(
            real[:, None], fake[:, None], alpha, generator, mean_of=size, clip_norm=None
        )

    def _private_critic_step(
        self,
        real: torch.Tensor,
        fake: torch.Tensor,
        alpha: torch.Tensor,
        generator: torch.Generator,
        *,
        mean_of: int,
        clip_norm: float | None,
    ) -> torch.Tensor:
        """The DP-SGD step of the critic on packs ``real`` and ``fake`` (``(packs, pac,
        width)``, with interpolation weights ``alpha``): each pack's gradient of its
        Wasserstein loss and gradient penalty is a sample. Returns the packs' mean loss and
        penalty (zeros for an empty step)."""
        import torch
        from torch.func import functional_call, grad

        critic = self.discriminator_

        def pack_loss(params, real_pack, fake_pack, alpha_pack):
            def score(x):
                return functional_call(critic, params["discriminator"], (x,)).sum()

            loss = score(fake_pack) - score(real_pack)
            mixed = alpha_pack * real_pack + (1 - alpha_pack) * fake_pack
            penalty = PENALTY_WEIGHT * (grad(score)(mixed).norm() - 1) ** 2
            return loss + penalty, torch.stack([loss, penalty]).detach()

        losses = private_step(
            self._dp_plan,
            {"discriminator": critic},
            pack_loss,
            (real, fake, alpha),
            optimizer=self.discriminator_optimizer_,
            generator=generator,
            mean_of=mean_of,
            clip_norm=clip_norm,
        )
        if not losses:
            return torch.zeros(2, device=self.device_)
        return torch.cat(losses).mean(dim=0)

    def _private_generator_update(self) -> torch.Tensor:
        """A generator update under conditions drawn from the private frequencies."""
        n = int(self.batch_size)
        slots = self._generation_conditions(n)
        cond = column = category = None
        if slots is not None:
            cond = self.layout_.one_hot(slots)
            column, category = self._column_and_category(slots)
        raw = self._fake(n, cond)
        fake = with_conditions(self._activate(raw), cond)
        return self._update_generator(raw, fake, column, category)

    def _generation_conditions(self, n: int) -> torch.Tensor | None:
        """``n`` conditional-vector slots drawn as for generation (a column uniformly, then a
        category with its frequency in the encoder's statistics, fitted on the DP proxy);
        ``None`` without discrete columns. Drawn from torch's global generator, as the
        training's other draws."""
        import torch

        if self._generation_slots is None:
            return None
        return torch.multinomial(self._generation_slots, n, replacement=True)

    def _own_conditions(self, rows: torch.Tensor) -> torch.Tensor:
        """Each encoded row's conditional-vector slot: its category in a discrete column drawn
        uniformly for it."""
        import torch

        layout = self.layout_
        column = torch.randint(len(layout.discrete), (len(rows),), device=rows.device)
        values = rows.gather(1, layout.discrete_index[column])
        category = values.masked_fill(~layout.discrete_mask[column], -1.0).argmax(dim=1)
        return layout.cond_start[column] + category

    def _column_and_category(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The discrete column and the category within it of conditional-vector ``slots``."""
        import torch

        starts = self.layout_.cond_start
        column = torch.searchsorted(starts, slots, right=True) - 1
        return column, slots - starts[column]
