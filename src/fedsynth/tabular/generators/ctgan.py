"""CTGAN: a conditional Wasserstein GAN for mixed clinical tables (Xu et al. 2019)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fedsynth.core.privacy.config import DPConfig
from fedsynth.core.registry import register
from fedsynth.exceptions import ConditionError
from fedsynth.tabular.generators._ctgan_sampler import SpanLayout, TrainingSampler
from fedsynth.tabular.generators._neural import NeuralGenerator, _torch_seed
from fedsynth.tabular.generators._neural_private import private_step
from fedsynth.tabular.generators.base import rejection_sample
from fedsynth.tabular.transforms import TableEncoder

if TYPE_CHECKING:
    import torch

    from fedsynth.core.privacy.dp_sgd import PrivateTraining

# Weight of the gradient penalty of WGAN-GP (Gulrajani et al. 2017), as in CTGAN.
_PENALTY = 10.0
_PRECISIONS = ("auto", "float32", "bfloat16")


def build_generator(
    embedding_dim: int, cond_dim: int, dims: tuple[int, ...], output_dim: int
) -> torch.nn.Module:
    """CTGAN's generator: residual blocks, each appending its output to its input."""
    import torch
    from torch import nn

    class Residual(nn.Module):
        def __init__(self, width: int, size: int):
            super().__init__()
            self.fc = nn.Linear(width, size)
            self.bn = nn.BatchNorm1d(size)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([torch.relu(self.bn(self.fc(x))), x], dim=1)

    layers: list[nn.Module] = []
    width = embedding_dim + cond_dim
    for size in dims:
        layers.append(Residual(width, size))
        width += size
    layers.append(nn.Linear(width, output_dim))
    return nn.Sequential(*layers)


def build_discriminator(input_dim: int, dims: tuple[int, ...], pac: int) -> torch.nn.Module:
    """PacGAN critic: scores packs of ``pac`` rows (with their conditions) laid side by side."""
    from torch import nn

    class Discriminator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            width = input_dim * pac
            for size in dims:
                layers += [nn.Linear(width, size), nn.LeakyReLU(0.2), nn.Dropout(0.5)]
                width = size
            layers.append(nn.Linear(width, 1))
            self.body = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x.reshape(-1, input_dim * pac))

    return Discriminator()


@register("ctgan")
class CTGAN(NeuralGenerator):
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
        if self.sample_precision not in _PRECISIONS:
            problems.append(_precision_problem(self.sample_precision))
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
        if problems:
            raise ValueError(
                f"invalid {type(self).__name__} parameter(s):\n  - " + "\n  - ".join(problems)
            )

    def _sampling_precision(self) -> str:
        """``sample_precision`` resolved for the model's device: ``"float32"`` or
        ``"bfloat16"``."""
        if self.sample_precision not in _PRECISIONS:
            raise ValueError(_precision_problem(self.sample_precision))
        if self.sample_precision != "auto":
            return str(self.sample_precision)
        return "bfloat16" if self.device_.type == "cpu" and native_bfloat16_cpu() else "float32"

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
                torch.manual_seed(_torch_seed(rng))
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
                fake = _with(self._activate(raw), cond)
            # Real rows under the same conditions as the fake ones, each holding its condition.
            rows = self._sampler.rows(column, category, n)
            real = _with(rows, cond)
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
        return self.generator_(_with(noise, cond))

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
        return _PENALTY * ((norms - 1) ** 2).mean()

    # ------------------------------------------------------------------ DP-SGD (see Notes)
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
            fake = _with(self._activate(self._fake(packs * pac, cond)), cond)
        real = fake.clone()
        own = None if slots is None else self.layout_.one_hot(self._own_conditions(rows))
        real[position] = _with(rows, own)
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
                parts.append(_with(self._activate(self._fake(size, part)), part))
            fake = torch.cat(parts)[:n]
        own = None if slots is None else self.layout_.one_hot(self._own_conditions(batch))
        real = _with(batch, own)
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
            penalty = _PENALTY * (grad(score)(mixed).norm() - 1) ** 2
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
        fake = _with(self._activate(raw), cond)
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

    def _generate(
        self, n: int, generator: torch.Generator, slot: int | None = None
    ) -> torch.Tensor:
        """Activated rows; conditioned on conditional-vector ``slot``, else on drawn conditions."""
        import torch

        noise = torch.randn((n, int(self.embedding_dim)), generator=generator, device=self.device_)
        if self._generation_slots is not None:
            if slot is None:
                slots = torch.multinomial(
                    self._generation_slots, n, replacement=True, generator=generator
                )
            else:
                slots = torch.full((n,), slot, dtype=torch.long, device=self.device_)
            noise = torch.cat([noise, self.layout_.one_hot(slots)], dim=1)
        if self._sampling_precision() == "bfloat16":
            # The matrix products dominate sampling's cost; activation and decoding stay in
            # float32, where the draws are made.
            with torch.autocast(self.device_.type, dtype=torch.bfloat16):
                raw = self.generator_(noise)
            return self.layout_.activate(raw.float())
        return self.layout_.activate(self.generator_(noise))

    # ------------------------------------------------------------------ conditional sampling
    def _sample_conditioned(
        self, n: int, conditions: dict[str, Any], rng: np.random.Generator
    ) -> pd.DataFrame:
        """Rows meeting ``conditions``: the generator conditioned on one, rejection for the rest.

        The conditional vector is set to the rarest condition in the training data (so that
        the rest, met by rejection, are as likely as they can be among the generated rows).
        The generator follows its condition closely but not always, so every condition,
        that one included, is checked on the decoded rows.

        Raises
        ------
        ConditionError
            For a numeric condition, a category absent from the training data, or conditions
            too rare to meet within the bounded sampling budget.
        """

        continuous = [c for c in conditions if self.metadata_.columns[c].is_continuous]
        if continuous:
            raise ConditionError(
                f"ctgan cannot condition on numeric column(s) {continuous}: its conditional "
                "vector holds categories only; use gaussian_copula or bayesian_network to "
                "condition on numeric values"
            )
        counts = self.encoder_.category_counts_
        starts = {span.column: span.start for span in self.layout_.discrete}
        offsets = {
            span.column: int(start)
            for span, start in zip(
                self.layout_.discrete, self.layout_.cond_start.tolist(), strict=True
            )
        }
        slots = {c: self.encoder_.category_slot(c, v) - starts[c] for c, v in conditions.items()}
        unseen = [f"{c}={conditions[c]!r}" for c, s in slots.items() if counts[c][s] == 0]
        if unseen:
            raise ConditionError(
                f"cannot sample with {', '.join(unseen)}: never seen in the training data, so "
                "ctgan never learnt to generate it"
            )
        rarest = min(slots, key=lambda c: counts[c][slots[c]])
        slot = offsets[rarest] + slots[rarest]

        def draw(k: int, rng: np.random.Generator) -> pd.DataFrame:
            generator = self._torch_generator(rng)
            return self._decode_blocks(k, lambda size: self._generate(size, generator, slot), rng)

        return rejection_sample(draw, n, conditions, rng, max_draws=max(200 * n, 100_000))


def moment_distance(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Distance between two batches' first and second moments, column by column.

    The Euclidean distance between the column means plus the Frobenius distance between the
    mean outer products ``x.T @ x / n``. On one-hot spans the products are the batch's
    pairwise contingency tables (of categories, modes and missingness), so the distance
    measures the marginals and the pairwise relations that a table's quality is judged on.
    The distances are not squared: their gradients keep a size of about one however close the
    batches are, the scale of the critic's gradient.

    Parameters
    ----------
    fake, real : Tensor of shape (rows, width)
        Rows as the critic sees them (activated fake rows; encoded real rows); the row counts
        may differ.
    """
    means = (fake.mean(0) - real.mean(0)).norm()
    second = (fake.T @ fake / len(fake) - real.T @ real / len(real)).norm()
    return means + second


def _precision_problem(value: Any) -> str:
    return f"sample_precision must be one of {', '.join(map(repr, _PRECISIONS))}, got {value!r}"


@functools.cache  # the CPU does not change; sampling asks once per block of rows
def native_bfloat16_cpu() -> bool:
    """Whether this CPU computes bfloat16 matrix products natively (oneDNN's check for
    AVX512-BF16 or AMX); ``False`` wherever the check is unavailable."""
    import torch

    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):  # a torch build without the check
        return False


def _with(rows: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
    """``rows`` with their conditional vectors appended (as the critic and generator read them)."""
    import torch

    return rows if cond is None else torch.cat([rows, cond], dim=1)


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
