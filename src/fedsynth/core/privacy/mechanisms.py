"""The basic mechanisms of differential privacy, on numpy arrays with a seeded generator.

Sensitivities are for add/remove neighbours (see :mod:`fedsynth.core.privacy.config`): the most a
statistic can change when one patient's row is added or removed, in the L1 norm for the Laplace
mechanism and in the L2 norm for the Gaussian mechanism.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special


def laplace_mechanism(
    values: ArrayLike, *, sensitivity: float, epsilon: float, rng: np.random.Generator
) -> np.ndarray:
    """``values`` plus Laplace noise of scale ``sensitivity / epsilon``: (epsilon, 0)-DP.

    Examples
    --------
    >>> counts = laplace_mechanism([120, 30], sensitivity=1, epsilon=1.0,
    ...                            rng=np.random.default_rng(0))
    >>> counts.round(1).tolist()
    [120.3, 29.4]
    """
    values = np.asarray(values, dtype=float)
    return values + rng.laplace(0.0, sensitivity / epsilon, size=values.shape)


def gaussian_delta(sigma: float, *, sensitivity: float, epsilon: float) -> float:
    """Smallest delta for which N(0, sigma^2) noise gives (epsilon, delta)-DP (exact).

    The analytic Gaussian mechanism (Balle and Wang 2018, theorem 8):
    ``Phi(s/2 - epsilon/s) - exp(epsilon) Phi(-s/2 - epsilon/s)`` with ``s = sensitivity/sigma``.
    The second term is computed in log space so that a large epsilon does not overflow.
    """
    s = sensitivity / sigma
    first = special.ndtr(s / 2 - epsilon / s)
    second = math.exp(epsilon + special.log_ndtr(-s / 2 - epsilon / s))
    return max(0.0, float(first - second))


def gaussian_sigma(sensitivity: float, epsilon: float, delta: float) -> float:
    """Smallest noise standard deviation of an (epsilon, delta)-DP Gaussian mechanism.

    Calibrated with the exact condition of :func:`gaussian_delta`, valid for every epsilon
    (the textbook ``sqrt(2 ln(1.25/delta)) / epsilon`` holds only for epsilon < 1 and is loose).

    Examples
    --------
    >>> round(gaussian_sigma(1.0, 1.0, 1e-5), 2)
    3.73
    """

    def excess(log_sigma: float) -> float:
        return gaussian_delta(math.exp(log_sigma), sensitivity=sensitivity, epsilon=epsilon) - delta

    low, high = math.log(sensitivity) - 20, math.log(sensitivity) + 20
    return math.exp(optimize.brentq(excess, low, high, xtol=1e-12, rtol=1e-10))


def gaussian_mechanism(
    values: ArrayLike,
    *,
    sensitivity: float,
    epsilon: float,
    delta: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, float]:
    """``values`` plus Gaussian noise calibrated by :func:`gaussian_sigma`, and that sigma."""
    values = np.asarray(values, dtype=float)
    sigma = gaussian_sigma(sensitivity, epsilon, delta)
    return values + rng.normal(0.0, sigma, size=values.shape), sigma


def exponential_probabilities(
    scores: ArrayLike, *, sensitivity: float, epsilon: float, monotone: bool = False
) -> np.ndarray:
    """Exact output distribution of :func:`exponential_mechanism` over the candidates.

    ``exp(epsilon * score / (2 sensitivity))`` normalised, or ``exp(epsilon * score /
    sensitivity)`` for a ``monotone`` score; computed from the scores less their largest, so
    that large scores do not overflow. What a test or an auditor compares with the draws.

    Examples
    --------
    >>> exponential_probabilities([0.0, 1.0], sensitivity=1, epsilon=2.0).round(3).tolist()
    [0.269, 0.731]
    """
    scores = np.asarray(scores, dtype=float)
    scaled = epsilon * scores / (sensitivity if monotone else 2.0 * sensitivity)
    weights = np.exp(scaled - scaled.max())
    return weights / weights.sum()


def exponential_mechanism(
    scores: ArrayLike,
    *,
    sensitivity: float,
    epsilon: float,
    rng: np.random.Generator,
    monotone: bool = False,
) -> int:
    """Index drawn with probability proportional to ``exp(epsilon * score / (2 sensitivity))``.

    (epsilon, 0)-DP when each score changes by at most ``sensitivity`` between neighbours
    (McSherry and Talwar 2007). When the scores are ``monotone`` (between any two neighbours,
    all of them move in the same direction, as counts do when a row is added), the factor 2
    can go: ``exp(epsilon * score / sensitivity)`` is still (epsilon, 0)-DP (McSherry and
    Talwar 2007; Dwork and Roth 2014, section 3.4). Candidates scored ``-inf`` are never
    drawn. Drawn as the argmax of the scaled scores plus Gumbel noise, which is exact
    (:func:`exponential_probabilities` gives the distribution) and cannot overflow.

    Examples
    --------
    >>> exponential_mechanism([0.0, 50.0, 1.0], sensitivity=1, epsilon=10,
    ...                       rng=np.random.default_rng(0))
    1
    """
    scores = np.asarray(scores, dtype=float)
    scaled = epsilon * scores / (sensitivity if monotone else 2.0 * sensitivity)
    return int(np.argmax(scaled + rng.gumbel(size=scores.shape)))
