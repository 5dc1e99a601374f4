"""The torch plumbing of the neural table generators: the device, torch seeds, the batches.

Kept apart from :mod:`fedsynth.tabular.generators._neural` (the training and sampling of the
tier) so that the pieces which need nothing of a generator, and that federated code calls
directly (:func:`resolve_device`), stand on their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedsynth.core.torch_device import resolve_device, torch_seed

if TYPE_CHECKING:
    import torch

# resolve_device and torch_seed live in core (the image generators share them); kept
# importable from here, where the tier and federated code look for them.
__all__ = ["ShuffledBatches", "resolve_device", "torch_seed"]


class ShuffledBatches:
    """Sampler of a DataLoader that yields one tensor of row indices per batch.

    Each epoch shuffles the rows with ``generator`` and cuts them into ``len(self)`` batches of
    ``min(batch_size, n)`` rows; the incomplete last batch is dropped, so that a small batch
    does not make a noisy step (each epoch drops other rows). Indexing the table with a whole
    batch at once is what makes it fast: a default DataLoader fetches and collates row by row.
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        self.n = n
        self.batch_size = min(batch_size, n)
        self.generator = generator

    def __len__(self) -> int:
        return self.n // self.batch_size

    def __iter__(self):
        import torch

        order = torch.randperm(self.n, generator=self.generator)
        return iter(order[: len(self) * self.batch_size].view(len(self), self.batch_size))
