"""The utility metric (train on synthetic, test on the real holdout, per label) in
validate_images: real-like synthetic images teach the labels, images whose labels were shuffled
do not."""

from __future__ import annotations

import numpy as np
import pytest

from fedsynth.imaging.datasets import brain_mri_cohort
from fedsynth.imaging.imageset import ImageSet
from fedsynth.imaging.validation import IMAGE_METRICS, prepare_image_validation, validate_images


@pytest.fixture(scope="module")
def runs():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cohort = brain_mri_cohort(150, size=32, seed=5)
    train, holdout = cohort.split(0.3, seed=0, stratify="idh_mutant")
    like = train.take(np.arange(len(train)))  # stands in for images as good as real
    shuffled = ImageSet(
        train.images, train.labels.sample(frac=1.0, random_state=0), channels=train.channels
    )
    options = {"epochs": 1, "seed": 0, "utility_epochs": 8}
    good = prepare_image_validation(train, like, holdout, **options)
    bad = prepare_image_validation(train, shuffled, holdout, **options, extractor=good.extractor)
    found = {
        "good": validate_images(None, None, data=good),
        "bad": validate_images(None, None, data=bad),
        "no_holdout": validate_images(train, like, epochs=1, max_images=30, utility_epochs=1),
    }
    torch.set_num_threads(threads)
    return found


def test_utility_and_piqe_are_image_metrics(runs):
    names = [m.name for m in IMAGE_METRICS]
    assert "classifier_utility" in names and "piqe" in names
    result = runs["good"]["classifier_utility"]
    assert result.family == "utility" and result.direction == "higher"
    # Per label: the study's labels, not the site, the sex shared too, no ages or ids.
    assert set(result.columns) == {"tumour_type", "idh_mutant", "sex"}
    per_label = result.details["per_label"]["idh_mutant"]
    assert set(per_label) == {"synthetic", "real"}
    assert {"auc", "accuracy", "sensitivity", "specificity"} <= set(per_label["synthetic"])
    assert result.to_dict()["details"]["trtr_auc"]["tumour_type"] is not None


def test_shuffled_labels_teach_less(runs):
    good, bad = runs["good"]["classifier_utility"], runs["bad"]["classifier_utility"]
    assert good.columns["tumour_type"] > 0.75
    assert bad.columns["tumour_type"] < good.columns["tumour_type"] - 0.15
    assert bad.score < good.score


def test_utility_needs_a_holdout(runs):
    result = runs["no_holdout"]["classifier_utility"]
    assert result.skipped and "holdout" in result.skipped
