"""DP-SGD through Opacus: noise calibrated to a target epsilon, Poisson sampling, clipping.

A neural generator trains its private part (the whole VAE; CTGAN's discriminator) with
:class:`PrivateTraining`: every step draws each training row independently with probability
``q = batch_size / n`` (Poisson sampling, the accountants' assumption), clips each row's
gradient to ``max_grad_norm`` and adds Gaussian noise of standard deviation
``noise_multiplier * max_grad_norm``. The generators compute the per-row gradients with
:func:`per_sample_gradients` (``torch.func``), chunk by chunk, sum them clipped with
:meth:`PrivateTraining.clipped_sum` and add the step's noise once with
:meth:`PrivateTraining.add_noise` (``fedsynth.tabular.generators._neural_private.private_step``;
:meth:`PrivateTraining.noisy_sum` does both for one chunk). :meth:`PrivateTraining.attach`
puts Opacus's hooks and DP optimizer on a module whose every parameter is used inside its own
``forward``, for code outside the generators (no generator uses it).

The noise multiplier is the smallest that keeps the planned steps within the target (epsilon,
delta) under the chosen Opacus accountant (RDP or PRV); the accountant's history
``[(noise_multiplier, q, steps)]`` is what the ledger records, so that anyone can recompute the
spend.

The noise comes from torch's generator, seeded from the generator's ``seed`` (Opacus's
``secure_mode``, a cryptographic generator, is off): the guarantee is the mathematical one and
does not cover attacks on floating-point or pseudo-random noise.

Opacus is imported only here, when a model is trained with ``dp=``; install it with
``pip install opacus==1.6.0``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fedsynth.core.privacy.config import PrivacyConfigError

if TYPE_CHECKING:
    import torch

_INSTALL_HINT = "DP-SGD needs Opacus: pip install opacus==1.6.0"


def _opacus():
    try:
        import opacus
    except ImportError as exc:  # an optional dependency: say how to get it
        raise ImportError(_INSTALL_HINT) from exc
    return opacus


def make_accountant(name: str, history: Sequence[Sequence[float]] = ()) -> Any:
    """An Opacus accountant (``"rdp"`` or ``"prv"``) holding ``history``."""
    _opacus()
    from opacus.accountants import create_accountant

    accountant = create_accountant(mechanism=name)
    accountant.history = [(float(s), float(q), int(t)) for s, q, t in history]
    return accountant


def epsilon_spent(history: Sequence[Sequence[float]], delta: float, accountant: str) -> float:
    """Epsilon of DP-SGD steps ``[(noise_multiplier, sample_rate, steps), ...]`` at ``delta``."""
    with _quiet():
        return float(make_accountant(accountant, history).get_epsilon(delta=delta))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Opacus's notes that are not problems here: the RDP bound at the edge of its
    orders (still a valid upper bound) and the secure generator being off (see the module
    docstring)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the")
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        yield


def noise_multiplier_for(
    epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str
) -> float:
    """Smallest noise multiplier with which ``steps`` steps at ``sample_rate`` stay within
    (``epsilon``, ``delta``), by Opacus's calibration.

    Raises
    ------
    PrivacyConfigError
        When no noise reaches the target: the RDP accountant's Renyi orders (at most 63) bound
        the epsilon it can certify from below, whatever the noise (about 0.1 to 0.2 at
        ``delta = 1e-5``); the PRV accountant has no such floor.
    """
    _opacus()
    from opacus.accountants.utils import get_noise_multiplier

    with _quiet():
        try:
            noise = get_noise_multiplier(
                target_epsilon=epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant=accountant,
                epsilon_tolerance=0.005 * epsilon,
            )
        except ValueError as exc:  # Opacus: "The privacy budget is too low."
            raise PrivacyConfigError(
                f"DP-SGD cannot reach epsilon={epsilon:.4g} at delta={delta:.3g} in {steps} "
                f"steps with the {accountant} accountant; raise epsilon or delta"
                + (", or use accountant='prv'" if accountant == "rdp" else "")
            ) from exc
    return float(noise)


def per_sample_gradients(
    loss: Callable[..., tuple[torch.Tensor, Any]],
    params: Mapping[str, Any],
    *inputs: torch.Tensor,
    chunk: int = 64,
) -> Iterator[tuple[dict[str, torch.Tensor], Any]]:
    """Gradients of ``loss(params, *sample)`` for each sample, ``chunk`` samples at a time.

    ``loss`` takes the parameters (a possibly nested mapping of tensors, as
    :func:`torch.func.functional_call` reads them) and one sample of each of ``inputs`` (their
    first dimension indexes the samples) and returns ``(loss, aux)``. Each yielded chunk holds
    the gradients flattened to ``{"a/b": (samples, *shape)}`` and the samples' ``aux``. Random
    operations inside ``loss`` (dropout) draw differently for each sample.

    ``torch.func`` follows any computation of the loss, including parameters used outside a
    module's ``forward`` and a gradient penalty's double backward, which Opacus's hooks do not.
    Chunks bound the memory of the per-sample gradients (samples x parameters); 64 rows keep
    them small enough that a step does not spend a quarter of its time in the kernel mapping
    fresh pages, as chunks of 256 did for a VAE of 125,000 parameters.
    """
    from torch.func import grad, vmap

    per_sample = vmap(
        grad(loss, has_aux=True), in_dims=(None, *[0] * len(inputs)), randomness="different"
    )
    for start in range(0, len(inputs[0]) if inputs else 0, chunk):
        grads, aux = per_sample(params, *(x[start : start + chunk] for x in inputs))
        yield dict(_flatten(grads)), aux


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", value


class PoissonBatches:
    """Sampler of a DataLoader yielding, ``steps`` times, the indices of the rows drawn
    independently with probability ``sample_rate`` each (batches of varying size)."""

    def __init__(self, n: int, sample_rate: float, steps: int, generator: torch.Generator):
        self.n = n
        self.sample_rate = sample_rate
        self.steps = steps
        self.generator = generator

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[torch.Tensor]:
        import torch

        for _ in range(self.steps):
            drawn = torch.rand(self.n, generator=self.generator) < self.sample_rate
            yield torch.nonzero(drawn).squeeze(1)


class PrivateTraining:
    """A DP-SGD run planned to spend (``epsilon``, ``delta``) over ``epochs`` epochs.

    Parameters
    ----------
    n_rows : int
        Training rows.
    batch_size : int
        Expected rows per step: the sample rate is ``batch_size / n_rows``.
    epochs : int
        Planned epochs, each ``round(n_rows / batch_size)`` steps.
    epsilon : float or None
        Target of the whole run; ``None`` when ``noise_multiplier`` is given.
    delta : float
        Target delta of the whole run.
    max_grad_norm : float
        Per-sample clipping norm.
    accountant : {"rdp", "prv"}
        Opacus accountant used to calibrate the noise and to report the spend.
    noise_multiplier : float, optional
        The noise to train with, instead of calibrating it to ``epsilon`` (a model that goes on
        training at the noise it was trained with; :attr:`planned_epsilon` then says what the
        run costs).

    Attributes
    ----------
    sample_rate, steps_per_epoch, noise_multiplier
        The plan.

    Examples
    --------
    >>> plan = PrivateTraining(n_rows=6000, batch_size=500, epochs=30, epsilon=1.0,
    ...                        delta=1e-5, max_grad_norm=1.0, accountant="rdp")
    >>> plan.steps_per_epoch, round(plan.noise_multiplier, 2)  # doctest: +SKIP
    (12, 1.27)
    """

    def __init__(
        self,
        *,
        n_rows: int,
        batch_size: int,
        epochs: int,
        epsilon: float | None,
        delta: float,
        max_grad_norm: float,
        accountant: str,
        noise_multiplier: float | None = None,
    ):
        if (epsilon is None) == (noise_multiplier is None):
            raise ValueError("give either epsilon (to calibrate the noise) or noise_multiplier")
        self.n_rows = n_rows
        self.sample_rate = min(1.0, batch_size / n_rows)
        self.steps_per_epoch = max(1, round(1.0 / self.sample_rate))
        self.epochs = epochs
        self.epsilon = epsilon
        self.delta = delta
        self.max_grad_norm = max_grad_norm
        self.accountant = accountant
        if noise_multiplier is None:
            noise_multiplier = noise_multiplier_for(
                epsilon, delta, self.sample_rate, self.steps_per_epoch * epochs, accountant
            )
        self.noise_multiplier = float(noise_multiplier)
        self.engine: Any = None
        self._manual_steps = 0

    @property
    def history(self) -> list[tuple[float, float, int]]:
        """The planned steps in an accountant's form."""
        return [(self.noise_multiplier, self.sample_rate, self.steps_per_epoch * self.epochs)]

    @property
    def planned_epsilon(self) -> float:
        """Epsilon of the planned steps at ``delta``, by the plan's accountant."""
        return epsilon_spent(self.history, self.delta, self.accountant)

    @property
    def expected_batch_size(self) -> float:
        """Expected rows per step (``sample_rate * n_rows``): what a noisy sum is divided by
        to estimate a mean gradient (dividing by the drawn batch's size would leak it)."""
        return self.sample_rate * self.n_rows

    def sampler(self, n_rows: int, generator: torch.Generator) -> PoissonBatches:
        """The Poisson sampler of one epoch."""
        return PoissonBatches(n_rows, self.sample_rate, self.steps_per_epoch, generator)

    def attach(
        self, module: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: Any, generator
    ) -> tuple[Any, torch.optim.Optimizer]:
        """Per-sample gradient hooks on ``module`` and the DP optimizer replacing ``optimizer``.

        ``module`` is used as it is (Opacus's hooks, no wrapper, so its ``state_dict`` keeps
        its keys); the training step must call the returned optimizer. Returns
        ``(hooks, dp_optimizer)``; :meth:`detach` undoes the hooks.
        """
        opacus = _opacus()
        with _quiet():
            engine = opacus.PrivacyEngine(accountant=self.accountant)
        hooks, dp_optimizer, _ = engine.make_private(
            module=module,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            # The loader already draws Poisson batches (PoissonBatches), with the sample rate
            # that Opacus reads from its length.
            poisson_sampling=False,
            wrap_model=False,
            noise_generator=generator,
        )
        # Opacus takes the sample rate as 1 / len(loader) = 1 / steps_per_epoch, which differs
        # from the sampler's batch_size / n_rows when n_rows / batch_size is not a whole number:
        # the accountant and the mean are set to what the sampler really draws.
        dp_optimizer.attach_step_hook(
            engine.accountant.get_optimizer_hook_fn(sample_rate=self.sample_rate)
        )
        dp_optimizer.expected_batch_size = self.expected_batch_size
        self.engine = engine
        return hooks, dp_optimizer

    def noisy_sum(
        self,
        per_sample: dict[str, torch.Tensor],
        generator: torch.Generator,
        *,
        clip_norm: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """One private step computed by the caller: the per-sample gradients (first dimension:
        the samples), each clipped to ``max_grad_norm`` in their joint L2 norm, summed, plus
        Gaussian noise of standard deviation ``noise_multiplier * max_grad_norm``.

        For training steps that Opacus's hooks cannot follow (several passes of one module, a
        gradient penalty's double backward); the step is counted for :meth:`steps_taken`.
        Divide the result by :attr:`expected_batch_size` for a mean. ``clip_norm`` (see
        :meth:`clipped_sum`) clips to less than ``max_grad_norm``.
        """
        return self.add_noise(self.clipped_sum(per_sample, clip_norm=clip_norm), generator)

    def clipped_sum(
        self, per_sample: dict[str, torch.Tensor], *, clip_norm: float | None = None
    ) -> dict[str, torch.Tensor]:
        """Sum of the per-sample gradients, each clipped to ``clip_norm`` (default
        ``max_grad_norm``) in their joint L2 norm; a step's samples may be summed in chunks.

        The noise of :meth:`add_noise` covers a sum that one row changes by at most
        ``max_grad_norm``: a row that adds or removes one sample. When a row instead *changes*
        one sample (a row joining a pack of rows), the sum changes by up to twice the clipping
        norm: clip to ``max_grad_norm / 2`` then.
        """
        import torch

        bound = self.max_grad_norm if clip_norm is None else clip_norm
        if clip_norm is not None and not 0 < clip_norm <= self.max_grad_norm:
            raise ValueError(f"clip_norm must be in (0, max_grad_norm], got {clip_norm!r}")
        norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per_sample.values()))
        factors = (bound / (norms + 1e-6)).clamp(max=1.0)
        return {
            name: torch.einsum("i,i...->...", factors, grads) for name, grads in per_sample.items()
        }

    def add_noise(
        self, total: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """``total`` (a :meth:`clipped_sum`) plus Gaussian noise of standard deviation
        ``noise_multiplier * max_grad_norm``, drawn from ``generator``; counts one step."""
        std = self.noise_multiplier * self.max_grad_norm
        out = {}
        for name, value in total.items():
            noise = _randn(value.shape, generator)
            out[name] = value + std * noise.to(value.device)
        self._manual_steps += 1
        return out

    def steps_taken(self) -> list[tuple[float, float, int]]:
        """The accountant's history of the steps actually taken."""
        if self.engine is not None:
            return [(float(s), float(q), int(t)) for s, q, t in self.engine.accountant.history]
        if not self._manual_steps:
            return []
        return [(self.noise_multiplier, self.sample_rate, self._manual_steps)]

    @staticmethod
    def detach(hooks: Any, module: torch.nn.Module) -> None:
        """Remove the per-sample hooks and the per-sample gradients left on ``module``."""
        hooks.remove_hooks()
        for parameter in module.parameters():
            for name in ("grad_sample", "_forward_counter", "summed_grad"):
                if hasattr(parameter, name):
                    delattr(parameter, name)


def _randn(shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
    """Standard normal draws on ``generator``'s device (a CPU generator for a CUDA model)."""
    import torch

    return torch.randn(tuple(shape), generator=generator, device=generator.device)
