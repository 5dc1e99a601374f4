"""Image loaders: PNG/TIFF folders with a labels CSV, NIfTI volumes, DICOM series.

Each returns an :class:`~fedsynth.imaging.imageset.ImageSet`; bad input raises one
:class:`~fedsynth.exceptions.ImageDataError` naming the files concerned.
"""

from fedsynth.imaging.loaders.dicom import load_dicom_series
from fedsynth.imaging.loaders.folder import load_image_folder
from fedsynth.imaging.loaders.nifti import load_nifti

__all__ = ["load_dicom_series", "load_image_folder", "load_nifti"]
