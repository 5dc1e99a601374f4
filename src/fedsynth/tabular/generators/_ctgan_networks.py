"""CTGAN's networks and losses: the residual generator, the PacGAN critic, the moment term."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Weight of the gradient penalty of WGAN-GP (Gulrajani et al. 2017), as in CTGAN.
PENALTY_WEIGHT = 10.0


def build_generator(
    embedding_dim: int, cond_dim: int, dims: tuple[int, ...], output_dim: int
) -> torch.nn.Module:
    """CTGAN's generator: residual blocks, each appending its output to its input."""
    import torch
    from torch import nn

    class Residual(nn.Module):
        def __init__(self, width: int, size: int):
            super().__init__()
            self.fc = nn.Linear(width, size)
            self.bn = nn.BatchNorm1d(size)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([torch.relu(self.bn(self.fc(x))), x], dim=1)

    layers: list[nn.Module] = []
    width = embedding_dim + cond_dim
    for size in dims:
        layers.append(Residual(width, size))
        width += size
    layers.append(nn.Linear(width, output_dim))
    return nn.Sequential(*layers)


def build_discriminator(input_dim: int, dims: tuple[int, ...], pac: int) -> torch.nn.Module:
    """PacGAN critic: scores packs of ``pac`` rows (with their conditions) laid side by side."""
    from torch import nn

    class Discriminator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            width = input_dim * pac
            for size in dims:
                layers += [nn.Linear(width, size), nn.LeakyReLU(0.2), nn.Dropout(0.5)]
                width = size
            layers.append(nn.Linear(width, 1))
            self.body = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x.reshape(-1, input_dim * pac))

    return Discriminator()


def moment_distance(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Distance between two batches' first and second moments, column by column.

    The Euclidean distance between the column means plus the Frobenius distance between the
    mean outer products ``x.T @ x / n``. On one-hot spans the products are the batch's
    pairwise contingency tables (of categories, modes and missingness), so the distance
    measures the marginals and the pairwise relations that a table's quality is judged on.
    The distances are not squared: their gradients keep a size of about one however close the
    batches are, the scale of the critic's gradient.

    Parameters
    ----------
    fake, real : Tensor of shape (rows, width)
        Rows as the critic sees them (activated fake rows; encoded real rows); the row counts
        may differ.
    """
    means = (fake.mean(0) - real.mean(0)).norm()
    second = (fake.T @ fake / len(fake) - real.T @ real / len(real)).norm()
    return means + second


def with_conditions(rows: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
    """``rows`` with their conditional vectors appended (as the critic and generator read them)."""
    import torch

    return rows if cond is None else torch.cat([rows, cond], dim=1)
