"""CTGAN's conditional vector: where the spans lie, which conditions to draw, which rows match.

The conditional vector of a row is the one-hot of one category of one discrete column, over the
category spans of all discrete columns laid end to end (Xu et al. 2019). In training
(*training-by-sampling*) a column is drawn uniformly and one of its categories with probability
proportional to ``log(1 + count)``, so that rare categories are trained on; a real row holding
that category is drawn to show the discriminator. To generate, a condition is drawn from the
empirical frequencies instead: a uniformly drawn column and a category with its frequency. As
the generator has learnt the rows given each condition, that mixture gives back the table's
distribution.

Everything is vectorised over the batch (index tensors built once), so that drawing conditions
and rows costs a few tensor operations per step instead of a Python loop over rows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fedsynth.tabular.transforms import TableEncoder

if TYPE_CHECKING:
    import torch

# Temperature of the Gumbel-softmax on the generator's one-hot spans in training (CTGAN's):
# close to one-hot, so that the discriminator cannot tell fake rows by their soft entries.
GUMBEL_TAU = 0.2


def _padded_index(
    spans: list, width: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(width, len(spans))`` matrix columns of each span's slots, and the mask of real slots.

    Spans run along the last (contiguous) axis: a softmax over the slots (axis 1 of the
    gathered ``(rows, width, spans)`` tensor) is then several times faster on a CPU than over a
    short last axis.
    """
    import torch

    index = torch.zeros((width, len(spans)), dtype=torch.long)
    mask = torch.zeros((width, len(spans)), dtype=torch.bool)
    for i, span in enumerate(spans):
        index[:, i] = span.start  # any valid column for the padding: it is masked out
        index[: span.width, i] = torch.arange(span.start, span.stop)
        mask[: span.width, i] = True
    return index.to(device), mask.to(device)


class SpanLayout:
    """The encoder's spans as index tensors, to activate a generator's output in one pass.

    ``tanh`` spans hold one value each. Every ``softmax`` span (mode, category, missingness) is
    gathered into one padded ``(rows, widest, spans)`` tensor; the discrete columns' category
    spans, which make the conditional vector, get their own padded ``(columns, widest)`` index.

    Parameters
    ----------
    encoder : TableEncoder
        The fitted encoder of the table.
    device : torch.device
        Where the index tensors live (the model's device).

    Attributes
    ----------
    discrete : list of Span
        The category spans of the discrete columns, in order.
    cond_dim : int
        Width of the conditional vector (the summed widths of ``discrete``).
    cond_start : Tensor of int64, shape (len(discrete),)
        Where each discrete column's slots begin in the conditional vector.
    """

    def __init__(self, encoder: TableEncoder, device: torch.device):
        import torch

        spans = encoder.output_info_
        softmax = [span for span in spans if span.activation == "softmax"]
        self.discrete = encoder.discrete_spans()
        values = [span.start for span in spans if span.activation == "tanh"]
        self.values = torch.tensor(values, dtype=torch.long).to(device)
        self.index, self.mask = _padded_index(
            softmax, max((s.width for s in softmax), default=1), device
        )
        # activate() lays the values, then the padded slots (flattened), side by side; each
        # output column's position in that layout puts them back in the matrix's order.
        order = torch.zeros(encoder.output_dim_, dtype=torch.long)
        order[values] = torch.arange(len(values))
        flat = self.index.flatten().cpu()
        real = self.mask.flatten().cpu()
        order[flat[real]] = len(values) + torch.arange(len(flat))[real]
        self.order = order.to(device)
        index, mask = _padded_index(
            self.discrete, max((s.width for s in self.discrete), default=1), device
        )
        # Row by row, each row picks its conditioned column's slots: columns come first.
        self.discrete_index, self.discrete_mask = index.T.contiguous(), mask.T.contiguous()
        widths = [span.width for span in self.discrete]
        self.cond_dim = sum(widths)
        self.cond_start = torch.tensor(
            np.concatenate(([0], np.cumsum(widths)[:-1])) if widths else [], dtype=torch.long
        ).to(device)

    def activate(self, raw: torch.Tensor, *, gumbel: bool = False) -> torch.Tensor:
        """``tanh`` on the values, softmax on each one-hot span.

        With ``gumbel``, each span is a Gumbel-softmax sample at temperature
        :data:`GUMBEL_TAU` (training); without, its probabilities (generation: the decoder then
        draws each choice from them, which is what a hard Gumbel-max sample would do). The
        Gumbel noise comes from torch's global generator, as dropout's does.
        """
        import torch

        values = torch.tanh(raw.index_select(1, self.values))
        logits = raw.index_select(1, self.index.flatten()).view(len(raw), *self.index.shape)
        logits = logits.masked_fill(~self.mask, -math.inf)
        if gumbel:
            # Gumbel(0, 1) = -log(-log U); the clamp keeps log away from 0 for U = 0.
            uniform = torch.rand(logits.shape, device=raw.device).clamp_(min=1e-20)
            logits = (logits - torch.log(-torch.log(uniform))) / GUMBEL_TAU
        probabilities = torch.softmax(logits, dim=1).flatten(1)
        return torch.cat([values, probabilities], dim=1).index_select(1, self.order)

    def condition_loss(
        self, raw: torch.Tensor, column: torch.Tensor, category: torch.Tensor
    ) -> torch.Tensor:
        """Mean cross-entropy between each row's conditioned span and its conditioned category.

        Parameters
        ----------
        raw : Tensor of shape (rows, output_dim)
            The generator's output before activation (logits on the one-hot spans).
        column, category : Tensor of int64, shape (rows,)
            Each row's conditioned discrete column and its category within that column.
        """
        import torch.nn.functional as F

        logits = raw.gather(1, self.discrete_index[column])
        logits = logits.masked_fill(~self.discrete_mask[column], -math.inf)
        return F.cross_entropy(logits, category)

    def one_hot(self, slots: torch.Tensor) -> torch.Tensor:
        """Conditional vectors, each the one-hot of its slot (``cond_start[column] + category``)."""
        import torch

        cond = torch.zeros((len(slots), self.cond_dim), device=slots.device)
        cond[torch.arange(len(slots), device=slots.device), slots] = 1
        return cond


class TrainingSampler:
    """Training-by-sampling over one encoded table: conditions and the real rows that meet them.

    Parameters
    ----------
    matrix : ndarray of shape (n, output_dim)
        The encoded training rows.
    layout : SpanLayout
        The spans of the encoder that produced ``matrix``.
    device : torch.device
        Where the draws are made.

    Attributes
    ----------
    probabilities : list of ndarray
        For each discrete column, the probability of conditioning on each of its categories:
        ``log(1 + count)`` normalised, counts taken in ``matrix``. A category absent from
        ``matrix`` (e.g. at a site that lacks it) is never conditioned on.
    """

    def __init__(self, matrix: np.ndarray, layout: SpanLayout, device: torch.device):
        import torch

        self.layout = layout
        self.data = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32)).to(device)
        self.probabilities, orders, counts = [], [], []
        for span in layout.discrete:
            codes = matrix[:, span.slice].argmax(axis=1)
            count = np.bincount(codes, minlength=span.width)
            weights = np.log1p(count)
            self.probabilities.append(weights / weights.sum())
            orders.append(np.argsort(codes, kind="stable"))
            counts.append(count)
        self.n_columns = len(layout.discrete)
        widest = layout.discrete_mask.shape[1]
        # Cumulative probabilities per column; from a column's last possible category on they
        # are infinite, so that rounding can never select a category that no row holds.
        cumulative = np.full((self.n_columns, widest), np.inf)
        for i, p in enumerate(self.probabilities):
            last = int(np.flatnonzero(p)[-1])
            cumulative[i, :last] = np.cumsum(p)[:last]
        self.cumulative = torch.tensor(cumulative, dtype=torch.float64).to(device)
        # Rows sorted by category, column after column: the rows holding slot s of the
        # conditional vector are order[start[s] : start[s] + count[s]].
        flat_counts = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
        offsets = np.repeat(np.arange(self.n_columns) * len(matrix), [len(c) for c in counts])
        within = np.concatenate([np.cumsum(c) - c for c in counts]) if counts else flat_counts
        self.order = torch.from_numpy(
            np.concatenate(orders) if orders else np.zeros(0, dtype=np.int64)
        ).to(device)
        self.start = torch.from_numpy((offsets + within).astype(np.int64)).to(device)
        self.count = torch.from_numpy(flat_counts.astype(np.int64)).to(device)

    def conditions(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n`` training conditions: vectors, columns and categories (log-frequency draws)."""
        import torch

        device = self.data.device
        column = torch.randint(self.n_columns, (n,), device=device)
        u = torch.rand((n, 1), dtype=torch.float64, device=device)
        category = (self.cumulative[column] <= u).sum(dim=1)
        return self.layout.one_hot(self.layout.cond_start[column] + category), column, category

    def rows(self, column: torch.Tensor | None, category: torch.Tensor | None, n: int):
        """``n`` real rows, each holding its (column, category) when given, else uniform."""
        import torch

        device = self.data.device
        if column is None:
            return self.data[torch.randint(len(self.data), (n,), device=device)]
        slot = self.layout.cond_start[column] + category
        offset = (torch.rand(n, device=device) * self.count[slot]).long()
        offset = torch.minimum(offset, self.count[slot] - 1)
        return self.data[self.order[self.start[slot] + offset]]
