"""CTGAN: a conditional Wasserstein GAN for mixed clinical tables (Xu et al. 2019)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fedsynth.core.privacy.config import DPConfig
from fedsynth.core.registry import register
from fedsynth.tabular.generators._ctgan_networks import build_discriminator, build_generator
from fedsynth.tabular.generators._ctgan_private import PrivateCriticTraining
from fedsynth.tabular.generators._ctgan_sampler import SpanLayout
from fedsynth.tabular.generators._ctgan_sampling import (
    PRECISIONS,
    ConditionedSampling,
    precision_problem,
)
from fedsynth.tabular.generators._ctgan_training import AdversarialTraining
from fedsynth.tabular.generators._neural import NeuralGenerator
from fedsynth.tabular.transforms import TableEncoder

if TYPE_CHECKING:
    import torch


@register("ctgan")
class CTGAN(ConditionedSampling, PrivateCriticTraining, AdversarialTraining, NeuralGenerator):
    """Conditional tabular GAN (CTGAN, Xu et al. 2019), trained with WGAN-GP.

    The table is encoded by :class:`~fedsynth.tabular.transforms.TableEncoder` (mode-specific
    normalisation of numeric columns, one-hot categories, missingness indicators, log
    durations). The generator maps Gaussian noise and a *conditional vector* (the one-hot of one
    category of one discrete column) through residual blocks to a row: ``tanh`` on each
    normalised value, a softmax on each one-hot span. A PacGAN critic scores packs of ``pac``
    rows with their conditional vectors; it is trained with the Wasserstein loss and a gradient
    penalty (weight 10), the generator with the critic's score, the cross-entropy between its
    conditioned span and the condition, and a moment-matching term: the distance between the
    means and second moments of its rows and of the real rows drawn under the same conditions.

    Conditions are drawn by *training-by-sampling*: a discrete column uniformly, one of its
    categories with probability proportional to ``log(1 + count)``, and a real row holding it,
    so that rare categories (a rare mutation, a small site) are learnt. New rows are generated
    under conditions drawn from the empirical frequencies, which gives back the table's
    distribution. The duration and event of a survival pair, and a value and its missingness
    indicator, come out of the same row of the generator: they are generated jointly.

    Parameters
    ----------
    epochs : int, default 150
        Passes over the training rows; an epoch is ``n // batch_size`` steps (at least one).
    batch_size : int, default 400
        Rows per step; a multiple of ``pac``. Conditions and real rows are drawn with
        replacement, so it may exceed the number of training rows.
    generator_lr, discriminator_lr : float, default 2e-4
        Adam learning rates (betas 0.5 and 0.9, as in CTGAN).
    generator_decay, discriminator_decay : float, default 1e-6
        Adam L2 penalties.
    discriminator_steps : int, default 1
        Critic updates per generator update.
    pac : int, optional
        Rows the critic scores together (PacGAN), which penalises a generator that collapses
        onto a few modes. By default 10, as in CTGAN, and 1 under ``dp``, where a pack is the
        unit whose gradient is clipped and noised, so packs of 10 rows leave a tenth as many
        units per step against the same noise (see the Notes).
    embedding_dim : int, default 128
        Dimension of the generator's input noise.
    generator_dims : tuple of int, default (256, 256)
        Widths of the generator's residual blocks.
    discriminator_dims : tuple of int, default (256, 256)
        Widths of the critic's hidden layers.
    moment_weight : float, default 1.0
        Weight of the moment-matching term of the generator's loss: the distance between the
        column means, plus the distance between the second-moment matrices, of the step's fake
        rows and the real rows drawn under the same conditions, both as the critic sees them
        (see the Notes). ``0`` gives CTGAN's loss.
    gumbel_softmax : bool, optional
        Show the critic Gumbel-softmax samples of the generator's one-hot spans (temperature
        0.2), as CTGAN does, rather than their softmax probabilities, which make the generator
        choose categories jointly (see the Notes). By default ``False``, and ``True`` under
        ``dp``, where softmax measured worse.
    sample_precision : {"auto", "float32", "bfloat16"}, default "auto"
        Precision of the generator's matrix products when sampling; training is always in
        float32. ``"auto"`` is bfloat16 on a CPU that computes it natively (AVX512-BF16 or
        AMX), about 1.5 times as fast with the same scores (see the Notes), and float32
        elsewhere (CUDA included). ``"bfloat16"`` on a CPU without native support is emulated
        and slower.
    early_stopping : bool, default False
        Must stay ``False``: a GAN has no validation loss that tracks sample quality (the
        critic's score moves with the critic), so there is nothing sound to stop on.
    patience : int, default 10
        Unused while ``early_stopping`` is ``False``; kept for the neural generators' interface.
    validation_fraction : float, default 0.1
        Unused while ``early_stopping`` is ``False``; kept for the neural generators' interface.
    dp : dict, optional
        Differential privacy, e.g. ``{"epsilon": 1.0, "delta": 1e-5}`` (see
        :class:`~fedsynth.core.privacy.DPConfig` and the Notes); ``None`` for none.
    device : str, default "auto"
        ``"auto"`` (CUDA when available, else the CPU), ``"cpu"`` or ``"cuda[:N]"``.
    verbose : bool, default False
        Show a progress bar with the epoch's mean losses.
    seed : int or None, default 0
        Seed of the encoder, the initial weights and every draw of training and sampling: the
        same seed gives the same samples on the CPU.

    Attributes
    ----------
    encoder_ : TableEncoder
        The fitted table encoder.
    generator_, discriminator_ : torch.nn.Module
        The two networks: plain modules, which Opacus can wrap. :meth:`get_weights` returns
        both (generator first), so federated averaging averages both.
    layout_ : SpanLayout
        The encoder's spans and the conditional vector's layout, as index tensors.
    pac_ : int
        Rows per critic pack, fixed when the critic is built (``pac`` or its default).
    history_ : list of dict
        Per epoch, means over its steps: ``generator`` (the critic's score of fake rows,
        negated), ``conditional`` (the generator's cross-entropy on its conditions),
        ``moments`` (the moment-matching distance, before its weight), ``discriminator``
        (Wasserstein loss) and ``penalty`` (gradient penalty). Under ``dp`` only ``epoch``: the
        critic's losses are computed on real rows without noise.
    privacy_spent_ : PrivacyLedger or None
        With ``dp``: every spend and their total (``.epsilon``, ``.delta``); ``None`` without.
    device_ : torch.device
        Where the networks live.
    metadata_ : Metadata
        The resolved metadata of the training table.

    Notes
    -----
    ``fit(data, epochs=k, warm_start=True)`` continues training both networks with their
    optimisers' state when the model was trained in this process; a model restored by
    :func:`fedsynth.load` continues with fresh Adam moments (they are not saved). Conditions and
    real rows are drawn from the rows of the data passed to that call, so a site continues on
    its own categories.

    ``sample(n, conditions=...)`` conditions the generator on the rarest of the discrete
    conditions (the one the conditional vector helps most) and keeps, by bounded rejection
    sampling, the rows that meet every condition. Numeric conditions are refused: CTGAN has no
    conditional vector for a value.

    With ``dp=`` the model is (epsilon, delta)-differentially private for add/remove
    neighbours. The domains, the encoder and the pretraining are as for
    :class:`~fedsynth.tabular.generators.tvae.TVAE` (``domain_fraction`` of the budget for the
    domains not declared public, ``pretrain_fraction`` of the rest for a DP proxy generator
    whose rows the encoder is fitted on and both networks pretrained on, by
    training-by-sampling on the proxy rows); the rest trains the critic with DP-SGD, the only
    network that reads real rows:

    * each critic update draws every row with probability ``batch_size / n`` (Poisson
      sampling; an epoch is ``round(n / batch_size)`` critic updates, a generator update after
      every ``discriminator_steps`` of them);
    * with ``pac=1`` (the default under ``dp``) each drawn row is a sample of its own, scored
      against a fake row and with its condition its own category in a discrete column drawn
      uniformly (training-by-sampling would read category counts, which are not private).
      The gradient of its Wasserstein loss and gradient penalty (computed per row with
      ``torch.func``, double backward included) is clipped to ``max_grad_norm``: a row added
      or removed adds or removes one sample, the sensitivity that the noise
      (``noise_multiplier * max_grad_norm``) and the Opacus accountant assume. The noisy sum
      is divided by ``batch_size``;
    * with ``pac > 1`` each drawn row joins one of ``batch_size / pac`` packs at random,
      independently of the other rows (a pack keeps at most ``pac`` rows, in a random order;
      the real and fake packs hold the same fake rows where a pack has fewer than ``pac`` real
      rows). A row then changes one pack rather than adding one, so each pack's gradient is
      clipped to ``max_grad_norm / 2`` and the noisy sum divided by the number of packs: a
      tenth as many units as rows against the same noise, with half the clip. On SUPPORT2
      (30 epochs, batch 500, seed 0) packs of 10 gave an event AUROC of 0.58-0.59 and a
      quality of 0.18-0.21 at epsilon 1 and 5, where rows as samples gave 0.61 and 0.82, and
      0.36 and 0.63 (``benchmarks/results/dp.md``).

    The generator only ever sees the private critic and conditions drawn from the private
    category frequencies (also those of its fake rows in the critic's packs, and of generated
    rows): its updates are post-processing. So is sampling. The total is the sum of the parts
    (basic composition); warm starts, the budget cap and what lies outside the guarantee are
    as for :class:`~fedsynth.tabular.generators.tvae.TVAE`.

    **Moment matching.** Trained by the critic alone, as in CTGAN, the generator matched the
    data's marginals poorly within 150 epochs: on SUPPORT2 its normalised lab values sat far
    from the data's (``bun``, median 24 in the data, came out at 3.9; SDMetrics' column-shape
    score 0.815, SDV's CTGAN 0.835). The moment term (``moment_weight``, see
    :func:`moment_distance`) compares the step's fake rows with the real rows drawn under the
    same conditions: their column means, and their mean pairwise products, which on one-hot
    spans are the pairwise contingency tables of categories, modes and missingness. It is the
    information loss of table-GAN and CTAB-GAN, taken on the rows rather than on the critic's
    features, with second moments in place of standard deviations so that pairwise relations
    are matched too. Under ``dp`` it is used while pretraining on the DP proxy's rows and left
    out of the private phase, whose generator updates read no real row.

    **Gumbel-softmax or softmax.** Trained on Gumbel-softmax samples, the generator can keep
    its discrete outputs soft (on SUPPORT2, a mode probability of 0.36 +- 0.11 across rows) and
    let the Gumbel noise pick: every span then draws on noise of its own, and relations
    between columns are learnt slowly (the correlation of ``surv2m`` and ``surv6m``, 0.96 in
    the data, came out at 0.00 after 150 epochs without the moment term; SDV's CTGAN gave 0.42
    after 300). On softmax probabilities the critic can tell a soft output from a real one-hot
    row, so the generator must make its choices from its own input noise, jointly; on three
    categorical columns that determine one another (1,000 rows, 1,000 steps) softmax kept them
    consistent in 99.9-100 % of rows, Gumbel-softmax in 84-86 %. Without the moment term
    softmax made rare values rarer (on the MDS cohort after 800 steps, haemoglobin, 1 %
    missing, came out 0.0-0.2 % missing); with it, 0.5-0.6 % (200 epochs of 500 rows).

    Measured after 150 epochs (``benchmarks/generators.py``'s split and scores, seed 0; SDMetrics
    quality and the event's train-on-synthetic AUROC):

    ===================================  ==================  ==================
    setting                              SUPPORT2            FLCHAIN
    ===================================  ==================  ==================
    CTGAN (Gumbel-softmax, no moments)   0.739, AUROC 0.587  0.859, AUROC 0.924
    Gumbel-softmax and moments           0.869, AUROC 0.799  0.918, AUROC 0.978
    softmax and moments, batches of 500  0.903, AUROC 0.835  0.934, AUROC 1.000
    same, batches of 400 (default)       0.911, AUROC 0.847  0.943, AUROC 1.000
    SDV's CTGAN (300 epochs)             0.808, AUROC 0.799  0.842, AUROC 0.999
    ===================================  ==================  ==================

    On two other splits and seeds (1, 2) of SUPPORT2, batches of 400 gave 0.910 and 0.904
    (AUROC 0.860, 0.832) against 0.902 and 0.900 (0.859, 0.832) with batches of 500: the
    same epochs in a quarter more generator steps, at about the same CPU time (an epoch's cost
    follows its rows). Batches of 300 gave 0.913 but took a third longer; 180 epochs of 500
    rows, 0.909 in a fifth longer.

    Under ``dp`` (``benchmarks/dp.py``, SUPPORT2, 30 epochs, seed 0) softmax did worse: event
    AUROC 0.712, 0.536 and 0.592 and quality 0.525, 0.625 and 0.651 at epsilon 5, 10 and 40,
    where Gumbel-softmax (both with the moment term in the pretraining on the DP proxy) gave
    0.764 and 0.648 at epsilon 5 (presumably because a critic trained on noisy gradients
    tells soft outputs from one-hot rows less well), so the default there stays CTGAN's.

    **Sampling in bfloat16.** The generator's three matrix products are most of the cost of sampling
    (on SUPPORT2, per 102,400 rows: 1.05 CPU s of the network's 1.32, against 0.3 for the
    activation and 0.67 for decoding), and a CPU with AVX512-BF16 computes them in bfloat16 2.8
    times as fast. Measured on such a CPU (AMD EPYC) with a model of SUPPORT2 and three draws of
    6,373 rows: 64,000 rows per CPU s against 43,100 in float32; SDMetrics quality 0.9046,
    0.8992, 0.9037 against 0.9045, 0.8992, 0.9035; event AUROC 0.838, 0.838, 0.839 against
    0.838, 0.845, 0.845 (the draws themselves move it by as much); the Kaplan-Meier gaps within
    0.0002. Rounding the outputs to bfloat16 (8 significant bits, a relative error under 0.4 %)
    changes a draw only where two categories are nearly tied, and moves a value within its mode
    by a fraction of a per cent of the mode's spread.

    The defaults are CTGAN's except ``epochs`` (150 instead of 300, to fit in at most a third of
    SDV's time), ``batch_size`` (400 instead of 500, above), ``moment_weight``,
    ``gumbel_softmax`` and ``sample_precision``. (``benchmarks/dp.py`` trains with batches of
    500 under ``dp``.) A step also costs less than SDV's: the critic's last fake batch is reused
    for the generator's update (one generator pass per step instead of two, no gradient through
    the generator in the critic's update), conditions and real rows are drawn with a few tensor
    operations, and Adam is fused.

    References
    ----------
    Xu L, Skoularidou M, Cuesta-Infante A, Veeramachaneni K. Modeling tabular data using
    conditional GAN. NeurIPS 2019.

    Gulrajani I, Ahmed F, Arjovsky M, Dumoulin V, Courville A. Improved training of Wasserstein
    GANs. NeurIPS 2017.

    Lin Z, Khetan A, Fanti G, Oh S. PacGAN: the power of two samples in generative adversarial
    networks. NeurIPS 2018.

    Park N, Mohammadi M, Gorde K, Jajodia S, Park H, Kim Y. Data synthesis based on generative
    adversarial networks. PVLDB 11(10), 2018 (table-GAN's information loss).

    Zhao Z, Kunar A, Birke R, Chen LY. CTAB-GAN: effective table data synthesizing. ACML 2021.

    Examples
    --------
    >>> import fedsynth
    >>> real = fedsynth.datasets.mds_cohort(n=500, seed=0)
    >>> gen = fedsynth.make("ctgan", epochs=30, seed=0).fit(real)  # doctest: +SKIP
    >>> gen.sample(3, conditions={"TP53": 1})["TP53"].tolist()  # doctest: +SKIP
    [1, 1, 1]
    """

    native_conditioning = True

    def __init__(
        self,
        *,
        epochs: int = 150,
        batch_size: int = 400,
        generator_lr: float = 2e-4,
        discriminator_lr: float = 2e-4,
        generator_decay: float = 1e-6,
        discriminator_decay: float = 1e-6,
        discriminator_steps: int = 1,
        pac: int | None = None,
        embedding_dim: int = 128,
        generator_dims: tuple[int, ...] = (256, 256),
        discriminator_dims: tuple[int, ...] = (256, 256),
        moment_weight: float = 1.0,
        gumbel_softmax: bool | None = None,
        sample_precision: str = "auto",
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
        self.generator_lr = generator_lr
        self.discriminator_lr = discriminator_lr
        self.generator_decay = generator_decay
        self.discriminator_decay = discriminator_decay
        self.discriminator_steps = discriminator_steps
        self.pac = pac
        self.embedding_dim = embedding_dim
        self.generator_dims = generator_dims
        self.discriminator_dims = discriminator_dims
        self.moment_weight = moment_weight
        self.gumbel_softmax = gumbel_softmax
        self.sample_precision = sample_precision
        self.early_stopping = early_stopping
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.dp = dp
        self.device = device
        self.verbose = verbose
        self.seed = seed

    # ------------------------------------------------------------------ checks
    def _check_training_params(self) -> None:
        problems = []
        for name in ("epochs", "batch_size", "discriminator_steps", "pac", "embedding_dim"):
            value = getattr(self, name)
            if not _positive_int(value) and not (name == "pac" and value is None):
                problems.append(f"{name} must be a positive integer, got {value!r}")
        for name in ("generator_lr", "discriminator_lr"):
            value = getattr(self, name)
            if not (_number(value) and value > 0):
                problems.append(f"{name} must be a positive number, got {value!r}")
        for name in ("generator_decay", "discriminator_decay", "moment_weight"):
            value = getattr(self, name)
            if not (_number(value) and value >= 0):
                problems.append(f"{name} must be a number >= 0, got {value!r}")
        for name in ("generator_dims", "discriminator_dims"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or not all(_positive_int(v) for v in value):
                problems.append(f"{name} must be a tuple of positive integers, got {value!r}")
        pac = self._pac() if self.pac is None else self.pac
        if _positive_int(self.batch_size) and _positive_int(pac) and self.batch_size % pac:
            problems.append(
                f"batch_size ({self.batch_size}) must be a multiple of pac ({pac}): the "
                f"critic scores rows in packs of pac, e.g. batch_size="
                f"{max(pac, self.batch_size // pac * pac)}"
            )
        if self.sample_precision not in PRECISIONS:
            problems.append(precision_problem(self.sample_precision))
        if self.gumbel_softmax is not None and not isinstance(
            self.gumbel_softmax, (bool, np.bool_)
        ):
            problems.append(
                f"gumbel_softmax must be True, False or None, got {self.gumbel_softmax!r}"
            )
        if self.early_stopping is not False:
            problems.append(
                "early_stopping must be False: a GAN has no validation loss that tracks the "
                "quality of its samples; choose the number of epochs instead"
            )
        self._raise_invalid_params(problems)

    def _pac(self) -> int:
        """Rows per critic pack: ``pac``, or by default 10 (CTGAN's) and 1 under ``dp``."""
        if self.pac is not None:
            return int(self.pac)
        return 10 if self.dp is None else 1

    # ------------------------------------------------------------------ NeuralGenerator hooks
    def _build(self, encoder: TableEncoder) -> None:
        import torch

        self.layout_ = SpanLayout(encoder, self.device_)
        cond_dim = self.layout_.cond_dim
        self.generator_ = build_generator(
            int(self.embedding_dim), cond_dim, tuple(self.generator_dims), encoder.output_dim_
        ).to(self.device_)
        # Fixed with the critic's width: a later set_params(dp=...) cannot change it.
        self.pac_ = self._pac()
        self.discriminator_ = build_discriminator(
            encoder.output_dim_ + cond_dim, tuple(self.discriminator_dims), self.pac_
        ).to(self.device_)
        # The training loop switches to train() each epoch; a loaded model must sample with
        # the batch-norm statistics it learnt, so the networks start in eval mode.
        self.generator_.eval()
        self.discriminator_.eval()
        # The fused Adam kernel (CPU and CUDA) is several times faster than the per-tensor loop
        # for these million-weight layers; it is still a plain optimiser that Opacus can wrap.
        self.generator_optimizer_ = torch.optim.Adam(
            self.generator_.parameters(),
            lr=self.generator_lr,
            betas=(0.5, 0.9),
            weight_decay=self.generator_decay,
            fused=True,
        )
        self.discriminator_optimizer_ = torch.optim.Adam(
            self.discriminator_.parameters(),
            lr=self.discriminator_lr,
            betas=(0.5, 0.9),
            weight_decay=self.discriminator_decay,
            fused=True,
        )
        # Conditions of generated rows: a discrete column uniformly, then one of its
        # categories with its training frequency; flattened over the conditional vector.
        frequencies = encoder.category_probabilities(log_frequency=False)
        flat = [frequencies[span.column] for span in self.layout_.discrete]
        self._generation_slots = (
            torch.tensor(np.concatenate(flat) / len(flat), dtype=torch.float32).to(self.device_)
            if flat
            else None
        )

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"generator": self.generator_, "discriminator": self.discriminator_}


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
