"""Per-site offsets of a federated VAE's decoder outputs: each site's case mix after FedAvg.

Under FedAvg every row a site trains on carries the same site value, so local training never
shows how the site relates to the other columns, and the averaged decoder hardly tells the
sites apart: on the built-in cohort's three sites, the synthetic mean age came out 71.6 at every
site where the real means are 73.2, 69.8 and 67.9. The site's latent mixture cannot carry the
difference either, because the VAE's posterior is close to its prior (posterior log-variances
near -0.1), so the sites' latent codes overlap.

A site therefore fits, on its own rows and with the averaged networks frozen, one vector added
to the decoder's raw outputs (value means before tanh, logits of every discrete span) that
maximises the likelihood of its rows, with a standard normal prior on each entry (MAP): the
smallest change of the global model that describes the site. It is computed with the site's
other data-derived state (VAE-BGM's latent mixture) for the final global weights and travels
with it; the server keeps one offset per site category, and sampling conditioned on a site adds
that site's offset. Personalised output layers of this kind are the "FedPer" family (Arivazhagan
et al. 2019); here only the offset is personal, the networks stay shared.

What leaves the site is a vector of the decoder's output width, a summary of its rows like the
mixture. Under ``dp=`` no offset is fitted: it is computed from the rows without noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from fedsynth.tabular.generators._vae import VAEGenerator

#: Adam steps and learning rate of the fit: the offset is a few hundred numbers, and the loss
#: a smooth function of them (a log-likelihood of the outputs shifted by it).
_STEPS = 300
_LR = 0.05
#: Rows per step: the fit's cost stays bounded however many rows the site has.
_BATCH = 4096


def fit_site_offset(
    generator: VAEGenerator, data: torch.Tensor, torch_generator: torch.Generator
) -> np.ndarray:
    """The MAP offset of the decoder's raw outputs for ``data`` (encoded rows of one site).

    Parameters
    ----------
    generator : VAEGenerator
        A trained VAE; its networks are not changed.
    data : Tensor of shape (n_rows, output_dim)
        The site's rows, encoded.
    torch_generator : torch.Generator
        Source of the posterior draws and the batches.

    Returns
    -------
    ndarray of shape (output_dim,)
    """
    import torch

    encoder, decoder = generator.encoder_net_, generator.decoder_net_
    device = generator.device_
    with torch.no_grad():
        mean, log_var = generator._posterior(data)
        std = torch.exp(0.5 * log_var)
    data = data.to(device)
    offset = torch.zeros(data.shape[1], device=device, requires_grad=True)
    optimizer = torch.optim.Adam([offset], lr=_LR)
    n = len(data)
    frozen = [p for p in [*encoder.parameters(), *decoder.parameters()] if p.requires_grad]
    with torch.enable_grad():
        for p in frozen:
            p.requires_grad_(False)
        try:
            for _ in range(_STEPS):
                rows = (
                    torch.randint(n, (_BATCH,), generator=torch_generator).to(device)
                    if n > _BATCH
                    else torch.arange(n, device=device)
                )
                noise = torch.randn((len(rows), mean.shape[1]), generator=torch_generator).to(
                    device
                )
                z = mean[rows] + std[rows] * noise
                x = data[rows]
                raw = decoder.body(z) + offset
                if decoder.context is not None:
                    raw = decoder.context.shift(raw, x)
                nll = generator.layout_.nll(raw, x, decoder.sigma)
                # Per row: the likelihood term as in training, the prior once over all rows.
                loss = generator.loss_factor * nll / len(x) + 0.5 * (offset**2).sum() / n
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        finally:
            for p in frozen:
                p.requires_grad_(True)
    return offset.detach().cpu().numpy().astype(np.float64)


def merge_site_offsets(
    offsets: Sequence[np.ndarray], rows: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The sites' offsets as one table: per site category, the row-weighted mean of the offsets
    reported for it (one site per category in a federation), and the rows behind each.

    Parameters
    ----------
    offsets : list of ndarray of shape (n_site_categories, output_dim)
        Each state's offsets (zeros for the categories it has no rows of).
    rows : list of ndarray of shape (n_site_categories,)
        Each state's rows per site category.

    Returns
    -------
    offsets : ndarray of shape (n_site_categories, output_dim)
    rows : ndarray of shape (n_site_categories,)

    Examples
    --------
    >>> a = np.array([[1.0, 1.0], [0.0, 0.0]]); b = np.array([[0.0, 0.0], [2.0, 4.0]])
    >>> merge_site_offsets([a, b], [np.array([10.0, 0.0]), np.array([0.0, 5.0])])[0]
    array([[1., 1.],
           [2., 4.]])
    """
    total = np.sum(rows, axis=0)
    weighted = sum(o * r[:, None] for o, r in zip(offsets, rows, strict=True))
    merged = np.where(total[:, None] > 0, weighted / np.where(total > 0, total, 1.0)[:, None], 0.0)
    return merged, total
