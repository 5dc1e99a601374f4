"""PIQE: worse (higher) for noisy and blurred images than for clean ones, and as a metric."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from fedsynth.imaging.datasets import brain_mri_cohort
from fedsynth.imaging.validation.quality import channel_piqe, mscn, piqe


@pytest.fixture(scope="module")
def camera():
    from skimage import data

    image = data.camera().astype(np.float64)
    return (image - image.min()) / (image.max() - image.min())


def test_noise_and_blur_score_worse_than_the_clean_image(camera):
    rng = np.random.default_rng(0)
    clean = piqe(camera)
    noisy = piqe(np.clip(camera + rng.normal(0, 0.1, camera.shape), 0, 1))
    blurred = piqe(ndimage.gaussian_filter(camera, 3))
    assert 0 <= clean < 60
    assert noisy > clean + 15 and blurred > clean + 15


def test_mri_channels_noisy_and_blurred_score_worse():
    images = brain_mri_cohort(8, size=64, seed=0).images
    low = np.percentile(images, 1, axis=(0, 2, 3))[None, :, None, None]
    high = np.percentile(images, 99, axis=(0, 2, 3))[None, :, None, None]
    clean = (images - low) / (high - low)
    rng = np.random.default_rng(1)
    noisy = clean + rng.normal(0, 0.1, clean.shape)
    blurred = ndimage.gaussian_filter(clean, (0, 0, 2, 2))
    assert np.all(channel_piqe(noisy) > channel_piqe(clean) + 10)
    assert np.all(channel_piqe(blurred) > channel_piqe(clean) + 10)


def test_flat_image_and_padding():
    # No spatially active block: the worst score, whatever the size (padded to 16s).
    assert piqe(np.full((40, 37), 0.5)) == 100.0
    batch = piqe(np.stack([np.full((20, 20), 0.2), np.eye(20)]))
    assert batch.shape == (2,) and batch[0] == 100.0
    # MSCN of a constant image is 0 (the +1 keeps it finite).
    assert np.allclose(mscn(np.full((1, 16, 16), 128.0)), 0)
    with pytest.raises(ValueError, match="H x W or N x H x W"):
        piqe(np.zeros((1, 2, 8, 8)))
