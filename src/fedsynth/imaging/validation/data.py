"""What the image metrics share, prepared once: checked sets, common intensity scale, features."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.exceptions import ImageDataError
from fedsynth.imaging.imageset import ImageSet
from fedsynth.imaging.validation.features import FeatureExtractor, intensity_scale, normalise


@dataclass
class ImageValidationData:
    """Real training, synthetic and (optional) real holdout images, ready for the metrics.

    Attributes
    ----------
    real, synthetic, holdout : ndarray
        Images (N x C x H x W) on the real training images' per-channel intensity scale.
    real_features, synthetic_features, holdout_features : ndarray
        Their standardised autoencoder features (:mod:`fedsynth.imaging.validation.features`).
    channels : tuple of str
    real_labels, synthetic_labels, holdout_labels : DataFrame or None
        The labels of the images kept (same rows), for the utility metric.
    site_column : str or None
        The real images' site column (not a label a classifier should learn).
    utility_epochs : int
        Training epochs of the utility metric's classifiers.
    seed : int
        Seeds every random draw of the metrics.
    extractor : FeatureExtractor
        The trained feature extractor (its ``loss_`` says how well it reconstructs).
    cache : dict
        Computations shared by several metrics (nearest neighbours), filled on first use.
    """

    real: np.ndarray
    synthetic: np.ndarray
    holdout: np.ndarray | None
    real_features: np.ndarray
    synthetic_features: np.ndarray
    holdout_features: np.ndarray | None
    channels: tuple[str, ...]
    seed: int
    extractor: FeatureExtractor
    real_labels: pd.DataFrame | None = None
    synthetic_labels: pd.DataFrame | None = None
    holdout_labels: pd.DataFrame | None = None
    site_column: str | None = None
    utility_epochs: int = 20
    cache: dict[str, Any] = field(default_factory=dict)


def _check(real: ImageSet, other: ImageSet, name: str) -> list[str]:
    problems = []
    if not isinstance(other, ImageSet):
        return [f"{name} must be an ImageSet; got {type(other).__name__}"]
    if other.is_volume:
        problems.append(f"{name} holds volumes; validate 2-D images (e.g. their axial slices)")
    if tuple(other.channels) != tuple(real.channels):
        problems.append(
            f"{name} has channels {list(other.channels)}; the real images have "
            f"{list(real.channels)}"
        )
    if other.shape[2:] != real.shape[2:]:
        problems.append(
            f"{name} images are {'x'.join(map(str, other.shape[2:]))} pixels; the real images "
            f"are {'x'.join(map(str, real.shape[2:]))}"
        )
    if len(other) < 2:
        problems.append(f"{name} holds {len(other)} image(s); at least 2 are needed")
    return problems


def _at_most(images: ImageSet, most: int, rng: np.random.Generator) -> ImageSet:
    if len(images) <= most:
        return images
    return images.take(np.sort(rng.choice(len(images), most, replace=False)))


def prepare_image_validation(
    real: ImageSet,
    synthetic: ImageSet,
    holdout: ImageSet | None = None,
    *,
    epochs: int = 10,
    seed: int = 0,
    max_images: int = 1000,
    extractor: FeatureExtractor | None = None,
    utility_epochs: int = 20,
) -> ImageValidationData:
    """Check the sets, put them on one intensity scale and embed them.

    Parameters
    ----------
    real : ImageSet
        The real images the generator was trained on.
    synthetic : ImageSet
        The generated images, same channels and size.
    holdout : ImageSet, optional
        Real images the generator never saw (the reference for every "as good as real" score).
    epochs : int
        Training epochs of the feature extractor (on ``real``).
    seed : int
        Seed of the extractor and of every random draw.
    max_images : int
        Each set is cut to this many images drawn at random (metrics cost grows with N²).
    extractor : FeatureExtractor, optional
        A feature extractor already fitted on these real images (e.g. the ``extractor`` of an
        earlier preparation), to score several synthetic sets in one feature space.
    utility_epochs : int
        Training epochs of the utility metric's classifiers.

    Raises
    ------
    ImageDataError
        When a set is not 2-D, or channels or sizes differ from the real images.
    """
    if not isinstance(real, ImageSet):
        raise ImageDataError([f"real must be an ImageSet; got {type(real).__name__}"])
    problems = _check(real, real, "real") + _check(real, synthetic, "synthetic")
    if holdout is not None:
        problems += _check(real, holdout, "holdout")
    if problems:
        raise ImageDataError(problems)
    rng = np.random.default_rng(seed)
    kept = [_at_most(s, max_images, rng) for s in (real, synthetic)]
    held_set = None if holdout is None else _at_most(holdout, max_images, rng)
    low, width = intensity_scale(kept[0].images)
    sets = [normalise(s.images, low, width) for s in kept]
    held = None if held_set is None else normalise(held_set.images, low, width)
    if extractor is None:
        extractor = FeatureExtractor(epochs=epochs, seed=seed).fit(sets[0])
    return ImageValidationData(
        real=sets[0],
        synthetic=sets[1],
        holdout=held,
        real_features=extractor.transform(sets[0]),
        synthetic_features=extractor.transform(sets[1]),
        holdout_features=None if held is None else extractor.transform(held),
        channels=tuple(real.channels),
        seed=seed,
        extractor=extractor,
        real_labels=kept[0].labels,
        synthetic_labels=kept[1].labels,
        holdout_labels=None if held_set is None else held_set.labels,
        site_column=real.site_column,
        utility_epochs=int(utility_epochs),
    )
