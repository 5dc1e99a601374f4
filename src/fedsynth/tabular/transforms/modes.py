"""A mixture of Gaussian modes of one continuous variable, and the mode-specific normalisation
it defines (CTGAN, Xu et al. 2019): a value becomes its mode and its offset within that mode."""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture

# Rows scored at once when assigning modes: bounds the (rows x modes) temporaries.
_CHUNK = 65_536


class ModeNormalizer:
    """Mixture of Gaussian modes of one continuous variable, and its encoding.

    Modes whose ``std`` is 0 are point masses, used for a variable with few distinct values:
    the mode alone then encodes the value, exactly, and there is no ``alpha``.

    Build it from data with :meth:`from_values`, or directly from parameters, e.g. means, stds
    and weights that a federated server aggregated from the sites' statistics.

    Parameters
    ----------
    means, stds, weights : array-like of shape (n_modes,)
        The modes. ``stds`` are all positive, or all 0 (point masses); ``weights`` are positive
        and are normalised to sum to 1.

    Examples
    --------
    >>> modes = ModeNormalizer(means=[0.0, 10.0], stds=[1.0, 2.0], weights=[0.5, 0.5])
    >>> alpha, mode = modes.encode(np.array([1.0, 12.0]))
    >>> alpha.tolist(), mode.tolist()
    ([0.25, 0.25], [0, 1])
    >>> modes.decode(alpha, mode).tolist()
    [1.0, 12.0]
    """

    def __init__(self, means: ArrayLike, stds: ArrayLike, weights: ArrayLike):
        means = np.asarray(means, dtype=np.float64).ravel()
        stds = np.asarray(stds, dtype=np.float64).ravel()
        weights = np.asarray(weights, dtype=np.float64).ravel()
        if not (len(means) == len(stds) == len(weights) >= 1):
            raise ValueError(
                "means, stds and weights need the same length >= 1, got "
                f"{len(means)}, {len(stds)} and {len(weights)}"
            )
        if not np.isfinite(np.concatenate([means, stds, weights])).all():
            raise ValueError("means, stds and weights must be finite")
        if not ((stds > 0).all() or (stds == 0).all()):
            raise ValueError(f"stds must be all positive or all 0 (point masses), got {stds}")
        if not (weights > 0).all():
            raise ValueError(f"weights must be positive, got {weights}")
        self.means = means
        self.stds = stds
        self.weights = weights / weights.sum()

    @classmethod
    def from_values(
        cls,
        values: ArrayLike,
        *,
        max_modes: int = 10,
        weight_threshold: float = 0.005,
        max_fit_rows: int = 20_000,
        rng: np.random.Generator | int | None = None,
    ) -> ModeNormalizer:
        """Fit the modes of finite ``values``.

        With at most ``max_modes`` distinct values, each is a point mass weighted by its
        frequency. Otherwise a Dirichlet-process :class:`~sklearn.mixture.BayesianGaussianMixture`
        with ``max_modes`` components is fitted on at most ``max_fit_rows`` values drawn without
        replacement, standardised first so that its covariance floor is relative to the spread of
        the column; modes weighing more than ``weight_threshold`` are kept (the heaviest always).

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> values = np.concatenate([rng.normal(0, 1, 500), rng.normal(20, 1, 500)])
        >>> ModeNormalizer.from_values(values, rng=0).n_modes > 1
        True
        >>> ModeNormalizer.from_values([1, 2, 2, 3]).stds.tolist()
        [0.0, 0.0, 0.0]
        """
        values = np.asarray(values, dtype=np.float64).ravel()
        if not len(values) or not np.isfinite(values).all():
            raise ValueError("from_values needs at least one value, all finite")
        distinct, counts = np.unique(values, return_counts=True)
        if len(distinct) <= max_modes:
            return cls(distinct, np.zeros(len(distinct)), counts)
        rng = np.random.default_rng(rng)
        if len(values) > max_fit_rows:
            values = rng.choice(values, size=max_fit_rows, replace=False)
        center = values.mean()
        scale = values.std()
        if not scale > 0:  # a subsample that happens to hold one value
            scale = 1.0
        mixture = BayesianGaussianMixture(
            n_components=min(max_modes, len(values)),
            weight_concentration_prior_type="dirichlet_process",
            weight_concentration_prior=1e-3,
            # In one dimension "diag" is the same model as "full", with faster updates.
            covariance_type="diag",
            max_iter=100,
            random_state=int(rng.integers(2**31 - 1)),
        )
        with warnings.catch_warnings():
            # An unconverged fit still places the modes that carry weight; CTGAN stops at 100
            # iterations too, and the warning would fire on most clinical columns.
            warnings.simplefilter("ignore", ConvergenceWarning)
            mixture.fit(((values - center) / scale)[:, None])
        weights = mixture.weights_
        keep = weights > weight_threshold
        keep[np.argmax(weights)] = True
        means = center + scale * mixture.means_.ravel()[keep]
        stds = scale * np.sqrt(mixture.covariances_.ravel()[keep])
        order = np.argsort(means, kind="stable")
        return cls(means[order], stds[order], weights[keep][order])

    @property
    def n_modes(self) -> int:
        """Number of modes."""
        return len(self.means)

    @property
    def point_masses(self) -> bool:
        """Whether the modes are point masses (the mode alone encodes the value)."""
        return bool((self.stds == 0).all())

    def assign(self, values: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Mode of each value: the most likely one, or one drawn from the posterior with ``rng``.

        Point masses take the nearest mode, whatever ``rng``.
        """
        values = np.asarray(values, dtype=np.float64)
        if self.n_modes == 1:
            return np.zeros(len(values), dtype=np.int64)
        if self.point_masses:
            order = np.argsort(self.means, kind="stable")
            ordered = self.means[order]
            right = np.clip(np.searchsorted(ordered, values), 1, self.n_modes - 1)
            nearer_left = values - ordered[right - 1] <= ordered[right] - values
            return order[np.where(nearer_left, right - 1, right)]
        log_prior = np.log(self.weights) - np.log(self.stds)
        modes = np.empty(len(values), dtype=np.int64)
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK, None]
            score = log_prior - 0.5 * ((chunk - self.means) / self.stds) ** 2
            if rng is not None:  # Gumbel-max: argmax of score + Gumbel noise samples the posterior
                score += rng.gumbel(size=score.shape)
            modes[start : start + _CHUNK] = score.argmax(axis=1)
        return modes

    def encode(
        self, values: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(alpha, mode)`` of each value; see :meth:`assign` for ``rng``."""
        modes = self.assign(values, rng)
        if self.point_masses:
            return np.zeros(len(modes)), modes
        alpha = (values - self.means[modes]) / (4.0 * self.stds[modes])
        return np.clip(alpha, -1.0, 1.0), modes

    def decode(self, alpha: np.ndarray, modes: np.ndarray) -> np.ndarray:
        """Values from ``alpha`` (clipped to [-1, 1]) and mode indices."""
        means = self.means[modes]
        if self.point_masses:
            return means
        return means + 4.0 * self.stds[modes] * np.clip(alpha, -1.0, 1.0)
