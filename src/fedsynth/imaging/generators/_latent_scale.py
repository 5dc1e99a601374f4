"""``latent_diffusion``'s state besides its weights: the latent scale, and how federated sites
share it.

The UNet learns latents scaled to unit variance (Rombach et al. 2022); the scale comes from the
training images' latent means. Under FedAvg each site reports the variance of its own images'
latents under the shared autoencoder (:meth:`export_extra_state`), the server averages them by
site size (:meth:`merge_extra_states`) and every model takes the merged scale
(:meth:`load_extra_state`); a saved model keeps it in its JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from fedsynth.core.federable import ExtraState
from fedsynth.imaging.generators import _diffusion as diffusion


class LatentScaleState:
    """Mixin of :class:`~fedsynth.imaging.generators.latent_diffusion.LatentDiffusion`: its
    latent scale as federable extra state and saved configuration."""

    latent_scale_: float
    autoencoder_: Any
    device_: Any

    def _refresh_extra_state(self, scaled: np.ndarray, rng: np.random.Generator) -> None:
        import torch

        latents = diffusion.latent_means(
            self.autoencoder_, torch.from_numpy(scaled).to(self.device_)
        )
        self._site_variance = diffusion.latent_variance(latents)

    def export_extra_state(self) -> ExtraState:
        """The latent variance of the site's images under the current autoencoder (set by a
        :meth:`train_local` with ``extra_state=True``), or the model's own scale."""
        variance = getattr(self, "_site_variance", 1.0 / self.latent_scale_**2)
        return ExtraState({"latent_variance": float(variance)}, {})

    def load_extra_state(self, state: ExtraState) -> None:
        """Take the latent scale of a (merged) state."""
        self.latent_scale_ = 1.0 / math.sqrt(float(state.config["latent_variance"]))
        self.__dict__.pop("_site_variance", None)  # the site's own figure is superseded

    @classmethod
    def merge_extra_states(cls, states: Sequence[ExtraState], sizes: Sequence[float]) -> ExtraState:
        """The sites' latent variances averaged by their sizes (the pooled images' variance
        when the sites' latent means agree)."""
        if not states:
            raise ValueError("no extra state to merge")
        shares = np.asarray(sizes, dtype=float) / float(np.sum(sizes))
        variance = sum(s.config["latent_variance"] * w for s, w in zip(states, shares, strict=True))
        return ExtraState({"latent_variance": float(variance)}, {})

    def _extra_config(self) -> dict[str, Any]:
        return {"latent_scale": float(self.latent_scale_)}

    def _load_extra_config(self, state: dict[str, Any]) -> None:
        self.latent_scale_ = float(state["latent_scale"])
