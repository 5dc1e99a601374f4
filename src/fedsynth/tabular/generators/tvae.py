"""TVAE: a variational autoencoder for mixed clinical tables; new rows decode codes from N(0, I)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedsynth.core.registry import register
from fedsynth.tabular.generators._vae import VAEGenerator

if TYPE_CHECKING:
    import torch


@register("tvae")
class TVAE(VAEGenerator):
    """Tabular variational autoencoder (Xu et al. 2019).

    The table is encoded by :class:`~fedsynth.tabular.transforms.TableEncoder` (mode-specific
    normalisation, one-hot categories, missingness indicators, log durations). An MLP encoder
    maps a row to a Gaussian posterior over ``latent_dim`` latent variables; an MLP decoder maps
    a latent code to a Gaussian over each normalised value (with a learned standard deviation
    per value column) and a categorical distribution over each one-hot span. Training minimises
    ``loss_factor`` x reconstruction negative log-likelihood + KL divergence from N(0, I).

    New rows decode codes drawn from N(0, I); each feature is then drawn from its decoded
    distribution. The duration and event of a survival pair, and a value and its missingness
    indicator, are decoded from the same code, so they are generated jointly.

    With ``autoregressive`` (the default, a fedsynth addition to TVAE), the discrete columns,
    the missingness indicators and the modes of the numeric values are drawn one after another,
    each from logits that add a learned linear function of those drawn before it to the
    decoded ones (see :mod:`fedsynth.tabular.generators._autoregressive`). Independent draws
    given the code lose what the code leaves out, and a VAE leaves out the structure that few rows
    carry: on the simulated MDS cohort, rare splicing-factor mutations that never occur together
    came out together nearly as often as independent genes would (VAE-BGM's GSF 0.70); with the
    context they stay exclusive (GSF 0.96), for about 10 % more training time.

    Parameters
    ----------
    epochs : int, default 120
        Passes over the training rows.
    max_steps : int or None, default 10000
        Optimiser steps of one fit, at most, in whole epochs (at least one): a large table
        trains for fewer epochs, ``max_steps // (rows // batch_size)``, so that a fit's time
        stops growing with the rows (a 1,000,000-row table trains 5 epochs instead of 120; see
        ``benchmarks/results/scale.md``). Tables of up to ``max_steps * batch_size / epochs``
        rows (41,666 by default) train every epoch. ``None``: no cap. Not applied under ``dp``,
        whose accounting fixes the epochs.
    batch_size : int, default 500
        Rows per optimisation step (at most the number of training rows).
    lr : float, default 1e-3
        Adam learning rate.
    weight_decay : float, default 1e-5
        Adam L2 penalty.
    latent_dim : int, default 16
        Dimension of the latent space.
    hidden_dims : tuple of int, default (128, 128)
        Widths of the encoder's hidden layers (the decoder's, reversed).
    loss_factor : float, default 2.0
        Weight of the reconstruction against the KL term: larger reconstructs rows more
        sharply, smaller keeps the codes closer to N(0, I).
    autoregressive : bool, default True
        Draw the discrete spans in order, each given the code and the spans before it (above);
        ``False`` for TVAE's independent draws given the code. The context's weights learn
        at ten times ``lr`` (they start at zero and have far to go).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the rows, stop when their loss (decoded from the
        posterior mean) has not improved for ``patience`` epochs, and keep the best epoch.
    patience : int, default 10
        Epochs without improvement before early stopping.
    validation_fraction : float, default 0.1
        Share of the rows held out for early stopping.
    dp : dict, optional
        Differential privacy, e.g. ``{"epsilon": 1.0, "delta": 1e-5}`` (see
        :class:`~fedsynth.core.privacy.DPConfig` and the Notes); ``None`` for none.
    device : str, default "auto"
        ``"auto"`` (CUDA when available, else the CPU), ``"cpu"`` or ``"cuda[:N]"``.
    verbose : bool, default False
        Show a progress bar with the losses.
    seed : int or None, default 0
        Seed of the encoder, the initial weights, the batches and the draws: the same seed
        gives the same samples on the CPU.

    Attributes
    ----------
    encoder_ : TableEncoder
        The fitted table encoder.
    encoder_net_, decoder_net_ : torch.nn.Module
        The VAE's networks (plain modules, which Opacus can wrap).
    history_ : list of dict
        Per epoch: ``epoch``, ``loss`` (per row) and, with early stopping, ``validation``.
        Under ``dp`` only ``epoch``: the losses are computed on real rows without noise.
    privacy_spent_ : PrivacyLedger or None
        With ``dp``: every spend and their total (``.epsilon``, ``.delta``); ``None`` without.
    device_ : torch.device
        Where the networks live.
    metadata_ : Metadata
        The resolved metadata of the training table.

    Notes
    -----
    Conditional sampling is native: the latent codes are reweighted by the probability the
    decoder gives the conditions (see ``_sample_conditioned``), which also accepts numeric
    conditions. Unlike SDV's TVAE, the default latent space is small (16) and the loss treats
    all spans in one vectorised pass; 120 epochs of 500 rows reach its quality in a fraction of
    its time.

    With ``dp=`` the model is (epsilon, delta)-differentially private for add/remove
    neighbours, the budget spent in this order (each part recorded in ``privacy_spent_``):

    1. the domain: when some numeric bounds or category lists are not declared public (see
       :func:`fedsynth.tabular.privacy.declare_public`), ``domain_fraction`` of epsilon (and
       of delta for category lists) releases them; nothing otherwise;
    2. ``pretrain_fraction`` (half) of the rest: a DP proxy generator (``pretrain``, PrivBayes
       by default) fitted on the rows, the released domains as public facts; the encoder
       (modes of numeric columns, categories) is fitted on rows drawn from it, and the
       autoencoder pretrained on them for ``pretrain_epochs`` (post-processing). With
       ``pretrain=None``, a tenth of the rest instead: Laplace histograms of the columns, from
       which a proxy table is drawn that the encoder is fitted on, and no pretraining;
    3. the rest of epsilon and delta: DP-SGD on the whole autoencoder. Each step draws every row
       with probability ``batch_size / n`` (Poisson sampling), clips each row's gradient to
       ``max_grad_norm`` and adds Gaussian noise; the noise multiplier is the smallest with
       which the planned epochs stay within the budget under Opacus's RDP (or PRV) accountant,
       and the spend records ``(noise multiplier, sample rate, steps)`` for anyone to
       recompute it.

    The total is the sum of the parts (basic composition). Each ``fit(..., warm_start=True)``
    goes on at the same noise and adds the cost of its epochs, refused beforehand if it would
    exceed ``max_epsilon``. Early stopping is refused under ``dp`` (its validation rows would
    be read without noise). Sampling is post-processing. Outside the guarantee, from the shared
    base class: the exact row count ``n_rows_``, which columns are constant and their value,
    and the copy guard (fingerprints of training rows saved with the model, and refusing
    synthetic rows equal to a training row).

    References
    ----------
    Xu L, Skoularidou M, Cuesta-Infante A, Veeramachaneni K. Modeling tabular data using
    conditional GAN. NeurIPS 2019.

    Examples
    --------
    >>> import fedsynth
    >>> real = fedsynth.datasets.mds_cohort(n=500, seed=0)
    >>> gen = fedsynth.make("tvae", epochs=50, seed=0).fit(real)  # doctest: +SKIP
    >>> gen.sample(3, conditions={"TP53": 1})["TP53"].tolist()  # doctest: +SKIP
    [1, 1, 1]
    """

    def _latent(self, n: int, generator: torch.Generator) -> torch.Tensor:
        import torch

        return torch.randn((n, int(self.latent_dim)), generator=generator, device=self.device_)
