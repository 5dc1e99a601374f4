"""The batches of the neural table generators (:class:`ShuffledBatches`); the device and torch
seeds they share with the image generators are in :mod:`fedsynth.core.torch_device`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


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
