"""The mechanisms against independent computations: numerical integration, Opacus, counting."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from fedsynth.core.privacy.mechanisms import (
    exponential_mechanism,
    gaussian_delta,
    gaussian_sigma,
    laplace_mechanism,
)
from fedsynth.tabular.generators.bayesian_network import (
    INDEPENDENCE_DISTANCE_SENSITIVITY,
    independence_distance,
)
from fedsynth.tabular.privacy.dp_statistics import partition_threshold


def hockey_stick(sigma: float, sensitivity: float, epsilon: float) -> float:
    """delta(epsilon) of N(0, sigma^2) vs N(sensitivity, sigma^2) by numerical integration."""

    def excess(x: float) -> float:
        p = stats.norm.pdf(x, 0.0, sigma)
        q = stats.norm.pdf(x, sensitivity, sigma)
        return max(0.0, p - math.exp(epsilon) * q)

    # The excess is positive only left of the point where the densities' ratio is e^epsilon.
    crossing = sensitivity / 2 - epsilon * sigma**2 / sensitivity
    value, _ = integrate.quad(excess, crossing - 40 * sigma, crossing, epsabs=1e-14, limit=200)
    return value


@pytest.mark.parametrize(
    ("sensitivity", "epsilon", "delta"), [(1.0, 0.1, 1e-5), (3.0, 1.0, 1e-6), (1.0, 8.0, 1e-5)]
)
def test_gaussian_calibration_matches_the_hockey_stick_divergence(sensitivity, epsilon, delta):
    sigma = gaussian_sigma(sensitivity, epsilon, delta)
    assert hockey_stick(sigma, sensitivity, epsilon) == pytest.approx(delta, rel=1e-3)
    assert gaussian_delta(sigma, sensitivity=sensitivity, epsilon=epsilon) == pytest.approx(delta)
    if epsilon < 1:  # tighter than the textbook calibration, which holds for epsilon < 1
        assert sigma < sensitivity * math.sqrt(2 * math.log(1.25 / delta)) / epsilon


def test_gaussian_calibration_is_within_opacus_rdp_bound():
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    sigma = gaussian_sigma(1.0, 1.0, 1e-5)
    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
    rdp = compute_rdp(q=1.0, noise_multiplier=sigma, steps=1, orders=orders)
    rdp_epsilon, _ = get_privacy_spent(orders=orders, rdp=rdp, delta=1e-5)
    # RDP conversion is an upper bound: it may only find a larger epsilon for the same noise.
    assert 1.0 <= rdp_epsilon < 1.3


def test_laplace_noise_has_the_calibrated_scale():
    rng = np.random.default_rng(0)
    noise = laplace_mechanism(np.zeros(200_000), sensitivity=2.0, epsilon=0.5, rng=rng)
    assert np.mean(np.abs(noise)) == pytest.approx(4.0, rel=0.02)  # E|Lap(b)| = b


def test_exponential_mechanism_draws_with_the_exponential_weights():
    scores = np.array([0.0, 1.0, 3.0, -np.inf])
    rng = np.random.default_rng(1)
    draws = [
        exponential_mechanism(scores, sensitivity=1.0, epsilon=2.0, rng=rng) for _ in range(20000)
    ]
    expected = np.exp(scores[:3]) / np.exp(scores[:3]).sum()  # epsilon / (2 sensitivity) = 1
    observed = np.bincount(draws, minlength=4) / len(draws)
    assert observed[3] == 0
    np.testing.assert_allclose(observed[:3], expected, atol=0.01)


def test_partition_selection_releases_a_single_row_key_with_probability_delta():
    epsilon, delta = 0.5, 1e-3
    threshold = partition_threshold(epsilon, delta)
    # P(1 + Lap(1/epsilon) > threshold), in closed form.
    assert 0.5 * math.exp(-epsilon * (threshold - 1)) == pytest.approx(delta)


def test_independence_distance_sensitivity_bound_holds():
    rng = np.random.default_rng(2)
    worst = 0.0
    for _ in range(300):
        n = int(rng.integers(1, 40))
        n_states = np.array([int(rng.integers(2, 5)), int(rng.integers(2, 4)), 2])
        codes = np.column_stack([rng.integers(0, k, n) for k in n_states])
        extra = np.array([[rng.integers(0, k) for k in n_states]])
        grown = np.vstack([codes, extra])
        for parents, child in (((1,), 0), ((1, 2), 0), ((0,), 2)):
            before = independence_distance(codes, n_states, parents, np.array([child]))[0]
            after = independence_distance(grown, n_states, parents, np.array([child]))[0]
            worst = max(worst, abs(after - before))
    assert 1.0 < worst <= INDEPENDENCE_DISTANCE_SENSITIVITY
