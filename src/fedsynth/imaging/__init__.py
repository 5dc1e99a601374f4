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

* generators (:mod:`fedsynth.imaging.generators`), made by name: ``latent_diffusion`` (MONAI's
  KL autoencoder and class-conditional diffusion UNet, DDPM training, DDIM sampling; under
  ``dp`` an autoencoder on public images and DP-SGD on the UNet) and ``dp_gan`` (a conditional
  GroupNorm DCGAN whose discriminator trains with DP-SGD), e.g.
  ``fedsynth.make("latent_diffusion").fit(images).sample(16, conditions={"idh_mutant": 1})``.
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
