"""Private bounds: the exponential mechanism's exact distribution, its privacy, its accuracy."""

import math

import numpy as np
import pytest

from fedsynth.core.privacy.mechanisms import exponential_mechanism, exponential_probabilities
from fedsynth.tabular.privacy.dp_bounds import (
    bound_candidates,
    centre_scores,
    octave_edges,
    private_bounds,
    upper_scores,
)


def test_exponential_probabilities_follow_the_formula():
    scores = np.array([0.0, 3.0, 10.0, -np.inf])
    expected = np.exp(0.4 * scores / 2)
    expected /= expected.sum()
    np.testing.assert_allclose(
        exponential_probabilities(scores, sensitivity=1, epsilon=0.4), expected
    )
    monotone = np.exp(0.4 * scores / 2.0)  # sensitivity 2, no factor 1/2
    np.testing.assert_allclose(
        exponential_probabilities(scores, sensitivity=2, epsilon=0.4, monotone=True),
        monotone / monotone.sum(),
    )
    # Large scores do not overflow.
    assert exponential_probabilities([1e6, 1e6], sensitivity=1, epsilon=1).tolist() == [0.5, 0.5]


def test_exponential_mechanism_draws_with_those_probabilities():
    scores = np.array([0.0, 2.0, 4.0, 5.0])
    rng = np.random.default_rng(0)
    draws = [
        exponential_mechanism(scores, sensitivity=1, epsilon=0.5, rng=rng, monotone=True)
        for _ in range(20_000)
    ]
    frequencies = np.bincount(draws, minlength=4) / len(draws)
    expected = exponential_probabilities(scores, sensitivity=1, epsilon=0.5, monotone=True)
    np.testing.assert_allclose(frequencies, expected, atol=0.01)


def _stage_distributions(values, epsilon_centre, epsilon_bound):
    """Exact distributions of the centre and, for each centre, of the upper bound."""
    values = np.sort(values)
    edges = octave_edges()
    centre = exponential_probabilities(
        centre_scores(values, edges), sensitivity=1, epsilon=epsilon_centre, monotone=True
    )
    upper = {}
    for j in np.flatnonzero(centre > 1e-12):
        candidates = bound_candidates(max(abs(edges[j]), abs(edges[j + 1])))
        up = candidates[candidates >= edges[j]]
        scores = upper_scores(values, up, epsilon=epsilon_bound)
        upper[j] = (
            up,
            exponential_probabilities(scores, sensitivity=1, epsilon=epsilon_bound, monotone=True),
        )
    return centre, upper


def test_one_extreme_row_moves_each_draw_only_as_epsilon_allows():
    rng = np.random.default_rng(1)
    data = rng.lognormal(4, 0.5, 300)
    for neighbour in (np.append(data, 1e9), np.append(data, -1e9), data[1:]):
        centre, upper = _stage_distributions(data, 0.2, 0.3)
        centre_n, upper_n = _stage_distributions(neighbour, 0.2, 0.3)
        ratio = np.abs(np.log(centre_n) - np.log(centre))
        assert ratio.max() <= 0.2 + 1e-9
        for j in set(upper) & set(upper_n):
            ratio = np.abs(np.log(upper_n[j][1]) - np.log(upper[j][1]))
            assert ratio.max() <= 0.3 + 1e-9
    # The extreme row itself is almost never revealed: a bound above 1e6 stays improbable.
    centre_n, upper_n = _stage_distributions(np.append(data, 1e9), 0.2, 0.3)
    far = sum(centre_n[j] * p[up >= 1e6].sum() for j, (up, p) in upper_n.items())
    assert far < 1e-3


def test_the_release_draws_from_the_exact_distribution():
    rng = np.random.default_rng(2)
    data = rng.normal(50, 10, 200)
    centre, upper = _stage_distributions(data, 1 / 3, 1 / 3)
    exact: dict[float, float] = {}
    for j, (up, p) in upper.items():
        for value, prob in zip(up, p, strict=True):
            exact[float(value)] = exact.get(float(value), 0.0) + centre[j] * prob
    draws = [private_bounds(data, epsilon=1.0, rng=rng).high for _ in range(3000)]
    values, counts = np.unique(draws, return_counts=True)
    observed = dict(zip(values.tolist(), (counts / len(draws)).tolist(), strict=True))
    support = set(exact) | set(observed)
    distance = 0.5 * sum(abs(exact.get(v, 0.0) - observed.get(v, 0.0)) for v in support)
    assert distance < 0.05


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng: rng.normal(60, 12, 4000),
        lambda rng: rng.lognormal(5, 0.8, 4000),  # platelets-like, skewed
        lambda rng: rng.uniform(0, 20, 4000),
        lambda rng: rng.normal(0, 2, 4000),  # signed around zero
        lambda rng: rng.exponential(30, 4000),
    ],
    ids=["normal", "lognormal", "uniform", "signed", "exponential"],
)
def test_released_bounds_hold_the_bulk_of_typical_data(draw):
    coverage, widths = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        values = draw(rng)
        release = private_bounds(values, epsilon=0.5, rng=rng)
        assert release.low <= release.high and release.epsilon == pytest.approx(0.5)
        coverage.append(np.mean((values >= release.low) & (values <= release.high)))
        widths.append((release.high - release.low) / np.ptp(values))
    assert np.median(coverage) >= 0.98 and min(coverage) >= 0.9
    assert np.median(widths) <= 3 and max(widths) <= 10


def test_public_lower_bound_spends_nothing_on_it():
    rng = np.random.default_rng(3)
    times = rng.exponential(24, 3000)
    release = private_bounds(times, epsilon=0.6, rng=rng, low=0.0)
    assert release.low == 0.0 and release.epsilon_low == 0.0
    assert release.epsilon_centre == pytest.approx(0.3) and release.epsilon_high == pytest.approx(
        0.3
    )
    assert release.high >= np.quantile(times, 0.95)


def test_degenerate_columns_still_get_bounds():
    rng = np.random.default_rng(4)
    constant = private_bounds(np.full(500, 7.0), epsilon=1.0, rng=rng)
    assert constant.low <= 7.0 <= constant.high
    zeros = private_bounds(np.zeros(500), epsilon=1.0, rng=rng)
    assert zeros.low <= 0.0 <= zeros.high
    empty = private_bounds(np.array([np.nan, np.nan]), epsilon=1.0, rng=rng)
    assert math.isfinite(empty.low) and math.isfinite(empty.high) and empty.low <= empty.high
