"""The container every imaging part passes around: images, their labels and how they were taken.

An :class:`ImageSet` holds ``N`` images as one float32 array, channels first (``N x C x H x W``
for slices, ``N x C x D x H x W`` for volumes), one row of labels per image, the channel names
(e.g. MRI sequences), the pixel spacing in millimetres and the orientation of the spatial axes
as axis codes (the letter each axis points towards as its index grows, as
:func:`nibabel.aff2axcodes` writes them, e.g. ``("R", "A", "S")``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.exceptions import ImageDataError

#: Axis codes allowed in ``orientation`` (nibabel's labels: left/right, posterior/anterior,
#: inferior/superior).
AXIS_CODES = frozenset("LRPAIS")


@dataclass
class ImageSet:
    """Images with one row of labels each, channel names, spacing and orientation.

    Parameters
    ----------
    images : array of shape (N, C, H, W) or (N, C, D, H, W)
        Pixel or voxel intensities; stored as float32 (converted when given otherwise).
    labels : DataFrame, optional
        One row per image, in the same order (patient data, classes, site). Its index is reset.
        Default: an empty table with ``N`` rows.
    channels : sequence of str, optional
        One distinct name per channel. Default ``("channel_0", ...)``.
    spacing : sequence of float, optional
        Size of a pixel (voxel) along each spatial axis, in millimetres. Default 1 mm each.
    orientation : sequence of str, optional
        Axis code of each spatial axis (see the module docstring), or ``None`` when unknown.
    site_column : str, optional
        The labels column naming each image's site (hospital or scanner).
    sources : sequence of str, optional
        The file (or files) each image was read from.

    Raises
    ------
    ImageDataError
        Listing every problem found: array rank, non-finite values, label rows, channel names,
        spacing, orientation, site column or sources that do not match the images.

    Examples
    --------
    >>> import numpy as np
    >>> s = ImageSet(np.zeros((2, 1, 8, 8)), channels=["T1"])
    >>> s.shape
    (2, 1, 8, 8)
    """

    images: np.ndarray
    labels: pd.DataFrame | None = None
    channels: Sequence[str] | None = None
    spacing: Sequence[float] | None = None
    orientation: Sequence[str] | None = None
    site_column: str | None = None
    sources: Sequence[str] | None = field(default=None)

    def __post_init__(self) -> None:
        problems: list[str] = []
        images = np.asarray(self.images)
        if images.ndim not in (4, 5):
            raise ImageDataError(
                [
                    f"images must be N x C x H x W (slices) or N x C x D x H x W (volumes); "
                    f"got an array of shape {images.shape}"
                ]
            )
        if not (np.issubdtype(images.dtype, np.number) or images.dtype == bool):
            raise ImageDataError([f"images must be numbers; got dtype {images.dtype}"])
        self.images = np.ascontiguousarray(images, dtype=np.float32)
        n, c = self.images.shape[:2]
        n_spatial = self.images.ndim - 2
        if not np.isfinite(self.images).all():
            bad = np.flatnonzero(~np.isfinite(self.images.reshape(n, -1)).all(axis=1))
            problems.append(f"{len(bad)} image(s) hold NaN or infinite values: {self._names(bad)}")
        if self.labels is None:
            self.labels = pd.DataFrame(index=range(n))
        elif not isinstance(self.labels, pd.DataFrame):
            problems.append(f"labels must be a pandas DataFrame; got {type(self.labels).__name__}")
        elif len(self.labels) != n:
            problems.append(f"{len(self.labels)} label rows for {n} images")
        else:
            self.labels = self.labels.reset_index(drop=True)
        self.channels = (
            tuple(f"channel_{i}" for i in range(c))
            if self.channels is None
            else tuple(str(x) for x in self.channels)
        )
        if len(self.channels) != c:
            problems.append(f"{len(self.channels)} channel names {self.channels} for {c} channels")
        if len(set(self.channels)) != len(self.channels):
            problems.append(f"channel names must be distinct; got {self.channels}")
        self.spacing = (
            (1.0,) * n_spatial if self.spacing is None else tuple(float(x) for x in self.spacing)
        )
        if len(self.spacing) != n_spatial or not all(s > 0 for s in self.spacing):
            problems.append(
                f"spacing must be {n_spatial} positive sizes in mm (one per spatial axis); "
                f"got {self.spacing}"
            )
        if self.orientation is not None:
            self.orientation = tuple(str(x) for x in self.orientation)
            if len(self.orientation) != n_spatial or not set(self.orientation) <= AXIS_CODES:
                problems.append(
                    f"orientation must be {n_spatial} axis codes from {sorted(AXIS_CODES)}; "
                    f"got {self.orientation}"
                )
        if (
            self.site_column is not None
            and isinstance(self.labels, pd.DataFrame)
            and self.site_column not in self.labels.columns
        ):
            problems.append(
                f"site column {self.site_column!r} is not among the label columns "
                f"{list(self.labels.columns)}"
            )
        if self.sources is not None:
            self.sources = tuple(str(x) for x in self.sources)
            if len(self.sources) != n:
                problems.append(f"{len(self.sources)} source names for {n} images")
        if problems:
            raise ImageDataError(problems)

    def _names(self, indices: np.ndarray, most: int = 5) -> str:
        """Source names (or positions) of some images, for error messages."""
        if self.sources is not None and len(self.sources) == len(self.images):
            names = [repr(self.sources[i]) for i in indices[:most]]
        else:
            names = [f"#{i}" for i in indices[:most]]
        return ", ".join(names) + (", ..." if len(indices) > most else "")

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        site = f", {self.sites().nunique()} sites" if self.site_column else ""
        return (
            f"ImageSet({len(self)} images of {'x'.join(map(str, self.shape[2:]))}, "
            f"channels {list(self.channels)}, spacing {self.spacing} mm{site})"
        )

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the image array."""
        return tuple(self.images.shape)

    @property
    def is_volume(self) -> bool:
        """Whether the images are 3-D volumes (``N x C x D x H x W``)."""
        return self.images.ndim == 5

    def sites(self) -> pd.Series:
        """Each image's site, from ``site_column``.

        Raises
        ------
        ImageDataError
            When the set has no site column.
        """
        if self.site_column is None:
            raise ImageDataError(["this image set has no site column (site_column=None)"])
        return self.labels[self.site_column]

    def take(self, indices: Sequence[int] | np.ndarray) -> ImageSet:
        """A new set holding the images at ``indices`` (positions or a boolean mask)."""
        indices = np.asarray(indices)
        if indices.dtype == bool:
            indices = np.flatnonzero(indices)
        return ImageSet(
            self.images[indices],
            self.labels.iloc[indices].reset_index(drop=True),
            channels=self.channels,
            spacing=self.spacing,
            orientation=self.orientation,
            site_column=self.site_column,
            sources=None if self.sources is None else [self.sources[i] for i in indices],
        )

    def split(
        self, holdout: float = 0.3, *, seed: int = 0, stratify: str | None = None
    ) -> tuple[ImageSet, ImageSet]:
        """Random train/holdout split (e.g. for validation with a real holdout).

        Parameters
        ----------
        holdout : float
            Share of images in the holdout, in (0, 1).
        seed : int
            Seed of the shuffle.
        stratify : str, optional
            A label column whose proportions both parts keep.

        Returns
        -------
        train, holdout : ImageSet
        """
        if not 0 < holdout < 1:
            raise ImageDataError([f"holdout must be a share in (0, 1); got {holdout}"])
        rng = np.random.default_rng(seed)
        if stratify is None:
            groups = [np.arange(len(self))]
        else:
            if stratify not in self.labels.columns:
                raise ImageDataError([f"stratify column {stratify!r} is not among the labels"])
            groups = [np.flatnonzero(m) for m in pd.get_dummies(self.labels[stratify]).T.values]
        test: list[int] = []
        for group in groups:
            shuffled = rng.permutation(group)
            test.extend(shuffled[: round(holdout * len(group))].tolist())
        mask = np.zeros(len(self), bool)
        mask[test] = True
        return self.take(~mask), self.take(mask)


def as_image_set(
    images: Any, labels: Any = None, *, channels: Sequence[str] | None = None
) -> ImageSet:
    """An :class:`ImageSet` from an ImageSet (``labels`` then replace its labels) or an array
    ``N x C x H x W`` with ``labels`` (a DataFrame or a dict of columns).

    Raises
    ------
    ImageDataError
        When ``images`` is neither, or the labels do not match the images.
    """
    if isinstance(labels, Mapping):
        try:
            labels = pd.DataFrame(dict(labels))
        except ValueError as exc:
            raise ImageDataError([f"labels: the columns differ in length ({exc})"]) from exc
    if labels is not None and not isinstance(labels, pd.DataFrame):
        raise ImageDataError(
            [f"labels must be a DataFrame or a dict of columns; got {type(labels).__name__}"]
        )
    if isinstance(images, ImageSet):
        if labels is None:
            return images
        if len(labels) != len(images):
            raise ImageDataError([f"{len(labels)} label rows for {len(images)} images"])
        return ImageSet(
            images.images,
            labels,
            channels=images.channels,
            spacing=images.spacing,
            orientation=images.orientation,
            sources=images.sources,
        )
    if isinstance(images, np.ndarray) or hasattr(images, "__array__"):
        return ImageSet(np.asarray(images), labels, channels=channels)
    raise ImageDataError(
        [f"images must be an ImageSet or an array N x C x H x W; got {type(images).__name__}"]
    )
