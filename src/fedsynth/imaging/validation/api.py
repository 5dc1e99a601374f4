"""``validate_images``: every image metric on real-train, synthetic and real-holdout images."""

from __future__ import annotations

from fedsynth.core.metrics import Metric, MetricResult
from fedsynth.imaging.imageset import ImageSet
from fedsynth.imaging.validation.data import ImageValidationData, prepare_image_validation
from fedsynth.imaging.validation.diversity import MSSSIMDiversity
from fedsynth.imaging.validation.fidelity import (
    Coverage,
    Density,
    FrechetDistance,
    IntensityHistogram,
    KernelDistance,
    Precision,
    Recall,
    TextureDistance,
)
from fedsynth.imaging.validation.privacy import (
    ClosestTrainingFeatureDistance,
    DistanceMembershipInference,
    NearCopies,
)
from fedsynth.imaging.validation.quality import PIQEQuality
from fedsynth.imaging.validation.utility import ClassifierUtility

#: The image metrics, in report order.
IMAGE_METRICS: tuple[type[Metric], ...] = (
    FrechetDistance,
    KernelDistance,
    Precision,
    Recall,
    Density,
    Coverage,
    TextureDistance,
    IntensityHistogram,
    PIQEQuality,
    MSSSIMDiversity,
    ClassifierUtility,
    NearCopies,
    ClosestTrainingFeatureDistance,
    DistanceMembershipInference,
)


def validate_images(
    real: ImageSet | None,
    synthetic: ImageSet | None,
    holdout: ImageSet | None = None,
    *,
    epochs: int = 10,
    seed: int = 0,
    max_images: int = 1000,
    utility_epochs: int = 20,
    data: ImageValidationData | None = None,
) -> dict[str, MetricResult]:
    """Score synthetic images against the real training images (and a real holdout).

    Parameters
    ----------
    real, synthetic, holdout : ImageSet
        Real training images, generated images, and optionally real images the generator never
        saw (needed by membership inference; the reference of every other score). ``real`` and
        ``synthetic`` may be ``None`` when ``data`` is given.
    epochs : int
        Training epochs of the autoencoder that gives the feature space.
    seed : int
        Seed of the feature extractor and of every random draw.
    max_images : int
        Most images used from each set.
    utility_epochs : int
        Training epochs of the utility metric's classifiers (train on synthetic, test on the
        real holdout, per label column).
    data : ImageValidationData, optional
        Inputs already prepared by :func:`prepare_image_validation` (then the sets and the
        options above are not used): several synthetic sets can share one feature extractor.

    Returns
    -------
    dict of str to MetricResult
        Keyed by metric name, in :data:`IMAGE_METRICS` order.

    Examples
    --------
    >>> from fedsynth.imaging.datasets import brain_mri_cohort
    >>> train, test = brain_mri_cohort(60, size=32).split(0.5)
    >>> results = validate_images(train, test, test, epochs=1)  # doctest: +SKIP
    >>> results["fid"].score  # doctest: +SKIP
    """
    if data is None:
        data = prepare_image_validation(
            real,
            synthetic,
            holdout,
            epochs=epochs,
            seed=seed,
            max_images=max_images,
            utility_epochs=utility_epochs,
        )
    return {metric.name: metric().compute(data) for metric in IMAGE_METRICS}
