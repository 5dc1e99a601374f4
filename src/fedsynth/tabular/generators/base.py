"""The interface every table generator shares, and the work done once for all of them.

:class:`BaseGenerator` is the tabular :class:`~fedsynth.core.base.BaseEstimator`: the base
class keeps the hyperparameters, the fit template with ``dp`` and the model files; this one
adds what is tabular: the schema (metadata, identifiers and constant columns), seeding,
conditions, the copy guard and dtype restoration. A generator implements ``_fit`` (and
``_fit_private`` under ``dp``), ``_sample`` and its state (``_get_state``/``_set_state``), and
``_sample_conditioned`` where it can condition natively.

``_fit(data, metadata, rng)`` receives the learned columns only (identifiers and constant
columns removed), as the user gave them (original dtypes), with the resolved metadata;
``_fit_private`` receives the same, then the resolved ``dp`` settings and the privacy ledger to
charge. ``_sample`` returns those columns with numeric values as numbers and discrete values as
their categories (NaN for missing); the base then restores bounds, rounding and dtypes.
``_set_state`` runs after ``metadata_`` and the column lists are restored, so a generator may
read them there.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fedsynth.core.base import BaseEstimator, load
from fedsynth.core.io import model_files_to_bytes
from fedsynth.core.privacy.config import DPSettings
from fedsynth.exceptions import (
    ConditionError,
    FedsynthError,
    InvalidDataError,
    ModelFileError,
    Problem,
)
from fedsynth.tabular.generators._conditions import (
    Conditions,
    check_conditions,
    matches,
    rejection_sample,
)
from fedsynth.tabular.generators._parts import draw_in_parts
from fedsynth.tabular.generators._restore import (
    cast_constant,
    json_value,
    model_column,
    plain,
    restore_column,
    to_input_dtype,
)
from fedsynth.tabular.generators.site_mix import SiteMix
from fedsynth.tabular.metadata import Metadata
from fedsynth.tabular.metadata.columns import dtype_name
from fedsynth.tabular.metadata.values import model_frame
from fedsynth.tabular.privacy.guards import CopyGuard

__all__ = [
    "GUARD_ARRAY",
    "SAMPLE_BLOCK_ROWS",
    "SAMPLE_MEMORY_LIMIT",
    "BaseGenerator",
    "Conditions",
    "SampleTooLargeError",
    "load",
    "rejection_sample",
    "restore_column",
]

#: Name of the copy guard's fingerprints among a saved model's arrays.
GUARD_ARRAY = "copy_guard_fingerprints"

#: Largest output :meth:`BaseGenerator.sample` draws in one table, in bytes at 8 bytes per cell
#: (float64-equivalent; generators hold intermediate arrays of the same order). Read at each
#: call, so it can be overridden: ``fedsynth.tabular.generators.base.SAMPLE_MEMORY_LIMIT = ...``.
SAMPLE_MEMORY_LIMIT = 2 * 1024**3

#: Rows per block of :meth:`BaseGenerator.sample_blocks` unless told otherwise.
SAMPLE_BLOCK_ROWS = 50_000


class SampleTooLargeError(FedsynthError, ValueError):
    """``sample(n)`` would need more memory than :data:`SAMPLE_MEMORY_LIMIT`; stream instead."""


class BaseGenerator(BaseEstimator):
    """Base class of fedsynth's table generators (scikit-learn-like estimator).

    Subclasses take keyword-only hyperparameters stored unchanged, one of which is ``seed``.
    """

    modality: ClassVar[str] = "tabular"
    #: Whether the model has trainable weights that federated averaging can exchange.
    has_weights: ClassVar[bool] = False
    #: Whether ``_sample_conditioned`` conditions natively (no rejection sampling).
    native_conditioning: ClassVar[bool] = False

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        data: pd.DataFrame,
        metadata: Metadata | Mapping[str, Any] | str | os.PathLike | None = None,
    ) -> BaseGenerator:
        """Learn the distribution of ``data``.

        Parameters
        ----------
        data : DataFrame
            The real table; it is not modified. Identifier columns are excluded.
        metadata : Metadata, dict or path, optional
            Column kinds; inferred from ``data`` when omitted. A dict or file may describe only
            some columns: the rest are inferred.

        Returns
        -------
        self

        Raises
        ------
        InvalidDataError
            Listing every problem with the data, each naming its column.
        PrivacyBudgetError
            Under ``dp=``, when the fit would take the privacy loss above ``max_epsilon``.
        """
        return super().fit(data, metadata=metadata)

    def _fit_data(
        self, data: pd.DataFrame, settings: DPSettings | None, *, metadata: Any = None
    ) -> None:
        if not isinstance(data, pd.DataFrame):
            raise InvalidDataError(
                [Problem(None, f"expected a pandas DataFrame, got {type(data).__name__}")]
            )
        if self._continues_training():
            self._fit_more(data, settings)
            return
        metadata = self._metadata_for(data, metadata)
        metadata.check(data)
        metadata = metadata.resolve(data)
        columns = [c for c in data.columns if metadata.columns[c].kind != "identifier"]
        constants = {}
        for column in columns:
            distinct = data[column].drop_duplicates()
            if len(distinct) == 1:
                constants[column] = plain(distinct.iloc[0])
        learned = [c for c in columns if c not in constants]
        rng = np.random.default_rng(self.seed)
        model_data = model_frame(data, metadata, learned)
        self._run_fit_hook(settings, model_data, metadata, rng)
        continuous = [c for c in learned if metadata.columns[c].is_continuous]
        self._set_fitted_state(
            metadata,
            columns=columns,
            learned_columns=learned,
            constants=constants,
            dtypes={c: dtype_name(data[c]) for c in columns},
            n_rows=len(data),
            guard=CopyGuard.from_training(model_data, learned, continuous),
        )
        self._stamp()

    def _set_fitted_state(
        self,
        metadata: Metadata,
        *,
        columns: list[str],
        learned_columns: list[str],
        constants: dict[str, Any],
        dtypes: dict[str, str],
        n_rows: int,
        guard: CopyGuard,
    ) -> None:
        """Set what every fitted generator holds besides its model; the one place that does,
        for :meth:`fit`, :func:`load` and a federated model built on a shared schema."""
        self.metadata_ = metadata
        self.columns_ = list(columns)
        self.learned_columns_ = list(learned_columns)
        self.constants_ = dict(constants)
        self.dtypes_ = dict(dtypes)
        self.n_rows_ = int(n_rows)
        self.guard_ = guard
        self._reset_sample_stream()

    def _continues_training(self) -> bool:
        """Whether this ``fit`` goes on training the fitted model (a warm start)."""
        return False

    def _fit_more(self, data: pd.DataFrame, settings: DPSettings | None) -> None:
        """Go on training on ``data`` (checked to be a table): see :meth:`_continues_training`."""
        raise NotImplementedError

    @staticmethod
    def _metadata_for(data: pd.DataFrame, metadata) -> Metadata:
        if metadata is None:
            return Metadata.infer(data)
        if isinstance(metadata, Metadata):
            return metadata
        return Metadata.infer(data, overrides=metadata)

    def _reset_sample_stream(self) -> None:
        # Seedless sample() calls continue one stream, so two calls differ but a refit (or a
        # load) with the same seed replays the same sequence.
        self._sample_rng = np.random.default_rng(None if self.seed is None else self.seed + 1)

    # ------------------------------------------------------------------ sampling
    def sample(
        self, n: int, conditions: Conditions | None = None, seed: int | None = None
    ) -> pd.DataFrame:
        """Draw ``n`` synthetic rows with the input's columns (identifiers excluded) and dtypes.

        Parameters
        ----------
        n : int
            Number of rows (exactly this many are returned).
        conditions : dict, optional
            ``{column: value}`` that every row must satisfy, e.g. ``{"sex": "F", "TP53": 1}``.
        seed : int, optional
            Seed of this draw: the same seed gives the same rows. Without it, successive calls
            continue one random stream.

        Notes
        -----
        More than ``SAMPLE_PART_CELLS`` cells (``_parts.py``) are drawn in parts from the same
        random stream and joined, which keeps the cost per row flat as ``n`` grows.

        Raises
        ------
        SampleTooLargeError
            When ``n`` rows x the columns at 8 bytes a cell exceed :data:`SAMPLE_MEMORY_LIMIT`
            (checked before anything is drawn): use :meth:`sample_blocks` instead.

        Examples
        --------
        >>> import fedsynth
        >>> real = fedsynth.datasets.mds_cohort(n=500, seed=0)
        >>> gen = fedsynth.make("gaussian_copula").fit(real)  # doctest: +SKIP
        >>> gen.sample(3, conditions={"sex": "F"})["sex"].tolist()  # doctest: +SKIP
        ['F', 'F', 'F']
        """
        n = self._check_n(n)
        estimate = n * len(self.columns_) * 8
        if estimate > SAMPLE_MEMORY_LIMIT:
            raise SampleTooLargeError(
                f"sample({n:,}) would hold {n:,} rows x {len(self.columns_)} columns, about "
                f"{estimate / 1024**3:.1f} GiB, above the limit of "
                f"{SAMPLE_MEMORY_LIMIT / 1024**3:.1f} GiB (SAMPLE_MEMORY_LIMIT in "
                f"{__name__}); draw it in blocks with sample_blocks(n) or write it to a file "
                "with `fedsynth sample MODEL --rows N --out FILE`"
            )
        rng = self._sample_rng if seed is None else np.random.default_rng(seed)
        return self._draw(n, self._checked_conditions(conditions), rng)

    def sample_blocks(
        self,
        n: int,
        block_size: int = SAMPLE_BLOCK_ROWS,
        conditions: Conditions | None = None,
        seed: int | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Draw ``n`` synthetic rows as successive tables of at most ``block_size`` rows, so that
        any number of rows can be written out in bounded memory.

        Each block is drawn like ``sample(k, seed=s)`` with its own seed ``s``, drawn in turn
        from one stream seeded by ``seed``: the same ``seed`` and ``block_size`` give the same
        rows, but not those of ``sample(n, seed=seed)``. Each block passes the copy guard
        separately, and conditions hold in every block. Without ``seed``, the blocks continue
        the generator's random stream, like successive seedless ``sample`` calls.

        Parameters
        ----------
        n : int
            Number of rows in all (the blocks' lengths add up to exactly this).
        block_size : int, default SAMPLE_BLOCK_ROWS
            Most rows per block.
        conditions : dict, optional
            ``{column: value}`` that every row must satisfy, as in :meth:`sample`.
        seed : int, optional
            Seed of the whole draw.

        Yields
        ------
        DataFrame
            The next block, indexed from 0.

        Examples
        --------
        >>> for block in gen.sample_blocks(10**7, seed=0):  # doctest: +SKIP
        ...     block.to_csv(handle, header=False, index=False)
        """
        n = self._check_n(n)
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
            raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
        if block_size < 1:
            raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
        checked = self._checked_conditions(conditions)
        # Checked before the first block is asked for, so bad input fails at the call.
        return self._blocks(n, int(block_size), checked, seed)

    def _blocks(
        self, n: int, block_size: int, checked: dict[str, Any], seed: int | None
    ) -> Iterator[pd.DataFrame]:
        # One seed per block, drawn lazily, so a billion rows need no list of seeds up front.
        seeder = None if seed is None else np.random.default_rng(seed)
        done = 0
        while done < n:
            size = min(block_size, n - done)
            if seeder is None:
                rng = self._sample_rng
            else:
                rng = np.random.default_rng(int(seeder.integers(2**62)))
            yield self._draw(size, checked, rng)
            done += size

    def _check_n(self, n: Any) -> int:
        self._check_is_fitted()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        return int(n)

    def _checked_conditions(self, conditions: Conditions | None) -> dict[str, Any]:
        return check_conditions(conditions or {}, self.metadata_, self.columns_, self.constants_)

    def _draw(self, n: int, checked: dict[str, Any], rng: np.random.Generator) -> pd.DataFrame:
        """``n`` rows satisfying the checked conditions, past the copy guard; a large draw (of
        ``sample`` or of one block of ``sample_blocks``) in parts (``_parts.py``)."""
        part = functools.partial(self._draw_part, checked=checked, rng=rng)
        return draw_in_parts(part, n, len(self.columns_))

    def _draw_part(self, n: int, checked: dict[str, Any], rng: np.random.Generator) -> pd.DataFrame:
        """One part of :meth:`_draw`: ``n`` rows drawn as one table."""
        learned_conditions = {c: v for c, v in checked.items() if c not in self.constants_}
        # A federated model samples each site's share with the site as a condition (site_mix).
        mix: SiteMix | None = getattr(self, "site_mix_", None)

        def draw(k: int) -> pd.DataFrame:
            if k == 0:
                raw = pd.DataFrame({c: pd.Series([], dtype=float) for c in self.learned_columns_})
            elif mix is not None and mix.column not in learned_conditions:
                raw = mix.sample(k, learned_conditions, self._sample_conditioned, rng)
            elif learned_conditions:
                raw = self._sample_conditioned(k, learned_conditions, rng)
            else:
                raw = self._sample(k, rng)
            return self._model_form(raw, k)

        out = self._as_input_dtypes(self.guard_.enforce(draw(n), draw))
        for column, value in checked.items():
            if not matches(out[column], value).all():
                raise FedsynthError(
                    f"internal error: sampled rows do not all satisfy {column}={value!r}"
                )
        return out

    def _sample_conditioned(
        self, n: int, conditions: dict[str, Any], rng: np.random.Generator
    ) -> pd.DataFrame:
        """Rows satisfying ``conditions``: bounded rejection sampling, for generators without
        native conditioning. Raises when the conditions are too rare to meet within budget."""
        continuous = [c for c in conditions if self.metadata_.columns[c].is_continuous]
        if continuous:
            raise ConditionError(
                f"{self.name} cannot condition on numeric column(s) {continuous}; "
                "use a generator with native conditioning (gaussian_copula, bayesian_network)"
            )
        return rejection_sample(self._sample, n, conditions, rng, max_draws=max(200 * n, 100_000))

    def _restore(self, raw: pd.DataFrame, n: int) -> pd.DataFrame:
        """Add constant columns back, enforce bounds and whole numbers, restore dtypes and order."""
        return self._as_input_dtypes(self._model_form(raw, n))

    def _model_form(self, raw: pd.DataFrame, n: int) -> pd.DataFrame:
        """Generated rows as the model sees a table (the form it was fitted on, which the copy
        guard compares): every column in order, constants added, bounds and rounding enforced;
        numbers read from text are still numbers."""
        out = {}
        for column in self.columns_:
            col = self.metadata_.columns[column]
            if column in self.constants_:
                out[column] = pd.Series([self.constants_[column]] * n)
            else:
                out[column] = model_column(raw[column].reset_index(drop=True), col)
        return pd.DataFrame(out, index=pd.RangeIndex(n))

    def _as_input_dtypes(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows in model form (:meth:`_model_form`) back in the input's dtypes and encodings."""
        out = {}
        for column in self.columns_:
            col = self.metadata_.columns[column]
            values = frame[column]
            if column in self.constants_:  # the constant as the input held it
                out[column] = cast_constant(values, col, self.dtypes_[column])
            else:
                out[column] = to_input_dtype(values, col, self.dtypes_[column])
        return pd.DataFrame(out, index=frame.index)

    # ------------------------------------------------------------------ weights (federated)
    def get_weights(self) -> list[np.ndarray]:
        """Trainable weights as arrays (for federated averaging)."""
        raise FedsynthError(
            f"{self.name} has no trainable weights to average; federate it with the "
            "synthetic_sharing or generator_sharing strategy instead"
        )

    def set_weights(self, weights: list[np.ndarray]) -> BaseGenerator:
        """Replace the trainable weights (for federated averaging); returns ``self``."""
        raise FedsynthError(f"{self.name} has no trainable weights to set")

    # ------------------------------------------------------------------ schema in model files
    def _schema_config(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        config = {
            "n_rows": self.n_rows_,
            "metadata": self.metadata_.to_dict(),
            "columns": self.columns_,
            "learned_columns": self.learned_columns_,
            "constants": {k: json_value(v) for k, v in self.constants_.items()},
            "dtypes": self.dtypes_,
            "copy_guard": {
                "key": self.guard_.key,
                "columns": self.guard_.columns,
                "numeric": self.guard_.numeric,
            },
        }
        if getattr(self, "site_mix_", None) is not None:
            config["site_mix"] = self.site_mix_.to_dict()
        return config, {GUARD_ARRAY: self.guard_.fingerprints}

    def to_bytes(self, *, keep_guard: bool = True) -> bytes:
        """The files of :meth:`save` as bytes (a ZIP archive made in memory, no pickle).

        Parameters
        ----------
        keep_guard : bool, default True
            Keep the copy guard's fingerprints of the training rows. Leave them out of anything
            that leaves a site: they tell whoever holds a patient's full row whether it was
            trained on.

        Examples
        --------
        >>> same = type(gen).from_bytes(gen.to_bytes())  # doctest: +SKIP
        """
        config, arrays = self._model_files()
        if not keep_guard:
            arrays[GUARD_ARRAY] = np.empty(0, dtype=np.uint64)
        return model_files_to_bytes(config, arrays)

    def _load_schema(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        guard = config["copy_guard"]
        metadata = Metadata.from_dict(config["metadata"])
        _check_saved_columns(config, metadata)
        self._set_fitted_state(
            metadata,
            columns=config["columns"],
            learned_columns=config["learned_columns"],
            constants={k: (np.nan if v is None else v) for k, v in config["constants"].items()},
            dtypes=config["dtypes"],
            n_rows=config["n_rows"],
            guard=CopyGuard(
                guard["columns"], guard["numeric"], guard["key"], arrays.pop(GUARD_ARRAY)
            ),
        )
        if config.get("site_mix") is not None:
            self.site_mix_ = SiteMix.from_dict(config["site_mix"])

    def _schema_info(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows_,
            "n_columns": len(self.columns_),
            "excluded_identifiers": self.metadata_.identifiers,
            "constant_columns": sorted(self.constants_),
        }

    def _fitted_summary(self) -> str:
        return f"fitted on {self.n_rows_} rows x {len(self.columns_)} columns"

    def _after_load(self) -> None:
        self._reset_sample_stream()

    # ------------------------------------------------------------------ subclass hooks
    def _fit(self, data: pd.DataFrame, metadata: Metadata, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        raise NotImplementedError


def _check_saved_columns(config: dict[str, Any], metadata: Metadata) -> None:
    """Check that the column lists of ``model.json`` agree with its metadata (a column renamed
    in one place only would otherwise fail deep inside sampling)."""
    columns = config["columns"]
    problems = [
        f"model.json: column {name!r} of 'columns' is not in the metadata"
        for name in columns
        if name not in metadata.columns
    ]
    for entry in ("learned_columns", "constants", "dtypes"):
        problems += [
            f"model.json: column {name!r} of {entry!r} is not in 'columns'"
            for name in config[entry]
            if name not in columns
        ]
    if problems:
        raise ModelFileError(problems)
