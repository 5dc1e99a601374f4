"""The reversible table encoder: a clinical table to one float32 matrix for a neural generator,
and a generated matrix back to a table with the input's columns and dtypes."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from fedsynth._version import __version__
from fedsynth.exceptions import InvalidDataError, ModelFileError, NotFittedError, Problem
from fedsynth.tabular.metadata import ColumnMetadata, Metadata
from fedsynth.tabular.transforms.base import ColumnTransform, Span
from fedsynth.tabular.transforms.categorical import CategoricalColumn, category_codes
from fedsynth.tabular.transforms.dtypes import (
    MISSING_VALUES,
    dtype_from_json,
    dtype_to_json,
    labels_to_dtype,
    missing_value_of,
    plain,
)
from fedsynth.tabular.transforms.numeric import ContinuousColumn

FORMAT = "fedsynth-table-encoder"
FORMAT_VERSION = 1


@dataclass
class ConstantColumn:
    """A column holding one value, or none: not encoded, restored as that value (or missing)."""

    name: str
    kind: str
    value: Any  # None when the column is entirely missing
    dtype: Any
    missing_value: str | None

    @classmethod
    def fit(cls, name: str, series: pd.Series, col: ColumnMetadata) -> ConstantColumn:
        """Remember the single value of ``series`` (``None`` when all missing)."""
        present = series.dropna()
        return cls(
            name=name,
            kind=col.kind,
            value=plain(present.iloc[0]) if len(present) else None,
            dtype=series.dtype,
            missing_value=missing_value_of(series),
        )

    @property
    def width(self) -> int:
        """0: a constant takes no matrix column."""
        return 0

    def spans(self, start: int) -> list[Span]:
        """None."""
        return []

    def encode(
        self, series: pd.Series, block: np.ndarray, rng: np.random.Generator | None
    ) -> list[Problem]:
        """Nothing to write."""
        return []

    def decode(
        self, block: np.ndarray, *, sample: bool, rng: np.random.Generator | None
    ) -> pd.Series:
        """The constant, once per row of ``block``."""
        fill = MISSING_VALUES[self.missing_value or "nan"] if self.value is None else self.value
        return labels_to_dtype(np.full(block.shape[0], fill, dtype=object), self.dtype)

    def get_state(self, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-ready description (no arrays)."""
        config = {
            "type": "constant",
            "name": self.name,
            "kind": self.kind,
            "value": self.value,
            "dtype": dtype_to_json(self.dtype),
            "missing_value": self.missing_value,
        }
        return config, {}

    @classmethod
    def from_state(
        cls, config: dict[str, Any], arrays: dict[str, np.ndarray], key: str
    ) -> ConstantColumn:
        """Inverse of :meth:`get_state`."""
        return cls(
            name=config["name"],
            kind=config["kind"],
            value=config["value"],
            dtype=dtype_from_json(config["dtype"]),
            missing_value=config["missing_value"],
        )


_TRANSFORM_TYPES: dict[str, Any] = {
    "continuous": ContinuousColumn,
    "categorical": CategoricalColumn,
    "constant": ConstantColumn,
}


class TableEncoder:
    """Reversible encoder of a clinical table into one float32 matrix, per column kind.

    * ``numeric`` and ``duration``: mode-specific normalisation (CTGAN, Xu et al. 2019): a
      Dirichlet-process Bayesian Gaussian mixture per column, fitted on at most
      ``max_fit_rows`` values; a value becomes ``alpha`` (tanh span) and the one-hot of its
      mode (softmax span). Durations are modelled as ``log1p(t)``. A column with at most
      ``max_modes`` distinct values has one point-mass mode per value (exact, no ``alpha``).
      Decoded values are kept within the metadata bounds, rounded for whole-number columns.
    * ``categorical``, ``site``, ``binary``, ``event``: one-hot over the metadata categories
      (softmax span).
    * Missing values are kept, never imputed. A continuous column that had missing values gets
      a ``[present, missing]`` softmax span; a discrete one gets "missing" as its last category.
      Either is an input dimension, so a generator can learn that values go missing together.
      Columns without missing values at fit time get no indicator.
    * ``identifier`` columns are dropped. Constant and entirely missing columns take no matrix
      column and are restored as they were.

    Parameters
    ----------
    max_modes : int, default 10
        Most mixture modes per continuous column.
    weight_threshold : float, default 0.005
        Modes weighing no more than this are dropped.
    max_fit_rows : int, default 20000
        Values (drawn without replacement) each mixture is fitted on; fitting the mixtures is
        the dominant cost of :meth:`fit`.
    mode_assignment : {"argmax", "sample"}, default "argmax"
        How :meth:`transform` assigns a value to a mode: the most likely one (deterministic,
        the default), or a draw from the mode posterior as in CTGAN, which smooths the
        boundaries between overlapping modes.
    seed : int or None, default 0
        Seed of the mixture fits, of their subsamples and of ``mode_assignment="sample"``.

    Attributes
    ----------
    columns_ : list of str
        Output columns, in input order, identifiers excluded.
    output_info_ : list of Span
        Spans of the matrix, in order; they cover ``[0, output_dim_)`` without gaps.
    output_dim_ : int
        Number of matrix columns.
    category_counts_ : dict of str to ndarray
        Rows of each slot of each discrete column's category span at fit time (for CTGAN's
        conditional vector); see :meth:`category_probabilities`.
    metadata_ : Metadata
        The metadata, its unset facts filled from the fitted data.
    transforms_ : list
        The transform of each output column.
    n_rows_ : int
        Rows of the fitted table.

    Examples
    --------
    >>> import pandas as pd
    >>> from fedsynth.tabular.metadata import Metadata
    >>> df = pd.DataFrame({"age": [61, 70, 55, 48], "sex": ["F", "M", None, "F"]})
    >>> enc = TableEncoder().fit(df, Metadata({"age": "numeric", "sex": "categorical"}))
    >>> matrix = enc.transform(df)
    >>> matrix.shape, matrix.dtype
    ((4, 7), dtype('float32'))
    >>> [(s.column, s.role, s.width) for s in enc.output_info_]
    [('age', 'mode', 4), ('sex', 'category', 3)]
    >>> enc.inverse_transform(matrix).equals(df)
    True
    """

    def __init__(
        self,
        *,
        max_modes: int = 10,
        weight_threshold: float = 0.005,
        max_fit_rows: int = 20_000,
        mode_assignment: Literal["argmax", "sample"] = "argmax",
        seed: int | None = 0,
    ):
        self.max_modes = max_modes
        self.weight_threshold = weight_threshold
        self.max_fit_rows = max_fit_rows
        self.mode_assignment = mode_assignment
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as given to the constructor."""
        return {
            "max_modes": self.max_modes,
            "weight_threshold": self.weight_threshold,
            "max_fit_rows": self.max_fit_rows,
            "mode_assignment": self.mode_assignment,
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        defaults = TableEncoder().get_params()
        shown = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults[k] != v]
        text = f"TableEncoder({', '.join(shown)})"
        if hasattr(self, "transforms_"):
            text += (
                f"  # fitted on {self.n_rows_} rows: {len(self.columns_)} columns -> "
                f"{self.output_dim_} dimensions"
            )
        return text

    # ------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame, metadata: Metadata | None = None) -> Self:
        """Learn each column's transform from ``df`` (which is not modified).

        Parameters
        ----------
        df : DataFrame
            The table; every column must be described by ``metadata``.
        metadata : Metadata, optional
            Column kinds (and optionally categories, bounds, whole numbers); inferred from
            ``df`` when omitted. It may describe more columns than ``df`` holds.

        Returns
        -------
        self

        Raises
        ------
        InvalidDataError
            Listing every column that cannot be encoded and why.
        ValueError
            For invalid hyperparameters.
        """
        self._check_params()
        _check_frame(df)
        if metadata is None:
            metadata = Metadata.infer(df)
        undescribed = [c for c in df.columns if c not in metadata.columns]
        if undescribed:
            raise InvalidDataError(
                [Problem(c, "not described by the metadata") for c in undescribed]
            )
        metadata = metadata.resolve(df)
        rng = np.random.default_rng(self.seed)
        transforms: list[ColumnTransform] = []
        problems: list[Problem] = []
        for name in df.columns:
            col = metadata.columns[name]
            if col.kind == "identifier":
                continue
            series = df[name]
            transform: ColumnTransform | None
            if series.nunique(dropna=False) <= 1:
                transform, found = ConstantColumn.fit(name, series, col), []
            elif col.is_continuous:
                transform, found = ContinuousColumn.fit(
                    name,
                    series,
                    col,
                    max_modes=self.max_modes,
                    weight_threshold=self.weight_threshold,
                    max_fit_rows=self.max_fit_rows,
                    rng=rng,
                )
            else:
                transform, found = CategoricalColumn.fit(name, series, col)
            problems += found
            if transform is not None:
                transforms.append(transform)
        if problems:
            raise InvalidDataError(problems)
        self._set_fitted(metadata, transforms, len(df))
        return self

    def _check_params(self) -> None:
        problems = []
        if not _is_int(self.max_modes) or self.max_modes < 1:
            problems.append(f"max_modes must be an integer >= 1, got {self.max_modes!r}")
        if not isinstance(self.weight_threshold, numbers.Real) or not (
            0 <= self.weight_threshold < 1
        ):
            problems.append(f"weight_threshold must be in [0, 1), got {self.weight_threshold!r}")
        if not _is_int(self.max_fit_rows) or self.max_fit_rows < 1:
            problems.append(f"max_fit_rows must be an integer >= 1, got {self.max_fit_rows!r}")
        if self.mode_assignment not in ("argmax", "sample"):
            problems.append(
                f"mode_assignment must be 'argmax' or 'sample', got {self.mode_assignment!r}"
            )
        if self.seed is not None and not _is_int(self.seed):
            problems.append(f"seed must be an integer or None, got {self.seed!r}")
        if problems:
            raise ValueError("invalid TableEncoder parameter(s):\n  - " + "\n  - ".join(problems))

    def _set_fitted(
        self, metadata: Metadata, transforms: list[ColumnTransform], n_rows: int
    ) -> None:
        spans: list[Span] = []
        start = 0
        for transform in transforms:
            spans += transform.spans(start)
            start += transform.width
        self.metadata_ = metadata
        self.transforms_ = transforms
        self.columns_ = [t.name for t in transforms]
        self.output_info_ = spans
        self.output_dim_ = start
        self.category_counts_ = {
            t.name: t.counts for t in transforms if isinstance(t, CategoricalColumn)
        }
        self.n_rows_ = n_rows

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "transforms_"):
            raise NotFittedError(
                "this TableEncoder is not fitted yet; call fit(df, metadata) first"
            )

    def _blocks(self) -> list[tuple[ColumnTransform, slice]]:
        """Each transform with its block of matrix columns."""
        blocks, start = [], 0
        for transform in self.transforms_:
            blocks.append((transform, slice(start, start + transform.width)))
            start += transform.width
        return blocks

    # ------------------------------------------------------------------ encoding
    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Encode ``df`` into a float32 matrix of shape ``(len(df), output_dim_)``.

        ``df`` needs the fitted columns that are encoded (identifiers and constant columns may
        be absent; other columns are ignored).

        Raises
        ------
        InvalidDataError
            For absent columns, unseen categories, non-numbers in a numeric column, or missing
            values in a column that had none when fitted.
        """
        self._check_is_fitted()
        _check_frame(df, allow_empty=True)
        absent = [t.name for t in self.transforms_ if t.width and t.name not in df.columns]
        if absent:
            raise InvalidDataError([Problem(c, "absent from the table") for c in absent])
        # Allocated once; each column writes its one-hot entries into its own block.
        matrix = np.zeros((len(df), self.output_dim_), dtype=np.float32)
        rng = np.random.default_rng(self.seed) if self.mode_assignment == "sample" else None
        problems: list[Problem] = []
        for transform, block in self._blocks():
            if transform.width:
                problems += transform.encode(df[transform.name], matrix[:, block], rng)
        if problems:
            raise InvalidDataError(problems)
        return matrix

    def fit_transform(self, df: pd.DataFrame, metadata: Metadata | None = None) -> np.ndarray:
        """:meth:`fit`, then :meth:`transform` the same table."""
        return self.fit(df, metadata).transform(df)

    def inverse_transform(
        self,
        matrix: ArrayLike,
        *,
        sample: bool = False,
        rng: np.random.Generator | int | None = None,
    ) -> pd.DataFrame:
        """Decode a matrix (e.g. a generator's activated output) into a table.

        Parameters
        ----------
        matrix : array-like of shape (n, output_dim_)
            ``tanh`` spans in [-1, 1] (clipped), ``softmax`` spans holding non-negative weights
            such as probabilities.
        sample : bool, default False
            Draw each softmax choice (mode, category, missing or not) with probability
            proportional to its weights instead of taking the largest.
        rng : numpy.random.Generator or int, optional
            Source (or seed) of the draws when ``sample`` is true; fresh entropy by default.

        Returns
        -------
        DataFrame
            ``n`` rows with the fitted columns (identifiers excluded), in input order and dtypes.

        Raises
        ------
        InvalidDataError
            For a matrix of the wrong shape, or holding NaN or infinite values (naming the
            columns whose blocks hold them).
        """
        return self.inverse_transform_blocks([matrix], sample=sample, rng=rng)

    def inverse_transform_blocks(
        self,
        matrices: Iterable[ArrayLike],
        *,
        sample: bool = False,
        rng: np.random.Generator | int | None = None,
    ) -> pd.DataFrame:
        """Decode matrices one after another into one table of their rows, in order.

        Without ``sample`` it is :meth:`inverse_transform` of the stacked matrices; with it,
        one source of draws runs through the blocks in turn.

        Each matrix is decoded as it comes, so that blocks a generator yields stay in the CPU's
        cache from generation to decoding, and the table is assembled once, column by column,
        rather than as a frame per block and their concatenation (3 % of vae_bgm's sampling
        time on SUPPORT2, measured in alternating processes).

        Parameters
        ----------
        matrices : iterable of array-like of shape (n_i, output_dim_)
        sample, rng
            As for :meth:`inverse_transform`.

        Returns
        -------
        DataFrame
            The rows of every block, in order, with a fresh ``RangeIndex``.

        Raises
        ------
        InvalidDataError
            As for :meth:`inverse_transform`, for the first block that fails.
        """
        self._check_is_fitted()
        blocks = self._blocks()
        draws = np.random.default_rng(rng) if sample else None
        parts: dict[str, list[pd.Series]] = {transform.name: [] for transform, _ in blocks}
        rows = 0
        for matrix in matrices:
            matrix = self._checked_matrix(matrix, blocks)
            for transform, block in blocks:
                parts[transform.name].append(
                    transform.decode(matrix[:, block], sample=sample, rng=draws)
                )
            rows += matrix.shape[0]
        if not any(parts.values()):  # no block at all: the empty table
            return self.inverse_transform(np.empty((0, self.output_dim_), dtype=np.float32))
        columns = {
            name: series[0] if len(series) == 1 else pd.concat(series, ignore_index=True)
            for name, series in parts.items()
        }
        return pd.DataFrame(columns, index=pd.RangeIndex(rows))

    def _checked_matrix(
        self, matrix: ArrayLike, blocks: list[tuple[ColumnTransform, slice]]
    ) -> np.ndarray:
        """``matrix`` as an array of the encoder's width, holding finite values only."""
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or matrix.shape[1] != self.output_dim_:
            raise InvalidDataError(
                [
                    Problem(
                        None,
                        f"expected a matrix of shape (n, {self.output_dim_}), got {matrix.shape}",
                    )
                ]
            )
        # One pass over the whole matrix first: the per-column count copies every block.
        if not np.isfinite(matrix).all():
            raise InvalidDataError(
                [
                    Problem(
                        transform.name,
                        f"{int(n_bad)} non-finite value(s) in its block of the matrix",
                    )
                    for transform, block in blocks
                    if (n_bad := np.count_nonzero(~np.isfinite(matrix[:, block])))
                ]
            )
        return matrix

    # ------------------------------------------------------------------ discrete spans (CTGAN)
    def discrete_spans(self) -> list[Span]:
        """The category spans of the discrete columns, in order (CTGAN's conditional vector)."""
        self._check_is_fitted()
        return [span for span in self.output_info_ if span.role == "category"]

    def category_probabilities(self, *, log_frequency: bool = True) -> dict[str, np.ndarray]:
        """Probability of picking each slot of each discrete column in training-by-sampling.

        Parameters
        ----------
        log_frequency : bool, default True
            Weigh slots by ``log(1 + count)`` as CTGAN does, so that rare categories are
            conditioned on more often than their frequency; else by their counts.

        Returns
        -------
        dict of str to ndarray
            Column to probabilities over its category span (the last slot is "missing" when the
            column had missing values); each sums to 1.
        """
        self._check_is_fitted()
        probabilities = {}
        for name, counts in self.category_counts_.items():
            weights = np.log1p(counts) if log_frequency else counts.astype(np.float64)
            probabilities[name] = weights / weights.sum()
        return probabilities

    def category_slot(self, column: str, value: Any) -> int:
        """Matrix column of ``value`` in the category span of discrete ``column``.

        A missing ``value`` (``None``, NaN) names the "missing" slot. Useful to build a
        condition vector, e.g. for ``sample(conditions={"sex": "F"})``.

        Raises
        ------
        InvalidDataError
            When ``column`` is not an encoded discrete column or ``value`` is not one of its slots.
        """
        self._check_is_fitted()
        spans = [s for s in self.discrete_spans() if s.column == column]
        if not spans:
            discrete = [s.column for s in self.discrete_spans()]
            raise InvalidDataError(
                [Problem(column, f"not an encoded discrete column; expected one of {discrete}")]
            )
        transform = self.transforms_[self.columns_.index(column)]
        codes, _ = category_codes(pd.Series([value], dtype=object), transform.categories)
        code = int(codes[0])
        if code == -1 and transform.has_missing:
            code = len(transform.categories)
        if code < 0:
            raise InvalidDataError(
                [
                    Problem(
                        column,
                        f"no slot for {value!r}; expected one of {transform.categories}"
                        + (" or missing" if transform.has_missing else ""),
                    )
                ]
            )
        return spans[0].start + code

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted encoder as a JSON-ready dict and numpy arrays, without pickle.

        The mixtures are stored as their means, stds and weights, the discrete columns as
        their categories and counts, every column with its dtype. Save the arrays with
        ``np.savez`` and read them back with ``np.load(..., allow_pickle=False)``.

        Examples
        --------
        >>> import json
        >>> import pandas as pd
        >>> df = pd.DataFrame({"age": [61, 70, 55, 48]})
        >>> enc = TableEncoder().fit(df, Metadata({"age": "numeric"}))
        >>> config, arrays = enc.get_state()
        >>> copy = TableEncoder.from_state(json.loads(json.dumps(config)), arrays)
        >>> (copy.transform(df) == enc.transform(df)).all()
        np.True_
        """
        self._check_is_fitted()
        transforms, arrays = [], {}
        for i, transform in enumerate(self.transforms_):
            config, column_arrays = transform.get_state(f"t{i}")
            transforms.append(config)
            arrays.update(column_arrays)
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "fedsynth_version": __version__,
            "params": self.get_params(),
            "n_rows": self.n_rows_,
            "metadata": self.metadata_.to_dict(),
            "transforms": transforms,
        }
        return config, arrays

    @classmethod
    def from_state(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> Self:
        """Rebuild an encoder from :meth:`get_state`'s output; it encodes and decodes identically.

        Raises
        ------
        ModelFileError
            When ``config`` is not an encoder state, or is from a newer format.
        """
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ModelFileError([Problem(None, "not the state of a fedsynth TableEncoder")])
        if int(config.get("format_version", 0)) > FORMAT_VERSION:
            raise ModelFileError(
                [
                    Problem(
                        None,
                        f"encoder state from fedsynth {config.get('fedsynth_version')} uses a "
                        f"newer format; upgrade fedsynth (this is {__version__})",
                    )
                ]
            )
        encoder = cls(**config["params"])
        transforms = [
            _TRANSFORM_TYPES[spec["type"]].from_state(spec, arrays, f"t{i}")
            for i, spec in enumerate(config["transforms"])
        ]
        encoder._set_fitted(Metadata.from_dict(config["metadata"]), transforms, config["n_rows"])
        return encoder


def _check_frame(df: Any, *, allow_empty: bool = False) -> None:
    problems = []
    if not isinstance(df, pd.DataFrame):
        raise InvalidDataError(
            [Problem(None, f"expected a pandas DataFrame, got {type(df).__name__}")]
        )
    if not allow_empty and len(df) == 0:
        problems.append(Problem(None, "the table is empty (0 rows); at least one row is needed"))
    duplicated = df.columns[df.columns.duplicated()].unique().tolist()
    if duplicated:
        problems.append(Problem(None, f"duplicate column names: {duplicated}"))
    if problems:
        raise InvalidDataError(problems)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
