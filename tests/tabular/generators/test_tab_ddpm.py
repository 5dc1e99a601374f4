"""TabDDPM: the diffusion's math (schedule, forward draws, posteriors against Bayes' rule, the
samplers' last step), and the generator on a small clinical table (training, real codes only,
exact conditions, DP-SGD accounting, persistence)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import ndtr

import fedsynth
from fedsynth.tabular.generators._ddpm_diffusion import (
    MixedDiffusion,
    Multistep,
    cosine_alpha_bars,
)
from fedsynth.tabular.generators._ddpm_space import ModelSpace
from tests.tabular.generators.conftest import public_metadata

TINY = {"hidden_dims": (32, 32), "embedding_dim": 16, "batch_size": 100, "sampling_steps": 5}


def one_hot(codes: np.ndarray, width: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(codes), width).float()


@pytest.fixture
def table(clinical):
    return clinical.drop(columns=["patient_id"])


@pytest.fixture(scope="module")
def fitted():
    """A short fit on 600 simulated patients (numbers, two with missing values, categories,
    genes, a survival pair, a site), and its loss at t = 1 (fixed noise) after its first epoch
    and at its end."""
    real = fedsynth.datasets.mds_cohort(n=600, sites=3, seed=0)
    table = real[["age", "sex", "hb", "anc", "TP53", "SF3B1", "os_months", "os_status", "site"]]
    gen = fedsynth.make("tab_ddpm", epochs=1, seed=0, **TINY).fit(table)
    rows = torch.from_numpy(gen.space_.to_model(gen.encoder_.transform(table)))

    def fixed_loss() -> float:
        # At t = 1, where x_1 nearly is x_0: the spans' NLL starts near log K and must fall
        # (the values' velocity loss stays near 1 there: their noise cannot be predicted).
        generator = torch.Generator().manual_seed(0)
        t = torch.ones(len(rows), dtype=torch.long)
        with torch.no_grad():
            xt, noise = gen.diffusion_.noisy(rows, t, generator)
            return gen._rows_loss(rows, xt, t, noise).mean().item()

    first = fixed_loss()
    gen.fit(table, epochs=40, warm_start=True)
    return table, gen, (first, fixed_loss())


# ---------------------------------------------------------------------- diffusion math
def test_cosine_schedule_runs_from_data_to_noise():
    abar = cosine_alpha_bars(1000)
    assert abar[0] == 1.0 and np.all(np.diff(abar) < 0)
    assert abar[1] > 0.9999 and abar[-1] < 1e-4


def test_forward_draws_keep_shapes_one_hot_spans_and_their_marginals():
    diffusion = MixedDiffusion(2, [(3, 2)], 100, torch.device("cpu"))
    n = 20_000
    codes = np.zeros((n, 2), dtype=int)
    x0 = torch.cat([torch.zeros(n, 2), one_hot(codes[:, 0], 3), one_hot(codes[:, 1], 3)], 1)
    t = torch.full((n,), 60)
    xt, noise = diffusion.noisy(x0, t, torch.Generator().manual_seed(0))
    assert xt.shape == x0.shape and noise.shape == (n, 2)
    spans = xt[:, 2:].reshape(n, 2, 3)
    assert torch.all(spans.sum(-1) == 1) and set(spans.unique().tolist()) == {0.0, 1.0}
    # q(x_t | x_0) keeps the category with probability abar + (1 - abar) / K.
    abar = float(diffusion.alpha_bars[60])
    kept = spans[:, :, 0].mean().item()
    assert kept == pytest.approx(abar + (1 - abar) / 3, abs=0.01)
    # The values: sqrt(1 - abar) times standard noise around sqrt(abar) x_0 = 0.
    assert xt[:, :2].std().item() == pytest.approx(np.sqrt(1 - abar), rel=0.03)


def test_multinomial_posterior_is_bayes_rule_over_any_stride():
    """q(x_s | x_t, x_0) against the explicit transition matrices, for a stride of steps."""
    diffusion = MixedDiffusion(0, [(4, 1)], 50, torch.device("cpu"))
    abar = diffusion.alpha_bars.double()
    k, t, s = 4, 30, 12
    alpha_ts = float(abar[t] / abar[s])

    def matrix(keep: float) -> torch.Tensor:  # Q[i, j] = q(next = j | previous = i)
        return keep * torch.eye(k, dtype=torch.float64) + (1 - keep) / k

    q_s, q_ts = matrix(float(abar[s])), matrix(alpha_ts)
    for x0 in range(k):
        for xt in range(k):
            bayes = q_s[x0] * q_ts[:, xt]
            bayes = bayes / bayes.sum()
            ours = diffusion.posterior(
                one_hot(np.array([x0]), k).double(),
                one_hot(np.array([xt]), k).double(),
                float(abar[s]),
                alpha_ts,
                k,
            )[0]
            torch.testing.assert_close(ours / ours.sum(), bayes)


def test_posterior_at_the_first_step_recovers_x0_from_x1():
    diffusion = MixedDiffusion(0, [(5, 3)], 1000, torch.device("cpu"))
    n = 5000
    rng = np.random.default_rng(0)
    x0 = torch.cat([one_hot(rng.integers(0, 5, n), 5) for _ in range(3)], 1)
    x1, _ = diffusion.noisy(x0, torch.ones(n, dtype=torch.long), torch.Generator().manual_seed(1))
    # Knowing nothing of x_0 (uniform), q(x_0 | x_1) puts nearly all its mass on x_1 = x_0.
    uniform = torch.full((n, 3, 5), 0.2)
    posterior = diffusion.posterior(
        uniform, x1.reshape(n, 3, 5), 1.0, float(diffusion.alphas[1]), 5
    )
    posterior = posterior / posterior.sum(-1, keepdim=True)
    mass_on_x0 = (posterior * x0.reshape(n, 3, 5)).sum(-1)
    assert (mass_on_x0 > 0.99).float().mean().item() > 0.99


def test_sampler_draws_spans_from_the_posterior_marginalised_over_the_prediction():
    """p(x_s | x_t) = sum_k p(x_0 = k | x_t) q(x_s | x_t, x_0 = k), each term normalised: the
    frequencies of the sampler's draws against that sum from the transition matrices."""
    k, t, s, n = 4, 30, 12, 200_000
    diffusion = MixedDiffusion(0, [(k, 1)], 50, torch.device("cpu"))
    abar = diffusion.alpha_bars.double()
    predicted = torch.tensor([0.6, 0.25, 0.1, 0.05], dtype=torch.float64)
    xt = one_hot(np.full(n, 2), k)  # the current draw is a category the prediction doubts
    output = predicted.log().float().expand(n, k)
    drawn = diffusion.step(output, xt, t, s, torch.Generator().manual_seed(0)).mean(0)

    def matrix(keep: float) -> torch.Tensor:
        return keep * torch.eye(k, dtype=torch.float64) + (1 - keep) / k

    q_s, q_ts = matrix(float(abar[s])), matrix(float(abar[t] / abar[s]))
    exact = torch.zeros(k, dtype=torch.float64)
    for x0 in range(k):
        bayes = q_s[x0] * q_ts[:, 2]
        exact += predicted[x0] * bayes / bayes.sum()
    torch.testing.assert_close(drawn.double(), exact, atol=0.004, rtol=0)
    # Hoogeboom's plug-in (the prediction fed to the posterior as if it were x_0) keeps the
    # current draw more often: the sampler must not match it.
    plug_in = diffusion.posterior(
        predicted, xt[0].double(), float(abar[s]), float(abar[t] / abar[s]), k
    )
    assert (plug_in / plug_in.sum())[2] > exact[2] + 0.05


def test_second_order_sampler_keeps_the_spread_that_ddim_loses_in_few_steps():
    """With the exact x_0 predictor of N(0, 0.3^2) data, six steps of DPM-Solver++(2M) end
    close to the data's spread, where first-order steps (DDIM) shrink it."""
    diffusion = MixedDiffusion(1, [], 30, torch.device("cpu"))
    sigma = 0.3

    def final_spread(memory: Multistep | None) -> float:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(20_000, 1, generator=generator)
        for t, s in itertools.pairwise(diffusion.schedule(6)):
            abar = float(diffusion.alpha_bars[t])
            x0 = math.sqrt(abar) * sigma**2 / (abar * sigma**2 + 1 - abar) * x
            noise = (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
            velocity = math.sqrt(abar) * noise - math.sqrt(1 - abar) * x0
            x = diffusion.step(velocity, x, t, s, generator, memory)
        return x.std().item()

    second, first = final_spread(Multistep()), final_spread(None)
    assert abs(second - sigma) < 0.015
    assert first < sigma - 0.05


def test_sampling_network_pass_folds_the_projection_into_the_first_layer():
    """Without gradients (sampling) the denoiser runs its folded, in-place form: the same
    outputs as the training form, for one step shared by all rows or one step per row."""
    from fedsynth.tabular.generators._ddpm_networks import build_denoiser

    torch.manual_seed(0)
    net = build_denoiser(12, (32, 16), 8).eval()
    x = torch.randn(64, 12)
    for t in (torch.full((1,), 7), torch.randint(1, 30, (64,))):
        with torch.no_grad():
            folded = net(x, t)
        with torch.enable_grad():
            plain = net(x, t.expand(64))
        torch.testing.assert_close(folded, plain.detach(), atol=1e-5, rtol=1e-5)


def test_last_step_returns_x0_given_the_true_velocity_and_a_sure_prediction():
    diffusion = MixedDiffusion(3, [(2, 1), (3, 1)], 100, torch.device("cpu"))
    n = 50
    generator = torch.Generator().manual_seed(0)
    values = torch.rand(n, 3) * 4 - 2
    x0 = torch.cat([values, one_hot(np.arange(n) % 2, 2), one_hot(np.arange(n) % 3, 3)], 1)
    t = torch.full((n,), 40)
    xt, noise = diffusion.noisy(x0, t, generator)
    # A network that knows the velocity (from the noise) and is sure of each category.
    abar = diffusion.alpha_bars[40]
    velocity = abar.sqrt() * noise - (1 - abar).sqrt() * values
    output = torch.cat([velocity, 50 * x0[:, 3:]], 1)
    x_s = diffusion.step(output, xt, 40, 0, generator)
    torch.testing.assert_close(x_s[:, :3], values, atol=1e-4, rtol=0)
    assert torch.equal(x_s[:, 3:], x0[:, 3:])
    # And the loss of that perfect output is nearly 0 (velocity MSE 0, spans' KL about 0).
    loss = diffusion.loss(output, x0, xt, t, noise)
    assert loss.shape == (n,) and loss.max().item() < 1e-3


def test_model_space_maps_values_to_normal_scores_and_back(table):
    from fedsynth.tabular.transforms import TableEncoder

    encoder = TableEncoder(seed=0).fit(table)
    space = ModelSpace(encoder)  # no quantiles: the encoder's mixture
    matrix = encoder.transform(table)
    model = space.to_model(matrix)
    assert model.shape == (len(table), space.dim) and space.dim <= matrix.shape[1]
    scores = model[:, : space.n_values]
    assert abs(float(np.median(scores))) < 0.3 and 0.6 < float(scores.std()) < 1.4
    back = encoder.inverse_transform(space.to_encoder(model))
    values = space.values_of(model)
    for column in ("age", "os_months"):
        i = space.value_columns.index(column)
        column_back = space.column_of(i, values[:, i], back[column].isna().to_numpy())
        np.testing.assert_allclose(column_back, table[column], rtol=0.02, atol=1.0)
    pd.testing.assert_series_equal(back["sex"], table["sex"])
    assert back["hb"].isna().equals(table["hb"].isna())


def test_quantile_map_keeps_the_tail_and_spreads_tied_values():
    """The cause of FLCHAIN's lost tail (kappa above 9.5 never generated): a value beyond the
    mixture's reach (4 standard deviations of its modes) is clipped by the mixture's map and
    kept by the quantiles'; a value held by many rows becomes a range of scores."""
    from fedsynth.tabular.generators._ddpm_space import quantile_knots
    from fedsynth.tabular.metadata import Metadata
    from fedsynth.tabular.transforms import TableEncoder

    rng = np.random.default_rng(0)
    light = rng.lognormal(0.0, 0.4, 3000)
    tail = np.concatenate([light, [25.0, 30.0, 40.0]])  # far beyond the bulk
    ties = np.round(rng.normal(60, 8, len(tail)))  # whole numbers, ~40 rows a value
    table = pd.DataFrame({"kappa": tail, "age": ties})
    metadata = Metadata({"kappa": "numeric", "age": {"kind": "numeric", "integer": True}})
    encoder = TableEncoder(seed=0).fit(table, metadata)
    mixture = ModelSpace(encoder)
    reach = mixture.values_of(np.full((1, 2), 10.0))[0]  # the largest value it can give
    assert reach[mixture.value_columns.index("kappa")] < 25.0
    values = mixture.values(table)
    knots = {c: quantile_knots(values[:, i]) for i, c in enumerate(mixture.value_columns)}
    space = ModelSpace(encoder, knots)
    model = space.to_model(encoder.transform(table), values, np.random.default_rng(1))
    back = space.values_of(model)
    for i, column in enumerate(space.value_columns):
        scores = model[:, i].astype(np.float64)
        assert abs(scores.mean()) < 0.05 and abs(scores.std() - 1) < 0.05, column
        # No score is shared by more rows than a K - 1-th (K = 100 quantiles here).
        assert np.unique(scores, return_counts=True)[1].max() < len(scores) / 99, column
        if column == "age":  # every score of a tied value's range reads back as the value
            np.testing.assert_array_equal(np.round(back[:, i]), table["age"])
        else:
            np.testing.assert_allclose(back[:, i], table["kappa"], rtol=1e-3)
    # The largest scores read back as the largest values, not as the mixture's reach.
    largest = space.values_of(np.full((1, 2), 10.0))[0, space.value_columns.index("kappa")]
    assert largest == pytest.approx(40.0, rel=1e-3)
    # A tied value's scores cover its share of the rows (about 5 % at the mode, 60).
    share = (table["age"] == 60).mean()
    at_60 = model[table["age"].to_numpy() == 60, space.value_columns.index("age")]
    covered = np.diff(ndtr(np.array([at_60.min(), at_60.max()])))[0]
    assert covered == pytest.approx(share, rel=0.02)


# ---------------------------------------------------------------------- the generator
def test_a_plain_fit_maps_numbers_by_their_quantiles_and_keeps_them_saved(fitted, tmp_path):
    table, gen, _ = fitted
    assert set(gen.space_.quantiles) == {"age", "hb", "anc", "os_months"}
    assert gen.space_.quantiles["hb"][:, -1].tolist() == [1.0, table["hb"].max()]
    loaded = fedsynth.load(gen.save(tmp_path / "model"))
    for column, knots in gen.space_.quantiles.items():
        np.testing.assert_array_equal(loaded.space_.quantiles[column], knots)


def test_training_lowers_the_loss(fitted):
    _, gen, (first, last) = fitted
    assert len(gen.history_) == 41
    assert last < 0.95 * first


def test_samples_hold_only_real_codes_and_in_range_values(fitted):
    table, gen, _ = fitted
    rows = gen.sample(500, seed=0)
    for column in ("sex", "TP53", "SF3B1", "os_status", "site"):
        assert set(rows[column].dropna()) <= set(table[column]), column
        assert rows[column].nunique() > 1, column
    assert rows["age"].between(table["age"].min(), table["age"].max()).all()
    assert 0 < rows["anc"].isna().mean() < 0.2


def test_conditions_hold_exactly_on_categories_and_numbers(fitted):
    _, gen, _ = fitted
    rows = gen.sample(200, conditions={"sex": "F", "site": "site_3", "age": 80}, seed=3)
    assert len(rows) == 200
    assert (rows["sex"] == "F").all() and (rows["site"] == "site_3").all()
    assert (rows["age"] == 80).all()
    assert rows["hb"].nunique() > 10, "the other columns are still drawn"


def test_dp_sgd_fit_reports_its_epsilon(table):
    gen = fedsynth.make("tab_ddpm", epochs=2, seed=0, dp={"epsilon": 3.0, "delta": 1e-5}, **TINY)
    gen.fit(table, metadata=public_metadata(table))
    ledger = gen.privacy_spent_
    training = ledger.spends[-1]
    assert training.mechanism == "dp-sgd (rdp)" and training.epsilon > 0
    assert ledger.epsilon == pytest.approx(3.0, rel=0.01) and ledger.epsilon <= 3.0 * 1.005
    assert gen.history_ == [{"epoch": 1}, {"epoch": 2}], "no loss on real rows is kept"
    assert list(gen.sample(30).columns) == list(table.columns)


def test_private_fits_take_no_quantile_of_the_private_rows(table):
    """Under DP the numbers' map comes from the proxy the encoder is fitted on (post-processing),
    or without one from the encoder's mixture: never from the rows DP-SGD protects."""
    from fedsynth.tabular.generators.tab_ddpm import TabDDPM

    seen = {}

    class Recorded(TabDDPM):
        def _build(self, encoder):
            seen["rows"] = self._quantile_rows
            super()._build(encoder)

        def _pretrain(self, matrix, rng, epochs):
            seen["proxy rows"] = len(matrix)
            super()._pretrain(matrix, rng, epochs)

    metadata = public_metadata(table)
    for pretrain in ("gaussian_copula", None):
        seen.clear()
        dp = {"epsilon": 3.0, "delta": 1e-5, "pretrain": pretrain}
        gen = Recorded(epochs=1, seed=0, dp=dp, **TINY).fit(table, metadata=metadata)
        if pretrain is None:
            assert seen["rows"] is None and gen.space_.quantiles == {}
        else:
            assert seen["rows"] is not table and len(seen["rows"]) == seen["proxy rows"]
            assert gen.space_.quantiles, "the proxy's quantiles"
    assert list(gen.sample(30).columns) == list(table.columns)


def test_fitted_weights_are_the_moving_average_of_the_iterates(table):
    """The weights kept after a fit are sum_i (1 - d) d^(N - i) w_i over the optimiser's
    iterates w_1..w_N (the initial weights' share d^N is negligible after 40 steps)."""
    from fedsynth.tabular.generators.tab_ddpm import TabDDPM

    iterates: list[list[torch.Tensor]] = []

    class Recorded(TabDDPM):
        def _update_ema(self) -> None:
            iterates.append([p.detach().clone() for p in self.denoiser_.parameters()])
            super()._update_ema()

    decay = 0.5
    gen = Recorded(epochs=2, seed=0, ema_decay=decay, **{**TINY, "batch_size": 20})
    gen.fit(table)
    assert len(iterates) == 40
    # The decay's warm-up, (1 + n) / (10 + n), is below 0.5 for the first steps only, whose
    # share of the end is under 0.5 ** 32: the recursion below holds to float precision.
    for i, param in enumerate(gen.denoiser_.parameters()):
        expected = sum(
            (1 - decay) * decay ** (len(iterates) - 1 - j) * step[i]
            for j, step in enumerate(iterates)
        )
        torch.testing.assert_close(param.detach(), expected, atol=1e-6, rtol=1e-5)
        assert not torch.allclose(param.detach(), iterates[-1][i])


def test_moving_average_warms_up_so_a_short_fit_moves_the_weights(table):
    """A warm start of a few steps (a federated round) must move the weights about as far as
    without the average: the decay warms up instead of holding the old weights at 0.99."""
    moved = {}
    for decay in (0.0, 0.99):
        gen = fedsynth.make("tab_ddpm", epochs=3, seed=0, ema_decay=decay, **TINY).fit(table)
        before = [p.detach().clone() for p in gen.denoiser_.parameters()]
        gen.fit(table, epochs=3, warm_start=True)  # 12 steps
        moved[decay] = sum(
            float((p.detach() - b).norm())
            for p, b in zip(gen.denoiser_.parameters(), before, strict=True)
        )
    assert moved[0.99] > 0.4 * moved[0.0]


def test_save_and_load_sample_the_same_rows(fitted, tmp_path):
    _, gen, _ = fitted
    loaded = fedsynth.load(gen.save(tmp_path / "model"))
    pd.testing.assert_frame_equal(loaded.sample(300, seed=5), gen.sample(300, seed=5))
    pd.testing.assert_frame_equal(
        loaded.sample(50, conditions={"TP53": 1}, seed=5),
        gen.sample(50, conditions={"TP53": 1}, seed=5),
    )


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match=r"sampling_steps .* at most timesteps"):
        fedsynth.make("tab_ddpm", timesteps=10, sampling_steps=20)._check_training_params()
    with pytest.raises(ValueError, match="hidden_dims"):
        fedsynth.make("tab_ddpm", hidden_dims=(0,))._check_training_params()
    with pytest.raises(ValueError, match=r"ema_decay must be a number in \[0, 1\)"):
        fedsynth.make("tab_ddpm", ema_decay=1.0)._check_training_params()
