"""Mode-specific normalisation of numeric and duration columns (CTGAN, Xu et al. 2019).

A column is described by a mixture of Gaussian modes. A value ``x`` is encoded as its mode ``k``
(one-hot, a softmax span) and ``alpha = (x - mean_k) / (4 std_k)`` clipped to [-1, 1] (a tanh
span), so that a generator sees every mode of a multimodal lab value at the same scale.
Durations are modelled on the log scale (``log1p``), where survival times are far less skewed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture

from fedsynth.exceptions import Problem
from fedsynth.tabular.metadata import ColumnMetadata
from fedsynth.tabular.metadata.inference import numeric_view
from fedsynth.tabular.transforms.base import Span, choose_slots
from fedsynth.tabular.transforms.dtypes import (
    dtype_from_json,
    dtype_to_json,
    missing_value_of,
    numbers_to_dtype,
)

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


@dataclass
class ContinuousColumn:
    """Transform of a numeric or duration column.

    Its block is ``[alpha (tanh)] [mode (softmax)] [present, missing (softmax)]``: ``alpha`` is
    left out for point masses, the mode span when there is a single mode, and the missing span
    when the fitted column had no missing value. Missing rows hold ``alpha = 0`` and the
    heaviest mode, a valid but ignored placeholder: the indicator alone says the value is missing.
    """

    name: str
    kind: str
    normalizer: ModeNormalizer
    log: bool
    whole: bool
    bounds: tuple[float, float]
    has_missing: bool
    dtype: Any
    missing_value: str | None

    @classmethod
    def fit(
        cls,
        name: str,
        series: pd.Series,
        col: ColumnMetadata,
        *,
        max_modes: int,
        weight_threshold: float,
        max_fit_rows: int,
        rng: np.random.Generator,
    ) -> tuple[ContinuousColumn | None, list[Problem]]:
        """Fit on ``series`` (at least one value present); ``None`` and problems when invalid."""
        numbers, problems = _numbers(name, series, col.kind)
        if problems:
            return None, problems
        missing = np.isnan(numbers)
        present = numbers[~missing]
        # Point masses stay on the input scale, where they are exact.
        log = col.kind == "duration" and len(np.unique(present)) > max_modes
        normalizer = ModeNormalizer.from_values(
            np.log1p(present) if log else present,
            max_modes=max_modes,
            weight_threshold=weight_threshold,
            max_fit_rows=max_fit_rows,
            rng=rng,
        )
        low, high = col.bounds if col.bounds is not None else (present.min(), present.max())
        dtype = series.dtype
        whole = (
            bool(col.integer)
            or pd.api.types.is_integer_dtype(dtype)
            or pd.api.types.is_bool_dtype(dtype)
        )
        column = cls(
            name=name,
            kind=col.kind,
            normalizer=normalizer,
            log=log,
            whole=whole,
            bounds=(float(low), float(high)),
            has_missing=bool(missing.any()),
            dtype=dtype,
            missing_value=missing_value_of(series),
        )
        return column, []

    @property
    def _value_width(self) -> int:
        return 0 if self.normalizer.point_masses else 1

    @property
    def _mode_width(self) -> int:
        return self.normalizer.n_modes if self.normalizer.n_modes > 1 else 0

    @property
    def width(self) -> int:
        """Number of matrix columns."""
        return self._value_width + self._mode_width + 2 * self.has_missing

    def spans(self, start: int) -> list[Span]:
        """Spans of the block starting at ``start``."""
        spans = []
        if self._value_width:
            spans.append(Span(self.name, start, 1, "tanh", "value"))
        if self._mode_width:
            spans.append(
                Span(self.name, start + self._value_width, self._mode_width, "softmax", "mode")
            )
        if self.has_missing:
            spans.append(Span(self.name, start + self.width - 2, 2, "softmax", "missing"))
        return spans

    def encode(
        self, series: pd.Series, block: np.ndarray, rng: np.random.Generator | None
    ) -> list[Problem]:
        """Write ``series`` into ``block``; ``rng`` draws modes from the posterior."""
        numbers, problems = _numbers(self.name, series, self.kind)
        if problems:
            return problems
        missing = np.isnan(numbers)
        if missing.any() and not self.has_missing:
            return [
                Problem(
                    self.name,
                    f"{int(missing.sum())} missing value(s), but the column had none when the "
                    "encoder was fitted (it has no missing indicator)",
                )
            ]
        present = numbers[~missing]
        alpha, modes = self.normalizer.encode(np.log1p(present) if self.log else present, rng)
        rows = np.flatnonzero(~missing)
        if self._value_width:
            block[rows, 0] = alpha
        if self._mode_width:
            block[rows, self._value_width + modes] = 1.0
            block[missing, self._value_width + int(np.argmax(self.normalizer.weights))] = 1.0
        if self.has_missing:
            block[:, -2] = ~missing
            block[:, -1] = missing
        return []

    def decode(
        self, block: np.ndarray, *, sample: bool, rng: np.random.Generator | None
    ) -> pd.Series:
        """The column read back from ``block``: within bounds, rounded when whole, in its dtype."""
        n = block.shape[0]
        alpha = block[:, 0].astype(np.float64) if self._value_width else np.zeros(n)
        if self._mode_width:
            mode_block = block[:, self._value_width : self._value_width + self._mode_width]
            modes = choose_slots(mode_block, sample=sample, rng=rng)
        else:
            modes = np.zeros(n, dtype=np.int64)
        values = self.normalizer.decode(alpha, modes)
        if self.log:
            with np.errstate(over="ignore"):  # inf is clipped to the upper bound just below
                values = np.expm1(values)
        low, high = self.bounds
        if self.whole:
            # + 0.0 turns the -0.0 that rounding leaves for small negative values into 0.0,
            # which a CSV would otherwise show as "-0.0".
            values = np.clip(np.round(values), np.ceil(low), np.floor(high)) + 0.0
        else:
            values = np.clip(values, low, high)
        if self.has_missing:
            missing = choose_slots(block[:, -2:], sample=sample, rng=rng) == 1
            values[missing] = np.nan
        return numbers_to_dtype(
            values, self.dtype, whole=self.whole, missing_value=self.missing_value
        )

    def get_state(self, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-ready description, and the modes as arrays ``{key}.means|stds|weights``."""
        config = {
            "type": "continuous",
            "name": self.name,
            "kind": self.kind,
            "log": self.log,
            "whole": self.whole,
            "bounds": list(self.bounds),
            "has_missing": self.has_missing,
            "dtype": dtype_to_json(self.dtype),
            "missing_value": self.missing_value,
        }
        arrays = {
            f"{key}.means": self.normalizer.means,
            f"{key}.stds": self.normalizer.stds,
            f"{key}.weights": self.normalizer.weights,
        }
        return config, arrays

    @classmethod
    def from_state(
        cls, config: dict[str, Any], arrays: dict[str, np.ndarray], key: str
    ) -> ContinuousColumn:
        """Inverse of :meth:`get_state`."""
        return cls(
            name=config["name"],
            kind=config["kind"],
            normalizer=ModeNormalizer(
                arrays[f"{key}.means"], arrays[f"{key}.stds"], arrays[f"{key}.weights"]
            ),
            log=bool(config["log"]),
            whole=bool(config["whole"]),
            bounds=(float(config["bounds"][0]), float(config["bounds"][1])),
            has_missing=bool(config["has_missing"]),
            dtype=dtype_from_json(config["dtype"]),
            missing_value=config["missing_value"],
        )


def _numbers(name: str, series: pd.Series, kind: str) -> tuple[np.ndarray, list[Problem]]:
    """The column as float64 (NaN = missing), or the problems that stop it being encoded."""
    view = numeric_view(series)
    if view is None:
        return np.empty(0), [Problem(name, f"expected numbers in a {kind} column")]
    numbers = view.to_numpy(dtype=np.float64, na_value=np.nan)
    problems = []
    infinite = int(np.isinf(numbers).sum())
    if infinite:
        problems.append(Problem(name, f"{infinite} infinite value(s); expected finite numbers"))
    if kind == "duration" and (numbers < 0).any():
        problems.append(
            Problem(name, f"{int((numbers < 0).sum())} negative duration(s); expected >= 0")
        )
    return numbers, problems
