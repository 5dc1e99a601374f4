"""What an image generator is built on: channels, size, the label classes it conditions on and
the intensity map, checked against the images it is given.

:class:`ImageSchema` is the image counterpart of a table's metadata and encoder. A generator
learns one from its training images (:meth:`ImageSchema.from_images`), or, in federated
training, every site and the server build the model on one schema agreed beforehand
(:meth:`ImageSchema.merge` of the sites' schemas). It holds:

* the channel names and the image height and width;
* the label columns conditioned on and their **classes**: one class per combination of label
  values (e.g. ``(glioblastoma, 0)``), with each class's share of the training images, which is
  how a sample without conditions mixes them;
* the intensity map: each channel's ``[low, high]`` put linearly onto ``[-1, 1]``, the range the
  networks work in (values outside are clipped).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.exceptions import ConditionError, ImageDataError
from fedsynth.imaging.generators._label_values import (
    MAX_LABEL_VALUES,
    default_label_columns,
    label_json,
)
from fedsynth.imaging.imageset import ImageSet, as_image_set

__all__ = ["MAX_LABEL_VALUES", "ImageSchema", "as_image_set"]


@dataclass
class ImageSchema:
    """Channels, size, label classes and intensity map of an image generator (see the module
    docstring).

    Attributes
    ----------
    channels : list of str
        Channel names, in order.
    size : (int, int)
        Height and width in pixels.
    label_columns : list of str
        The label columns conditioned on (empty: unconditional).
    classes : list of list
        One combination of label values per class (JSON values), in class order.
    class_weights : list of float
        Each class's share of the images a sample without conditions draws.
    low, high : list of float
        Each channel's intensity range mapped onto ``[-1, 1]``.
    label_dtypes : dict of str to str
        The dtype of each label column, restored on sampled labels.
    n_images : int
        Training images (of all sites together for a merged schema).
    spacing : list of float
        Pixel size in mm, given to sampled images.
    """

    channels: list[str]
    size: tuple[int, int]
    label_columns: list[str]
    classes: list[list[Any]]
    class_weights: list[float]
    low: list[float]
    high: list[float]
    label_dtypes: dict[str, str]
    n_images: int
    spacing: list[float]

    # ------------------------------------------------------------------ building
    @classmethod
    def from_images(
        cls,
        images: ImageSet,
        *,
        label_columns: Sequence[str] | None = None,
        label_values: Mapping[str, Sequence[Any]] | None = None,
        intensity_range: Sequence[float] | Sequence[Sequence[float]] | None = None,
        uniform_classes: bool = False,
    ) -> ImageSchema:
        """The schema of ``images``.

        Parameters
        ----------
        images : ImageSet
            2-D images (``N x C x H x W``).
        label_columns : list of str, optional
            Label columns to condition on; by default those of ``label_values``, else every
            label column with 2 to
            :data:`MAX_LABEL_VALUES` distinct values, fewer than the images and not a float
            column (so ``age`` and ``patient_id`` are left out, ``site`` and ``sex`` kept).
        label_values : dict, optional
            The values of each label column, declared (public facts); the classes are then every
            combination of them. Default: the combinations seen in ``images``.
        intensity_range : (low, high) or list of them, optional
            Declared intensity range, one for all channels or one per channel. Default: each
            channel's minimum and maximum in ``images``.
        uniform_classes : bool
            Give every class the same share instead of its share of ``images`` (under DP, where
            the shares would be a release).

        Raises
        ------
        ImageDataError
            Naming what does not fit: volumes, a label column that is missing or has missing
            values, values outside ``label_values``, a bad ``intensity_range``.
        """
        if images.is_volume:
            raise ImageDataError(
                [f"image generators take 2-D slices (N x C x H x W); got volumes {images.shape}"]
            )
        labels = images.labels
        if label_columns is not None:
            columns = [str(c) for c in label_columns]
        elif label_values is not None:
            columns = [str(c) for c in label_values]
        else:
            columns = default_label_columns(labels)
        problems = [
            f"label column {c!r} is not among the labels {list(labels.columns)}"
            for c in columns
            if c not in labels.columns
        ]
        problems += [
            f"label column {c!r} has {int(labels[c].isna().sum())} missing value(s); every "
            "image needs a value to be conditioned on"
            for c in columns
            if c in labels.columns and labels[c].isna().any()
        ]
        if label_values is not None:
            problems += [
                f"label_values names {c!r}, which is not among the label columns {columns}"
                for c in label_values
                if c not in columns
            ]
            problems += [
                f"label_values declares no values for label column {c!r}"
                for c in columns
                if c not in label_values
            ]
        if problems:
            raise ImageDataError(problems)
        n = len(images)
        if label_values is not None:
            declared = [[label_json(v) for v in label_values[c]] for c in columns]
            classes = [list(combo) for combo in itertools.product(*declared)]
            counts = np.zeros(len(classes))
            unknown = []
            for c, values in zip(columns, declared, strict=True):
                seen = {label_json(v) for v in labels[c].unique()}
                unknown += [
                    f"label column {c!r} holds {v!r}, not among the declared values {values}"
                    for v in sorted(seen - set(values), key=str)
                ]
            if unknown:
                raise ImageDataError(unknown)
        else:
            combos = (
                labels[columns].apply(lambda row: tuple(label_json(v) for v in row), axis=1)
                if columns
                else pd.Series([()] * n)
            )
            tally = combos.value_counts()
            ordered = sorted(tally.index, key=lambda combo: tuple(map(str, combo)))
            classes = [list(combo) for combo in ordered]
            counts = np.array([tally[combo] for combo in ordered], dtype=float)
        if uniform_classes or counts.sum() == 0:
            weights = np.full(len(classes), 1.0 / len(classes))
        else:
            weights = counts / counts.sum()
        low, high = _intensity_range(images, intensity_range)
        return cls(
            channels=list(images.channels),
            size=(int(images.shape[2]), int(images.shape[3])),
            label_columns=columns,
            classes=classes,
            class_weights=[float(w) for w in weights],
            low=low,
            high=high,
            label_dtypes={c: str(labels[c].dtype) for c in columns},
            n_images=n,
            spacing=[float(s) for s in images.spacing],
        )

    @classmethod
    def merge(
        cls, schemas: Sequence[ImageSchema], names: Sequence[str] | None = None
    ) -> ImageSchema:
        """One schema for several sites: the union of their classes (shares weighted by their
        images), the widest intensity range per channel; channels, size and label columns must
        agree.

        Parameters
        ----------
        schemas : list of ImageSchema
            One per site.
        names : list of str, optional
            The sites' names, for the errors (default: their positions, "site 1", ...).

        Raises
        ------
        ImageDataError
            Naming each site whose channels, size or label columns differ from those most
            sites hold.
        """
        if not schemas:
            raise ValueError("no schema to merge")
        if names is None:
            names = [f"site {i}" for i in range(1, len(schemas) + 1)]
        else:
            names = [f"site {name!r}" for name in names]
        # The reference is what most sites hold (the first of them on a tie), so that the
        # error names the site that differs rather than the others.
        kinds = [(tuple(s.channels), tuple(s.size), tuple(s.label_columns)) for s in schemas]
        ref = max(range(len(kinds)), key=lambda i: (kinds.count(kinds[i]), -i))
        first = schemas[ref]
        problems = []
        for label, other in zip(names, schemas, strict=True):
            for name in ("channels", "size", "label_columns"):
                if list(getattr(other, name)) != list(getattr(first, name)):
                    problems.append(
                        f"{label}'s {name} {list(getattr(other, name))} differ from "
                        f"{names[ref]}'s {list(getattr(first, name))}"
                    )
        if problems:
            raise ImageDataError(problems)
        total = sum(s.n_images for s in schemas)
        shares: dict[tuple, float] = {}
        for schema in schemas:
            for combo, weight in zip(schema.classes, schema.class_weights, strict=True):
                key = tuple(combo)
                shares[key] = shares.get(key, 0.0) + weight * schema.n_images / max(total, 1)
        ordered = sorted(shares, key=lambda combo: tuple(map(str, combo)))
        norm = sum(shares.values()) or 1.0
        return cls(
            channels=list(first.channels),
            size=tuple(first.size),
            label_columns=list(first.label_columns),
            classes=[list(c) for c in ordered],
            class_weights=[shares[c] / norm for c in ordered],
            low=[min(s.low[i] for s in schemas) for i in range(len(first.low))],
            high=[max(s.high[i] for s in schemas) for i in range(len(first.high))],
            label_dtypes=dict(first.label_dtypes),
            n_images=total,
            spacing=list(first.spacing),
        )

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "channels": list(self.channels),
            "size": list(self.size),
            "label_columns": list(self.label_columns),
            "classes": [list(c) for c in self.classes],
            "class_weights": list(self.class_weights),
            "low": list(self.low),
            "high": list(self.high),
            "label_dtypes": dict(self.label_dtypes),
            "n_images": int(self.n_images),
            "spacing": list(self.spacing),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageSchema:
        """Inverse of :meth:`to_dict`."""
        schema = cls(
            channels=[str(c) for c in data["channels"]],
            size=(int(data["size"][0]), int(data["size"][1])),
            label_columns=[str(c) for c in data["label_columns"]],
            classes=[list(c) for c in data["classes"]],
            class_weights=[float(w) for w in data["class_weights"]],
            low=[float(v) for v in data["low"]],
            high=[float(v) for v in data["high"]],
            label_dtypes={str(k): str(v) for k, v in data["label_dtypes"].items()},
            n_images=int(data["n_images"]),
            spacing=[float(s) for s in data["spacing"]],
        )
        if len(schema.classes) != len(schema.class_weights) or any(
            len(c) != len(schema.label_columns) for c in schema.classes
        ):
            raise ValueError("the image schema's classes do not match its label columns")
        return schema

    @staticmethod
    def default_label_columns(labels: pd.DataFrame) -> list[str]:
        """The label columns conditioned on when none are named: every column with 2 to
        :data:`MAX_LABEL_VALUES` distinct values, fewer than the rows, no missing value and not
        a float column (so ``age`` and ``patient_id`` are left out, ``site`` and ``sex`` kept).

        Federated training decides them once on the pooled labels (a simulation), as one site
        alone may hold a single value of a column the others vary in.
        """
        return default_label_columns(labels)

    def to_payload(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-ready description and arrays (none), as federated training sends a schema."""
        return self.to_dict(), {}

    @classmethod
    def from_payload(
        cls, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None
    ) -> ImageSchema:
        """Inverse of :meth:`to_payload`."""
        return cls.from_dict(config)

    def with_shares_of(self, images: ImageSet) -> ImageSchema:
        """This schema with the class shares and image count of ``images`` (e.g. one site's):
        a site's own generator then samples its own case mix, not the pooled one.

        Raises
        ------
        ImageDataError
            When ``images`` do not fit the schema (see :meth:`check`).
        """
        counts = np.bincount(self.check(images), minlength=self.n_classes).astype(float)
        return replace(
            self,
            class_weights=[float(w) for w in counts / max(counts.sum(), 1.0)],
            n_images=len(images),
        )

    def share_of(self, conditions: Mapping[str, Any] | None) -> float:
        """The share of the images (class weights summed) whose labels meet ``conditions``;
        0 where no class does, or a condition names a value the schema does not hold."""
        if not conditions:
            return float(sum(self.class_weights))
        mask = np.ones(self.n_classes, bool)
        for column, value in conditions.items():
            if column not in self.label_columns:
                return 0.0
            j = self.label_columns.index(column)
            mask &= np.array([c[j] == label_json(value) for c in self.classes], bool)
        return float(np.asarray(self.class_weights)[mask].sum())

    # ------------------------------------------------------------------ using
    @property
    def n_classes(self) -> int:
        """Number of classes (1 for an unconditional generator)."""
        return len(self.classes)

    def check(self, images: ImageSet) -> np.ndarray:
        """Check that ``images`` fit the schema; their class indices.

        Raises
        ------
        ImageDataError
            Naming the channel count or names, the size, the label column or the label values
            (and the images holding them) that do not fit.
        """
        problems = []
        if images.is_volume:
            problems.append(f"expected 2-D slices N x C x H x W; got volumes {images.shape}")
        elif images.shape[1] != len(self.channels):
            problems.append(
                f"the images have {images.shape[1]} channel(s) {list(images.channels)}; this "
                f"generator was built for {len(self.channels)}: {self.channels}"
            )
        elif tuple(images.shape[2:]) != tuple(self.size):
            problems.append(
                f"the images are {images.shape[2]} x {images.shape[3]} pixels; this generator "
                f"was built for {self.size[0]} x {self.size[1]}"
            )
        missing = [c for c in self.label_columns if c not in images.labels.columns]
        if missing:
            problems.append(
                f"label column(s) {missing} are missing from the labels "
                f"{list(images.labels.columns)}"
            )
        if problems:
            raise ImageDataError(problems)
        index = {tuple(c): i for i, c in enumerate(self.classes)}
        combos = [
            tuple(label_json(v) for v in row)
            for row in images.labels[self.label_columns].itertuples(index=False)
        ]
        unknown = sorted({c for c in combos if c not in index}, key=str)
        if unknown:
            names = ", ".join(
                f"{dict(zip(self.label_columns, c, strict=True))} (image "
                f"{images._names(np.array([combos.index(c)]))})"
                for c in unknown[:5]
            )
            raise ImageDataError(
                [f"{len(unknown)} label combination(s) this generator does not know: {names}"]
            )
        return np.array([index[c] for c in combos], dtype=np.int64)

    def allowed_classes(self, conditions: Mapping[str, Any] | None) -> np.ndarray:
        """Probabilities of the classes that satisfy ``conditions`` (``{column: value}``).

        Raises
        ------
        ConditionError
            Naming an unknown column, or a value the column never takes (with the values it
            takes), or conditions no class meets together.
        """
        weights = np.asarray(self.class_weights, dtype=float)
        if not conditions:
            return weights / weights.sum()
        if not isinstance(conditions, Mapping):
            raise ConditionError(f"conditions must be a dict {{column: value}}, got {conditions!r}")
        mask = np.ones(self.n_classes, bool)
        problems = []
        for column, value in conditions.items():
            if column not in self.label_columns:
                problems.append(
                    f"unknown condition column {column!r}; this generator conditions on "
                    f"{self.label_columns or 'no label column'}"
                )
                continue
            j = self.label_columns.index(column)
            values = sorted({c[j] for c in self.classes}, key=str)
            wanted = label_json(value)
            if wanted not in values:
                problems.append(f"condition {column}={value!r}: {column!r} takes only {values}")
                continue
            mask &= np.array([c[j] == wanted for c in self.classes])
        if problems:
            raise ConditionError("; ".join(problems))
        if not mask.any():
            raise ConditionError(f"no training image has the label combination {dict(conditions)}")
        chosen = np.where(mask, weights, 0.0)
        if chosen.sum() <= 0:  # declared combinations never seen: drawn alike
            chosen = mask.astype(float)
        return chosen / chosen.sum()

    def labels_of(self, classes: np.ndarray) -> pd.DataFrame:
        """The label table of class indices, with the training labels' dtypes."""
        out = {}
        for j, column in enumerate(self.label_columns):
            values = pd.Series([self.classes[k][j] for k in classes], dtype=object)
            # A dtype pandas cannot cast back to (e.g. a category's name) keeps the objects.
            with contextlib.suppress(TypeError, ValueError):
                values = values.astype(self.label_dtypes[column])
            out[column] = values
        return pd.DataFrame(out, index=pd.RangeIndex(len(classes)))

    def scale(self, images: np.ndarray) -> np.ndarray:
        """Intensities mapped to ``[-1, 1]`` channel by channel (clipped)."""
        low = np.asarray(self.low, np.float32)[None, :, None, None]
        high = np.asarray(self.high, np.float32)[None, :, None, None]
        scaled = 2.0 * (images - low) / np.maximum(high - low, 1e-6) - 1.0
        return np.clip(scaled, -1.0, 1.0).astype(np.float32)

    def unscale(self, scaled: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`scale`."""
        low = np.asarray(self.low, np.float32)[None, :, None, None]
        high = np.asarray(self.high, np.float32)[None, :, None, None]
        return ((np.clip(scaled, -1.0, 1.0) + 1.0) / 2.0 * (high - low) + low).astype(np.float32)


def _intensity_range(
    images: ImageSet, declared: Sequence[float] | Sequence[Sequence[float]] | None
) -> tuple[list[float], list[float]]:
    c = images.shape[1]
    if declared is None:
        low = images.images.min(axis=(0, 2, 3))
        high = images.images.max(axis=(0, 2, 3))
        high = np.where(high > low, high, low + 1.0)  # a constant channel still maps somewhere
        return [float(v) for v in low], [float(v) for v in high]
    pairs = np.asarray(declared, dtype=float)
    if pairs.shape == (2,):
        pairs = np.tile(pairs, (c, 1))
    if pairs.shape != (c, 2) or not np.all(pairs[:, 1] > pairs[:, 0]):
        raise ImageDataError(
            [
                f"intensity_range must be (low, high) with low < high, or one such pair per "
                f"channel ({c}); got {declared!r}"
            ]
        )
    return [float(v) for v in pairs[:, 0]], [float(v) for v in pairs[:, 1]]
