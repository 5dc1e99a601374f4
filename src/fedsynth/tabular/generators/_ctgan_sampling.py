"""CTGAN's sampling: the generator's rows under drawn or given conditions, in float32 or bfloat16
(see the Notes of :class:`~fedsynth.tabular.generators.ctgan.CTGAN`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fedsynth.exceptions import ConditionError
from fedsynth.tabular.generators.base import rejection_sample

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "float32", "bfloat16")


class ConditionedSampling:
    """CTGAN's sampling, mixed into :class:`~fedsynth.tabular.generators.ctgan.CTGAN` (whose
    generator, layout, encoder and generation frequencies it uses)."""

    def _sampling_precision(self) -> str:
        """``sample_precision`` resolved for the model's device: ``"float32"`` or
        ``"bfloat16"``."""
        if self.sample_precision not in PRECISIONS:
            raise ValueError(precision_problem(self.sample_precision))
        if self.sample_precision != "auto":
            return str(self.sample_precision)
        return "bfloat16" if self.device_.type == "cpu" and native_bfloat16_cpu() else "float32"

    def _generate(
        self, n: int, generator: torch.Generator, slot: int | None = None
    ) -> torch.Tensor:
        """Activated rows; conditioned on conditional-vector ``slot``, else on drawn conditions."""
        import torch

        noise = torch.randn((n, int(self.embedding_dim)), generator=generator, device=self.device_)
        if self._generation_slots is not None:
            if slot is None:
                slots = torch.multinomial(
                    self._generation_slots, n, replacement=True, generator=generator
                )
            else:
                slots = torch.full((n,), slot, dtype=torch.long, device=self.device_)
            noise = torch.cat([noise, self.layout_.one_hot(slots)], dim=1)
        if self._sampling_precision() == "bfloat16":
            # The matrix products dominate sampling's cost; activation and decoding stay in
            # float32, where the draws are made.
            with torch.autocast(self.device_.type, dtype=torch.bfloat16):
                raw = self.generator_(noise)
            return self.layout_.activate(raw.float())
        return self.layout_.activate(self.generator_(noise))

    # ------------------------------------------------------------------ conditional sampling
    def _sample_conditioned(
        self, n: int, conditions: dict[str, Any], rng: np.random.Generator
    ) -> pd.DataFrame:
        """Rows meeting ``conditions``: the generator conditioned on one, rejection for the rest.

        The conditional vector is set to the rarest condition in the training data (so that
        the rest, met by rejection, are as likely as they can be among the generated rows).
        The generator follows its condition closely but not always, so every condition,
        that one included, is checked on the decoded rows.

        Raises
        ------
        ConditionError
            For a numeric condition, a category absent from the training data, or conditions
            too rare to meet within the bounded sampling budget.
        """

        continuous = [c for c in conditions if self.metadata_.columns[c].is_continuous]
        if continuous:
            raise ConditionError(
                f"ctgan cannot condition on numeric column(s) {continuous}: its conditional "
                "vector holds categories only; use gaussian_copula or bayesian_network to "
                "condition on numeric values"
            )
        counts = self.encoder_.category_counts_
        starts = {span.column: span.start for span in self.layout_.discrete}
        offsets = {
            span.column: int(start)
            for span, start in zip(
                self.layout_.discrete, self.layout_.cond_start.tolist(), strict=True
            )
        }
        slots = {c: self.encoder_.category_slot(c, v) - starts[c] for c, v in conditions.items()}
        unseen = [f"{c}={conditions[c]!r}" for c, s in slots.items() if counts[c][s] == 0]
        if unseen:
            raise ConditionError(
                f"cannot sample with {', '.join(unseen)}: never seen in the training data, so "
                "ctgan never learnt to generate it"
            )
        rarest = min(slots, key=lambda c: counts[c][slots[c]])
        slot = offsets[rarest] + slots[rarest]

        def draw(k: int, rng: np.random.Generator) -> pd.DataFrame:
            generator = self._torch_generator(rng)
            return self._decode_blocks(k, lambda size: self._generate(size, generator, slot), rng)

        return rejection_sample(draw, n, conditions, rng, max_draws=max(200 * n, 100_000))


def precision_problem(value: Any) -> str:
    return f"sample_precision must be one of {', '.join(map(repr, PRECISIONS))}, got {value!r}"


@functools.cache  # the CPU does not change; sampling asks once per block of rows
def native_bfloat16_cpu() -> bool:
    """Whether this CPU computes bfloat16 matrix products natively (oneDNN's check for
    AVX512-BF16 or AMX); ``False`` wherever the check is unavailable."""
    import torch

    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):  # a torch build without the check
        return False
