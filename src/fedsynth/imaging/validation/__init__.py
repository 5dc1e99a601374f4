"""Image validation in the SAFE format: fidelity, quality, diversity, utility and privacy of
synthetic images.

Metrics are :class:`fedsynth.core.metrics.Metric` objects computed on
:class:`~fedsynth.imaging.validation.data.ImageValidationData` (real training, synthetic and
real holdout images on one intensity scale, embedded by an autoencoder trained on the real
images: no downloaded weights). PIQE scores each image's quality without a reference
(:mod:`~fedsynth.imaging.validation.quality`); the utility metric trains a small CNN on the
synthetic images and tests it on the real holdout per label column
(:mod:`~fedsynth.imaging.validation.utility`). :func:`validate_images` runs them all.
:func:`sample_without_near_copies` releases a generator's images with none closer to a training
image than real unseen images are (:mod:`~fedsynth.imaging.validation.copy_filter`);
:func:`sample_checked_across_sites` does it for generator sharing, every draw checked at every
site by its :class:`SiteCopyCheck` (:mod:`~fedsynth.imaging.validation.cross_site`).
"""

from fedsynth.imaging.validation.api import IMAGE_METRICS, validate_images
from fedsynth.imaging.validation.copy_filter import (
    CopyFilterResult,
    near_copy_mask,
    sample_without_near_copies,
)
from fedsynth.imaging.validation.cross_site import (
    CrossSiteResult,
    SiteCopyCheck,
    sample_checked_across_sites,
)
from fedsynth.imaging.validation.data import ImageValidationData, prepare_image_validation
from fedsynth.imaging.validation.features import FeatureExtractor

__all__ = [
    "IMAGE_METRICS",
    "CopyFilterResult",
    "CrossSiteResult",
    "FeatureExtractor",
    "ImageValidationData",
    "SiteCopyCheck",
    "near_copy_mask",
    "prepare_image_validation",
    "sample_checked_across_sites",
    "sample_without_near_copies",
    "validate_images",
]
