"""NIfTI volumes (nibabel), as volumes or as axial slices, keeping spacing and orientation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from fedsynth.exceptions import ImageDataError
from fedsynth.imaging.imageset import ImageSet
from fedsynth.imaging.loaders._labels import check_same_shape, match_labels, read_labels

NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: Spacings closer than this (mm) count as equal across files.
SPACING_TOLERANCE = 1e-3


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _read(path: Path) -> tuple[np.ndarray, tuple[float, ...], str]:
    """Volume in RAS+ order (x, y, z[, c]), its voxel size and its stored axis codes."""
    import nibabel as nib

    try:
        image = nib.load(str(path))
        codes = "".join(nib.aff2axcodes(image.affine))
        # Reorient to the closest RAS+ axes so that axis 2 runs inferior -> superior and axial
        # slices are data[:, :, k] whatever the scanner stored.
        image = nib.as_closest_canonical(image)
        data = np.asarray(image.dataobj, dtype=np.float32)
        zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    except Exception as error:  # any reader failure is the file's fault: name it
        raise ImageDataError([f"file {path.name!r} cannot be read as NIfTI ({error})"]) from error
    if data.ndim not in (3, 4):
        raise ImageDataError(
            [
                f"file {path.name!r} holds a {data.ndim}-D array {data.shape}; expected a 3-D "
                "volume or a 4-D volume with channels last"
            ]
        )
    return data, zooms, codes


def load_nifti(
    paths_or_folder: str | Path | Sequence[str | Path | Sequence[str | Path]],
    *,
    labels: str | Path | pd.DataFrame | None = None,
    file_column: str = "file",
    slices: Literal["axial", "volumes"] = "axial",
    channels: Sequence[str] | None = None,
    site_column: str | None = None,
    skip_empty: bool = True,
) -> ImageSet:
    """Read NIfTI files as volumes or as axial slices.

    Every volume is reoriented to the closest RAS+ axes (nibabel's ``as_closest_canonical``),
    so images from scanners that store axes differently line up; the labels keep each file's
    stored axis codes in the column ``stored_orientation``.

    Parameters
    ----------
    paths_or_folder : path, or sequence of paths or of path groups
        A folder (every ``.nii``/``.nii.gz`` in it, sorted), or a list of files. An item may be
        a group of files of one subject, one per channel (e.g. T1, T2, FLAIR): their volumes
        become the channels. A 4-D file (x, y, z, c) gives its channels itself.
    labels : str, Path or DataFrame, optional
        One row per subject, ``file_column`` naming its (first) file.
    file_column : str
        The labels column naming the files.
    slices : {"axial", "volumes"}
        ``"axial"``: one 2-D image per axial slice (labels repeated, with a ``slice`` column);
        ``"volumes"``: one 3-D image per subject (``N x C x X x Y x Z``).
    channels : sequence of str, optional
        Channel names; every subject must have that many channels.
    site_column : str, optional
        The labels column naming each subject's site.
    skip_empty : bool
        With ``slices="axial"``, drop slices that are constant in every channel (air).

    Returns
    -------
    ImageSet
        Spacing in mm from the header; orientation ``("R", "A", "S")`` for volumes and
        ``("R", "A")`` for axial slices.

    Raises
    ------
    ImageDataError
        Naming the files that cannot be read, differ in shape, channel count or spacing, or do
        not match the labels one to one.
    """
    if isinstance(paths_or_folder, (str, Path)):
        folder = Path(paths_or_folder)
        if not folder.is_dir():
            raise ImageDataError([f"NIfTI folder {str(folder)!r} does not exist"])
        groups = [[p] for p in sorted(folder.iterdir()) if _is_nifti(p)]
        if not groups:
            raise ImageDataError([f"no .nii or .nii.gz files in {str(folder)!r}"])
    else:
        groups = [
            [Path(item)] if isinstance(item, (str, Path)) else [Path(p) for p in item]
            for item in paths_or_folder
        ]
        if not groups:
            raise ImageDataError(["no NIfTI files given"])
    if slices not in ("axial", "volumes"):
        raise ImageDataError([f"slices must be 'axial' or 'volumes'; got {slices!r}"])
    keys = [group[0].name for group in groups]
    volumes: dict[str, np.ndarray] = {}
    spacings: dict[str, tuple[float, ...]] = {}
    stored: list[str] = []
    for key, group in zip(keys, groups, strict=True):
        parts = [_read(path) for path in group]
        check_same_shape({p.name: part[0].shape[:3] for p, part in zip(group, parts, strict=True)})
        arrays = [part[0] if part[0].ndim == 4 else part[0][..., None] for part in parts]
        volumes[key] = np.moveaxis(np.concatenate(arrays, axis=3), 3, 0)
        spacings[key] = parts[0][1]
        stored.append(parts[0][2])
    check_same_shape({k: v.shape[1:] for k, v in volumes.items()}, "volume shape")
    check_same_shape({k: v.shape[:1] for k, v in volumes.items()}, "channel count")
    first = spacings[keys[0]]
    odd = [
        k for k, s in spacings.items() if np.max(np.abs(np.subtract(s, first))) > SPACING_TOLERANCE
    ]
    if odd:
        raise ImageDataError(
            [
                f"volumes must share one voxel spacing (resample them first); {keys[0]!r} has "
                f"{first} mm, but " + ", ".join(f"{k!r} has {spacings[k]}" for k in odd[:8])
            ]
        )
    n_channels = volumes[keys[0]].shape[0]
    if channels is not None and len(channels) != n_channels:
        raise ImageDataError(
            [
                f"{len(channels)} channel names {list(channels)} given, but {keys[0]!r} has "
                f"{n_channels} channel(s)"
            ]
        )
    table = match_labels(keys, read_labels(labels, file_column), file_column)
    table["stored_orientation"] = stored
    if slices == "volumes":
        return ImageSet(
            np.stack([volumes[k] for k in keys]),
            table,
            channels=channels,
            spacing=first,
            orientation=("R", "A", "S"),
            site_column=site_column,
            sources=keys,
        )
    images, rows, sources = [], [], []
    for i, key in enumerate(keys):
        volume = volumes[key]
        for k in range(volume.shape[3]):
            plane = volume[:, :, :, k]
            if skip_empty and all(np.ptp(plane[c]) == 0 for c in range(len(plane))):
                continue
            images.append(plane)
            rows.append({**table.iloc[i].to_dict(), "slice": k})
            sources.append(f"{key}#z{k}")
    if not images:
        raise ImageDataError(["every axial slice of every volume is empty (constant)"])
    return ImageSet(
        np.stack(images),
        pd.DataFrame(rows),
        channels=channels,
        spacing=first[:2],
        orientation=("R", "A"),
        site_column=site_column,
        sources=sources,
    )
