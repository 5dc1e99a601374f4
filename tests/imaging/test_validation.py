"""Image validation: real holdout vs real train is the reference; noise and copies of training
images as synthetic stand-ins show that the metrics fail when they should."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from fedsynth.core.metrics import FAMILIES
from fedsynth.exceptions import ImageDataError
from fedsynth.imaging.datasets import brain_mri_cohort
from fedsynth.imaging.imageset import ImageSet
from fedsynth.imaging.validation import (
    IMAGE_METRICS,
    prepare_image_validation,
    validate_images,
)
from fedsynth.imaging.validation.ssim import ms_ssim_pairs, ssim_pairs


@pytest.fixture(scope="module")
def sets():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    train, holdout = brain_mri_cohort(90, size=32, seed=0).split(0.4, seed=0)
    rng = np.random.default_rng(1)
    mean = train.images.mean(axis=(0, 2, 3))[None, :, None, None]
    std = train.images.std(axis=(0, 2, 3))[None, :, None, None]
    noise = ImageSet(rng.normal(mean, std, holdout.shape), channels=train.channels)
    copies = train.take(np.arange(len(holdout)))
    reference = prepare_image_validation(train, holdout, holdout, epochs=2, seed=0)
    results = {"holdout": validate_images(None, None, data=reference)}
    for name, synthetic in (("noise", noise), ("copies", copies)):
        data = prepare_image_validation(
            train, synthetic, holdout, seed=0, extractor=reference.extractor
        )
        results[name] = validate_images(None, None, data=data)
    torch.set_num_threads(threads)
    return train, holdout, results


def test_every_metric_declares_itself_and_returns_json(sets):
    results = sets[2]["holdout"]
    assert list(results) == [m.name for m in IMAGE_METRICS]
    for result in results.values():
        assert result.family in FAMILIES and result.direction in ("higher", "lower")
        assert result.skipped is None
        assert 0 <= result.score <= 1
        json.dumps(result.to_dict())


def test_holdout_scores_as_real(sets):
    results = sets[2]["holdout"]
    for name in (
        "fid",
        "kid",
        "texture",
        "intensity_histogram",
        "near_copies",
        "closest_training_distance",
        "membership_inference",
        "ms_ssim_diversity",
    ):
        assert results[name].score == pytest.approx(1.0, abs=0.05), name
    assert results["precision"].value > 0.8 and results["coverage"].value > 0.8


def test_noise_fails_fidelity(sets):
    holdout, noise = sets[2]["holdout"], sets[2]["noise"]
    assert noise["fid"].value > 10 * holdout["fid"].value
    assert noise["kid"].value > holdout["kid"].value + 1
    for name in ("fid", "kid", "precision", "density", "coverage", "texture"):
        assert noise[name].score < 0.2, name
    assert noise["intensity_histogram"].score < holdout["intensity_histogram"].score - 0.1
    # Noise is not a copy of anything: privacy has nothing to flag.
    assert noise["near_copies"].value == 0


def test_copies_fail_privacy(sets):
    copies = sets[2]["copies"]
    assert copies["near_copies"].value == 1.0
    assert copies["near_copies"].details["median_nearest_ssim"] == pytest.approx(1.0)
    assert copies["closest_training_distance"].score == 0.0
    assert copies["membership_inference"].value > 0.7
    # ...while fidelity alone would have passed them.
    assert copies["fid"].score == pytest.approx(1.0)


def test_membership_inference_needs_a_holdout(sets):
    train, holdout, _ = sets
    data = prepare_image_validation(train, holdout, epochs=1, seed=0, max_images=20)
    result = validate_images(None, None, data=data)["membership_inference"]
    assert result.skipped and "holdout" in result.skipped


def test_mismatched_sets_are_refused(sets):
    train, holdout, _ = sets
    other = ImageSet(holdout.images[:, :2], channels=["T1", "T2"])
    small = ImageSet(holdout.images[:, :, :16, :16], channels=holdout.channels)
    with pytest.raises(ImageDataError) as caught:
        prepare_image_validation(train, other, small)
    assert "synthetic has channels" in str(caught.value)
    assert "holdout images are 16x16" in str(caught.value)


def test_batched_ssim_matches_scikit_image():
    rng = np.random.default_rng(0)
    a = rng.random((3, 2, 20, 24))
    b = np.clip(a + 0.3 * rng.random(a.shape), 0, 1)
    expected = [structural_similarity(a[i], b[i], data_range=1.0, channel_axis=0) for i in range(3)]
    np.testing.assert_allclose(ssim_pairs(a, b), expected, atol=1e-5)
    assert ms_ssim_pairs(a, a) == pytest.approx(np.ones(3))
    assert np.all(ms_ssim_pairs(a, b) < 1)


def test_features_are_reproducible(sets):
    train = sets[0]
    first = prepare_image_validation(train, train, epochs=1, seed=3, max_images=20)
    second = prepare_image_validation(train, train, epochs=1, seed=3, max_images=20)
    np.testing.assert_array_equal(first.real_features, second.real_features)
    assert first.real_features.shape == (20, 112)
