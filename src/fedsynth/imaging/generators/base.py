"""The interface every image generator shares, and the work done once for all of them.

:class:`ImageGenerator` is the imaging :class:`~fedsynth.core.base.BaseEstimator`: the base
class keeps the hyperparameters, the fit template with ``dp`` and the model files; this one
adds what is imaging: the :class:`~fedsynth.imaging.generators._schema.ImageSchema` (channels,
size, label classes, intensity map), seeding, conditions, sampling in blocks, torch modules
saved as arrays (never pickle) and the federable protocol
(:class:`~fedsynth.core.federable.Federable`).

A generator implements ``_build`` (its modules on the schema), ``_modules``, ``_fit`` (and
``_fit_private`` under ``dp``) on images scaled to ``[-1, 1]`` with their class indices,
``_train_local`` (federated epochs) and ``_generate`` (class indices to scaled images).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from fedsynth.core.base import BaseEstimator
from fedsynth.core.privacy.config import DPSettings, PrivacyConfigError
from fedsynth.core.progress import ProgressCallback
from fedsynth.core.torch_device import resolve_device, torch_seed
from fedsynth.exceptions import FedsynthError
from fedsynth.imaging.generators._federable import FederableImages
from fedsynth.imaging.generators._schema import ImageSchema, as_image_set
from fedsynth.imaging.generators._torch import load_state_arrays, seeded, state_arrays
from fedsynth.imaging.imageset import ImageSet

if TYPE_CHECKING:
    import torch


#: Images generated together when sampling (bounds the memory of any ``n``).
SAMPLE_BLOCK = 64
_WEIGHTS = "weights/"


class ImageGenerator(FederableImages, BaseEstimator):
    """Base class of fedsynth's image generators (see the module docstring)."""

    modality: ClassVar[str] = "imaging"
    #: The model has trainable weights that federated averaging can exchange.
    has_weights: ClassVar[bool] = True
    #: Whether the model derives state from its images besides its weights.
    has_extra_state: ClassVar[bool] = False
    #: The progress callback of the fit in progress (``None`` outside ``fit``).
    _progress: ProgressCallback | None = None

    seed: int | None
    device: str
    verbose: bool
    epochs: int
    batch_size: int
    lr: float
    label_columns: Sequence[str] | None
    label_values: Mapping[str, Sequence[Any]] | None
    intensity_range: Sequence[Any] | None
    dp: Mapping[str, Any] | None

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        images: ImageSet | np.ndarray,
        labels: Any = None,
        *,
        progress: ProgressCallback | None = None,
        **options: Any,
    ) -> Self:
        """Learn the distribution of ``images`` given their labels.

        Parameters
        ----------
        images : ImageSet or array of shape (N, C, H, W)
            The real 2-D images (not modified).
        labels : DataFrame or dict of columns, optional
            One row per image; replaces an ImageSet's labels when given.
        progress : callable, optional
            Called with an :class:`~fedsynth.core.progress.EpochDone` after each epoch.

        Returns
        -------
        self

        Raises
        ------
        ImageDataError
            Naming what does not fit: rank, channels, labels, label columns or values.
        PrivacyConfigError, PrivacyBudgetError
            Under ``dp=``: a setting that cannot hold, or a budget cap exceeded.
        """
        return super().fit(images, labels=labels, progress=progress, **options)

    def _fit_data(
        self,
        data: Any,
        settings: DPSettings | None,
        *,
        labels: Any = None,
        progress: ProgressCallback | None = None,
        **options: Any,
    ) -> None:
        images = as_image_set(data, labels)
        self._progress = progress
        try:
            schema = self._schema_for(images, settings, options)
            classes = schema.check(images)
            rng = np.random.default_rng(self.seed)
            self.schema_ = schema
            self.device_ = resolve_device(self.device)
            self._build_untrained(rng)
            scaled = schema.scale(images.images)
            self._run_fit_hook(settings, scaled, classes, rng, options)
            self.n_fits_ = 1
        finally:
            self._progress = None
        self._stamp()
        self._reset_sample_stream()

    def _schema_for(
        self, images: ImageSet, settings: DPSettings | None, options: Mapping[str, Any]
    ) -> ImageSchema:
        """The schema of the training images. Under DP the label values and the intensity
        range must be declared (public facts), and every class is drawn alike: the observed
        combinations, their shares and the intensity extremes would be releases."""
        if settings is not None:
            self._check_public_facts(images, need_range=True)
        return ImageSchema.from_images(
            images,
            label_columns=self.label_columns,
            label_values=self.label_values,
            intensity_range=self.intensity_range,
            uniform_classes=settings is not None,
        )

    def _check_public_facts(self, images: ImageSet, *, need_range: bool) -> None:
        problems = []
        if self.label_values is None and (
            self.label_columns is None or len(self.label_columns) > 0
        ):
            problems.append(
                "declare the label values as public facts with label_values={column: [values]} "
                "(or label_columns=[] for an unconditional model): the values seen in the "
                "images would be a release"
            )
        if need_range and self.intensity_range is None:
            problems.append(
                "declare intensity_range=(low, high) (e.g. the scanner's range), one for all "
                "channels or one per channel: the images' extremes would be a release"
            )
        if problems:
            raise PrivacyConfigError(
                f"{self.name} under dp needs public facts:\n  - " + "\n  - ".join(problems)
            )

    def _build_untrained(self, rng: np.random.Generator) -> None:
        self.history_: list[dict[str, float]] = []
        self.n_fits_ = 0
        with seeded(rng):
            self._build(self.schema_)
        for module in self._modules().values():
            module.to(self.device_)

    def _check_params(self, settings: DPSettings | None) -> None:
        problems = []
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not _positive_int(value):
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.lr, int | float) or isinstance(self.lr, bool) or not self.lr > 0:
            problems.append(f"lr must be a positive number, got {self.lr!r}")
        problems += self._param_problems()
        self._raise_invalid_params(problems)
        resolve_device(self.device)

    def _param_problems(self) -> list[str]:
        """The generator's own checks of its hyperparameters."""
        return []

    def _record_epoch(self, advance, epoch: int, losses: dict[str, float], private: bool) -> None:
        """Keep an epoch in ``history_`` (without its losses under DP: computed on the real
        images without noise, they stay out of the model) and report it."""
        self.history_.append({"epoch": len(self.history_) + 1, **({} if private else losses)})
        advance(epoch, losses)

    # ------------------------------------------------------------------ sampling
    def _reset_sample_stream(self) -> None:
        # Seedless sample() calls continue one stream, so two calls differ but a refit (or a
        # load) with the same seed replays the same sequence.
        self._sample_rng = np.random.default_rng(None if self.seed is None else self.seed + 1)

    def sample(
        self, n: int, conditions: Mapping[str, Any] | None = None, seed: int | None = None
    ) -> ImageSet:
        """Draw ``n`` synthetic images with their labels.

        Parameters
        ----------
        n : int
            Number of images.
        conditions : dict, optional
            ``{label column: value}`` every image must have, e.g. ``{"idh_mutant": 1}``; the
            other label columns are drawn with their training shares given the conditions.
        seed : int, optional
            Seed of this draw: the same seed gives the same images. Without it, successive
            calls continue one random stream.

        Returns
        -------
        ImageSet
            ``n x C x H x W`` images in the training intensities, labels with the label
            columns, the training channel names and spacing.

        Raises
        ------
        ConditionError
            Naming an unknown column or value.

        Examples
        --------
        >>> synthetic = gen.sample(16, conditions={"idh_mutant": 1}, seed=0)  # doctest: +SKIP
        """
        import torch

        self._check_is_fitted()
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        probabilities = self.schema_.allowed_classes(conditions)
        rng = self._sample_rng if seed is None else np.random.default_rng(seed)
        classes = rng.choice(self.schema_.n_classes, size=int(n), p=probabilities)
        generator = torch.Generator(device=self.device_).manual_seed(torch_seed(rng))
        blocks = []
        for module in self._modules().values():
            module.eval()
        with torch.no_grad():
            for start in range(0, int(n), SAMPLE_BLOCK):
                part = torch.as_tensor(classes[start : start + SAMPLE_BLOCK], device=self.device_)
                blocks.append(self._generate(part, generator).float().cpu().numpy())
        h, w = self.schema_.size
        scaled = (
            np.concatenate(blocks)
            if blocks
            else np.zeros((0, len(self.schema_.channels), h, w), np.float32)
        )
        return ImageSet(
            self.schema_.unscale(scaled),
            self.schema_.labels_of(classes),
            channels=self.schema_.channels,
            spacing=self.schema_.spacing,
        )

    # ------------------------------------------------------------------ weights
    def get_weights(self) -> list[np.ndarray]:
        """Every module's parameters and buffers as arrays, in a fixed order (those of
        ``_weight_modules``: the saved modules, and any training-only module a federation
        averages, e.g. ``latent_diffusion``'s discriminator)."""
        self._check_is_fitted()
        return list(state_arrays(self._weight_modules()).values())

    def set_weights(self, weights: Sequence[np.ndarray]) -> Self:
        """Load weights from :meth:`get_weights` of a model built on the same schema.

        Raises
        ------
        FedsynthError
            When the number or shapes of the arrays differ, or an array holds NaN or infinity.
        """
        self._check_is_fitted()
        modules = self._weight_modules()
        names = list(state_arrays(modules))
        if len(weights) != len(names):
            raise FedsynthError(f"expected {len(names)} weight arrays, got {len(weights)}")
        try:
            load_state_arrays(modules, dict(zip(names, weights, strict=True)))
        except ValueError as exc:
            raise FedsynthError(str(exc)) from exc
        return self

    # ------------------------------------------------------------------ persistence
    @classmethod
    def _from_saved(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> BaseEstimator:
        # JSON has no tuples: architecture knobs such as channel lists come back as lists.
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in config["params"].items()}
        return super()._from_saved({**config, "params": params}, arrays)

    def _schema_config(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"image_schema": self.schema_.to_dict()}, {}

    def _load_schema(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.schema_ = ImageSchema.from_dict(config["image_schema"])

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {_WEIGHTS + k: v for k, v in state_arrays(self._modules()).items()}
        state = {"history": self.history_, "n_fits": self.n_fits_, **self._extra_config()}
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.device_ = resolve_device(self.device)
        self._build_untrained(np.random.default_rng(0))
        self.history_ = list(state["history"])
        self.n_fits_ = int(state["n_fits"])
        weights = {k[len(_WEIGHTS) :]: v for k, v in arrays.items() if k.startswith(_WEIGHTS)}
        load_state_arrays(self._modules(), weights)
        self._load_extra_config(state)

    def _after_load(self) -> None:
        self._reset_sample_stream()

    def _schema_info(self) -> dict[str, Any]:
        return {
            "n_images": self.schema_.n_images,
            "channels": list(self.schema_.channels),
            "size": list(self.schema_.size),
            "label_columns": list(self.schema_.label_columns),
            "n_classes": self.schema_.n_classes,
        }

    def _fitted_summary(self) -> str:
        h, w = self.schema_.size
        return (
            f"fitted on {self.schema_.n_images} images of {h}x{w}x{len(self.schema_.channels)}, "
            f"{self.schema_.n_classes} label classes"
        )

    # ------------------------------------------------------------------ subclass hooks
    def _build(self, schema: ImageSchema) -> None:
        raise NotImplementedError

    def _modules(self) -> dict[str, torch.nn.Module]:
        raise NotImplementedError

    def _weight_modules(self) -> dict[str, torch.nn.Module]:
        """The modules whose weights :meth:`get_weights` exchanges: :meth:`_modules` (the saved
        ones), and any a federation should average besides them (e.g. a training-only
        discriminator)."""
        return self._modules()

    def _generate(self, classes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def _train_local(
        self, scaled: np.ndarray, classes: np.ndarray, epochs: int, rng: np.random.Generator
    ) -> None:
        raise NotImplementedError

    def _refresh_extra_state(self, scaled: np.ndarray, rng: np.random.Generator) -> None:
        """Recompute the state derived from the images (none by default)."""

    def _extra_config(self) -> dict[str, Any]:
        """JSON state saved besides the weights and history."""
        return {}

    def _load_extra_config(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_extra_config` saved."""


def _positive_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1
