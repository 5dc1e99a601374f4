"""``dp_gan``: a conditional DCGAN-style GAN (GroupNorm, projection discriminator) whose
discriminator can train with DP-SGD."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fedsynth.core.privacy.accounting import PrivacyLedger
from fedsynth.core.privacy.config import DPSettings
from fedsynth.core.registry import register
from fedsynth.core.torch_device import torch_seed
from fedsynth.imaging.generators._federable import charge_plan
from fedsynth.imaging.generators._gan import LOSSES, gan_epoch
from fedsynth.imaging.generators._public import check_public_images, public_classes
from fedsynth.imaging.generators._schema import ImageSchema, as_image_set
from fedsynth.imaging.generators._torch import epoch_reporter, shuffled_batches
from fedsynth.imaging.generators.base import ImageGenerator
from fedsynth.imaging.generators.networks import ConditionalGenerator, ProjectionDiscriminator

if TYPE_CHECKING:
    import torch

    from fedsynth.core.privacy.dp_sgd import PrivateTraining


@register("dp_gan")
class DPGAN(ImageGenerator):
    """Conditional GAN for 2-D multi-channel images, private with ``dp=``.

    The generator maps noise and a class embedding to an image through upsampling convolution
    blocks; the discriminator scores an image with its class (projection discriminator). Both
    use GroupNorm, never BatchNorm: each image's score depends on that image alone, as DP-SGD's
    per-image gradients require. Classes are the combinations of the label columns' values.

    Parameters
    ----------
    epochs : int
        Epochs: passes of the discriminator over the images (a discriminator step per batch).
        The generator loses diversity as a GAN on a few hundred images trains on: on the
        simulated brain MRI (317 images, 64 x 64) 60 epochs gave an FID 2 x lower than 300
        (``benchmarks/results/dp_gan_diagnosis.md``).
    batch_size : int
        Images per step (the expected Poisson batch under DP).
    lr : float
        Adam learning rate of the generator (betas 0.5, 0.999 as in DCGAN).
    discriminator_lr : float, optional
        Adam learning rate of the discriminator (``None``: ``lr``). Two different rates are
        the two time-scale update rule (TTUR) of Heusel et al. (2017).
    discriminator_steps : int
        Discriminator steps per generator step.
    loss : {"hinge", "nonsaturating"}
        The hinge losses of SAGAN / BigGAN (FID 39 vs 56 x the holdout's with DCGAN's
        non-saturating losses, same 60 epochs, classifier AUCs within 0.02) or DCGAN's.
    augment_shift : float
        Each image the discriminator sees, real or generated, is translated by a random
        whole number of pixels up to this fraction of its side (DiffAugment's translation,
        Zhao et al. 2020; 0: none). Each image's shift is its own, so per-image gradients
        stay per image under DP.
    noise_dim : int
        Size of the noise vector (and of the class embedding).
    width : int
        Channels of the generator's last block and of the discriminator's first; the others
        double per level.
    norm_groups : int
        GroupNorm groups (must divide ``width``).
    average_decay : float
        Decay, per generator step, of the moving average of the generator's weights that
        images are sampled from (in ``[0, 1)``; 0 samples from the last weights).
    label_columns, label_values, intensity_range
        As for :class:`~fedsynth.imaging.generators.latent_diffusion.LatentDiffusion`; under
        ``dp`` ``label_values`` and ``intensity_range`` must be declared (public facts).
    device, verbose, seed
        As for the other generators.
    public_epochs : int
        Epochs of the warm start on ``fit(..., public_images=...)`` (ignored without them):
        generator and discriminator first train on the public images, without DP, then on
        the private images for ``epochs``.
    dp : dict, optional
        ``{"epsilon": ..., "delta": ...}``: the whole budget goes to the discriminator's
        DP-SGD on the private images, its noise calibrated to the planned steps; the spend is
        recorded in ``privacy_spent_`` with the accountant's history (noise multiplier, sample
        rate, steps). The warm start on public images spends none.

    Notes
    -----
    The image height and width must be equal powers of two, at least 8.

    **Public images** (``fit(images, public_images=...)``) are images that are *not
    private*: an open data set, a scanner's phantom or template images, or a simulated cohort
    such as :func:`~fedsynth.imaging.datasets.brain_mri_cohort` with another seed. The caller
    declares them so by passing them: they train the networks without DP and without any
    charge to ``privacy_spent_``, so they must hold no image of the private patients. They
    must have the private images' channels (same count; same names when both sets name
    them) and size. With the label columns they pretrain each class; without them (or for a
    label combination the model has no class for) each image gets a class drawn at random,
    so the class-independent parts of the networks learn what the images look like and the
    class-specific parts are left to the private images. Under ``dp`` without a declared
    ``intensity_range`` the public images' range is used (no release of the private ones).
    On the imaging benchmark a warm start did not survive the default 60 private epochs at
    epsilon 5 (noise multiplier 3.5) but did with 1-5 (noise 1.0-1.4): set ``epochs`` low
    under ``dp`` with public images (``benchmarks/results/dp_gan_public_diagnosis.md``).
    Without ``dp`` the public images are a warm start only. ``public_pretraining_`` records
    the warm start (``{"images": n, "epochs": e}``, ``None`` without one); its epochs come
    first in ``history_``, with their losses (on public images).

    Examples
    --------
    >>> import fedsynth
    >>> gen = fedsynth.make("dp_gan", epochs=2, seed=0, intensity_range=(0, 1.5),
    ...                     label_values={"idh_mutant": [0, 1]},
    ...                     dp={"epsilon": 5.0, "delta": 1e-5})
    """

    privacy_parts = "the discriminator's DP-SGD"

    def __init__(
        self,
        *,
        epochs: int = 60,
        batch_size: int = 64,
        lr: float = 2e-4,
        discriminator_lr: float | None = None,
        discriminator_steps: int = 1,
        loss: str = "hinge",
        augment_shift: float = 0.0,
        noise_dim: int = 64,
        width: int = 16,
        norm_groups: int = 8,
        average_decay: float = 0.98,
        public_epochs: int = 60,
        label_columns: Sequence[str] | None = None,
        label_values: Mapping[str, Sequence[Any]] | None = None,
        intensity_range: Sequence[Any] | None = None,
        device: str = "auto",
        verbose: bool = False,
        seed: int | None = None,
        dp: Mapping[str, Any] | None = None,
    ):
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.discriminator_lr = discriminator_lr
        self.discriminator_steps = discriminator_steps
        self.loss = loss
        self.augment_shift = augment_shift
        self.noise_dim = noise_dim
        self.width = width
        self.norm_groups = norm_groups
        self.average_decay = average_decay
        self.public_epochs = public_epochs
        self.label_columns = label_columns
        self.label_values = label_values
        self.intensity_range = intensity_range
        self.device = device
        self.verbose = verbose
        self.seed = seed
        self.dp = dp

    def _param_problems(self) -> list[str]:
        problems = []
        if (
            not isinstance(self.public_epochs, int)
            or isinstance(self.public_epochs, bool)
            or (self.public_epochs < 0)
        ):
            problems.append(f"public_epochs must be an integer >= 0, got {self.public_epochs!r}")
        for name in ("noise_dim", "width", "norm_groups", "discriminator_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        decay = self.average_decay
        if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0 <= decay < 1:
            problems.append(f"average_decay must be a number in [0, 1), got {decay!r}")
        if self.loss not in LOSSES:
            problems.append(f"loss must be one of {sorted(LOSSES)}, got {self.loss!r}")
        shift = self.augment_shift
        if isinstance(shift, bool) or not isinstance(shift, int | float) or not 0 <= shift < 0.5:
            problems.append(f"augment_shift must be a number in [0, 0.5), got {shift!r}")
        rate = self.discriminator_lr
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0
        ):
            problems.append(f"discriminator_lr must be a positive number or None, got {rate!r}")
        if not problems and self.width % self.norm_groups:
            problems.append(f"norm_groups={self.norm_groups} must divide width={self.width}")
        return problems

    def _schema_for(self, images, settings: DPSettings | None, options) -> ImageSchema:
        unknown = sorted(set(options) - {"public_images"})
        if unknown:
            raise TypeError(f"dp_gan.fit got unknown option(s) {unknown}")
        if options.get("public_images") is None:
            return super()._schema_for(images, settings, options)
        public = as_image_set(options["public_images"])
        check_public_images(public, images)
        declared = self.intensity_range
        if settings is not None:
            self._check_public_facts(images, need_range=False)
            if declared is None:  # the public images' range: no release of the private ones
                low, high = public.images.min(axis=(0, 2, 3)), public.images.max(axis=(0, 2, 3))
                declared = np.stack([low, high], axis=1).astype(float).tolist()
        schema = ImageSchema.from_images(
            images,
            label_columns=self.label_columns,
            label_values=self.label_values,
            intensity_range=declared,
            uniform_classes=settings is not None,
        )
        public_classes(schema, public, np.random.default_rng(0))  # refuse bad labels up front
        return schema

    # ------------------------------------------------------------------ networks
    def _build(self, schema: ImageSchema) -> None:
        from fedsynth.exceptions import ImageDataError

        h, w = schema.size
        if h != w or h < 8 or h & (h - 1):
            raise ImageDataError(
                [f"dp_gan needs square images whose side is a power of two >= 8; got {h} x {w}"]
            )
        channels = len(schema.channels)
        groups = int(self.norm_groups)
        self.generator_ = ConditionalGenerator(
            int(self.noise_dim), schema.n_classes, channels, h, int(self.width), groups
        )
        self.discriminator_ = ProjectionDiscriminator(
            schema.n_classes, channels, h, int(self.width), groups
        )
        # The moving average of the generator's weights, which sampling reads (see _gan).
        self.generator_average_ = copy.deepcopy(self.generator_).requires_grad_(False)

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {
            "generator": self.generator_,
            "discriminator": self.discriminator_,
            "generator_average": self.generator_average_,
        }

    # ------------------------------------------------------------------ training
    def _fit(self, scaled: np.ndarray, classes: np.ndarray, rng, options) -> None:
        self._warm_start(options, rng)
        self._train(scaled, classes, int(self.epochs), rng, None)

    def _warm_start(self, options: Mapping[str, Any], rng: np.random.Generator) -> None:
        """Train on the public images, if any, without DP: they cost no privacy budget."""
        self.public_pretraining_ = None
        public = options.get("public_images")
        if public is None or int(self.public_epochs) == 0:
            return
        public = as_image_set(public)
        classes = public_classes(self.schema_, public, rng)
        scaled = self.schema_.scale(public.images)
        self._train(scaled, classes, int(self.public_epochs), rng, None, " on public images")
        self.public_pretraining_ = {"images": len(public), "epochs": int(self.public_epochs)}

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
        charge_plan(ledger, plan, "discriminator")
        self._warm_start(options, rng)
        self._train(scaled, classes, int(self.epochs), rng, plan)

    def _train_local(self, scaled, classes, epochs: int, rng) -> None:
        """A federated site's epochs; under ``dp`` with DP-SGD, charged to ``privacy_spent_``
        (the first run calibrated to ``dp``'s target for these epochs, later ones at its
        noise)."""
        self._train(scaled, classes, epochs, rng, self._local_plan(len(scaled), epochs))

    def _train(
        self,
        scaled: np.ndarray,
        classes: np.ndarray,
        epochs: int,
        rng: np.random.Generator,
        plan: PrivateTraining | None,
        phase: str = "",
    ) -> None:
        import torch

        device = self.device_
        generator = torch.Generator().manual_seed(torch_seed(rng))
        data = torch.from_numpy(scaled).to(device)
        labels = torch.from_numpy(classes).to(device)
        fake_classes = torch.as_tensor(self.schema_.class_weights, dtype=torch.float32)
        d_lr = self.lr if self.discriminator_lr is None else self.discriminator_lr
        optimizers = tuple(
            torch.optim.Adam(module.parameters(), lr=float(rate), betas=(0.5, 0.999))
            for module, rate in ((self.generator_, self.lr), (self.discriminator_, d_lr))
        )
        self._dp_plan = plan
        title = f"Training {type(self).__name__}{phase}"
        with epoch_reporter(self.verbose, title, epochs, self._progress) as advance:
            for epoch in range(epochs):
                batches = (
                    shuffled_batches(len(data), int(self.batch_size), generator)
                    if plan is None
                    else iter(plan.sampler(len(data), generator))
                )
                losses = gan_epoch(
                    self.generator_,
                    self.discriminator_,
                    data,
                    labels,
                    optimizers,
                    batches,
                    fake_classes,
                    int(self.noise_dim),
                    generator,
                    batch_size=int(self.batch_size),
                    plan=plan,
                    average=self.generator_average_,
                    decay=float(self.average_decay),
                    d_steps=int(self.discriminator_steps),
                    loss=self.loss,
                    shift=float(self.augment_shift),
                )
                self._record_epoch(advance, epoch + 1, losses, plan is not None)
        for module in self._modules().values():
            module.eval()

    def _extra_config(self) -> dict[str, Any]:
        return {"public_pretraining": getattr(self, "public_pretraining_", None)}

    def _load_extra_config(self, state: dict[str, Any]) -> None:
        self.public_pretraining_ = state.get("public_pretraining")

    def steps_taken(self) -> list[tuple[float, float, int]]:
        """The DP-SGD steps of the last private training, as an accountant's history
        (``[(noise_multiplier, sample_rate, steps)]``; empty without DP)."""
        plan = getattr(self, "_dp_plan", None)
        return [] if plan is None else plan.steps_taken()

    # ------------------------------------------------------------------ sampling
    def _generate(self, classes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        import torch

        noise = torch.randn(
            (len(classes), int(self.noise_dim)), generator=generator, device=generator.device
        )
        return self.generator_average_(noise.to(classes.device), classes)
