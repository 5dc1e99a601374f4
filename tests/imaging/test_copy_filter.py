"""The release-time near-copy filter: nothing closer to a training image than real unseen
images are, redraws with the same labels, no real image kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

import fedsynth
from fedsynth.exceptions import ImageDataError
from fedsynth.imaging import ImageSet, brain_mri_cohort
from fedsynth.imaging.validation import FeatureExtractor
from fedsynth.imaging.validation.copy_filter import near_copy_mask, sample_without_near_copies
from fedsynth.imaging.validation.features import intensity_scale, normalise
from tests.imaging.generators.conftest import TINY


@pytest.fixture(scope="module")
def parts():
    cohort = brain_mri_cohort(40, sites=2, size=32, seed=3)
    train, holdout = cohort.split(0.3, seed=0)
    return train, holdout


def _flat(images, train):
    low, width = intensity_scale(train.images)
    return normalise(images, low, width).reshape(len(images), -1)


def _pool(*sets: ImageSet) -> ImageSet:
    return ImageSet(
        np.concatenate([s.images for s in sets]),
        pd.concat([s.labels for s in sets], ignore_index=True),
        channels=sets[0].channels,
    )


def test_copies_are_flagged_and_unseen_real_images_are_not(parts):
    train, holdout = parts
    synthetic = _pool(train.take([0, 1, 2]), holdout)
    mask, thresholds = near_copy_mask(synthetic, train, holdout)
    assert mask[:3].all() and not mask[3:].any()
    # The reference: the closest approach of a holdout image to any training image.
    expected = cdist(_flat(holdout.images, train), _flat(train.images, train)).min()
    assert thresholds == {"pixels": pytest.approx(expected)}


def test_without_a_holdout_the_reference_is_the_closest_training_pair(parts):
    train, holdout = parts
    flat = _flat(train.images, train)
    within = cdist(flat, flat)
    np.fill_diagonal(within, np.inf)
    # A training image moved a tenth of the way towards its nearest neighbour is nearer to it
    # than the closest training pair: flagged; holdout images are flagged only if nearer too.
    i, j = np.unravel_index(np.argmin(within), within.shape)
    near = train.images[i] + 0.1 * (train.images[j] - train.images[i])
    synthetic = ImageSet(np.concatenate([near[None], holdout.images]), channels=train.channels)
    mask, thresholds = near_copy_mask(synthetic, train)
    assert thresholds["pixels"] == pytest.approx(within.min())
    assert mask[0]
    far = cdist(_flat(holdout.images, train), flat).min(axis=1) >= within.min()
    np.testing.assert_array_equal(mask[1:], ~far)


def test_an_extractor_adds_the_feature_space(parts):
    train, holdout = parts
    low, width = intensity_scale(train.images)
    extractor = FeatureExtractor(epochs=1, seed=0).fit(normalise(train.images, low, width))
    mask, thresholds = near_copy_mask(train.take([0]), train, holdout, extractor=extractor)
    assert set(thresholds) == {"pixels", "features"} and thresholds["features"] > 0
    assert mask.all()


class _CopyingGenerator:
    """Returns training copies at the even positions of its first draw, then holdout images
    with the asked labels; records every call's conditions."""

    def __init__(self, train: ImageSet, safe: ImageSet, copies_forever: bool = False):
        self.train, self.safe, self.copies_forever = train, safe, copies_forever
        self.calls: list[tuple[int, dict]] = []

    def sample(self, n, conditions=None, seed=None):
        rng = np.random.default_rng(seed)
        self.calls.append((n, dict(conditions or {})))
        labels = self.safe.labels[["tumour_type", "idh_mutant"]]
        allowed = np.ones(len(labels), dtype=bool)
        for column, value in (conditions or {}).items():
            allowed &= (labels[column] == value).to_numpy()
        picks = rng.choice(np.flatnonzero(allowed), n)
        images = self.safe.images[picks].copy()
        if len(self.calls) == 1 or self.copies_forever:
            source = rng.choice(len(self.train), n)
            copy = np.ones(n, dtype=bool) if self.copies_forever else np.arange(n) % 2 == 0
            images[copy] = self.train.images[source[copy]]
        return ImageSet(
            images, labels.iloc[picks].reset_index(drop=True), channels=self.safe.channels
        )


def test_flagged_draws_are_redrawn_with_their_labels(parts):
    train, holdout = parts
    gen = _CopyingGenerator(train, holdout)
    found = sample_without_near_copies(gen, 10, train, holdout, seed=0)
    assert len(found.images) == 10 and found.dropped == 5 and found.rounds == 1
    mask, _ = near_copy_mask(found.images, train, holdout)
    assert not mask.any()
    first_labels = gen.calls[0]
    assert first_labels == (10, {})
    # Each redraw asked for the labels of the images it replaced; the labels are the first
    # draw's, in order.
    redrawn = sum(n for n, _ in gen.calls[1:])
    assert redrawn == 5 and all(set(c) == {"tumour_type", "idh_mutant"} for _, c in gen.calls[1:])
    again = _CopyingGenerator(train, holdout).sample(
        10, seed=np.random.default_rng(0).integers(2**31)
    )
    np.testing.assert_array_equal(found.images.labels.to_numpy(), again.labels.to_numpy())


def test_images_still_too_close_after_the_last_round_are_dropped(parts):
    train, holdout = parts
    gen = _CopyingGenerator(train, holdout, copies_forever=True)
    found = sample_without_near_copies(gen, 6, train, holdout, seed=1, max_rounds=2)
    assert found.rounds == 2 and len(found.images) == 0
    assert found.dropped == 6 * 3  # the first draw and two rounds of redraws, all copies


def test_mismatched_images_are_refused_by_name(parts):
    train, holdout = parts
    small = ImageSet(np.zeros((2, 4, 16, 16), np.float32), channels=train.channels)
    with pytest.raises(ImageDataError, match="synthetic images are"):
        near_copy_mask(small, train, holdout)
    with pytest.raises(ImageDataError, match="holdout images are"):
        near_copy_mask(train, train, small)


def test_a_fitted_latent_diffusion_releases_the_asked_images(parts):
    train, holdout = parts
    gen = fedsynth.make("latent_diffusion", seed=0, **TINY["latent_diffusion"]).fit(train)
    found = sample_without_near_copies(gen, 8, train, holdout, conditions={"idh_mutant": 1}, seed=0)
    assert len(found.images) == 8 and (found.images.labels["idh_mutant"] == 1).all()
    assert not near_copy_mask(found.images, train, holdout)[0].any()
