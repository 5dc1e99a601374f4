"""DP-SGD helpers: calibration against Opacus's accountants, Poisson batches, hooks."""

import numpy as np
import pytest
import torch

from fedsynth.privacy.dp_sgd import (
    PoissonBatches,
    PrivateTraining,
    epsilon_spent,
    make_accountant,
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
