"""The space TabDDPM diffuses in: one normal score per continuous value, one-hot spans after.

TabDDPM (Kotelnikov et al. 2023) maps each number to a standard normal by its quantiles and
diffuses that one input per number. fedsynth's :class:`~fedsynth.tabular.transforms.TableEncoder`
gives a number two parts instead, its mixture mode (one-hot, up to 10 slots) and its offset
within the mode; diffusing those would put a multinomial process on every mode span, and the
modes are most of the matrix (194 of SUPPORT2's 327 columns). So a number is mapped to
``z = Phi^-1(F(x))``, ``F`` the cumulative distribution of the encoder's own mixture for the
column: TabDDPM's quantile transform with the quantiles of the fitted mixture, which needs no
statistic beyond the encoder's (the same under federation, where the server builds the encoder
from the sites' statistics, and under DP, where it is fitted on a private proxy).

The model-space row is ``[z of each continuous value] [softmax spans grouped by width]``: the
spans (categories, missingness indicators, modes of point-mass columns) are reordered so that
those of one width are contiguous, which lets the diffusion view them as a
``(rows, spans, width)`` block without copying. Point-mass columns (few distinct values) keep
their mode span, a category. ``F`` and its inverse are interpolated on a grid of
:data:`_GRID` points spanning the modes' reach (4 standard deviations, where the encoder clips).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.special import ndtr, ndtri

if TYPE_CHECKING:
    from fedsynth.tabular.transforms import TableEncoder

#: Grid points of each column's map between values and normal scores.
_GRID = 2049
#: Normal scores are kept within this (F clipped to [1e-6, 1 - 1e-6]).
Z_MAX = float(ndtri(1 - 1e-6))


class ModelSpace:
    """Maps an encoder's matrix to the model space of the module docstring and back.

    Attributes
    ----------
    n_values : int
        Continuous columns (the first ``n_values`` model columns).
    widths : list of (int, int)
        ``(width, count)`` of each group of softmax spans, in model order after the values.
    dim : int
        Model columns.
    """

    def __init__(self, encoder: TableEncoder):
        spans = encoder.output_info_
        by_column: dict[str, dict[str, object]] = {}
        for span in spans:
            by_column.setdefault(span.column, {})[span.role] = span
        self._values = []  # (value column, mode slice or None, normalizer, x grid, z grid)
        categorical: list[object] = []
        for column, roles in by_column.items():
            if "value" in roles:
                transform = encoder.transforms_[encoder.columns_.index(column)]
                normalizer = transform.normalizer
                mode = roles.get("mode")
                x_grid, z_grid = _grid(normalizer.means, normalizer.stds, normalizer.weights)
                self._values.append(
                    (
                        roles["value"].start,
                        None if mode is None else mode.slice,
                        normalizer,
                        x_grid,
                        z_grid,
                    )
                )
                rest = [roles[r] for r in ("missing",) if r in roles]
            else:
                rest = [roles[r] for r in ("mode", "category", "missing") if r in roles]
            categorical += rest
        categorical.sort(key=lambda span: span.width)  # stable: the table's order within a width
        self._sources = np.array(
            [i for span in categorical for i in range(span.start, span.stop)], dtype=np.int64
        )
        counts: dict[int, int] = {}
        for span in categorical:
            counts[span.width] = counts.get(span.width, 0) + 1
        self.n_values = len(self._values)
        # Each column's value and mode at normal scores evenly spaced over [-Z_MAX, Z_MAX].
        scores = np.linspace(-Z_MAX, Z_MAX, _GRID)
        self._inverse = [np.interp(scores, e[4], e[3]) for e in self._values]
        self._modes = [e[2].assign(x) for e, x in zip(self._values, self._inverse, strict=True)]
        self.widths = sorted(counts.items())
        self.dim = self.n_values + len(self._sources)
        self.encoder_dim = int(encoder.output_dim_)

    def to_model(self, matrix: np.ndarray) -> np.ndarray:
        """Model-space rows of an encoder matrix (float32)."""
        matrix = np.asarray(matrix, dtype=np.float32)
        out = np.empty((len(matrix), self.dim), dtype=np.float32)
        for i, (value, mode, normalizer, x_grid, z_grid) in enumerate(self._values):
            modes = (
                np.zeros(len(matrix), dtype=np.int64)
                if mode is None
                else (matrix[:, mode].argmax(1))
            )
            alpha = np.clip(matrix[:, value].astype(np.float64), -1.0, 1.0)
            x = normalizer.means[modes] + 4.0 * normalizer.stds[modes] * alpha
            out[:, i] = np.interp(x, x_grid, z_grid)
        out[:, self.n_values :] = matrix[:, self._sources]
        return out

    def to_encoder(self, model: np.ndarray) -> np.ndarray:
        """An encoder matrix of model-space rows: each score mapped back to its value and the
        value encoded again (its most likely mode, its offset in it)."""
        model = np.asarray(model)
        out = np.zeros((len(model), self.encoder_dim), dtype=np.float32)
        scale = (_GRID - 1) / (2 * Z_MAX)
        for i, (value, mode, normalizer, _, _) in enumerate(self._values):
            # Linear interpolation on the grid uniform in z: arithmetic, no search.
            position = (np.clip(model[:, i], -Z_MAX, Z_MAX) + Z_MAX) * scale
            left = np.minimum(position.astype(np.int64), _GRID - 2)
            weight = position - left
            x_of_z = self._inverse[i]
            x = x_of_z[left] * (1 - weight) + x_of_z[left + 1] * weight
            # The mode of the nearest grid point: the encoder's own assignment, read off a
            # table (a mixture posterior per value cost as much as a network pass).
            modes = self._modes[i][left + (weight > 0.5)]
            alpha = np.clip((x - normalizer.means[modes]) / (4.0 * normalizer.stds[modes]), -1, 1)
            out[:, value] = alpha
            if mode is not None:
                out[np.arange(len(model)), mode.start + modes] = 1.0
        out[:, self._sources] = model[:, self.n_values :]
        return out

    def mask_to_model(self, mask: np.ndarray) -> np.ndarray:
        """Which model columns come from the encoder columns marked in ``mask`` (rows x
        encoder columns, boolean)."""
        values = mask[:, [entry[0] for entry in self._values]]
        return np.concatenate([values, mask[:, self._sources]], axis=1)


def _grid(
    means: np.ndarray, stds: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Values spanning the modes' reach and their normal scores under the mixture."""
    low = float(np.min(means - 4.0 * stds))
    high = float(np.max(means + 4.0 * stds))
    x = np.linspace(low, high, _GRID)
    weights = weights / weights.sum()
    cdf = (weights[None, :] * ndtr((x[:, None] - means[None, :]) / stds[None, :])).sum(1)
    z = ndtri(np.clip(cdf, 1e-6, 1 - 1e-6))
    # Strictly increasing, as inverting by interpolation needs (flat where the cdf is clipped).
    z = z + np.arange(_GRID) * 1e-9
    return x, z
