"""A folder of PNG or TIFF images with a labels CSV."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fedsynth.exceptions import ImageDataError
from fedsynth.imaging.imageset import ImageSet
from fedsynth.imaging.loaders._labels import check_same_shape, match_labels, read_labels

#: File name endings read as images.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


def _channels_first(array: np.ndarray) -> np.ndarray:
    """``H x W`` -> ``1 x H x W``; ``H x W x 2|3|4`` (colour) -> ``C x H x W``; pages stay."""
    if array.ndim == 2:
        return array[None]
    # Pages of a multi-page TIFF are few; a last axis of 2-4 after a longer first one is the
    # colour axis of a grey+alpha, RGB or RGBA image.
    if array.ndim == 3 and array.shape[-1] in (2, 3, 4) and array.shape[0] > 4:
        return np.moveaxis(array, -1, 0)
    return array


def _to_float(array: np.ndarray, rescale: bool) -> np.ndarray:
    if rescale and np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        return (array.astype(np.float32) - info.min) / (info.max - info.min)
    return array.astype(np.float32)


def load_image_folder(
    folder: str | Path,
    labels_csv: str | Path | pd.DataFrame | None = None,
    *,
    file_column: str = "file",
    channels: Sequence[str] | None = None,
    site_column: str | None = None,
    spacing: Sequence[float] | None = None,
    rescale: bool = True,
) -> ImageSet:
    """Read every PNG and TIFF image under ``folder`` (sorted by path) and match its labels.

    A 2-D file is one channel; an ``H x W x 3`` or ``H x W x 4`` file (RGB, RGBA) gives 3 or
    4 channels; a multi-page TIFF (``C x H x W``) one channel per page.

    Parameters
    ----------
    folder : str or Path
        The folder (searched recursively).
    labels_csv : str, Path or DataFrame, optional
        One row per image; ``file_column`` names the file, relative to ``folder`` or by its
        base name. Without it, the labels hold only the file names.
    file_column : str
        The labels column naming the files.
    channels : sequence of str, optional
        Channel names; every image must have that many channels.
    site_column : str, optional
        The labels column naming each image's site.
    spacing : sequence of float, optional
        Pixel size in mm (PNG and TIFF rarely carry it); default 1 mm.
    rescale : bool
        Map integer pixel values to [0, 1] by their type's range (8-bit 255 -> 1.0); ``False``
        keeps the stored values (e.g. 16-bit intensities).

    Returns
    -------
    ImageSet

    Raises
    ------
    ImageDataError
        When the folder holds no images, a file cannot be read, images differ in shape or
        channel count, or labels and files do not match one to one; each problem names files.

    Examples
    --------
    >>> images = load_image_folder("scans/", "scans/labels.csv", site_column="hospital")
    ... # doctest: +SKIP
    """
    import skimage.io

    root = Path(folder)
    if root.is_file():
        raise ImageDataError([f"{str(root)!r} is a file; expected the folder of the images"])
    if not root.is_dir():
        raise ImageDataError([f"image folder {str(root)!r} does not exist"])
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ImageDataError([f"no {'/'.join(IMAGE_SUFFIXES)} files under {str(root)!r}"])
    keys = [p.relative_to(root).as_posix() for p in paths]
    arrays: dict[str, np.ndarray] = {}
    unreadable: list[str] = []
    for key, path in zip(keys, paths, strict=True):
        if path.stat().st_size == 0:  # the reader's own error suggests installing plugins
            unreadable.append(f"file {key!r} is empty (0 bytes)")
            continue
        try:
            arrays[key] = _channels_first(np.asarray(skimage.io.imread(path)))
        except Exception as error:  # any reader failure is the file's fault: name it
            unreadable.append(f"file {key!r} cannot be read as an image ({error})")
    if unreadable:
        raise ImageDataError(unreadable)
    check_same_shape({k: a.shape[1:] for k, a in arrays.items()}, "height x width")
    check_same_shape({k: a.shape[:1] for k, a in arrays.items()}, "channel count")
    n_channels = next(iter(arrays.values())).shape[0]
    if channels is not None and len(channels) != n_channels:
        raise ImageDataError(
            [
                f"{len(channels)} channel names {list(channels)} given, but the images "
                f"(e.g. {keys[0]!r}) have {n_channels} channel(s)"
            ]
        )
    labels = match_labels(keys, read_labels(labels_csv, file_column), file_column)
    if channels is None:
        channels = {
            1: ["gray"],
            3: ["red", "green", "blue"],
            4: ["red", "green", "blue", "alpha"],
        }.get(n_channels)
    return ImageSet(
        np.stack([_to_float(arrays[k], rescale) for k in keys]),
        labels,
        channels=channels,
        spacing=spacing,
        site_column=site_column,
        sources=keys,
    )
