"""What the image generators share with torch: seeding, batches, progress, the DP-SGD step
(the device and torch seeds are :mod:`fedsynth.core.torch_device`'s).

The imaging package stands beside the tabular one (it imports only :mod:`fedsynth.core`), so
the few helpers it shares in spirit with the neural table generators are written here, on the
same core pieces: :class:`~fedsynth.core.privacy.dp_sgd.PrivateTraining` and
:func:`~fedsynth.core.privacy.dp_sgd.per_sample_gradients` for DP-SGD, and
:func:`~fedsynth.core.progress.training_progress` for progress.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from fedsynth.core.progress import ProgressCallback, training_progress
from fedsynth.core.torch_device import torch_seed

if TYPE_CHECKING:
    import torch

    from fedsynth.core.privacy.dp_sgd import PrivateTraining


@contextlib.contextmanager
def seeded(rng: np.random.Generator) -> Iterator[None]:
    """Seed torch's global generator from ``rng`` inside a fork, so that module initialisation
    is reproducible and the caller's torch random state is left as it was."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed(rng))
        yield


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """One epoch of shuffled index batches of ``min(batch_size, n)``; the incomplete last batch
    is dropped (each epoch drops other images), unless it is the only one."""
    import torch

    size = min(batch_size, n)
    order = torch.randperm(n, generator=generator)
    for start in range(0, max(n - size, 0) + 1, size):
        yield order[start : start + size]


def poisson_batches(plan: PrivateTraining, n: int, generator: torch.Generator):
    """One epoch of DP-SGD batches: each image drawn independently with the plan's rate."""
    return iter(plan.sampler(n, generator))


def epoch_reporter(
    verbose: bool, title: str, epochs: int, progress: ProgressCallback | None
) -> contextlib.AbstractContextManager[Callable[[int, dict[str, float]], None]]:
    """Yield ``advance(epoch, losses)``: an :class:`~fedsynth.core.progress.EpochDone` to
    ``progress`` and, when ``verbose``, a rich progress bar with the losses (the table
    generators' bar: :func:`~fedsynth.core.progress.training_progress`)."""
    return training_progress(verbose, title, epochs, progress)


def private_step(
    plan: PrivateTraining,
    module: torch.nn.Module,
    loss: Callable[..., tuple[torch.Tensor, Any]],
    inputs: tuple[torch.Tensor, ...],
    *,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    chunk: int = 16,
) -> list[Any]:
    """One DP-SGD step of ``optimizer`` on ``module``'s parameters.

    Each sample's gradient of ``loss(params, *sample) -> (loss, aux)`` (``params`` as
    :func:`torch.func.functional_call` reads them; the samples run along the first dimension of
    ``inputs``) is clipped to the plan's norm, the clipped gradients are summed, Gaussian noise
    is added once (:meth:`PrivateTraining.clipped_sum`, :meth:`PrivateTraining.add_noise`, which
    counts the step), and the sum divided by the plan's expected batch size (a data-independent
    count) becomes each parameter's gradient. An empty batch is a step too: noise only.

    Returns the samples' ``aux``, in chunks.
    """
    import torch

    from fedsynth.core.privacy.dp_sgd import per_sample_gradients

    params = {key: p.detach() for key, p in module.named_parameters()}
    total = {key: torch.zeros_like(p) for key, p in params.items()}
    aux = []
    for grads, values in per_sample_gradients(loss, params, *inputs, chunk=chunk):
        for key, value in plan.clipped_sum(grads).items():
            total[key] += value
        aux.append(values)
    noisy = plan.add_noise(total, generator)
    for key, parameter in module.named_parameters():
        parameter.grad = noisy[key] / plan.expected_batch_size
    optimizer.step()
    return aux


def state_arrays(modules: Mapping[str, torch.nn.Module]) -> dict[str, np.ndarray]:
    """Every module's state dict as arrays named ``module/key``, in a fixed order."""
    return {
        f"{name}/{key}": value.detach().cpu().numpy().copy()
        for name, module in modules.items()
        for key, value in module.state_dict().items()
    }


def load_state_arrays(
    modules: Mapping[str, torch.nn.Module], arrays: Mapping[str, np.ndarray]
) -> None:
    """Load :func:`state_arrays` into ``modules``.

    Raises
    ------
    ValueError
        Naming each array missing, of the wrong shape, or holding NaN or infinity.
    """
    import torch

    problems = []
    states = {}
    for name, module in modules.items():
        state = module.state_dict()
        for key, target in state.items():
            full = f"{name}/{key}"
            if full not in arrays:
                problems.append(f"{full}: missing")
                continue
            new = np.asarray(arrays[full])
            if tuple(new.shape) != tuple(target.shape):
                problems.append(f"{full}: shape {new.shape}, expected {tuple(target.shape)}")
            elif np.issubdtype(new.dtype, np.floating) and not np.isfinite(new).all():
                problems.append(f"{full}: holds NaN or infinite values")
            else:
                state[key] = torch.as_tensor(new, dtype=target.dtype)
        states[name] = state
    if problems:
        raise ValueError("weights refused:\n  - " + "\n  - ".join(problems))
    for name, module in modules.items():
        module.load_state_dict(states[name])
