"""No-reference image quality: PIQE of synthetic vs real images.

PIQE (Perception based Image Quality Evaluator; Venkatanath et al., NCC 2015) needs no model
and no reference image, so nothing is downloaded. A grey-level image (here each channel of an
image on its own, on the real training images' intensity scale clipped to [0, 1], then to
0-255) is normalised into MSCN coefficients (x - mu) / (sigma + 1), mu and sigma local
Gaussian-weighted (sigma 7/6, 7 x 7 window, edges replicated), and cut into 16 x 16 blocks
(the image padded to a multiple of 16 by repeating its last row and column). Blocks whose MSCN
variance v exceeds 0.1 are spatially active; an active block is

* distorted by a noticeable artifact when a 6-pixel segment of one of its four edges has an
  MSCN standard deviation under 0.1 (blockiness, blur), which adds 1 - v;
* noisy when its standard deviation s exceeds 2 |s - r| / max(s, r), r the ratio of the
  standard deviation of its two central columns to that of its other columns, which adds v.

PIQE = 100 (sum of the added distortions + 1) / (active blocks + 1): 0 best, 100 worst (an
image without active blocks, e.g. a flat or very blurred one, scores 100). MATLAB's ``piqe``
removes columns 8 and 10 (not 8 and 9) as the block's centre when it computes the surround, an
indexing slip; here the centre is columns 8 and 9 as the paper describes.

The metric compares the mean PIQE of the synthetic images with that of the real training
images (and shows the real holdout's): score 1 - max(0, synthetic - real) / (100 - real).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from fedsynth.core.metrics import Metric, Outcome
from fedsynth.imaging.validation.data import ImageValidationData

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
IMPAIRED_THRESHOLD = 0.1
SEGMENT = 6
#: Gaussian of the MSCN normalisation: sigma 7/6 sampled on a 7 x 7 window (radius 3).
MSCN_SIGMA = 7 / 6
MSCN_RADIUS = 3


def mscn(images: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of grey images (``N x H x W``, 0-255)."""
    options = {"sigma": (0, MSCN_SIGMA, MSCN_SIGMA), "mode": "nearest"}
    options["truncate"] = MSCN_RADIUS / MSCN_SIGMA
    mu = ndimage.gaussian_filter(images, **options)
    sigma = np.sqrt(np.abs(ndimage.gaussian_filter(images * images, **options) - mu * mu))
    return (images - mu) / (sigma + 1.0)


def piqe(images: np.ndarray) -> np.ndarray:
    """PIQE of each grey image (see the module docstring); lower is better.

    Parameters
    ----------
    images : array (H x W) or (N x H x W)
        Intensities in [0, 1] (values outside are clipped).

    Returns
    -------
    float array (N,), or a float for one image

    Examples
    --------
    >>> smooth = np.tile(np.linspace(0, 1, 64), (64, 1))
    >>> float(piqe(smooth))  # no active block: the worst score
    100.0
    """
    single = np.ndim(images) == 2
    grey = np.asarray(images, dtype=np.float64)
    grey = grey[None] if single else grey
    if grey.ndim != 3:
        raise ValueError(f"piqe takes H x W or N x H x W images; got shape {np.shape(images)}")
    grey = np.round(255 * np.clip(grey, 0, 1))
    n, h, w = grey.shape
    pad = ((0, 0), (0, -h % BLOCK), (0, -w % BLOCK))
    grey = np.pad(grey, pad, mode="edge")
    norm = mscn(grey)
    rows, cols = norm.shape[1] // BLOCK, norm.shape[2] // BLOCK
    blocks = norm.reshape(n, rows, BLOCK, cols, BLOCK).transpose(0, 1, 3, 2, 4)
    blocks = blocks.reshape(n, rows * cols, BLOCK, BLOCK)
    variance = blocks.reshape(*blocks.shape[:2], -1).var(axis=-1, ddof=1)
    active = variance > ACTIVITY_THRESHOLD

    edges = np.stack(
        [blocks[..., 0, :], blocks[..., -1, :], blocks[..., :, 0], blocks[..., :, -1]], axis=2
    )
    segments = sliding_window_view(edges, SEGMENT, axis=-1)
    impaired = (segments.std(axis=-1, ddof=1) < IMPAIRED_THRESHOLD).any(axis=(-2, -1))

    middle = [BLOCK // 2 - 1, BLOCK // 2]
    centre = blocks[..., middle].reshape(*blocks.shape[:2], -1)
    others = np.delete(blocks, middle, axis=-1).reshape(*blocks.shape[:2], -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = centre.std(axis=-1, ddof=1) / others.std(axis=-1, ddof=1)
        ratio = np.nan_to_num(ratio, nan=0.0, posinf=0.0)
        sigma = np.sqrt(variance)
        beta = np.abs(sigma - ratio) / np.maximum(sigma, ratio)
    noisy = sigma > 2 * np.nan_to_num(beta, nan=np.inf)

    distortion = impaired * (1 - variance) + noisy * variance
    total = np.where(active, distortion, 0.0).sum(axis=1)
    score = 100 * (total + 1) / (active.sum(axis=1) + 1)
    return float(score[0]) if single else score


def channel_piqe(images: np.ndarray) -> np.ndarray:
    """Mean PIQE of each channel of normalised images (``N x C x H x W``), shape ``(C,)``."""
    n, c = images.shape[:2]
    grey = np.moveaxis(images, 1, 0).reshape(c * n, *images.shape[2:])
    return piqe(grey).reshape(c, n).mean(axis=1)


class PIQEQuality(Metric):
    """Mean PIQE (no-reference quality) of synthetic vs real images."""

    name = "piqe"
    family = "fidelity"
    direction = "lower"
    description = (
        "Mean PIQE no-reference quality (0 best, 100 worst) of the synthetic images, each "
        "channel as a grey image on the real intensity scale; score "
        "1 − max(0, synthetic − real) / (100 − real), real = the training images' mean."
    )

    def _compute(self, data: ImageValidationData) -> Outcome:
        synthetic = channel_piqe(data.synthetic)
        real = channel_piqe(data.real)
        value, reference = float(synthetic.mean()), float(real.mean())
        details = {
            "real_piqe": reference,
            "real_by_channel": dict(zip(data.channels, real.tolist(), strict=True)),
        }
        if data.holdout is not None:
            details["holdout_piqe"] = float(channel_piqe(data.holdout).mean())
        score = 1.0 - max(0.0, value - reference) / max(100.0 - reference, 1e-9)
        columns = dict(zip(data.channels, synthetic.tolist(), strict=True))
        return Outcome(value, score, columns, details)
