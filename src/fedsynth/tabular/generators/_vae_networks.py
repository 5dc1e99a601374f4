"""The networks of the VAE that TVAE and VAE-BGM share, and the layout of its output spans.

An MLP encoder gives the mean and log-variance of a Gaussian posterior over the latent space; an
MLP decoder gives, for each ``tanh`` span, the mean of a Gaussian over the normalised value (its
standard deviation, one per value column, is learned) and, for each ``softmax`` span, the logits
of a categorical distribution (see :mod:`fedsynth.tabular.generators._vae`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedsynth.tabular.generators._autoregressive import build_context, discrete_spans
from fedsynth.tabular.transforms import TableEncoder

if TYPE_CHECKING:
    import torch


def build_modules(
    encoder: TableEncoder,
    hidden_dims: tuple[int, ...],
    latent_dim: int,
    autoregressive: bool = False,
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The encoder and decoder networks of a VAE for ``encoder``'s matrix.

    With ``autoregressive``, the decoder owns a :mod:`~fedsynth.tabular.generators._autoregressive`
    context over the discrete spans (when the table has any)."""
    import torch
    from torch import nn

    class Encoder(nn.Module):
        """Row -> (mean, log-variance) of its Gaussian posterior."""

        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            width = encoder.output_dim_
            for size in hidden_dims:
                layers += [nn.Linear(width, size), nn.ReLU()]
                width = size
            self.body = nn.Sequential(*layers)
            self.mean = nn.Linear(width, latent_dim)
            self.log_var = nn.Linear(width, latent_dim)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            hidden = self.body(x)
            return self.mean(hidden), self.log_var(hidden)

    class Decoder(nn.Module):
        """Latent code -> raw outputs (value means before tanh, logits); owns the sigmas and
        the discrete context (``None`` without one)."""

        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            width = latent_dim
            for size in reversed(hidden_dims):
                layers += [nn.Linear(width, size), nn.ReLU()]
                width = size
            layers.append(nn.Linear(width, encoder.output_dim_))
            self.body = nn.Sequential(*layers)
            n_values = sum(span.activation == "tanh" for span in encoder.output_info_)
            self.sigma = nn.Parameter(torch.full((n_values,), 0.1))
            has_discrete = bool(discrete_spans(encoder))
            self.context = build_context(encoder) if autoregressive and has_discrete else None

        def forward(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
            """Raw outputs for the codes; given the rows ``x`` the codes came from, the
            discrete logits include the context of each row's earlier values (training)."""
            raw = self.body(z)
            if self.context is not None and x is not None:
                raw = self.context.shift(raw, x)
            return raw

        def decode(self, z: torch.Tensor, generator: torch.Generator):
            """Raw outputs of new rows and, with a context, their discrete spans drawn in
            order (``(columns, one-hot values)``, see :meth:`SpanLayout.activate`)."""
            raw = self.body(z)
            if self.context is None:
                return raw, None
            slots, _ = self.context.draw(raw, generator)
            return raw, self.context.one_hot(slots)

    return Encoder(), Decoder()


class SpanLayout:
    """Where the value columns and the softmax spans lie in the matrix, as index tensors.

    The softmax columns are gathered once per batch, reordered so that spans of the same width
    are contiguous and, within such a run, slot-major (every span's first slot, then every
    span's second slot, ...): each width is then one ``(rows, width, spans)`` view whose softmax
    runs over ``dim=1`` with the spans on the contiguous axis. The loss and the activation take
    a few vectorised tensor operations instead of one per span, or a softmax over a last axis
    of two. (``index_select`` and its backward are far cheaper on a CPU than indexing with a
    2-D tensor.)
    """

    def __init__(self, encoder: TableEncoder, device: torch.device):
        import torch

        spans = encoder.output_info_
        softmax = [span for span in spans if span.activation == "softmax"]
        self.values = torch.tensor(
            [span.start for span in spans if span.activation == "tanh"], dtype=torch.long
        ).to(device)
        order: list[int] = []
        # (first, last) position in ``order`` and width of each run of same-width spans
        self.groups: list[tuple[int, int, int]] = []
        for width in sorted({span.width for span in softmax}):
            run = [span for span in softmax if span.width == width]
            self.groups.append((len(order), len(order) + width * len(run), width))
            order += [span.start + slot for slot in range(width) for span in run]
        self.order = torch.tensor(order, dtype=torch.long).to(device)

    def _grouped(self, logits: torch.Tensor):
        """Each run of same-width spans of the reordered logits, as ``(rows, width, spans)``."""
        for first, last, width in self.groups:
            yield logits[:, first:last].view(len(logits), width, -1)

    def nll(self, raw: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Summed negative log-likelihood of the rows ``x`` under the decoded ``raw``.

        Gaussian on each normalised value (constant terms left out), cross-entropy on each
        softmax span. As each target span is one-hot, the cross-entropy of a span is its
        log-sum-exp minus the logit of its target slot.
        """
        import torch

        mean = torch.tanh(raw.index_select(1, self.values))
        nll = ((x.index_select(1, self.values) - mean) ** 2 / (2 * sigma**2)).sum()
        nll = nll + len(x) * torch.log(sigma).sum()
        logits = raw.index_select(1, self.order)
        nll = nll - (x.index_select(1, self.order) * logits).sum()
        for group in self._grouped(logits):
            nll = nll + torch.logsumexp(group, dim=1).sum()
        return nll

    def activate(
        self,
        raw: torch.Tensor,
        sigma: torch.Tensor,
        generator: torch.Generator,
        drawn: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Values drawn from their Gaussians (within [-1, 1]), probabilities on each span.

        For generation only (no gradient): the softmax is computed in place on the gathered
        logits, which saves two copies of the widest part of the matrix. With ``drawn``
        (matrix columns and their values: a discrete context's draws, which cover every
        softmax span), those values are written instead and no softmax is computed.
        """
        import torch

        with torch.no_grad():
            out = torch.empty_like(raw)
            mean = torch.tanh(raw.index_select(1, self.values))
            noise = torch.randn(mean.shape, generator=generator, device=mean.device)
            out[:, self.values] = (mean + sigma * noise).clamp(-1.0, 1.0)
            if drawn is not None:
                return out.index_copy_(1, *drawn)
            logits = raw.index_select(1, self.order)
            for group in self._grouped(logits):
                group.sub_(group.amax(dim=1, keepdim=True)).exp_()
                group.div_(group.sum(dim=1, keepdim=True))
            out.index_copy_(1, self.order, logits)
        return out
