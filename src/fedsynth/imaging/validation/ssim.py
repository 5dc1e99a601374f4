"""Structural similarity (SSIM) of many image pairs at once, and its multi-scale form.

:func:`ssim_pairs` computes what :func:`skimage.metrics.structural_similarity` computes
with its defaults (7 x 7 uniform window, K1 = 0.01, K2 = 0.03, sample covariances, the border
of half a window left out, channels averaged), but for a whole batch of pairs in a few array
operations: nearest-image searches need thousands of pairs.

:func:`ms_ssim_pairs` is multi-scale SSIM after Wang, Simoncelli and Bovik (2003): SSIM at the
full size and after each halving (2 x 2 means) while the image still holds a window, combined as
a weighted geometric mean with their scale weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333),
renormalised over the scales used. Unlike the original, every scale uses the full SSIM (also its
luminance term), as scikit-image offers no contrast-structure term alone.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

WINDOW = 7
MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ssim_pairs(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """SSIM of each pair ``(a[i], b[i])`` of images (P x C x H x W each), averaged over channels."""
    # float32 halves the cost of the filters; SSIM then agrees with scikit-image's float64
    # result to about 1e-5.
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)

    def local_mean(x: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(x, size=(1, 1, WINDOW, WINDOW))

    ux, uy = local_mean(a), local_mean(b)
    norm = WINDOW**2 / (WINDOW**2 - 1)
    vx = norm * (local_mean(a * a) - ux * ux)
    vy = norm * (local_mean(b * b) - uy * uy)
    vxy = norm * (local_mean(a * b) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (WINDOW - 1) // 2
    return s[..., pad:-pad, pad:-pad].mean(axis=(1, 2, 3), dtype=np.float64)


def _halve(x: np.ndarray) -> np.ndarray:
    h, w = (x.shape[-2] // 2) * 2, (x.shape[-1] // 2) * 2
    x = x[..., :h, :w]
    return 0.25 * (x[..., ::2, ::2] + x[..., 1::2, ::2] + x[..., ::2, 1::2] + x[..., 1::2, 1::2])


def ms_ssim_pairs(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Multi-scale SSIM of each pair ``(a[i], b[i])`` (see the module docstring)."""
    values = []
    while len(values) < len(MS_WEIGHTS) and min(a.shape[-2:]) >= WINDOW:
        values.append(np.clip(ssim_pairs(a, b, data_range), 0.0, 1.0))
        a, b = _halve(a), _halve(b)
    weights = np.asarray(MS_WEIGHTS[: len(values)])
    weights = weights / weights.sum()
    return np.prod([v**w for v, w in zip(values, weights, strict=True)], axis=0)


def random_pair_ms_ssim(
    images: np.ndarray, n_pairs: int, rng: np.random.Generator, data_range: float = 1.0
) -> np.ndarray:
    """MS-SSIM of ``n_pairs`` random pairs of distinct images of one set."""
    i = rng.integers(0, len(images), n_pairs)
    j = (i + rng.integers(1, len(images), n_pairs)) % len(images)
    return ms_ssim_pairs(images[i], images[j], data_range)
