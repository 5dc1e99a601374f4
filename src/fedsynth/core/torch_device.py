"""The device and the torch seeds of every torch-based generator (tables and images alike).

Torch is imported only when a function runs: ``fedsynth.core`` is imported by every modality,
and the statistical generators need no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def resolve_device(device: str) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; any other value is passed to torch.

    Raises
    ------
    ValueError
        For a device torch does not know, or CUDA asked for where there is none.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here")
    return resolved


def torch_seed(rng: np.random.Generator) -> int:
    """A seed for torch drawn from ``rng``."""
    return int(rng.integers(0, 2**62))
