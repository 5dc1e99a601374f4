"""One DICOM series (pydicom): slices sorted in space, rescaled to stored units."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from fedsynth.exceptions import ImageDataError
from fedsynth.imaging.imageset import ImageSet
from fedsynth.imaging.loaders._labels import check_same_shape

#: DICOM patient axes (LPS+): the code each axis points towards as its coordinate grows.
_LPS = (("R", "L"), ("A", "P"), ("I", "S"))
#: Non-identifying header fields copied to the labels when present.
_KEPT = (
    "Modality",
    "SeriesDescription",
    "PatientSex",
    "PatientAge",
    "MagneticFieldStrength",
    "Manufacturer",
)


def _code(direction: np.ndarray) -> str:
    """Axis code of a direction in DICOM patient coordinates (its largest component)."""
    axis = int(np.argmax(np.abs(direction)))
    return _LPS[axis][int(direction[axis] > 0)]


def load_dicom_series(
    folder: str | Path,
    *,
    slices: Literal["axial", "volumes"] = "volumes",
) -> ImageSet:
    """Read the DICOM files of one series as a volume (or its slices), in scanner units.

    Slices are sorted by their position along the slice normal (``ImagePositionPatient``
    projected on the cross product of ``ImageOrientationPatient``), or by ``InstanceNumber``
    when positions are missing. Pixel values are mapped by ``RescaleSlope`` and
    ``RescaleIntercept`` (e.g. to Hounsfield units for CT).

    Parameters
    ----------
    folder : str or Path
        A folder holding the files of one series (every file in it is read).
    slices : {"volumes", "axial"}
        ``"volumes"``: one image ``1 x 1 x D x H x W``; ``"axial"``: one 2-D image per slice
        of the series (axial for the usual head and body acquisitions).

    Returns
    -------
    ImageSet
        Spacing ``(slice spacing, row spacing, column spacing)`` in mm from the positions (or
        ``SliceThickness``) and ``PixelSpacing``; orientation from ``ImageOrientationPatient``.
        Labels hold the series' non-identifying header fields (modality, description, sex, age,
        field strength, manufacturer), never names or identifiers.

    Raises
    ------
    ImageDataError
        Naming files that are not DICOM or hold no pixels, slices of another size, or a folder
        holding several series.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    if slices not in ("axial", "volumes"):
        raise ImageDataError([f"slices must be 'axial' or 'volumes'; got {slices!r}"])
    root = Path(folder)
    if not root.is_dir():
        raise ImageDataError([f"DICOM folder {str(root)!r} does not exist"])
    paths = sorted(p for p in root.iterdir() if p.is_file())
    if not paths:
        raise ImageDataError([f"no files in DICOM folder {str(root)!r}"])
    datasets, problems = [], []
    for path in paths:
        try:
            ds = pydicom.dcmread(path)
            pixels = ds.pixel_array.astype(np.float32)
        except (InvalidDicomError, AttributeError, ValueError, OSError, RuntimeError) as error:
            problems.append(f"file {path.name!r} is not a readable DICOM image ({error})")
            continue
        if pixels.ndim != 2:
            problems.append(f"file {path.name!r} holds {pixels.ndim}-D pixels; expected one slice")
            continue
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        datasets.append((path.name, ds, pixels * slope + float(getattr(ds, "RescaleIntercept", 0))))
    if problems:
        raise ImageDataError(problems)
    series = {str(getattr(ds, "SeriesInstanceUID", "")) for _, ds, _ in datasets}
    if len(series) > 1:
        raise ImageDataError(
            [
                f"folder {str(root)!r} holds {len(series)} series ({sorted(series)}); "
                "give one folder per series"
            ]
        )
    check_same_shape({name: px.shape for name, _, px in datasets}, "rows x columns")

    first = datasets[0][1]
    cosines = np.asarray(getattr(first, "ImageOrientationPatient", [1, 0, 0, 0, 1, 0]), float)
    row_dir, col_dir = cosines[:3], cosines[3:]
    normal = np.cross(row_dir, col_dir)
    positions = [getattr(ds, "ImagePositionPatient", None) for _, ds, _ in datasets]
    if all(p is not None for p in positions):
        along = np.array([float(np.dot(normal, np.asarray(p, float))) for p in positions])
    else:
        along = np.array([float(getattr(ds, "InstanceNumber", 0) or 0) for _, ds, _ in datasets])
    order = np.argsort(along, kind="stable")
    volume = np.stack([datasets[i][2] for i in order])
    pixel = [float(v) for v in getattr(first, "PixelSpacing", [1.0, 1.0])]
    steps = np.diff(along[order])
    if len(steps) and all(p is not None for p in positions) and np.all(steps > 0):
        thickness = float(np.median(steps))
    else:
        thickness = float(getattr(first, "SliceThickness", 1.0) or 1.0)
    # Array rows advance along the column direction cosine, columns along the row cosine.
    orientation = (_code(normal), _code(col_dir), _code(row_dir))
    info = {k: str(getattr(first, k)) for k in _KEPT if k in first}
    names = [datasets[i][0] for i in order]
    if slices == "volumes":
        return ImageSet(
            volume[None, None],
            pd.DataFrame([{**info, "n_slices": len(order)}]),
            spacing=(thickness, *pixel),
            orientation=orientation,
            channels=[info.get("Modality", "image")],
            sources=[f"{root.name}/"],
        )
    labels = pd.DataFrame([{**info, "slice": k} for k in range(len(order))])
    return ImageSet(
        volume[:, None],
        labels,
        spacing=pixel,
        orientation=orientation[1:],
        channels=[info.get("Modality", "image")],
        sources=names,
    )
