"""Public images: images that are not private (an open data set, a scanner's phantom or template
images, a simulated cohort), on which a generator may train without spending privacy budget.

They must look like the private images to a network (same channels in the same order, same
height and width); a mismatch is refused naming what differs. Their labels are read when they
hold the generator's label columns with declared values; otherwise they count as unlabelled.
"""

from __future__ import annotations

import numpy as np

from fedsynth.exceptions import ImageDataError
from fedsynth.imaging.generators._label_values import label_json
from fedsynth.imaging.generators._schema import ImageSchema
from fedsynth.imaging.imageset import ImageSet


def check_public_images(public: ImageSet, images: ImageSet) -> None:
    """Refuse ``public`` images a network built for ``images`` cannot read.

    Raises
    ------
    ImageDataError
        Naming what differs: volumes instead of slices, the channel count, the channel names
        (when both sets name their channels), or the height and width.
    """
    problems = []
    if public.is_volume:
        problems.append(
            f"public_images are volumes {public.shape}; expected 2-D slices N x C x H x W"
        )
    elif public.shape[1] != images.shape[1]:
        problems.append(
            f"public_images have {public.shape[1]} channel(s) {list(public.channels)}; the "
            f"training images have {images.shape[1]}: {list(images.channels)}"
        )
    elif _named(public) and _named(images) and public.channels != images.channels:
        problems.append(
            f"public_images' channels are {list(public.channels)}; the training images' are "
            f"{list(images.channels)} (same sequences in the same order needed)"
        )
    if not public.is_volume and tuple(public.shape[2:]) != tuple(images.shape[2:]):
        problems.append(
            f"public_images are {public.shape[2]} x {public.shape[3]} pixels; the training "
            f"images are {images.shape[2]} x {images.shape[3]}"
        )
    if len(public) == 0:
        problems.append("public_images holds no image")
    if problems:
        raise ImageDataError(problems)


def public_classes(schema: ImageSchema, public: ImageSet, rng: np.random.Generator) -> np.ndarray:
    """Class indices of the public images for pretraining.

    Public images holding every label column of ``schema`` get their own classes; a value the
    model does not know (not declared, or never seen in the training images) is refused,
    naming the column and value. An image whose combination of known values is not one of the
    model's classes (a combination the training images lack), and every image of a public set
    without the label columns, is unlabelled: it gets a class drawn with the schema's class
    shares, so that the networks' class-independent parts learn what the images look like
    while their class-specific parts (the generator's class embedding, the discriminator's
    projection) learn nothing in particular, left to the private images.
    """
    n = len(public)
    drawn = rng.choice(schema.n_classes, size=n, p=schema.class_weights).astype(np.int64)
    columns = list(schema.label_columns)
    if not columns or not all(c in public.labels.columns for c in columns):
        return drawn
    problems = []
    combos = [
        tuple(label_json(v) for v in row) for row in public.labels[columns].itertuples(index=False)
    ]
    for j, column in enumerate(columns):
        known = {tuple(c)[j] for c in schema.classes}
        unknown = sorted({c[j] for c in combos} - known, key=str)
        if unknown:
            problems.append(
                f"public_images: label column {column!r} holds {unknown[:5]}, not among the "
                f"model's values {sorted(known, key=str)}"
            )
    if problems:
        raise ImageDataError(problems)
    index = {tuple(c): i for i, c in enumerate(schema.classes)}
    return np.array([index.get(c, d) for c, d in zip(combos, drawn, strict=True)], np.int64)


def _named(images: ImageSet) -> bool:
    """Whether the channels have names of their own (not ``channel_0``, ``channel_1``...)."""
    return images.channels != tuple(f"channel_{i}" for i in range(len(images.channels)))
