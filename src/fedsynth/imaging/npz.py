"""An image set as a folder of two files, read back exactly: ``images.npz`` and ``labels.csv``.

``images.npz`` holds ``images`` (float32 ``N x C x H x W``), ``channels`` and ``spacing``, read
with ``numpy.load`` without pickle; ``labels.csv`` one row per image, in the same order. This is
what ``fedsynth images sample`` writes and what a federated site's SuperNode reads: PNG would
round intensities to 8 or 16 bits and scatter the channels of one image over several files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from fedsynth.exceptions import ImageDataError
from fedsynth.imaging.imageset import ImageSet

#: The two files of an image set folder.
ARRAYS, LABELS = "images.npz", "labels.csv"


def is_image_set_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by :func:`save_image_set`."""
    return (Path(path) / ARRAYS).is_file()


def save_image_set(images: ImageSet, folder: str | os.PathLike) -> Path:
    """Write ``images.npz`` and ``labels.csv`` in ``folder`` (each atomically); returns it.

    Examples
    --------
    >>> save_image_set(cohort, "site_a")  # doctest: +SKIP
    """
    from fedsynth.core.io import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / ARRAYS) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            images=images.images,
            channels=np.asarray(list(images.channels), dtype=str),
            spacing=np.asarray(images.spacing, dtype=np.float64),
        )
    with atomic_path(folder / LABELS) as tmp:
        images.labels.to_csv(tmp, index=False)
    return folder


def load_image_set(folder: str | os.PathLike) -> ImageSet:
    """Read a folder written by :func:`save_image_set`.

    Raises
    ------
    ImageDataError
        Naming the file that cannot be read.
    """
    folder = Path(folder)
    try:
        with np.load(folder / ARRAYS, allow_pickle=False) as arrays:
            images, channels = arrays["images"], arrays["channels"].tolist()
            spacing = arrays["spacing"].tolist()
    except Exception as error:  # any reader failure is the file's fault: name it
        raise ImageDataError([f"{folder / ARRAYS}: cannot be read ({error})"]) from error
    labels_file = folder / LABELS
    labels = None
    if labels_file.is_file() and labels_file.read_text(encoding="utf-8").strip():
        try:
            labels = pd.read_csv(labels_file)
        except (ValueError, pd.errors.ParserError) as error:
            raise ImageDataError([f"{labels_file}: cannot be read as CSV ({error})"]) from error
    return ImageSet(images, labels, channels=channels, spacing=spacing)
