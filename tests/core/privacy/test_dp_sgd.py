"""DP-SGD helpers: calibration against Opacus's accountants, Poisson batches, hooks."""

import numpy as np
import pytest
import torch

from fedsynth.core.privacy import PrivacyConfigError
from fedsynth.core.privacy.dp_sgd import (
    PoissonBatches,
    PrivateTraining,
    epsilon_spent,
    make_accountant,
    noise_multiplier_for,
    per_sample_gradients,
)


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_calibrated_noise_meets_the_target_by_an_independent_accountant(accountant):
    from opacus.accountants import PRVAccountant, RDPAccountant

    plan = PrivateTraining(
        n_rows=2000, batch_size=100, epochs=5, epsilon=2.0, delta=1e-5, max_grad_norm=1.0,
        accountant=accountant,
    )  # fmt: skip
    assert plan.sample_rate == 0.05 and plan.steps_per_epoch == 20
    independent = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    for _ in range(100):  # the planned steps, one by one, as an optimizer hook would
        independent.step(noise_multiplier=plan.noise_multiplier, sample_rate=0.05)
    spent = independent.get_epsilon(delta=1e-5)
    assert spent == pytest.approx(epsilon_spent(plan.history, 1e-5, accountant), rel=1e-6)
    assert 1.98 <= spent <= 2.0 + 0.01


def test_accountant_keeps_its_history():
    accountant = make_accountant("rdp", [(1.1, 0.01, 500)])
    assert accountant.history == [(1.1, 0.01, 500)]


def test_poisson_batches_draw_each_row_independently():
    sampler = PoissonBatches(1000, 0.1, 200, torch.Generator().manual_seed(0))
    sizes = [len(batch) for batch in sampler]
    assert len(sizes) == 200 and len(set(sizes)) > 10
    assert np.mean(sizes) == pytest.approx(100, rel=0.05)
    assert np.std(sizes) == pytest.approx(np.sqrt(1000 * 0.1 * 0.9), rel=0.2)


# The toy loss reaches the first layer through inputs that need no gradient; Opacus's hooks
# work all the same.
@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_attached_training_clips_adds_noise_and_leaves_the_module_clean():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    keys = list(module.state_dict())
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    data = torch.randn(400, 3)
    plan = PrivateTraining(
        n_rows=400, batch_size=40, epochs=2, epsilon=3.0, delta=1e-5, max_grad_norm=0.5,
        accountant="rdp",
    )  # fmt: skip
    generator = torch.Generator().manual_seed(1)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data),
        batch_size=None,
        sampler=plan.sampler(len(data), generator),
    )
    hooks, dp_optimizer = plan.attach(module, optimizer, loader, generator)
    assert dp_optimizer.expected_batch_size == pytest.approx(40)
    for _ in range(plan.epochs):
        for (batch,) in loader:
            dp_optimizer.zero_grad()
            module(batch).pow(2).mean().backward()
            dp_optimizer.step()
    assert plan.steps_taken() == plan.history
    PrivateTraining.detach(hooks, module)
    assert list(module.state_dict()) == keys
    assert not any(hasattr(p, "grad_sample") for p in module.parameters())


def test_noisy_sum_clips_each_sample_and_counts_the_step():
    plan = PrivateTraining(
        n_rows=100, batch_size=10, epochs=1, epsilon=1e6, delta=1e-5, max_grad_norm=1.0,
        accountant="rdp",
    )  # fmt: skip
    per_sample = {"w": torch.tensor([[3.0, 4.0], [0.3, 0.4]]), "b": torch.zeros(2, 1)}
    out = plan.noisy_sum(per_sample, torch.Generator().manual_seed(0))
    # The first sample (norm 5) is scaled to norm 1, the second (norm 0.5) kept.
    np.testing.assert_allclose(out["w"].numpy(), [0.9, 1.2], atol=0.02)
    assert out["b"].shape == (1,)
    assert plan.steps_taken() == [(plan.noise_multiplier, 0.1, 1)]


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_attached_accountant_uses_the_samplers_rate_when_rows_do_not_divide():
    # 450 rows, batches of 100: the sampler draws at 100/450 in 4 steps an epoch; Opacus alone
    # would account 1/4 per step and average over 112 rows.
    module = torch.nn.Linear(3, 1)
    plan = PrivateTraining(
        n_rows=450, batch_size=100, epochs=1, epsilon=2.0, delta=1e-5, max_grad_norm=1.0,
        accountant="rdp",
    )  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(450, 3)),
        batch_size=None,
        sampler=plan.sampler(450, generator),
    )
    hooks, dp_optimizer = plan.attach(module, torch.optim.SGD(module.parameters(), 0.1), loader,
                                      generator)  # fmt: skip
    for (batch,) in loader:
        dp_optimizer.zero_grad()
        module(batch).pow(2).mean().backward()
        dp_optimizer.step()
    PrivateTraining.detach(hooks, module)
    assert plan.steps_taken() == [(plan.noise_multiplier, 100 / 450, 4)] == plan.history
    assert dp_optimizer.expected_batch_size == pytest.approx(100)


def test_a_given_noise_multiplier_is_kept_and_its_cost_computed():
    from opacus.accountants import RDPAccountant

    plan = PrivateTraining(
        n_rows=400, batch_size=100, epochs=3, epsilon=None, delta=1e-5, max_grad_norm=1.0,
        accountant="rdp", noise_multiplier=1.3,
    )  # fmt: skip
    independent = RDPAccountant()
    independent.history = [(1.3, 0.25, 12)]
    assert plan.history == [(1.3, 0.25, 12)]
    assert plan.planned_epsilon == pytest.approx(independent.get_epsilon(delta=1e-5))
    with pytest.raises(ValueError, match="either epsilon"):
        PrivateTraining(
            n_rows=400, batch_size=100, epochs=3, epsilon=1.0, delta=1e-5, max_grad_norm=1.0,
            accountant="rdp", noise_multiplier=1.3,
        )  # fmt: skip


def test_calibration_meets_the_target_within_half_a_percent():
    noise = noise_multiplier_for(0.5, 1e-5, 0.01, 1000, "rdp")
    assert 0.5 * 0.995 <= epsilon_spent([(noise, 0.01, 1000)], 1e-5, "rdp") <= 0.5


def test_an_epsilon_below_what_rdp_can_certify_names_the_way_out():
    with pytest.raises(PrivacyConfigError, match="accountant='prv'"):
        noise_multiplier_for(0.05, 1e-5, 0.25, 8, "rdp")


def test_per_sample_gradients_follow_parameters_outside_forward_and_double_backward():
    from torch.func import functional_call, grad

    torch.manual_seed(0)
    module = torch.nn.Linear(3, 2)
    scale = torch.nn.Parameter(torch.tensor([0.5, 2.0]))  # used by the loss, not by forward
    x = torch.randn(7, 3)

    def loss(params, row):
        def out(inputs):
            return functional_call(module, params["linear"], (inputs,)).sum()

        value = (functional_call(module, params["linear"], (row[None],)) * params["s"]["s"]).sum()
        penalty = (grad(out)(row[None]).norm() - 1) ** 2  # a gradient penalty: double backward
        return value + penalty, value.detach()

    params = {"linear": dict(module.named_parameters()), "s": {"s": scale}}
    params = {k: {n: p.detach() for n, p in v.items()} for k, v in params.items()}
    ((grads, values),) = per_sample_gradients(loss, params, x)
    for i in range(len(x)):
        module.zero_grad()
        scale.grad = None
        row = x[i : i + 1].clone().requires_grad_(True)
        value = (module(row) * scale).sum()
        (gradient,) = torch.autograd.grad(module(row).sum(), row, create_graph=True)
        (value + (gradient.norm() - 1) ** 2).backward()
        torch.testing.assert_close(grads["linear/weight"][i], module.weight.grad)
        torch.testing.assert_close(grads["s/s"][i], scale.grad)
        torch.testing.assert_close(values[i], value.detach())


def test_clipping_to_half_the_norm_keeps_the_noise_of_the_full_norm():
    plan = PrivateTraining(
        n_rows=100, batch_size=10, epochs=1, epsilon=1e6, delta=1e-5, max_grad_norm=1.0,
        accountant="rdp",
    )  # fmt: skip
    per_sample = {"w": torch.tensor([[3.0, 4.0], [0.3, 0.4]])}
    clipped = plan.clipped_sum(per_sample, clip_norm=0.5)
    np.testing.assert_allclose(clipped["w"].numpy(), [0.3 + 0.3, 0.4 + 0.4], atol=1e-5)
    assert plan.steps_taken() == []  # clipping alone is not a step
    noisy = plan.add_noise(clipped, torch.Generator().manual_seed(0))
    assert noisy["w"].shape == (2,) and plan.steps_taken() == [(plan.noise_multiplier, 0.1, 1)]
    with pytest.raises(ValueError, match="clip_norm"):
        plan.clipped_sum(per_sample, clip_norm=2.0)
