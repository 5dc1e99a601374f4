"""Image fidelity: distances between synthetic and real images in feature space, texture and
intensity histograms.

Every distance is also computed between the real holdout and the real training images, the
value a perfect generator would get with as many images; a score counts only the excess over
that reference (or over 0 without a holdout), so sampling noise alone does not lower it.

* Fréchet distance (FID) between Gaussians fitted to the features;
  score exp(-excess / d), d the feature dimension (the trace of the standardised real
  covariance).
* Kernel distance (KID): unbiased squared MMD with the cubic polynomial kernel
  k(x, y) = (x·y / d + 1)³ (Bińkowski et al. 2018), on subsets of at most 1000 images;
  score exp(-excess / mean k(x, x) over the real images).
* Precision, recall, density and coverage (Naeem et al. 2020) with k = 5 nearest neighbours:
  real-image balls reach each real image's 5th nearest real neighbour.
* Texture: Haralick features of grey-level co-occurrence matrices (32 levels, distances 1 and 2,
  four directions; contrast, homogeneity, energy, correlation) per image and channel, compared
  by the Kolmogorov-Smirnov statistic; score 1 − excess mean statistic.
* Intensity histograms per channel (64 bins over the real range), Jensen-Shannon distance
  (base 2, in [0, 1]); score 1 − excess mean distance.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, stats
from scipy.spatial.distance import cdist, jensenshannon

from fedsynth.core.metrics import Metric, Outcome
from fedsynth.imaging.validation.data import ImageValidationData

KID_SUBSET = 1000
PRDC_K = 5
GLCM_LEVELS = 32
GLCM_PROPERTIES = ("contrast", "homogeneity", "energy", "correlation")
HISTOGRAM_BINS = 64
#: Most images per set whose co-occurrence matrices are computed (a loop over images).
TEXTURE_IMAGES = 300


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` and ``b`` (rows)."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    # sqrtm of a product of covariance estimates can pick up tiny imaginary parts.
    root = np.real(root)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * root))


def _kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_distance(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> float:
    """Unbiased squared MMD with the cubic polynomial kernel, averaged over random subsets."""
    size = min(KID_SUBSET, len(a), len(b))
    repeats = 1 if size == len(a) == len(b) else 10
    values = []
    for _ in range(repeats):
        x = a[rng.choice(len(a), size, replace=False)]
        y = b[rng.choice(len(b), size, replace=False)]
        kxx, kyy = _kernel(x, x), _kernel(y, y)
        off = size * (size - 1)
        values.append(
            (kxx.sum() - np.trace(kxx)) / off
            + (kyy.sum() - np.trace(kyy)) / off
            - 2 * _kernel(x, y).mean()
        )
    return float(np.mean(values))


def prdc(real: np.ndarray, fake: np.ndarray, k: int = PRDC_K) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` against ``real`` features."""
    real_real = cdist(real, real)
    fake_fake = cdist(fake, fake)
    real_fake = cdist(real, fake)
    # Column 0 of each sorted row is the point itself (distance 0).
    real_radius = np.sort(real_real, axis=1)[:, min(k, len(real) - 1)]
    fake_radius = np.sort(fake_fake, axis=1)[:, min(k, len(fake) - 1)]
    inside = real_fake <= real_radius[:, None]
    return {
        "precision": float(inside.any(axis=0).mean()),
        "recall": float((real_fake <= fake_radius[None, :]).any(axis=1).mean()),
        "density": float(inside.sum() / (k * len(fake))),
        "coverage": float((real_fake.min(axis=1) <= real_radius).mean()),
    }


def _excess(value: float, reference: float | None) -> float:
    return max(0.0, value - (reference or 0.0))


class FrechetDistance(Metric):
    """FID in the autoencoder feature space."""

    name = "fid"
    family = "fidelity"
    direction = "lower"
    description = (
        "Fréchet distance between real and synthetic feature distributions (autoencoder "
        "features); score exp(−(FID − holdout FID) / feature dimension)."
    )

    def _compute(self, data: ImageValidationData) -> Outcome:
        value = frechet_distance(data.real_features, data.synthetic_features)
        details: dict[str, float] = {}
        reference = None
        if data.holdout_features is not None:
            reference = frechet_distance(data.real_features, data.holdout_features)
            details["holdout_fid"] = reference
        dim = data.real_features.shape[1]
        return Outcome(value, float(np.exp(-_excess(value, reference) / dim)), details=details)


class KernelDistance(Metric):
    """KID in the autoencoder feature space."""

    name = "kid"
    family = "fidelity"
    direction = "lower"
    description = (
        "Kernel distance (unbiased MMD², cubic polynomial kernel) between real and synthetic "
        "features; score exp(−(KID − holdout KID) / mean real k(x, x))."
    )

    def _compute(self, data: ImageValidationData) -> Outcome:
        rng = np.random.default_rng(data.seed)
        value = kernel_distance(data.real_features, data.synthetic_features, rng)
        details: dict[str, float] = {}
        reference = None
        if data.holdout_features is not None:
            reference = kernel_distance(data.real_features, data.holdout_features, rng)
            details["holdout_kid"] = reference
        scale = float(np.mean(np.diag(_kernel(data.real_features, data.real_features))))
        return Outcome(value, float(np.exp(-_excess(value, reference) / scale)), details=details)


def _prdc(data: ImageValidationData) -> dict[str, dict[str, float]]:
    if "prdc" not in data.cache:
        found = {"synthetic": prdc(data.real_features, data.synthetic_features)}
        if data.holdout_features is not None:
            found["holdout"] = prdc(data.real_features, data.holdout_features)
        data.cache["prdc"] = found
    return data.cache["prdc"]


class _PRDCMetric(Metric):
    family = "fidelity"
    direction = "higher"

    def _compute(self, data: ImageValidationData) -> Outcome:
        found = _prdc(data)
        value = found["synthetic"][self.name]
        details = (
            {f"holdout_{self.name}": found["holdout"][self.name]} if "holdout" in found else {}
        )
        return Outcome(value, min(value, 1.0), details=details)


class Precision(_PRDCMetric):
    """Share of synthetic images inside the real manifold (realism)."""

    name = "precision"
    description = (
        "Share of synthetic images within a real image's 5-nearest-neighbour ball in feature "
        "space (Naeem et al. 2020); score = value."
    )


class Recall(_PRDCMetric):
    """Share of real images inside the synthetic manifold."""

    name = "recall"
    description = (
        "Share of real images within a synthetic image's 5-nearest-neighbour ball in feature "
        "space; score = value."
    )


class Density(_PRDCMetric):
    """How many real balls hold each synthetic image, relative to k (1 for real data)."""

    name = "density"
    description = (
        "Mean number of real 5-nearest-neighbour balls holding a synthetic image, divided by 5 "
        "(about 1 for images like the real ones); score = min(value, 1)."
    )


class Coverage(_PRDCMetric):
    """Share of real images with a synthetic image in their ball."""

    name = "coverage"
    description = (
        "Share of real images whose 5-nearest-neighbour ball holds a synthetic image; "
        "score = value."
    )


def glcm_features(images: np.ndarray) -> np.ndarray:
    """Haralick features (N x C x properties) of normalised images, 32 grey levels."""
    from skimage.feature import graycomatrix, graycoprops

    levels = np.clip(images * GLCM_LEVELS, 0, GLCM_LEVELS - 1).astype(np.uint8)
    angles = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    out = np.empty((*images.shape[:2], len(GLCM_PROPERTIES)))
    for i in range(images.shape[0]):
        for c in range(images.shape[1]):
            matrix = graycomatrix(levels[i, c], [1, 2], angles, GLCM_LEVELS, True, True)
            out[i, c] = [graycoprops(matrix, p).mean() for p in GLCM_PROPERTIES]
    return out


def _ks_by_column(a: np.ndarray, b: np.ndarray, channels) -> dict[str, float]:
    found = {}
    for c, channel in enumerate(channels):
        for p, prop in enumerate(GLCM_PROPERTIES):
            x, y = a[:, c, p], b[:, c, p]
            x, y = x[np.isfinite(x)], y[np.isfinite(y)]
            if len(x) and len(y):
                found[f"{channel}.{prop}"] = float(stats.ks_2samp(x, y).statistic)
    return found


class TextureDistance(Metric):
    """Haralick texture features of synthetic vs real images."""

    name = "texture"
    family = "fidelity"
    direction = "lower"
    description = (
        "Mean Kolmogorov-Smirnov statistic between real and synthetic GLCM (Haralick) features "
        "per channel; score 1 − (value − holdout value)."
    )

    def _compute(self, data: ImageValidationData) -> Outcome:
        rng = np.random.default_rng(data.seed)

        def features(images: np.ndarray) -> np.ndarray:
            if len(images) > TEXTURE_IMAGES:
                images = images[rng.choice(len(images), TEXTURE_IMAGES, replace=False)]
            return glcm_features(images)

        real = features(data.real)
        columns = _ks_by_column(real, features(data.synthetic), data.channels)
        value = float(np.mean(list(columns.values())))
        details, reference = {}, None
        if data.holdout is not None:
            held = _ks_by_column(real, features(data.holdout), data.channels)
            reference = details["holdout_texture"] = float(np.mean(list(held.values())))
        return Outcome(value, 1.0 - _excess(value, reference), columns, details)


def _histogram_distances(real: np.ndarray, other: np.ndarray, channels) -> dict[str, float]:
    found = {}
    for c, channel in enumerate(channels):
        low, high = float(real[:, c].min()), float(real[:, c].max())
        edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
        # Values beyond the real range count in the end bins rather than vanish.
        p = np.histogram(np.clip(real[:, c], low, high), edges)[0]
        q = np.histogram(np.clip(other[:, c], low, high), edges)[0]
        found[channel] = float(jensenshannon(p, q, base=2))
    return found


class IntensityHistogram(Metric):
    """Per-channel intensity histograms of synthetic vs real images."""

    name = "intensity_histogram"
    family = "fidelity"
    direction = "lower"
    description = (
        "Mean Jensen-Shannon distance (base 2) between real and synthetic intensity histograms "
        "per channel; score 1 − (value − holdout value)."
    )

    def _compute(self, data: ImageValidationData) -> Outcome:
        columns = _histogram_distances(data.real, data.synthetic, data.channels)
        value = float(np.mean(list(columns.values())))
        details, reference = {}, None
        if data.holdout is not None:
            held = _histogram_distances(data.real, data.holdout, data.channels)
            reference = details["holdout_intensity_histogram"] = float(np.mean(list(held.values())))
        return Outcome(value, 1.0 - _excess(value, reference), columns, details)
