"""Synthetic medical images: image sets, loaders, the simulated MRI cohort and image validation.

* :class:`ImageSet`: images (``N x C x H x W`` float32), one row of labels each, channel names,
  spacing, orientation, site column and source files, checked on construction;
* loaders (:mod:`fedsynth.imaging.loaders`): a folder of PNG/TIFF with a labels CSV, NIfTI
  volumes (nibabel) and DICOM series (pydicom), keeping spacing and orientation;
* :func:`fedsynth.imaging.datasets.brain_mri_cohort`: a simulated 4-sequence brain MRI glioma
  cohort with known label->appearance rules;
* image validation (:mod:`fedsynth.imaging.validation`): FID/KID, precision/recall/density/
  coverage in an autoencoder feature space trained on the real images, texture and intensity
  histograms, MS-SSIM diversity, near-copies, closeness and membership inference.

Generators (latent diffusion on MONAI networks, a DP-GAN) come next, on the estimator base of
:mod:`fedsynth.core`.
"""

from fedsynth.imaging.datasets import brain_mri_cohort
from fedsynth.imaging.imageset import ImageSet
from fedsynth.imaging.loaders import load_dicom_series, load_image_folder, load_nifti
from fedsynth.imaging.validation import validate_images

__all__ = [
    "ImageSet",
    "brain_mri_cohort",
    "load_dicom_series",
    "load_image_folder",
    "load_nifti",
    "validate_images",
]
