"""Image diversity: are the synthetic images as different from each other as real ones are?

Mean multi-scale SSIM (:mod:`fedsynth.imaging.validation.ssim`) over random pairs of synthetic
images, against the same among the real training images. A generator that collapses onto a few
modes makes its images more alike than real ones; only that excess, beyond two standard errors
of the difference of the two means (sampling noise of the pairs), lowers the score:
1 − max(0, MS-SSIM synthetic − MS-SSIM real − 2 SE) / (1 − MS-SSIM real).
"""

from __future__ import annotations

import numpy as np

from fedsynth.core.metrics import Metric, Outcome
from fedsynth.imaging.validation.data import ImageValidationData
from fedsynth.imaging.validation.ssim import random_pair_ms_ssim

#: Random pairs drawn from each set.
N_PAIRS = 300


class MSSSIMDiversity(Metric):
    """Mean pairwise MS-SSIM among synthetic images, compared with real ones."""

    name = "ms_ssim_diversity"
    family = "diversity"
    direction = "lower"
    description = (
        f"Mean MS-SSIM of {N_PAIRS} random pairs of synthetic images (lower: more diverse); "
        "score 1 − excess over the real images' value (beyond 2 standard errors), relative to "
        "1 − real value."
    )

    def _compute(self, data: ImageValidationData) -> Outcome:
        rng = np.random.default_rng(data.seed)
        pairs_synthetic = random_pair_ms_ssim(data.synthetic, N_PAIRS, rng)
        pairs_real = random_pair_ms_ssim(data.real, N_PAIRS, rng)
        synthetic, real = float(pairs_synthetic.mean()), float(pairs_real.mean())
        error = float(np.sqrt((pairs_synthetic.var() + pairs_real.var()) / N_PAIRS))
        excess = max(0.0, synthetic - real - 2 * error) / max(1.0 - real, 1e-9)
        details = {"real_ms_ssim": real, "standard_error": error}
        return Outcome(synthetic, 1.0 - excess, details=details)
