"""Synthetic medical images (to come; see the imaging issue).

What will live here, on the same estimator base and federable protocol as the tables:

* image specs and loaders: a folder of PNG/TIFF with a labels CSV, NIfTI volumes (nibabel) and
  DICOM series (pydicom), keeping spacing and orientation;
* the built-in simulated multi-sequence brain MRI cohort, with known label->appearance rules;
* generators: ``latent_diffusion`` (MONAI's AutoencoderKL and DiffusionModelUNet with DDPM
  training and DDIM sampling) and ``dp_gan`` (a conditional GAN whose discriminator trains with
  DP-SGD through :mod:`fedsynth.core.privacy`);
* image validation in the SAFE report format: feature-space FID/KID, precision/recall, texture
  and histogram distances, MS-SSIM diversity, classifier utility, memorisation and membership
  inference.
"""
