"""Mode-specific normalisation of numeric and duration columns (CTGAN, Xu et al. 2019).

A column is described by a mixture of Gaussian modes. A value ``x`` is encoded as its mode ``k``
(one-hot, a softmax span) and ``alpha = (x - mean_k) / (4 std_k)`` clipped to [-1, 1] (a tanh
span), so that a generator sees every mode of a multimodal lab value at the same scale.
Durations are modelled on the log scale (``log1p``), where survival times are far less skewed
(:func:`uses_log_scale` says when, :func:`to_model_scale` applies it, :func:`from_model_scale`
undoes it).

A transform is fitted on a column (:meth:`ContinuousColumn.fit`) or built from aggregate
statistics, the modes of a mixture on the modelled scale (:class:`NumericModes`,
:meth:`ContinuousColumn.from_modes`), e.g. merged by a federated server from the sites' summaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from fedsynth.exceptions import MetadataError, Problem
from fedsynth.tabular.metadata import ColumnMetadata
from fedsynth.tabular.metadata.values import as_text, read_numbers
from fedsynth.tabular.transforms.base import Span, choose_slots
from fedsynth.tabular.transforms.dtypes import (
    dtype_from_json,
    dtype_to_json,
    missing_value_of,
    numbers_to_dtype,
)
from fedsynth.tabular.transforms.modes import ModeNormalizer


def uses_log_scale(kind: str, n_distinct: int, max_modes: int) -> bool:
    """Whether a column is modelled as ``log1p`` of its values rather than the values.

    Durations are, unless they hold at most ``max_modes`` distinct values: those become point
    masses, which stay on the input scale, where they are exact.

    Examples
    --------
    >>> uses_log_scale("duration", 250, max_modes=10), uses_log_scale("duration", 4, max_modes=10)
    (True, False)
    >>> uses_log_scale("numeric", 250, max_modes=10)
    False
    """
    return kind == "duration" and n_distinct > max_modes


def to_model_scale(values: ArrayLike, log: bool) -> np.ndarray:
    """``values`` on the scale their modes are modelled on: ``log1p`` when ``log``, else as is.

    Examples
    --------
    >>> to_model_scale(np.array([0.0, np.e - 1]), log=True).tolist()
    [0.0, 1.0]
    """
    return np.log1p(values) if log else np.asarray(values)


def from_model_scale(values: np.ndarray, log: bool) -> np.ndarray:
    """Inverse of :func:`to_model_scale`; values too large to come back are ``inf``."""
    if not log:
        return values
    with np.errstate(over="ignore"):
        return np.expm1(values)


@dataclass(frozen=True)
class NumericModes:
    """The aggregate statistics a numeric or duration column's transform is built from.

    Parameters
    ----------
    modes : ModeNormalizer
        The mixture of the column's present values, on the modelled scale.
    log : bool
        Whether ``modes`` describe ``log1p`` of the values (see :func:`uses_log_scale`).
    has_missing : bool
        Whether the column has missing values: its block then ends with a
        ``[present, missing]`` span.
    """

    modes: ModeNormalizer
    log: bool
    has_missing: bool


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
        log = uses_log_scale(col.kind, len(np.unique(present)), max_modes)
        normalizer = ModeNormalizer.from_values(
            to_model_scale(present, log),
            max_modes=max_modes,
            weight_threshold=weight_threshold,
            max_fit_rows=max_fit_rows,
            rng=rng,
        )
        column = cls.from_modes(
            name,
            col,
            NumericModes(normalizer, log, bool(missing.any())),
            bounds=col.bounds if col.bounds is not None else (present.min(), present.max()),
            dtype=series.dtype,
            missing_value=missing_value_of(series),
        )
        return column, []

    @classmethod
    def from_modes(
        cls,
        name: str,
        col: ColumnMetadata,
        statistics: NumericModes,
        *,
        bounds: tuple[float, float] | None = None,
        dtype: Any = None,
        missing_value: str | None = None,
    ) -> ContinuousColumn:
        """Build the transform of column ``name`` from its modes, without its values.

        Parameters
        ----------
        name : str
            The column.
        col : ColumnMetadata
            Its metadata: kind, whole numbers, and the bounds and dtype unless given.
        statistics : NumericModes
            Its mixture and missingness.
        bounds : (float, float), optional
            Range of decoded values; ``col.bounds`` by default.
        dtype : optional
            Dtype of decoded values; ``col.dtype`` (``float64`` when unset) by default.
        missing_value : {"nan", "none", "na"}, optional
            How an object column writes missing values (NaN by default).

        Raises
        ------
        MetadataError
            When neither ``bounds`` nor ``col.bounds`` is given.

        Examples
        --------
        >>> from fedsynth.tabular.metadata import ColumnMetadata
        >>> col = ColumnMetadata("numeric", bounds=(0.0, 10.0), integer=True)
        >>> modes = NumericModes(ModeNormalizer([2.0, 7.0], [1.0, 1.0], [1, 1]), False, True)
        >>> column = ContinuousColumn.from_modes("x", col, modes)
        >>> column.width, column.whole, column.dtype
        (5, True, dtype('float64'))
        """
        if bounds is None:
            if col.bounds is None:
                raise MetadataError(
                    [Problem(name, "the bounds (low, high) are needed to build it from modes")]
                )
            bounds = col.bounds
        if dtype is None:
            dtype = pd.api.types.pandas_dtype(col.dtype or "float64")
        whole = (
            bool(col.integer)
            or pd.api.types.is_integer_dtype(dtype)
            or pd.api.types.is_bool_dtype(dtype)
        )
        return cls(
            name=name,
            kind=col.kind,
            normalizer=statistics.modes,
            log=statistics.log,
            whole=whole,
            bounds=(float(bounds[0]), float(bounds[1])),
            has_missing=statistics.has_missing,
            dtype=dtype,
            missing_value=missing_value,
        )

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
        alpha, modes = self.normalizer.encode(to_model_scale(present, self.log), rng)
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
        missing = None
        if self.has_missing:
            missing = choose_slots(block[:, -2:], sample=sample, rng=rng) == 1
        return self.column_of(values, missing)

    def column_of(self, values: np.ndarray, missing: np.ndarray | None = None) -> pd.Series:
        """The column holding ``values`` of the modelled scale (``log1p`` when :attr:`log`):
        back on the column's scale, within bounds, rounded when whole, missing where
        ``missing`` is true, in the column's dtype.

        :meth:`decode` ends with it; a generator that models the values in a form of its own
        (TabDDPM's normal scores) hands them over here.
        """
        values = from_model_scale(np.asarray(values, dtype=np.float64), self.log)
        low, high = self.bounds  # inf from the scale's inverse is clipped to the upper bound
        if self.whole:
            # + 0.0 turns the -0.0 that rounding leaves for small negative values into 0.0,
            # which a CSV would otherwise show as "-0.0".
            values = np.clip(np.round(values), np.ceil(low), np.floor(high)) + 0.0
        else:
            values = np.clip(values, low, high)
        if missing is not None:
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
    view = read_numbers(series)
    if view is None:
        text = pd.unique(series.dropna().astype(object).map(as_text))
        shown = ", ".join(repr(v) for v in text[:3])
        return np.empty(0), [Problem(name, f"expected numbers in a {kind} column, got {shown}")]
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
