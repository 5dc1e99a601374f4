"""Mode-specific normalisation of one continuous variable."""

import numpy as np
import pytest

from fedsynth.tabular.transforms import ModeNormalizer


def bimodal(n: int = 2_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < 0.4, rng.normal(0, 1, n), rng.normal(20, 2, n))


def test_multimodal_values_get_several_modes_near_the_true_ones():
    modes = ModeNormalizer.from_values(bimodal(), rng=0)
    assert modes.n_modes > 1
    assert not modes.point_masses
    heavy = modes.means[modes.weights > 0.1]
    assert np.isclose(heavy, 0, atol=1).any()
    assert np.isclose(heavy, 20, atol=2).any()
    assert modes.weights.sum() == pytest.approx(1.0)


def test_encode_decode_round_trip_within_float_precision():
    values = bimodal()
    modes = ModeNormalizer.from_values(values, rng=0)
    alpha, mode = modes.encode(values)
    assert alpha.min() >= -1 and alpha.max() <= 1
    decoded = modes.decode(alpha.astype(np.float32), mode)
    # Only values beyond 4 std of their mode are clipped, a handful at most.
    assert np.mean(np.isclose(decoded, values, rtol=1e-5, atol=1e-5)) > 0.99


def test_few_distinct_values_are_exact_point_masses():
    modes = ModeNormalizer.from_values([3.5, 1.0, 1.0, 2.25], max_modes=3)
    assert modes.point_masses
    assert modes.means.tolist() == [1.0, 2.25, 3.5]
    assert modes.weights.tolist() == [0.5, 0.25, 0.25]
    alpha, mode = modes.encode(np.array([2.25, 3.5, 1.0, 3.0]))
    assert (alpha == 0).all()
    assert modes.decode(alpha, mode).tolist() == [2.25, 3.5, 1.0, 3.5]  # 3.0 -> nearest, 3.5


def test_built_from_parameters_as_a_federated_server_would():
    modes = ModeNormalizer(means=[10.0, 0.0], stds=[2.0, 1.0], weights=[3, 1])
    assert modes.weights.tolist() == [0.75, 0.25]
    alpha, mode = modes.encode(np.array([0.5, 11.0]))
    assert mode.tolist() == [1, 0]
    assert alpha.tolist() == [0.125, 0.125]
    assert modes.decode(alpha, mode).tolist() == [0.5, 11.0]


@pytest.mark.parametrize(
    ("means", "stds", "weights"),
    [
        ([0.0], [1.0], [1.0, 2.0]),  # lengths differ
        ([0.0, 1.0], [1.0, 0.0], [1.0, 1.0]),  # mixed point masses and Gaussians
        ([0.0], [-1.0], [1.0]),
        ([0.0], [1.0], [0.0]),
        ([np.nan], [1.0], [1.0]),
    ],
)
def test_invalid_parameters_raise(means, stds, weights):
    with pytest.raises(ValueError):
        ModeNormalizer(means, stds, weights)


def test_sampled_assignment_follows_the_posterior():
    modes = ModeNormalizer(means=[-1.0, 1.0], stds=[1.0, 1.0], weights=[0.5, 0.5])
    values = np.zeros(4_000)  # halfway: each mode has posterior 1/2
    assert (modes.assign(values) == 0).all()
    drawn = modes.assign(values, np.random.default_rng(0))
    assert drawn.mean() == pytest.approx(0.5, abs=0.05)


def test_degenerate_spreads_do_not_crash():
    rng = np.random.default_rng(0)
    spike = np.concatenate([np.zeros(5_000), rng.normal(0, 1e-9, 20)])
    modes = ModeNormalizer.from_values(spike, rng=0)
    alpha, mode = modes.encode(spike)
    assert np.allclose(modes.decode(alpha, mode)[:5_000], 0, atol=1e-9)
    # A subsample that holds a single value must not divide by a zero spread.
    tiny = ModeNormalizer.from_values(spike, max_fit_rows=3, rng=0)
    assert np.isfinite(tiny.means).all() and (tiny.stds > 0).all()
    offset = 1e6 + rng.normal(0, 1e-3, 1_000)
    modes = ModeNormalizer.from_values(offset, rng=0)
    alpha, mode = modes.encode(offset)
    assert np.allclose(modes.decode(alpha, mode), offset, rtol=0, atol=1e-6)


def test_from_values_rejects_missing_or_infinite_values():
    with pytest.raises(ValueError, match="finite"):
        ModeNormalizer.from_values([1.0, np.nan])
    with pytest.raises(ValueError, match="at least one"):
        ModeNormalizer.from_values([])
