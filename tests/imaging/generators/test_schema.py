"""ImageSchema: classes and shares, intensity map, merging sites, JSON round trip."""

from __future__ import annotations

import numpy as np
import pytest

from fedsynth.exceptions import ImageDataError
from fedsynth.imaging import ImageSet
from fedsynth.imaging.generators import ImageSchema
from tests.imaging.generators.conftest import LABEL_VALUES


def test_default_label_columns_classes_and_shares(cohort):
    schema = ImageSchema.from_images(cohort)
    # Float and identifier-like columns are left out; few-valued ones conditioned on.
    assert schema.label_columns == ["site", "sex", "tumour_type", "idh_mutant"]
    combos = cohort.labels[schema.label_columns].drop_duplicates()
    assert schema.n_classes == len(combos)
    assert sum(schema.class_weights) == pytest.approx(1.0)
    classes = schema.check(cohort)
    assert np.bincount(classes, minlength=schema.n_classes) / len(cohort) == pytest.approx(
        schema.class_weights
    )
    back = schema.labels_of(classes)
    assert back.equals(cohort.labels[schema.label_columns])


def test_intensity_map_round_trips_and_clips(cohort):
    schema = ImageSchema.from_images(cohort)
    scaled = schema.scale(cohort.images)
    assert scaled.min() == pytest.approx(-1.0) and scaled.max() == pytest.approx(1.0)
    np.testing.assert_allclose(schema.unscale(scaled), cohort.images, atol=1e-5)
    declared = ImageSchema.from_images(cohort, intensity_range=(0.0, 0.5))
    assert declared.scale(cohort.images).max() == 1.0


def test_merge_takes_the_union_of_classes_weighted_by_site_size(cohort):
    sites = cohort.labels["site"]
    parts = [cohort.take(np.flatnonzero(sites == s)) for s in sorted(set(sites))]
    merged = ImageSchema.merge(
        [ImageSchema.from_images(p, label_columns=["tumour_type"]) for p in parts]
    )
    assert merged.n_images == len(cohort)
    shares = cohort.labels["tumour_type"].value_counts(normalize=True)
    got = dict(zip([c[0] for c in merged.classes], merged.class_weights, strict=True))
    assert got == pytest.approx(shares.to_dict())
    assert ImageSchema.from_dict(merged.to_dict()) == merged
    three = ImageSet(parts[1].images[:, :3], parts[1].labels)
    with pytest.raises(ImageDataError, match="site 2's channels"):
        ImageSchema.merge(
            [
                ImageSchema.from_images(parts[0], label_columns=["tumour_type"]),
                ImageSchema.from_images(three, label_columns=["tumour_type"]),
            ]
        )


def test_declared_values_make_every_combination_a_class(cohort):
    schema = ImageSchema.from_images(cohort, label_values=LABEL_VALUES, uniform_classes=True)
    assert schema.n_classes == 6 and len(set(schema.class_weights)) == 1
    assert schema.allowed_classes({"idh_mutant": 0}).tolist() == pytest.approx(
        [1 / 3 if c[1] == 0 else 0.0 for c in schema.classes]
    )
    with pytest.raises(ImageDataError, match="label column 'idh_mutant' has 1 missing"):
        labels = cohort.labels.copy()
        labels.loc[0, "idh_mutant"] = None
        ImageSchema.from_images(ImageSet(cohort.images, labels), label_columns=["idh_mutant"])
