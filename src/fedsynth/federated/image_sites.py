"""The image side of federated training: what differs when each site holds an
:class:`~fedsynth.imaging.ImageSet` instead of a table.

The apps and strategies are the tables' (:mod:`~fedsynth.federated.server_app`,
:mod:`~fedsynth.federated.client_app`, :mod:`~fedsynth.federated.strategies`): an image generator
implements the same federable protocol (:class:`~fedsynth.core.federable.Federable`) on an
:class:`~fedsynth.imaging.generators.ImageSchema`. Only these steps are the images' own:

* a site's images are a folder (``images.npz`` + ``labels.csv``, :mod:`fedsynth.imaging.npz`)
  that its SuperNode reads, never sent;
* in the statistics phase a site sends its image schema (channels, size, label classes with
  their shares, intensity range, image count; under ``dp`` the declared label values and range
  with uniform shares) instead of column statistics, and the server merges them
  (:func:`build_image_schema`), naming any site whose channels, size or label columns differ;
* a site's own generator (generator sharing) samples its own case mix (:func:`own_case_mix`),
  and the server's pooled sample keeps each image's site in a ``site`` label column
  (:func:`pool_images`).

``synthetic_sharing`` is for tables (its server trains on pooled rows) and is refused for
images. The torch-free parts of :mod:`fedsynth.imaging` are imported only when images are
federated.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fedsynth.exceptions import FedsynthError, ImageDataError
from fedsynth.federated.errors import FederationError

if TYPE_CHECKING:
    from fedsynth.federated.messages import Content, Payload
    from fedsynth.imaging.generators import ImageSchema
    from fedsynth.imaging.imageset import ImageSet

#: The modality names of the run settings.
TABULAR, IMAGING = "tabular", "imaging"
#: The label column a pooled synthetic image set names each image's site in.
SITE_COLUMN = "site"


def is_image_sites(partitions: Mapping[str, Any]) -> bool:
    """Whether every site holds an :class:`~fedsynth.imaging.ImageSet` (``False`` for tables).

    Raises
    ------
    FederationError
        When some sites hold images and others not.
    """
    from fedsynth.imaging.imageset import ImageSet

    kinds = {name: isinstance(data, ImageSet) for name, data in partitions.items()}
    if any(kinds.values()) and not all(kinds.values()):
        others = [name for name, is_images in kinds.items() if not is_images]
        raise FederationError(
            f"some sites hold an ImageSet and others not ({', '.join(map(repr, others))}): "
            "every site must hold images, or every site a table"
        )
    return bool(kinds) and all(kinds.values())


def site_schema(images: ImageSet, params: Mapping[str, Any]) -> ImageSchema:
    """The schema of one site's images, as the generator's ``params`` ask for it.

    ``label_columns``, ``label_values`` and ``intensity_range`` are the generator's own
    parameters. Under ``dp`` the label values and intensity range must be declared and every
    class gets the same share: the values seen, their shares and the extremes would be releases.

    Raises
    ------
    ImageDataError
        What does not fit (see :meth:`ImageSchema.from_images`); under ``dp``, a public fact not
        declared.
    """
    from fedsynth.imaging.generators import ImageSchema

    private = params.get("dp") is not None
    if private:
        missing = [k for k in ("label_values", "intensity_range") if params.get(k) is None]
        if missing and not (params.get("label_columns") == [] and missing == ["label_values"]):
            raise ImageDataError(
                [
                    f"under dp, declare {' and '.join(missing)} in the generator's params "
                    "(public facts): what a site's images hold would otherwise be a release"
                ]
            )
    return ImageSchema.from_images(
        images,
        label_columns=params.get("label_columns"),
        label_values=params.get("label_values"),
        intensity_range=params.get("intensity_range"),
        uniform_classes=private,
    )


def federation_params(
    partitions: Mapping[str, ImageSet], params: Mapping[str, Any]
) -> dict[str, Any]:
    """The generator's ``params`` with ``label_columns`` decided on the sites' pooled labels
    when neither they nor ``label_values`` are given (a simulation: at a real deployment they are
    declared), so that every site conditions on the same columns."""
    import pandas as pd

    from fedsynth.imaging.generators import ImageSchema

    params = dict(params)
    if params.get("label_columns") is None and params.get("label_values") is None:
        pooled = pd.concat([images.labels for images in partitions.values()], ignore_index=True)
        params["label_columns"] = ImageSchema.default_label_columns(pooled)
    return params


def check_image_sites(partitions: Mapping[str, ImageSet], params: Mapping[str, Any]) -> ImageSchema:
    """Check the sites' images before a federation starts; the schema they will share.

    Raises
    ------
    ImageDataError
        Naming each site whose images do not fit: volumes, labels, a missing label column, or
        channels, size or label columns that differ from the first site's.
    """
    from fedsynth.imaging.generators import ImageSchema

    if len(partitions) < 2:
        raise ImageDataError([f"federated training needs 2 sites or more, got {len(partitions)}"])
    schemas, problems = {}, []
    for name, images in partitions.items():
        try:
            schemas[name] = site_schema(images, params)
        except ImageDataError as error:
            problems += [f"site {name!r}: {problem}" for problem in error.problems]
    if problems:
        raise ImageDataError(problems)
    return ImageSchema.merge(list(schemas.values()), names=list(schemas))


def write_image_sites(partitions: Mapping[str, ImageSet], folder: Path) -> dict[str, Path]:
    """One folder per site (``images.npz`` + ``labels.csv``), what its SuperNode reads."""
    from fedsynth.imaging.npz import save_image_set

    return {
        name: save_image_set(images, folder / f"site_{i}")
        for i, (name, images) in enumerate(partitions.items())
    }


def read_site(path: str | os.PathLike) -> Any:
    """A site's data: its image set folder, or its table (CSV, TSV or Parquet)."""
    from fedsynth.imaging.npz import is_image_set_folder

    if is_image_set_folder(path):
        from fedsynth.imaging.npz import load_image_set

        return load_image_set(path)
    from fedsynth.tabular.io import read_table

    return read_table(str(path))


# ---------------------------------------------------------------------- the statistics phase
def statistics_reply(content: Mapping[str, Payload], name: str, data: Any) -> Content:
    """A site's image schema (its aggregate description), or its refusal naming the problem."""
    from fedsynth.federated.messages import Payload
    from fedsynth.imaging.imageset import ImageSet

    params = json.loads(content["common"].config["params"])
    try:
        if not isinstance(data, ImageSet):
            raise ImageDataError(
                [
                    f"the federation trains an image generator, but this site holds a "
                    f"{type(data).__name__}, not images"
                ]
            )
        schema = site_schema(data, params)
    except ImageDataError as error:
        refusal = f"site {name!r} refused: " + "; ".join(map(str, error.problems))
        return {"site": Payload({"name": name, "refused": refusal, "columns": "[]"})}
    statistics = {"n_rows": len(data), "image_schema": schema.to_dict()}
    return {"site": Payload({"name": name, "statistics": json.dumps(statistics)})}


def build_image_schema(statistics: Mapping[str, Mapping[str, Any]]) -> ImageSchema:
    """The server's shared schema: the merge of the sites' image schemas.

    Raises
    ------
    FederationError
        Naming each site whose channels, size or label columns differ from the first site's.
    """
    from fedsynth.imaging.generators import ImageSchema

    names = sorted(statistics)
    schemas = [ImageSchema.from_dict(statistics[name]["image_schema"]) for name in names]
    try:
        return ImageSchema.merge(schemas, names=names)
    except ImageDataError as error:
        raise FederationError(
            "the sites' images do not agree:\n" + "\n".join(map(str, error.problems))
        ) from error


def schema_from_payload(modality: str, config: Mapping[str, Any], arrays: Mapping) -> Any:
    """The shared schema a message carries: a table's, or an image schema."""
    if modality == IMAGING:
        from fedsynth.imaging.generators import ImageSchema

        return ImageSchema.from_payload(config, arrays)
    from fedsynth.federated.encoder_stats import SharedSchema

    return SharedSchema.from_payload(config, arrays)


# ---------------------------------------------------------------------- generator sharing
def own_case_mix(generator: Any, images: ImageSet) -> Any:
    """Make a site's own generator sample its own case mix; returns it.

    The site's model is built on the shared schema, whose class shares are the pooled ones: left
    so, a site's generator would draw classes the site never had. The site's own shares are
    what it sent in the statistics phase, so nothing more leaves it. Under ``dp`` the classes
    keep their uniform shares (the site's would be a release).
    """
    if getattr(generator, "dp", None) is None:
        generator.schema_ = generator.schema_.with_shares_of(images)
    return generator


def output_problem(generator: Any, schema: ImageSchema) -> str | None:
    """Why a site's image generator cannot join the pooled sample, or ``None``."""
    own = getattr(generator, "schema_", None)
    if getattr(generator, "modality", None) != IMAGING or own is None:
        return f"it is a {type(generator).__name__}, not an image generator"
    for name in ("channels", "size", "label_columns"):
        if list(getattr(own, name)) != list(getattr(schema, name)):
            return f"its {name} {list(getattr(own, name))} are not {list(getattr(schema, name))}"
    return None


def pool_images(parts: Mapping[str, ImageSet], rng: np.random.Generator) -> ImageSet:
    """The sites' synthetic images in one set, shuffled, each labelled with its site in the
    ``site`` label column (unless the generators already condition on a ``site`` label)."""
    import pandas as pd

    from fedsynth.imaging.imageset import ImageSet

    sets = list(parts.values())
    if not sets:
        raise FedsynthError("no synthetic images to pool")
    labels = []
    for name, images in parts.items():
        table = images.labels.copy()
        if SITE_COLUMN not in table.columns:
            table[SITE_COLUMN] = name
        labels.append(table)
    order = rng.permutation(sum(len(s) for s in sets))
    return ImageSet(
        np.concatenate([s.images for s in sets])[order],
        pd.concat(labels, ignore_index=True).iloc[order].reset_index(drop=True),
        channels=sets[0].channels,
        spacing=sets[0].spacing,
        site_column=SITE_COLUMN,
    )
