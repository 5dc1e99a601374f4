"""Reading an uploaded zip of images: unpacking it safely, finding its layout, loading it.

A zip holds one of three layouts (folders inside it are allowed):

* PNG or TIFF files and **one** labels CSV whose ``file`` column names each image (as
  :func:`~fedsynth.imaging.loaders.load_image_folder` reads a folder);
* NIfTI volumes (``.nii``, ``.nii.gz``) in one folder, cut into axial slices, with an optional
  labels CSV (``file`` column);
* the DICOM files of one series (``.dcm`` or files with the DICOM marker), one image per slice.

The archive is never trusted: members are written under fixed folders by their checked names
(no absolute path, ``..``, link or hidden file), and what it may cost is capped before anything
is decoded: members, unpacked bytes (counted while unpacking, since a zip's own sizes can lie),
the compression ratio of large members (a zip bomb), the pixels of every image (read from the
file headers) and the images in all. Every refusal names the zip and the member.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from fedsynth.exceptions import ImageDataError
from fedsynth.imaging.imageset import ImageSet
from fedsynth.web.uploads import megabytes

#: Members of one zip.
MAX_MEMBERS = 20_000
#: Bytes of all members once unpacked.
MAX_UNPACKED_BYTES = 2 * 1024**3
#: Largest ratio of unpacked to packed size of a member above :data:`RATIO_FLOOR` bytes:
#: images (even NIfTI of mostly air) stay far below it; a zip bomb is far above.
MAX_RATIO = 200
RATIO_FLOOR = 1024**2
#: Pixels along one side of an image, and images (slices) in one upload.
MAX_SIDE = 1024
MAX_IMAGES = 20_000
#: Values (images x channels x pixels) of the loaded set: 256 MB as float32.
MAX_VALUES = 64 * 1024**2
#: Fewest images a run can split into training and holdout images.
MIN_IMAGES = 8

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
#: Layouts as the dataset records name them.
LAYOUTS = {"PNG/TIFF": "png/tiff", "NIfTI": "nifti", "DICOM": "dicom"}
NIFTI_SUFFIXES = (".nii", ".nii.gz")
_CHUNK = 1024**2


@dataclass(frozen=True)
class LoadedImages:
    """Images read from a zip, with the layout they were found in."""

    images: ImageSet
    layout: str  # "png/tiff", "nifti" or "dicom"


def read_image_zip(archive: Path, *, filename: str, workdir: Path) -> LoadedImages:
    """Unpack ``archive`` into ``workdir`` (checked, capped) and load its images.

    Parameters
    ----------
    archive : Path
        The uploaded file.
    filename : str
        Its name as the user gave it (in messages only).
    workdir : Path
        An empty folder to unpack into (the caller removes it).

    Returns
    -------
    LoadedImages
        2-D images (``N x C x H x W``) with one row of labels each.

    Raises
    ------
    ImageDataError
        Naming the zip and, where one is at fault, the member: not a zip, unsafe or too large
        members, no images, no or several labels CSVs, images too large or too many pixel values
        (from their headers), unreadable files, mixed shapes, labels without images, 3-D
        volumes, too many or too few images.
    """
    members = _unpack(archive, filename, workdir)
    images = [m for m in members if m.name.lower().endswith(IMAGE_SUFFIXES)]
    nifti = [m for m in members if m.name.lower().endswith(NIFTI_SUFFIXES)]
    csvs = [m for m in members if m.suffix.lower() == ".csv"]
    dicom = [m for m in members if m.suffix.lower() == ".dcm" or _is_dicom(workdir / m)]
    kinds = {"PNG/TIFF": images, "NIfTI": nifti, "DICOM": dicom}
    found = [name for name, files in kinds.items() if files]
    if not found:
        raise _error(
            filename,
            f"holds no PNG, TIFF, NIfTI or DICOM image (members: {_names(members)})",
        )
    if len(found) > 1:
        raise _error(filename, f"mixes {' and '.join(found)} images; upload one kind per zip")
    if len(csvs) > 1:
        raise _error(filename, f"holds {len(csvs)} CSV files ({_names(csvs)}); keep one labels CSV")
    labels = workdir / csvs[0] if csvs else None
    layout = found[0]
    try:
        if images:
            if labels is None:
                raise _error(
                    filename,
                    "has no labels CSV: add one CSV with a 'file' column naming each image "
                    f"(images: {_names(images)})",
                )
            _check_sides(workdir, images, _image_header)
            loaded = _load_folder(workdir, labels)
        elif nifti:
            folders = {m.parent for m in nifti}
            if len(folders) > 1:
                raise _error(filename, "holds NIfTI files in several folders; put them in one")
            _check_sides(workdir, nifti, _nifti_header)
            loaded = _load_nifti(workdir / folders.pop(), labels)
        else:
            folders = {m.parent for m in dicom}
            if len(folders) > 1:
                raise _error(filename, "holds DICOM files in several folders; give one series")
            _check_sides(workdir, dicom, _dicom_header)
            loaded = _load_dicom(workdir / folders.pop())
    except ImageDataError as error:
        if all(str(p).startswith(f"{filename}:") for p in error.problems):
            raise
        # The loaders name files by their path on the server: the zip's own names are shown.
        raise ImageDataError(
            [f"{filename}: {str(p).replace(f'{workdir}/', '')}" for p in error.problems]
        ) from None
    _check_size(loaded, filename)
    return LoadedImages(loaded, LAYOUTS[layout])


def _unpack(archive: Path, filename: str, workdir: Path) -> list[PurePosixPath]:
    """Write the zip's files under ``workdir``; returns their checked relative paths."""
    try:
        handle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise _error(filename, f"is not a zip archive ({error})") from None
    with handle:
        infos = [i for i in handle.infolist() if not i.is_dir()]
        if len(infos) > MAX_MEMBERS:
            raise _error(filename, f"holds {len(infos):,} files; at most {MAX_MEMBERS:,}")
        declared = sum(i.file_size for i in infos)
        if declared > MAX_UNPACKED_BYTES:
            raise _error(
                filename,
                f"unpacks to {megabytes(declared)}; at most {megabytes(MAX_UNPACKED_BYTES)}",
            )
        kept: list[PurePosixPath] = []
        budget = MAX_UNPACKED_BYTES
        for info in infos:
            name = PurePosixPath(info.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts or ":" in name.parts[0]:
                raise _error(filename, f"member {info.filename!r} points outside the archive")
            if name.parts[0] == "__MACOSX" or any(p.startswith(".") for p in name.parts):
                continue  # an archiver's own files, not the user's
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise _error(filename, f"member {info.filename!r} is a link; links are refused")
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
                raise _error(
                    filename,
                    f"member {info.filename!r} unpacks {ratio:,.0f} times larger than it is "
                    f"packed (at most {MAX_RATIO}); refused as a zip bomb",
                )
            target = workdir.joinpath(*name.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                budget = _copy_capped(handle, info, target, budget, filename)
            except (zipfile.BadZipFile, OSError, EOFError) as error:
                message = f"member {info.filename!r} cannot be unpacked ({error})"
                raise _error(filename, message) from None
            kept.append(name)
    return sorted(kept)


def _copy_capped(
    handle: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int, filename: str
) -> int:
    """Unpack one member, counting the bytes really written against ``budget``."""
    with handle.open(info) as source, open(target, "wb") as sink:
        while chunk := source.read(_CHUNK):
            budget -= len(chunk)
            if budget < 0:
                raise _error(
                    filename, f"unpacks to more than {megabytes(MAX_UNPACKED_BYTES)}; refused"
                )
            sink.write(chunk)
    return budget


def _is_dicom(path: Path) -> bool:
    """Whether a file carries the DICOM marker (``DICM`` after a 128-byte preamble)."""
    if path.suffix or not path.is_file():
        return False
    with open(path, "rb") as handle:
        head = handle.read(132)
    return head[128:132] == b"DICM"


def _check_sides(workdir: Path, members: list[PurePosixPath], header) -> None:
    """Refuse images larger than :data:`MAX_SIDE` a side, or more pixel values in all than
    :data:`MAX_VALUES`, from the files' headers, before any is decoded."""
    too_large, values = [], 0
    for member in members:
        try:
            sides, count = header(workdir / member)
        except Exception:  # an unreadable header: the loader names the file and the reason
            continue
        values += count
        if max(sides, default=0) > MAX_SIDE:
            too_large.append(f"{member.as_posix()!r} ({' x '.join(map(str, sides))})")
    if too_large:
        raise ImageDataError(
            [
                f"image(s) larger than {MAX_SIDE} pixels a side: {', '.join(too_large[:8])}"
                + (" ..." if len(too_large) > 8 else "")
            ]
        )
    if values > MAX_VALUES:
        raise ImageDataError(
            [
                f"the images hold {values:,} pixel values in all; at most {MAX_VALUES:,} "
                "(fewer or smaller images)"
            ]
        )


def _image_header(path: Path) -> tuple[tuple[int, ...], int]:
    """Height and width of a PNG/TIFF, and its values (pixels x bands x pages)."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
        pages = getattr(image, "n_frames", 1)
        return (height, width), width * height * len(image.getbands()) * pages


def _nifti_header(path: Path) -> tuple[tuple[int, ...], int]:
    import nibabel as nib

    shape = tuple(int(s) for s in nib.load(str(path)).header.get_data_shape())
    return shape[:2], int(np.prod(shape, dtype=np.int64))


def _dicom_header(path: Path) -> tuple[tuple[int, ...], int]:
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    rows, columns = int(ds.Rows), int(ds.Columns)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    return (rows, columns), rows * columns * frames * samples


def _load_folder(workdir: Path, labels: Path) -> ImageSet:
    from fedsynth.imaging.loaders import load_image_folder

    # From the zip's root: the loader then names each image by its path in the zip.
    return load_image_folder(workdir, labels)


def _load_nifti(folder: Path, labels: Path | None) -> ImageSet:
    from fedsynth.imaging.loaders import load_nifti

    return load_nifti(folder, labels=labels, slices="axial")


def _load_dicom(folder: Path) -> ImageSet:
    from fedsynth.imaging.loaders import load_dicom_series

    return load_dicom_series(folder, slices="axial")


def _check_size(images: ImageSet, filename: str) -> None:
    problems = []
    if images.is_volume:
        problems.append("holds 3-D volumes; the image generators take 2-D slices")
    if len(images) > MAX_IMAGES:
        problems.append(f"holds {len(images):,} images; at most {MAX_IMAGES:,}")
    if images.images.size > MAX_VALUES:
        problems.append(
            f"holds {images.images.size:,} pixel values in all; at most {MAX_VALUES:,} "
            "(fewer or smaller images)"
        )
    if len(images) < MIN_IMAGES:
        problems.append(
            f"holds {len(images)} image(s); a run needs at least {MIN_IMAGES} (training and "
            "holdout images)"
        )
    if problems:
        raise ImageDataError([f"{filename}: {p}" for p in problems])


def _names(members: list[PurePosixPath], most: int = 6) -> str:
    shown = ", ".join(repr(m.as_posix()) for m in members[:most])
    return (shown + (f" and {len(members) - most} more" if len(members) > most else "")) or "none"


def _error(filename: str, message: str) -> ImageDataError:
    return ImageDataError([f"{filename}: {message}"])


def write_images(images: ImageSet, folder: Path) -> None:
    """Store a loaded set as ``images.npz`` (float32 arrays, channel names, spacing; no pickle)
    and ``labels.csv``, the files a run reads."""
    np.savez_compressed(
        folder / "images.npz",
        images=images.images,
        channels=np.asarray(list(images.channels), dtype=str),
        spacing=np.asarray(images.spacing, dtype=np.float64),
    )
    images.labels.to_csv(folder / "labels.csv", index=False)


def read_images(folder: Path) -> ImageSet:
    """The set stored by :func:`write_images`."""
    import pandas as pd

    with np.load(folder / "images.npz", allow_pickle=False) as arrays:
        images, channels = arrays["images"], arrays["channels"].tolist()
        spacing = arrays["spacing"].tolist()
    labels_file = folder / "labels.csv"
    labels = pd.read_csv(labels_file) if labels_file.stat().st_size > 1 else None
    return ImageSet(images, labels, channels=channels, spacing=spacing)
