"""A release-time filter: no synthetic image closer to a training image than real unseen images.

The rule (issue 21's privacy target): a synthetic image whose nearest training image is closer
than the **closest real holdout image** is to any training image is too close to release: no
image of the same population that the generator never saw came that near. The filter measures
each synthetic image's distance to its nearest training image, drops those below the reference
distance and draws replacements with the same labels from the generator until none is left
(or ``max_rounds`` are spent).

Distances are Euclidean, in pixels on the validation's common intensity scale (each channel
mapped by the training images' 1st and 99th percentiles, as
:func:`~fedsynth.imaging.validation.prepare_image_validation` does) and, when a fitted
:class:`~fedsynth.imaging.validation.FeatureExtractor` is given, also in its feature space: an
image must pass in every space. Without a holdout, the reference is the smallest distance
between two training images (each to its nearest other one).

It runs where the real images are: at the site (or the data steward) before synthetic images
leave. The generator never keeps real images for it: the training and holdout images are
passed at release time and nothing of them is stored in the model or in the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist

from fedsynth.exceptions import ImageDataError
from fedsynth.imaging.imageset import ImageSet
from fedsynth.imaging.validation.features import intensity_scale, normalise

if TYPE_CHECKING:
    from fedsynth.imaging.validation.features import FeatureExtractor

#: Synthetic images compared with the training images per block (bounds memory).
BLOCK = 256


@dataclass(frozen=True)
class CopyFilterResult:
    """What :func:`sample_without_near_copies` released and how many draws it dropped.

    Attributes
    ----------
    images : ImageSet
        The released synthetic images (as many as asked, unless ``max_rounds`` ran out).
    dropped : int
        Synthetic images drawn and dropped as too close, over all rounds.
    rounds : int
        Rounds of redrawing after the first draw.
    thresholds : dict
        The reference distance per space (``"pixels"``, and ``"features"`` with an extractor).
    """

    images: ImageSet
    dropped: int
    rounds: int
    thresholds: dict[str, float]


class _Spaces:
    """The training images in each space, and the reference distance in each."""

    def __init__(
        self,
        train: ImageSet,
        holdout: ImageSet | None,
        extractor,
        scale: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        _check_like(train, train, "train")
        if holdout is not None:
            _check_like(train, holdout, "holdout")
        if scale is None:
            self.low, self.width = intensity_scale(train.images)
        else:
            self.low, self.width = _checked_scale(scale, train.shape[1])
        self.extractor = extractor
        self.train = self.embed(train.images)
        if holdout is not None:
            held = self.embed(holdout.images)
            self.thresholds = {s: float(_nearest(held[s], self.train[s]).min()) for s in held}
        else:
            self.thresholds = {s: _within_min(x) for s, x in self.train.items()}

    def embed(self, images: np.ndarray) -> dict[str, np.ndarray]:
        pixels = normalise(images, self.low, self.width)
        found = {"pixels": pixels.reshape(len(pixels), -1).astype(np.float64)}
        if self.extractor is not None:
            found["features"] = self.extractor.transform(pixels)
        return found

    def too_close(self, images: np.ndarray) -> np.ndarray:
        embedded = self.embed(images)
        mask = np.zeros(len(images), dtype=bool)
        for space, points in embedded.items():
            mask |= _nearest(points, self.train[space]) < self.thresholds[space]
        return mask


def _checked_scale(scale, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(low, width)`` per channel, as :func:`intensity_scale` gives, checked."""
    try:
        low, width = (np.asarray(part, dtype=np.float32).reshape(-1) for part in scale)
    except (TypeError, ValueError) as error:
        raise ImageDataError(
            [f"scale must be (low, width), one value per channel each; got {scale!r}"]
        ) from error
    if len(low) != channels or len(width) != channels or not np.all(width > 0):
        raise ImageDataError(
            [
                f"scale must give {channels} lows and {channels} positive widths (one per "
                f"channel); got {len(low)} and {len(width)}"
            ]
        )
    return low, width


def _check_like(train: ImageSet, other: ImageSet, name: str) -> None:
    if not isinstance(other, ImageSet):
        raise ImageDataError([f"{name} must be an ImageSet; got {type(other).__name__}"])
    if other.is_volume or tuple(other.shape[1:]) != tuple(train.shape[1:]):
        raise ImageDataError(
            [
                f"{name} images are {other.shape[1:]} (C, H, W); the training images "
                f"{train.shape[1:]}"
            ]
        )
    if len(other) == 0 or (name == "train" and len(other) < 2):
        raise ImageDataError([f"{name} has {len(other)} image(s); the filter needs more"])


def _nearest(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each point's Euclidean distance to its nearest reference point."""
    return np.concatenate(
        [cdist(points[i : i + BLOCK], reference).min(axis=1) for i in range(0, len(points), BLOCK)]
    )


def _within_min(points: np.ndarray) -> float:
    """The smallest distance between two of ``points``."""
    best = np.inf
    for i in range(0, len(points), BLOCK):
        block = cdist(points[i : i + BLOCK], points)
        block[np.arange(len(block)), np.arange(i, i + len(block))] = np.inf
        best = min(best, float(block.min()))
    return best


def near_copy_mask(
    synthetic: ImageSet,
    train: ImageSet,
    holdout: ImageSet | None = None,
    *,
    extractor: FeatureExtractor | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Which synthetic images are closer to a training image than the closest holdout image.

    Parameters
    ----------
    synthetic, train : ImageSet
        The synthetic images and the real images the generator was trained on (same channels
        and size).
    holdout : ImageSet, optional
        Real images the generator never saw, of the same population: their closest approach to
        the training images is the reference. Default: the smallest distance between two
        training images.
    extractor : FeatureExtractor, optional
        Fitted on ``train`` normalised as the validation does (e.g. the ``extractor`` of
        :func:`~fedsynth.imaging.validation.prepare_image_validation`): also check in its space.

    Returns
    -------
    mask : ndarray of bool
        True for each synthetic image too close to a training image in some space.
    thresholds : dict
        The reference distance per space.

    Raises
    ------
    ImageDataError
        When a set has other channels or size than ``train``, or too few images.

    Examples
    --------
    >>> mask, thresholds = near_copy_mask(synthetic, train, holdout)  # doctest: +SKIP
    >>> released = synthetic.take(~mask)  # doctest: +SKIP
    """
    _check_like(train, synthetic, "synthetic")
    spaces = _Spaces(train, holdout, extractor)
    return spaces.too_close(synthetic.images), dict(spaces.thresholds)


def sample_without_near_copies(
    generator: Any,
    n: int,
    train: ImageSet,
    holdout: ImageSet | None = None,
    *,
    conditions: Mapping[str, Any] | None = None,
    seed: int | None = None,
    extractor: FeatureExtractor | None = None,
    max_rounds: int = 20,
) -> CopyFilterResult:
    """Draw ``n`` images from a fitted image generator, none too close to a training image.

    Draws ``n`` images, drops those :func:`near_copy_mask` flags and draws each dropped image's
    replacement with the same label values (the generator's ``conditions``), so the released
    set keeps the first draw's label mix; repeats until none is flagged.

    Parameters
    ----------
    generator : fitted image generator
        Anything with ``sample(n, conditions=..., seed=...)`` returning an ImageSet (e.g.
        ``latent_diffusion``, ``dp_gan``).
    n : int
        Images to release.
    train, holdout, extractor
        As for :func:`near_copy_mask`.
    conditions : dict, optional
        Label values every image must have (passed to ``sample``).
    seed : int, optional
        Seed of the first draw and of the redraws.
    max_rounds : int
        Rounds of redrawing at most; images still flagged after them are dropped (the result
        then holds fewer than ``n`` images).

    Returns
    -------
    CopyFilterResult

    Examples
    --------
    >>> found = sample_without_near_copies(gen, 500, train, holdout, seed=0)  # doctest: +SKIP
    >>> found.dropped, len(found.images)  # doctest: +SKIP
    """
    spaces = _Spaces(train, holdout, extractor)
    rng = np.random.default_rng(seed)
    draw = generator.sample(int(n), conditions=conditions, seed=int(rng.integers(2**31)))
    _check_like(train, draw, "synthetic")
    images, labels = draw.images.copy(), draw.labels.copy()
    flagged = np.flatnonzero(spaces.too_close(images))
    dropped, rounds = len(flagged), 0
    while len(flagged) and rounds < max_rounds:
        rounds += 1
        _redraw(generator, flagged, images, labels, conditions, rng)
        again = spaces.too_close(images[flagged])
        flagged = flagged[again]
        dropped += len(flagged)
    keep = np.ones(len(images), dtype=bool)
    keep[flagged] = False
    released = ImageSet(
        images[keep],
        labels[keep].reset_index(drop=True),
        channels=draw.channels,
        spacing=draw.spacing,
        orientation=draw.orientation,
    )
    return CopyFilterResult(released, dropped, rounds, dict(spaces.thresholds))


def _redraw(
    generator: Any,
    flagged: np.ndarray,
    images: np.ndarray,
    labels: pd.DataFrame,
    conditions: Mapping[str, Any] | None,
    rng: np.random.Generator,
) -> None:
    """Replace ``images[flagged]`` in place by draws with the same label values."""
    columns = list(labels.columns)
    if not columns:  # an unconditional generator: one draw for them all
        fresh = generator.sample(len(flagged), conditions=conditions, seed=int(rng.integers(2**31)))
        images[flagged] = fresh.images
        return
    groups = labels.iloc[flagged].groupby(columns, sort=True, dropna=False).indices
    for values, positions in groups.items():
        values = values if isinstance(values, tuple) else (values,)
        wanted = dict(conditions or {}) | {
            c: v.item() if hasattr(v, "item") else v for c, v in zip(columns, values, strict=True)
        }
        fresh = generator.sample(len(positions), conditions=wanted, seed=int(rng.integers(2**31)))
        images[flagged[positions]] = fresh.images
