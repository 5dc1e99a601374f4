"""The weights of a neural table generator: as arrays for federated averaging, and saved.

:class:`NeuralWeights` is the part of :class:`~fedsynth.tabular.generators._neural.NeuralGenerator`
that reads and writes the modules' weights: :meth:`~NeuralWeights.get_weights` and
:meth:`~NeuralWeights.set_weights` (every module's parameters and buffers as a list of arrays in
a fixed order, checked for shapes and non-finite values before any is loaded), and the state a
model file holds (the encoder, the weights, the history and a generator's extra state). It
relies on the generator's ``_modules``, ``_build``, ``_extra_state`` and ``_load_extra_state``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

import numpy as np

from fedsynth.core.torch_device import resolve_device
from fedsynth.exceptions import FedsynthError
from fedsynth.tabular.transforms import TableEncoder

if TYPE_CHECKING:
    from fedsynth.tabular.generators.base import BaseGenerator


class NeuralWeights:
    """Weights as arrays and the saved state of a neural generator (module docstring)."""

    encoder_: TableEncoder
    history_: list[dict[str, float]]
    n_fits_: int

    def _state_dicts(self) -> dict[str, dict[str, Any]]:
        return {name: module.state_dict() for name, module in self._modules().items()}

    def _weight_names(self) -> list[tuple[str, str]]:
        return [(m, k) for m, state in self._state_dicts().items() for k in state]

    def get_weights(self) -> list[np.ndarray]:
        """Every module's parameters and buffers as arrays, in a fixed order."""
        self._check_is_fitted()
        return [
            state[key].detach().cpu().numpy().copy()
            for state in self._state_dicts().values()
            for key in state
        ]

    def set_weights(self, weights: list[np.ndarray]) -> Self:
        """Load weights from :meth:`get_weights` of a model with the same architecture.

        Raises
        ------
        FedsynthError
            When the number or shapes of the arrays differ, or an array holds NaN or infinity
            (such an update must be rejected, not loaded).
        """
        import torch

        self._check_is_fitted()
        names = self._weight_names()
        current = self.get_weights()
        if len(weights) != len(current):
            raise FedsynthError(f"expected {len(current)} weight arrays, got {len(weights)}")
        problems = []
        for (module, key), new, old in zip(names, weights, current, strict=True):
            new = np.asarray(new)
            if new.shape != old.shape:
                problems.append(f"{module}.{key}: shape {new.shape}, expected {old.shape}")
            elif np.issubdtype(new.dtype, np.floating) and not np.isfinite(new).all():
                problems.append(f"{module}.{key}: holds NaN or infinite values")
        if problems:
            raise FedsynthError("weights refused:\n  - " + "\n  - ".join(problems))
        states = self._state_dicts()
        for (module, key), new in zip(names, weights, strict=True):
            target = states[module][key]
            states[module][key] = torch.as_tensor(np.asarray(new), dtype=target.dtype)
        for name, module in self._modules().items():
            module.load_state_dict(states[name])
        return self

    @classmethod
    def _from_saved(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> BaseGenerator:
        # JSON has no tuples: architecture knobs such as hidden sizes come back as lists.
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in config["params"].items()}
        return super()._from_saved({**config, "params": params}, arrays)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        encoder_config, encoder_arrays = self.encoder_.get_state()
        arrays = {f"encoder/{k}": v for k, v in encoder_arrays.items()}
        for (module, key), value in zip(self._weight_names(), self.get_weights(), strict=True):
            arrays[f"weights/{module}/{key}"] = value
        extra_config, extra_arrays = self._extra_state()
        arrays.update({f"extra/{k}": v for k, v in extra_arrays.items()})
        state = {
            "encoder": encoder_config,
            "history": self.history_,
            "n_fits": self.n_fits_,
            "extra": extra_config,
        }
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        import torch

        def part(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

        self.device_ = resolve_device(self.device)
        self.encoder_ = TableEncoder.from_state(state["encoder"], part("encoder/"))
        self.history_ = list(state["history"])
        self.n_fits_ = int(state["n_fits"])
        with torch.random.fork_rng(devices=[]):
            self._build(self.encoder_)
        weights = part("weights/")
        self.set_weights([weights[f"{m}/{k}"] for m, k in self._weight_names()])
        self._load_extra_state(state["extra"], part("extra/"))
