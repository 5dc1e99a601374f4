"""``latent_diffusion``: a KL autoencoder and a class-conditional diffusion UNet in its latent
space (MONAI's networks and schedulers), DDPM training and DDIM sampling."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from fedsynth.core.privacy.accounting import PrivacyLedger
from fedsynth.core.privacy.config import DPSettings, PrivacyConfigError
from fedsynth.core.registry import register
from fedsynth.core.torch_device import torch_seed
from fedsynth.exceptions import ImageDataError
from fedsynth.imaging.generators import _diffusion as diffusion
from fedsynth.imaging.generators import _ldm_rounds as rounds
from fedsynth.imaging.generators._autoencoder import AdversarialPart, autoencoder_epoch
from fedsynth.imaging.generators._federable import charge_plan
from fedsynth.imaging.generators._latent_scale import LatentScaleState
from fedsynth.imaging.generators._public import check_public_images
from fedsynth.imaging.generators._schema import ImageSchema, as_image_set
from fedsynth.imaging.generators._torch import epoch_reporter, seeded, shuffled_batches
from fedsynth.imaging.generators.base import ImageGenerator
from fedsynth.imaging.generators.networks import build_autoencoder, build_unet
from fedsynth.imaging.imageset import ImageSet

if TYPE_CHECKING:
    import torch

    from fedsynth.core.privacy.dp_sgd import PrivateTraining


@register("latent_diffusion")
class LatentDiffusion(LatentScaleState, ImageGenerator):
    """Latent diffusion model for 2-D multi-channel images, conditioned on label classes.

    The autoencoder (MONAI ``AutoencoderKL``) compresses each image by 2 per level after the
    first (64 x 64 x 4 to 16 x 16 x 4 by default); the UNet (MONAI ``DiffusionModelUNet``)
    learns to remove noise from the latents given the image's class: one class per combination
    of the label columns' values (e.g. tumour type x IDH status), embedded by the UNet.
    Sampling runs ``sampling_steps`` DDIM steps.

    Parameters
    ----------
    epochs : int
        Epochs of the diffusion UNet.
    ae_epochs : int
        Epochs of the autoencoder (trained first; federated, its budget over all rounds,
        spent in the first rounds, then frozen: ``_ldm_rounds``).
    batch_size : int
        Images per step (the expected Poisson batch under DP).
    lr, ae_lr : float
        Adam learning rates of the UNet and of the autoencoder.
    ae_channels : tuple of int
        Autoencoder channels per level; ``len - 1`` halvings of height and width.
    latent_channels : int
        Channels of the latents.
    unet_channels : tuple of int
        UNet channels per level (the latent size must halve ``len - 1`` times).
    norm_groups : int
        GroupNorm groups of both networks (must divide every channel count).
    kl_weight : float
        Weight of the autoencoder's KL term.
    adversarial_weight : float
        Weight of the autoencoder's patch adversarial loss (0: L1 and KL alone).
    adversarial_warmup : int
        Autoencoder epochs before the adversarial loss joins.
    train_timesteps : int
        DDPM's diffusion steps.
    sampling_steps : int
        DDIM steps per sample.
    sampling_eta : float
        DDIM's stochasticity (Song et al. 2021): 0 deterministic, 1 DDPM's variance at each
        step (FID 7.4 against 45.6 at 0, ``benchmarks/imaging_ldm_sampler.py``).
    ema_decay : float
        Decay per step of the moving average of the UNet's weights that the fit keeps as the
        UNet (0: the last weights; a federated round always keeps its last weights, the
        server's average smooths them).
    guidance : float
        Classifier-free guidance scale at sampling (Ho & Salimans 2022): the noise estimate is
        the null class's plus ``guidance`` x (the image's class's - the null class's); 1: none,
        one UNet pass per step; above 1 two passes. 1.5 on the imaging study's central model
        (``benchmarks/results/imaging_ldm_guidance.md``, one fitted model, one classifier seed):
        downstream AUC tumour type / IDH 0.818 / 0.829 against 0.788 / 0.824 at 1, FID ratio
        5.07 against 5.33; 2 and 3 gave lower AUCs, FID ratio 7.8 at 3, and more synthetic
        images near a training image (1, 2, 4, 10 of 317 at 1, 1.5, 2, 3). May be changed on a
        fitted model (``set_params(guidance=...)``): it acts at sampling only.
    label_dropout : float
        Share of training images whose class is replaced by the null class (for guidance).
    label_columns : list of str, optional
        Label columns to condition on (see
        :meth:`~fedsynth.imaging.generators._schema.ImageSchema.from_images` for the default).
    label_values : dict, optional
        Declared values of each label column (required under ``dp``).
    intensity_range : (low, high) or list of them, optional
        Declared intensity range (default: the training images', or under ``dp`` the public
        images').
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda[:N]"``.
    verbose : bool
        Show a progress bar.
    seed : int, optional
        Seed of every draw: the same seed and data give the same model and samples.
    dp : dict, optional
        ``{"epsilon": ..., "delta": ...}``: train the UNet with DP-SGD. The autoencoder then
        trains on **public** images only, passed as ``fit(..., public_images=...)`` (e.g. a
        scanner's phantom or template images, an open data set, or a simulated cohort such as
        :func:`~fedsynth.imaging.datasets.brain_mri_cohort` with another seed): it and the
        latent scale never see the private images, so the whole budget goes to DP-SGD on the
        UNet, whose every step reads each private image (with its label) through clipped,
        noised per-image gradients.

    Notes
    -----
    The defaults are sized for 64 x 64 x 4 slices on a CPU (one torch thread, 280 simulated
    training slices, ``benchmarks/imaging_ldm.py``): 3.5 CPU s per autoencoder epoch and 0.9
    per UNet epoch, 349 CPU s in all, sampling 43 images per CPU s without guidance (about 21
    with the default guidance's two passes), FID 6.6 (real holdout 1.4). The features react
    most to images without scanner noise, what an L1 decoder gives: the adversarial loss took
    the autoencoder's ceiling from 27 to 3.3, stochastic DDIM the samples from 56 to 6.6
    (``benchmarks/results/imaging_ldm_diagnosis.md``).

    Examples
    --------
    >>> import fedsynth
    >>> from fedsynth.imaging import brain_mri_cohort
    >>> real = brain_mri_cohort(200, size=32, seed=0)
    >>> gen = fedsynth.make("latent_diffusion", label_columns=["idh_mutant"], seed=0)
    >>> gen.fit(real).sample(4, conditions={"idh_mutant": 1})  # doctest: +SKIP
    """

    has_extra_state: ClassVar[bool] = True
    privacy_parts = "the diffusion UNet's DP-SGD"

    def __init__(
        self,
        *,
        epochs: int = 200,
        ae_epochs: int = 50,
        batch_size: int = 16,
        lr: float = 1e-3,
        ae_lr: float = 1e-3,
        ae_channels: tuple[int, ...] = (16, 32, 32),
        latent_channels: int = 4,
        unet_channels: tuple[int, ...] = (32, 64, 64),
        norm_groups: int = 8,
        kl_weight: float = 1e-6,
        adversarial_weight: float = 0.01,
        adversarial_warmup: int = 10,
        train_timesteps: int = 1000,
        sampling_steps: int = 25,
        sampling_eta: float = 1.0,
        ema_decay: float = 0.995,
        guidance: float = 1.5,
        label_dropout: float = 0.1,
        label_columns: Sequence[str] | None = None,
        label_values: Mapping[str, Sequence[Any]] | None = None,
        intensity_range: Sequence[Any] | None = None,
        device: str = "auto",
        verbose: bool = False,
        seed: int | None = None,
        dp: Mapping[str, Any] | None = None,
    ):
        self.epochs = epochs
        self.ae_epochs = ae_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.ae_lr = ae_lr
        self.ae_channels = ae_channels
        self.latent_channels = latent_channels
        self.unet_channels = unet_channels
        self.norm_groups = norm_groups
        self.kl_weight = kl_weight
        self.adversarial_weight = adversarial_weight
        self.adversarial_warmup = adversarial_warmup
        self.train_timesteps = train_timesteps
        self.sampling_steps = sampling_steps
        self.sampling_eta = sampling_eta
        self.ema_decay = ema_decay
        self.guidance = guidance
        self.label_dropout = label_dropout
        self.label_columns = label_columns
        self.label_values = label_values
        self.intensity_range = intensity_range
        self.device = device
        self.verbose = verbose
        self.seed = seed
        self.dp = dp

    # ------------------------------------------------------------------ checks
    def _param_problems(self) -> list[str]:
        problems = []
        for name in ("ae_epochs", "latent_channels", "norm_groups", "train_timesteps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        steps = self.sampling_steps
        if not isinstance(steps, int) or not 1 <= steps <= int(self.train_timesteps or 1):
            problems.append(
                f"sampling_steps must be an integer in [1, train_timesteps], got {steps!r}"
            )
        for name in ("ae_channels", "unet_channels"):
            value = getattr(self, name)
            if (
                not isinstance(value, tuple | list)
                or len(value) < 2
                or not all(isinstance(c, int) and c > 0 for c in value)
            ):
                problems.append(f"{name} must be at least two positive integers, got {value!r}")
            elif (
                isinstance(self.norm_groups, int)
                and self.norm_groups > 0
                and any(c % self.norm_groups for c in value)
            ):
                problems.append(f"norm_groups={self.norm_groups} must divide every {name} {value}")
        if not 0 <= self.label_dropout < 1:
            problems.append(f"label_dropout must be in [0, 1), got {self.label_dropout!r}")
        if not 0 <= self.sampling_eta <= 1:
            problems.append(f"sampling_eta must be in [0, 1], got {self.sampling_eta!r}")
        if not 0 <= self.ema_decay < 1:
            problems.append(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")
        if not self.guidance >= 1:
            problems.append(f"guidance must be >= 1, got {self.guidance!r}")
        if not self.ae_lr > 0 or not self.kl_weight >= 0 or not self.adversarial_weight >= 0:
            problems.append("ae_lr must be > 0, kl_weight and adversarial_weight >= 0")
        warmup = self.adversarial_warmup
        if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
            problems.append(f"adversarial_warmup must be an integer >= 0, got {warmup!r}")
        return problems

    def _schema_for(self, images: ImageSet, settings: DPSettings | None, options) -> ImageSchema:
        unknown = sorted(set(options) - {"public_images"})
        if unknown:
            raise TypeError(f"latent_diffusion.fit got unknown option(s) {unknown}")
        public = options.get("public_images")
        if public is not None:
            public = as_image_set(public)
            check_public_images(public, images)
        if settings is None:
            return super()._schema_for(images, settings, options)
        if public is None:
            raise PrivacyConfigError(
                "latent_diffusion under dp needs public_images=: images that are not private "
                "(e.g. brain_mri_cohort with another seed, a template or phantom) on which the "
                "autoencoder trains, so that the whole budget goes to the UNet's DP-SGD"
            )
        self._check_public_facts(images, need_range=False)
        declared = self.intensity_range
        if declared is None:  # the public images' range: no release of the private ones
            declared = list(
                zip(
                    public.images.min(axis=(0, 2, 3)),
                    public.images.max(axis=(0, 2, 3)),
                    strict=True,
                )
            )
        return ImageSchema.from_images(
            images,
            label_columns=self.label_columns,
            label_values=self.label_values,
            intensity_range=np.asarray(declared, dtype=float).tolist(),
            uniform_classes=True,
        )

    # ------------------------------------------------------------------ networks
    def _build(self, schema: ImageSchema) -> None:
        channels = len(schema.channels)
        self.autoencoder_ = build_autoencoder(
            channels, self.ae_channels, int(self.latent_channels), int(self.norm_groups)
        )
        # One more class than the schema's: the null class of classifier-free guidance.
        self.unet_ = build_unet(
            int(self.latent_channels),
            self.unet_channels,
            schema.n_classes + 1,
            int(self.norm_groups),
        )
        self.latent_scale_ = 1.0
        self._adversarial: AdversarialPart | None = None
        factor = 2 ** (len(self.ae_channels) - 1)
        h, w = schema.size
        self._latent_shape = (int(self.latent_channels), h // factor, w // factor)
        problems = []
        if h % factor or w % factor:
            problems.append(
                f"the images' {h} x {w} pixels must divide by {factor} (ae_channels has "
                f"{len(self.ae_channels)} levels)"
            )
        unet_factor = 2 ** (len(self.unet_channels) - 1)
        if (h // factor) % unet_factor or (w // factor) % unet_factor:
            problems.append(
                f"the latents' {h // factor} x {w // factor} must divide by {unet_factor} "
                f"(unet_channels has {len(self.unet_channels)} levels)"
            )
        if problems:
            raise ImageDataError(problems)

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"autoencoder": self.autoencoder_, "unet": self.unet_}

    def _weight_modules(self) -> dict[str, torch.nn.Module]:
        """The saved modules and, with the adversarial loss, the autoencoder's discriminator
        last: federated rounds average it like the other weights (FedGAN, Rasouli et al. 2020),
        as a site's model is rebuilt every round and would otherwise start an untrained one.
        It is not saved (only training uses it); a model without one (built, loaded) draws it
        from its ``seed``, so every model with these parameters has the same weight layout."""
        modules = self._modules()
        if self.adversarial_weight > 0:
            adversary = self._adversary(np.random.default_rng(self.seed))
            modules["discriminator"] = adversary.discriminator
        return modules

    def _adversary(self, rng: np.random.Generator) -> AdversarialPart:
        """The autoencoder's adversarial part, created (its discriminator drawn from ``rng``)
        if the model has none yet."""
        if self._adversarial is None:
            with seeded(rng):
                self._adversarial = AdversarialPart(
                    len(self.schema_.channels),
                    float(self.adversarial_weight),
                    int(self.adversarial_warmup),
                    float(self.ae_lr),
                    self.device_,
                )
        return self._adversarial

    # ------------------------------------------------------------------ training
    def _fit(self, scaled: np.ndarray, classes: np.ndarray, rng, options) -> None:
        public = options.get("public_images")
        ae_images = scaled if public is None else self.schema_.scale(as_image_set(public).images)
        self._train(scaled, classes, ae_images, self.ae_epochs, self.epochs, rng, None, True)

    def _fit_private(
        self, scaled, classes, rng, options, settings: DPSettings, ledger: PrivacyLedger
    ) -> None:
        from fedsynth.core.privacy.dp_sgd import PrivateTraining

        plan = PrivateTraining(
            n_rows=len(scaled),
            batch_size=int(self.batch_size),
            epochs=int(self.epochs),
            epsilon=settings.epsilon,
            delta=settings.delta,
            max_grad_norm=settings.max_grad_norm,
            accountant=settings.accountant,
        )
        charge_plan(ledger, plan, "diffusion UNet")
        public = self.schema_.scale(as_image_set(options["public_images"]).images)
        self._train(scaled, classes, public, self.ae_epochs, self.epochs, rng, plan, True)

    def _train(
        self,
        scaled: np.ndarray,
        classes: np.ndarray,
        ae_images: np.ndarray,
        ae_epochs: int,
        epochs: int,
        rng: np.random.Generator,
        plan: PrivateTraining | None,
        average: bool,
        *,
        ae_done: int = 0,
        rescale: bool = False,
    ) -> None:
        """``ae_epochs`` of the autoencoder on ``ae_images``, the latent scale from them (also
        without autoencoder epochs if ``rescale`` or the scale is unset), then ``epochs`` of the
        UNet on ``scaled`` (DP-SGD under ``plan``), keeping the moving average of its weights if
        ``average`` and ``ema_decay`` > 0. ``ae_done``: autoencoder epochs of earlier federated
        rounds, which count towards the adversarial warm-up."""
        import torch

        device = self.device_
        generator = torch.Generator().manual_seed(torch_seed(rng))
        ae_data = torch.from_numpy(ae_images).to(device)
        data = torch.from_numpy(scaled).to(device)
        labels = torch.from_numpy(classes).to(device)
        ae_optimizer = torch.optim.Adam(self.autoencoder_.parameters(), lr=float(self.ae_lr))
        unet_optimizer = torch.optim.Adam(self.unet_.parameters(), lr=float(self.lr))
        # Drawn with or without the adversarial loss, so that it leaves the other draws alike.
        adversary_rng = np.random.default_rng(torch_seed(rng))
        if self.adversarial_weight > 0 and ae_epochs:
            # Kept between calls of one model (with its optimiser); a federated site's model,
            # rebuilt every round, gets the sites' average of the last round with the weights
            # (_weight_modules) and a new optimiser, as the autoencoder's.
            self._adversary(adversary_rng)
        if self._adversarial is not None:
            self._adversarial.epochs_seen = max(self._adversarial.epochs_seen, ae_done)
        total = ae_epochs + epochs
        title = f"Training {type(self).__name__}"
        # Seeded: the autoencoder's reparameterisation draws from torch's global generator.
        with seeded(rng), epoch_reporter(self.verbose, title, total, self._progress) as advance:
            for epoch in range(ae_epochs):
                batches = shuffled_batches(len(ae_data), int(self.batch_size), generator)
                losses = autoencoder_epoch(
                    self.autoencoder_,
                    ae_data,
                    ae_optimizer,
                    batches,
                    float(self.kl_weight),
                    self._adversarial,
                )
                # Reconstruction losses of public images may leave; of private ones under DP
                # they are kept out of the model like every loss computed on them.
                self._record_epoch(advance, epoch + 1, losses, False)
            if ae_epochs or rescale or self.latent_scale_ == 1.0:
                variance = diffusion.latent_variance(
                    diffusion.latent_means(self.autoencoder_, ae_data)
                )
                self.latent_scale_ = 1.0 / math.sqrt(variance)
            latents = diffusion.latent_means(self.autoencoder_, data) * self.latent_scale_
            self.autoencoder_.eval()
            ddpm, _ = diffusion.schedulers(int(self.train_timesteps))
            ema = None
            if average and self.ema_decay > 0 and epochs:
                ema = diffusion.moving_average(self.unet_, float(self.ema_decay))
            for epoch in range(epochs):
                batches = (
                    shuffled_batches(len(data), int(self.batch_size), generator)
                    if plan is None
                    else iter(plan.sampler(len(data), generator))
                )
                losses = diffusion.unet_epoch(
                    self.unet_,
                    ddpm,
                    latents,
                    labels,
                    unet_optimizer,
                    batches,
                    generator,
                    null_class=self.schema_.n_classes,
                    label_dropout=float(self.label_dropout),
                    plan=plan,
                    ema=ema,
                )
                self._record_epoch(advance, ae_epochs + epoch + 1, losses, plan is not None)
            if ema is not None:
                self.unet_.load_state_dict(ema.module.state_dict())
        for module in self._modules().values():
            module.eval()

    def _train_local(self, scaled, classes, epochs: int, rng) -> None:
        """A federated site's round: ``epochs`` of the autoencoder while its federated budget
        ``ae_epochs`` lasts (then it is frozen), then ``epochs`` of the UNet on the latents
        scaled by this site's images (:mod:`~fedsynth.imaging.generators._ldm_rounds`)."""
        if self.dp is not None:
            raise PrivacyConfigError(
                "latent_diffusion under dp cannot be trained federated yet: its autoencoder "
                "must come from public images; federate dp_gan, or latent_diffusion without dp"
            )
        done = rounds.autoencoder_epochs_done(
            int(self.ae_epochs), self.n_fits_, epochs, self.history_
        )
        ae, unet = rounds.split_round(int(self.ae_epochs), done, epochs)
        self._train(scaled, classes, scaled, ae, unet, rng, None, False, ae_done=done, rescale=True)

    # ------------------------------------------------------------------ sampling
    def reconstruct(self, images: Any) -> ImageSet:
        """The autoencoder's reconstructions of ``images`` (their latent means, decoded): the
        best any sample can be, as the diffusion model only draws latents for this decoder.

        Parameters
        ----------
        images : ImageSet or array
            Images with the training images' channels and size (labels are kept, not used).

        Returns
        -------
        ImageSet
            The reconstructions in the training intensities, with the images' labels.
        """
        import torch

        self._check_is_fitted()
        images = as_image_set(images)
        expected = (len(self.schema_.channels), *self.schema_.size)
        if images.is_volume or tuple(images.shape[1:]) != expected:
            raise ImageDataError(
                [f"images to reconstruct are {images.shape[1:]} (C, H, W); the model's {expected}"]
            )
        data = torch.from_numpy(self.schema_.scale(images.images)).to(self.device_)
        latents = diffusion.latent_means(self.autoencoder_, data)
        with torch.no_grad():
            decoded = torch.cat([self.autoencoder_.decode(z) for z in latents.split(64)])
        return ImageSet(
            self.schema_.unscale(decoded.clamp(-1.0, 1.0).float().cpu().numpy()),
            images.labels,
            channels=self.schema_.channels,
            spacing=self.schema_.spacing,
        )

    def _generate(self, classes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _, ddim = diffusion.schedulers(int(self.train_timesteps))
        return diffusion.ddim_sample(
            self.unet_,
            self.autoencoder_,
            ddim,
            classes,
            self._latent_shape,
            self.latent_scale_,
            int(self.sampling_steps),
            generator,
            null_class=self.schema_.n_classes,
            guidance=float(self.guidance),
            eta=float(self.sampling_eta),
        )
