"""Image privacy: near-copies of training images, closeness in feature space, membership
inference.

* Nearest training image by SSIM: for each synthetic image, the highest SSIM with any training
  image. The search checks the 10 nearest training images by pixel distance and the 10 nearest
  by feature distance (computing SSIM with every training image would cost N² windows). A
  synthetic image with SSIM ≥ ``NEAR_COPY_SSIM`` is a near-copy; score 1 − share of near-copies.
* Feature distance to the closest training image: the share of synthetic images closer to a
  training image than the 5th percentile of the holdout's own closest distances (real images
  the generator never saw); 5 % is expected by chance; score 1 − excess / 0.95. Without a
  holdout the reference is each training image's distance to its nearest other training image.
* Membership inference: an attacker ranks real images by how close the nearest synthetic image
  is (feature space); AUC of telling training images (members) from holdout images (as many,
  drawn at random); score 1 − 2 (AUC − 0.5), 1 at chance.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.metrics import roc_auc_score

from fedsynth.core.metrics import Metric, Outcome, Skip
from fedsynth.imaging.validation.data import ImageValidationData
from fedsynth.imaging.validation.ssim import ssim_pairs

NEAR_COPY_SSIM = 0.95
CANDIDATES = 10
CHANCE_SHARE = 0.05
#: Image pairs compared per batch (bounds memory: SSIM keeps several float64 maps per pair).
PAIRS_PER_BATCH = 512


def _pixel_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x, y = a.reshape(len(a), -1), b.reshape(len(b), -1)
    squared = (x**2).sum(1)[:, None] + (y**2).sum(1)[None, :] - 2 * x @ y.T
    return np.sqrt(np.maximum(squared, 0))


def nearest_ssim(images: np.ndarray, features: np.ndarray, data: ImageValidationData) -> np.ndarray:
    """Highest SSIM of each image with a training image (among its nearest candidates)."""
    k = min(CANDIDATES, len(data.real))
    by_pixel = np.argsort(_pixel_distances(images, data.real), axis=1)[:, :k]
    by_feature = np.argsort(cdist(features, data.real_features), axis=1)[:, :k]
    candidates = np.concatenate([by_pixel, by_feature], axis=1)
    rows = np.repeat(np.arange(len(images)), candidates.shape[1])
    columns = candidates.ravel()
    values = np.concatenate(
        [
            ssim_pairs(
                images[rows[i : i + PAIRS_PER_BATCH]], data.real[columns[i : i + PAIRS_PER_BATCH]]
            )
            for i in range(0, len(rows), PAIRS_PER_BATCH)
        ]
    )
    return values.reshape(len(images), -1).max(axis=1)


class NearCopies(Metric):
    """Synthetic images that are near-copies of a training image (SSIM)."""

    name = "near_copies"
    family = "privacy"
    direction = "lower"
    description = (
        f"Share of synthetic images whose nearest training image has SSIM ≥ {NEAR_COPY_SSIM} "
        "(near-copies); score 1 − share."
    )

    def _compute(self, data: ImageValidationData) -> Outcome:
        synthetic = nearest_ssim(data.synthetic, data.synthetic_features, data)
        value = float((synthetic >= NEAR_COPY_SSIM).mean())
        details = {
            "median_nearest_ssim": float(np.median(synthetic)),
            "max_nearest_ssim": float(synthetic.max()),
        }
        if data.holdout is not None:
            held = nearest_ssim(data.holdout, data.holdout_features, data)
            details["holdout_median_nearest_ssim"] = float(np.median(held))
            details["holdout_near_copy_share"] = float((held >= NEAR_COPY_SSIM).mean())
        return Outcome(value, 1.0 - value, details=details)


def _closest(data: ImageValidationData) -> dict[str, np.ndarray]:
    if "closest" not in data.cache:
        found = {"synthetic": cdist(data.synthetic_features, data.real_features).min(axis=1)}
        if data.holdout_features is not None:
            found["holdout"] = cdist(data.holdout_features, data.real_features).min(axis=1)
        else:
            within = cdist(data.real_features, data.real_features)
            np.fill_diagonal(within, np.inf)
            found["holdout"] = within.min(axis=1)
        data.cache["closest"] = found
    return data.cache["closest"]


class ClosestTrainingFeatureDistance(Metric):
    """Synthetic images closer to a training image than unseen real images are."""

    name = "closest_training_distance"
    family = "privacy"
    direction = "lower"
    description = (
        "Share of synthetic images closer (feature space) to a training image than the 5th "
        "percentile of real unseen images' closest distances; score 1 − (share − 0.05) / 0.95."
    )

    def _compute(self, data: ImageValidationData) -> Outcome:
        closest = _closest(data)
        threshold = float(np.percentile(closest["holdout"], 100 * CHANCE_SHARE))
        value = float((closest["synthetic"] < threshold).mean())
        details = {
            "threshold": threshold,
            "median_synthetic_distance": float(np.median(closest["synthetic"])),
            "median_reference_distance": float(np.median(closest["holdout"])),
        }
        score = 1.0 - max(0.0, value - CHANCE_SHARE) / (1.0 - CHANCE_SHARE)
        return Outcome(value, score, details=details)


class DistanceMembershipInference(Metric):
    """A distance attack telling training images from holdout images."""

    name = "membership_inference"
    family = "privacy"
    direction = "lower"
    description = (
        "AUC of an attack scoring each real image by minus its feature distance to the nearest "
        "synthetic image, training images vs as many holdout images; score 1 − 2 (AUC − 0.5)."
    )

    def _compute(self, data: ImageValidationData) -> Outcome:
        if data.holdout_features is None:
            raise Skip("needs a real holdout (images the generator never saw)")
        rng = np.random.default_rng(data.seed)
        n = min(len(data.real_features), len(data.holdout_features))
        members = data.real_features[rng.choice(len(data.real_features), n, replace=False)]
        others = data.holdout_features[rng.choice(len(data.holdout_features), n, replace=False)]
        distance = cdist(np.concatenate([members, others]), data.synthetic_features).min(axis=1)
        truth = np.r_[np.ones(n), np.zeros(n)]
        auc = float(roc_auc_score(truth, -distance))
        return Outcome(auc, 1.0 - 2.0 * (auc - 0.5), details={"attacked_images": 2 * n})
