"""The interface every generator shares, and the work done once for all of them.

Public ``fit``/``sample``/``save`` live here: schema, checks, identifiers and constant columns,
seeding, conditions and dtype restoration. A generator implements ``_fit``, ``_sample`` and its
state (``_get_state``/``_set_state``), and ``_sample_conditioned`` where it can condition natively.

``_fit`` receives the learned columns only (identifiers and constant columns removed), as the
user gave them (original dtypes), with the resolved metadata. ``_sample`` returns those columns
with numeric values as numbers and discrete values as their categories (NaN for missing); the
base then restores bounds, rounding and dtypes. ``_set_state`` runs after ``metadata_`` and the
column lists are restored, so a generator may read them there.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fedsynth._version import __version__
from fedsynth.core.io import (
    load_model_files,
    model_files_from_bytes,
    model_files_to_bytes,
    save_model_files,
)
from fedsynth.exceptions import (
    ConditionError,
    ConditionWarning,
    FedsynthError,
    InvalidDataError,
    ModelFileError,
    NotFittedError,
    Problem,
)
from fedsynth.tabular.generators.site_mix import SiteMix
from fedsynth.tabular.metadata import ColumnMetadata, Metadata
from fedsynth.tabular.privacy.guards import CopyGuard

Conditions = Mapping[str, Any]
#: Name of the copy guard's fingerprints among a saved model's arrays.
GUARD_ARRAY = "copy_guard_fingerprints"


class BaseGenerator:
    """Base class of fedsynth's generators (scikit-learn-like estimator).

    Subclasses take keyword-only hyperparameters stored unchanged, one of which is ``seed``.
    """

    name: ClassVar[str] = ""
    #: Whether the model has trainable weights that federated averaging can exchange.
    has_weights: ClassVar[bool] = False
    #: Whether ``_sample_conditioned`` conditions natively (no rejection sampling).
    native_conditioning: ClassVar[bool] = False

    seed: int | None

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            p.name
            for p in signature.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as given to the constructor."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> BaseGenerator:
        """Change hyperparameters (takes effect at the next ``fit``); returns ``self``."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise TypeError(f"{type(self).__name__} has no parameter {key!r}; valid: {valid}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
        shown = [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if k not in defaults or defaults[k] != v
        ]
        if "seed" not in [s.split("=")[0] for s in shown] and self.seed is not None:
            shown.append(f"seed={self.seed!r}")
        text = f"{type(self).__name__}({', '.join(shown)})"
        if self.is_fitted:
            text += f"  # fitted on {self.n_rows_} rows x {len(self.columns_)} columns"
        return text

    # ------------------------------------------------------------------ fitting
    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :func:`fedsynth.load`) has run."""
        return hasattr(self, "metadata_")

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
        """
        if not isinstance(data, pd.DataFrame):
            raise InvalidDataError(
                [Problem(None, f"expected a pandas DataFrame, got {type(data).__name__}")]
            )
        metadata = self._metadata_for(data, metadata)
        metadata.check(data)
        metadata = metadata.resolve(data)
        columns = [c for c in data.columns if metadata.columns[c].kind != "identifier"]
        constants = {}
        for column in columns:
            distinct = data[column].drop_duplicates()
            if len(distinct) == 1:
                constants[column] = _plain(distinct.iloc[0])
        learned = [c for c in columns if c not in constants]
        rng = np.random.default_rng(self.seed)
        self._fit(data[learned], metadata, rng)
        continuous = [c for c in learned if metadata.columns[c].is_continuous]
        self._set_fitted_state(
            metadata,
            columns=columns,
            learned_columns=learned,
            constants=constants,
            dtypes={c: str(data[c].dtype) for c in columns},
            n_rows=len(data),
            guard=CopyGuard.from_training(data, learned, continuous),
        )
        return self

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
        fitted_at: str | None = None,
        fedsynth_version: str = __version__,
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
        self.fitted_at_ = fitted_at or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self.fedsynth_version_ = fedsynth_version
        self._reset_sample_stream()

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

    def _check_is_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(data) before sampling"
            )

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

        Examples
        --------
        >>> import fedsynth
        >>> real = fedsynth.datasets.mds_cohort(n=500, seed=0)
        >>> gen = fedsynth.make("gaussian_copula").fit(real)  # doctest: +SKIP
        >>> gen.sample(3, conditions={"sex": "F"})["sex"].tolist()  # doctest: +SKIP
        ['F', 'F', 'F']
        """
        self._check_is_fitted()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        n = int(n)
        rng = self._sample_rng if seed is None else np.random.default_rng(seed)
        checked = self._check_conditions(conditions or {})
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
            return self._restore(raw, k)

        out = self.guard_.enforce(draw(n), draw)
        for column, value in checked.items():
            if not _matches(out[column], value).all():
                raise FedsynthError(
                    f"internal error: sampled rows do not all satisfy {column}={value!r}"
                )
        return out

    def _check_conditions(self, conditions: Conditions) -> dict[str, Any]:
        """Conditions with values mapped onto the fitted categories; every problem reported."""
        if not isinstance(conditions, Mapping):
            raise ConditionError("conditions must be a dict {column: value}")
        problems, checked = [], {}
        for column, value in conditions.items():
            col = self.metadata_.columns.get(column)
            if col is None or col.kind == "identifier":
                why = "is an identifier" if col is not None else "is not a column of the data"
                problems.append(f"{column!r} {why}; condition on one of {self.columns_}")
                continue
            if column in self.constants_:
                if not _equal(self.constants_[column], value):
                    problems.append(
                        f"{column!r} was constant ({self.constants_[column]!r}) in the training "
                        f"data; {value!r} cannot be generated"
                    )
                checked[column] = self.constants_[column]
                continue
            if col.is_discrete:
                found = [c for c in col.categories if _equal(c, value)]
                if not found and isinstance(value, str):  # "1" from a command line or a form
                    number = pd.to_numeric(value, errors="coerce")
                    found = [c for c in col.categories if not pd.isna(number) and _equal(c, number)]
                if not found:
                    problems.append(
                        f"{column!r} has no category {value!r}; expected one of {col.categories}"
                    )
                else:
                    checked[column] = found[0]
            else:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    problems.append(f"{column!r} is numeric; got {value!r}")
                    continue
                low, high = col.bounds
                decimals = 0 if col.integer else col.decimals
                if not (low <= number <= high):
                    problems.append(
                        f"{column!r}={number:g} is outside the training range [{low:g}, {high:g}]"
                    )
                elif decimals is not None and round(number, decimals) != number:
                    problems.append(
                        f"{column!r} is recorded to {decimals} decimal(s); {number:g} cannot be "
                        f"generated (use {round(number, decimals):g})"
                    )
                checked[column] = number
        if problems:
            raise ConditionError(
                "cannot sample with these conditions:\n  - " + "\n  - ".join(problems)
            )
        return checked

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
        out = {}
        for column in self.columns_:
            col = self.metadata_.columns[column]
            if column in self.constants_:
                values = pd.Series([self.constants_[column]] * n)
            else:
                values = raw[column].reset_index(drop=True)
            out[column] = restore_column(values, col, self.dtypes_[column])
        return pd.DataFrame(out, index=pd.RangeIndex(n))

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

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Save to directory ``path`` as ``model.json`` + ``arrays.npz`` (no pickle).

        The files carry the fedsynth version, the hyperparameters, the metadata and the fitted
        state; :func:`fedsynth.load` restores a generator that samples identically.
        """
        return save_model_files(path, *self._model_files())

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

    @classmethod
    def from_bytes(cls, data: bytes) -> BaseGenerator:
        """The generator that :meth:`to_bytes` wrote; on ``BaseGenerator``, of any registered
        class.

        Raises
        ------
        ModelFileError
            When ``data`` holds no model, or one of another class than ``cls``.
        """
        config, arrays = model_files_from_bytes(data)
        generator = _from_model_files(config, arrays, "the model bytes")
        if not isinstance(generator, cls):
            problem = f"the model bytes hold a {config['generator']}, not a {cls.name}"
            raise ModelFileError([Problem(None, problem)])
        return generator

    def _model_files(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``model.json``'s content and the arrays, with the copy guard's fingerprints."""
        self._check_is_fitted()
        state, arrays = self._get_state()
        config = {
            "format": "fedsynth-model",
            "format_version": 1,
            "fedsynth_version": __version__,
            "generator": self.name,
            "params": self.get_params(),
            "fitted_at": self.fitted_at_,
            "n_rows": self.n_rows_,
            "metadata": self.metadata_.to_dict(),
            "columns": self.columns_,
            "learned_columns": self.learned_columns_,
            "constants": {k: _json_value(v) for k, v in self.constants_.items()},
            "dtypes": self.dtypes_,
            "copy_guard": {
                "key": self.guard_.key,
                "columns": self.guard_.columns,
                "numeric": self.guard_.numeric,
            },
            "state": state,
        }
        if getattr(self, "site_mix_", None) is not None:
            config["site_mix"] = self.site_mix_.to_dict()
        if GUARD_ARRAY in arrays:
            raise FedsynthError(f"{self.name} state uses the reserved array name {GUARD_ARRAY}")
        return config, {**arrays, GUARD_ARRAY: self.guard_.fingerprints}

    def get_info(self) -> dict[str, Any]:
        """What was fitted, when, on how many rows, with which fedsynth version."""
        self._check_is_fitted()
        return {
            "generator": self.name,
            "params": self.get_params(),
            "fitted_at": self.fitted_at_,
            "fedsynth_version": self.fedsynth_version_,
            "n_rows": self.n_rows_,
            "n_columns": len(self.columns_),
            "excluded_identifiers": self.metadata_.identifiers,
            "constant_columns": sorted(self.constants_),
        }

    @classmethod
    def _from_saved(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> BaseGenerator:
        gen = cls(**config["params"])
        guard = config["copy_guard"]
        gen._set_fitted_state(
            Metadata.from_dict(config["metadata"]),
            columns=config["columns"],
            learned_columns=config["learned_columns"],
            constants={k: (np.nan if v is None else v) for k, v in config["constants"].items()},
            dtypes=config["dtypes"],
            n_rows=config["n_rows"],
            guard=CopyGuard(
                guard["columns"], guard["numeric"], guard["key"], arrays.pop(GUARD_ARRAY)
            ),
            fitted_at=config["fitted_at"],
            fedsynth_version=config["fedsynth_version"],
        )
        gen._set_state(config["state"], arrays)
        if config.get("site_mix") is not None:
            gen.site_mix_ = SiteMix.from_dict(config["site_mix"])
        return gen

    # ------------------------------------------------------------------ subclass hooks
    def _fit(self, data: pd.DataFrame, metadata: Metadata, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        raise NotImplementedError

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


def load(path: str | os.PathLike) -> BaseGenerator:
    """Load a generator saved with :meth:`BaseGenerator.save`.

    Examples
    --------
    >>> gen = fedsynth.load("model/")  # doctest: +SKIP
    """
    return _from_model_files(*load_model_files(path), repr(str(path)))


def _from_model_files(
    config: dict[str, Any], arrays: dict[str, np.ndarray], source: str
) -> BaseGenerator:
    """The generator of a model file's content; ``source`` names where it was read."""
    from fedsynth.core.registry import get_generator_class

    if config.get("format") != "fedsynth-model":
        raise ModelFileError([Problem(None, f"{source} does not hold a fedsynth model")])
    if int(config.get("format_version", 0)) > 1:
        raise ModelFileError(
            [
                Problem(
                    None,
                    f"{source} was saved by fedsynth {config.get('fedsynth_version')} in a "
                    f"newer format; upgrade fedsynth (this is {__version__})",
                )
            ]
        )
    cls = get_generator_class(config["generator"])
    return cls._from_saved(config, arrays)


# ---------------------------------------------------------------------- helpers for subclasses
def rejection_sample(
    draw, n: int, conditions: dict[str, Any], rng: np.random.Generator, *, max_draws: int
) -> pd.DataFrame:
    """Keep drawing batches until ``n`` rows satisfy every condition, within ``max_draws`` rows.

    Raises
    ------
    ConditionError
        When the conditions are too rare to meet within ``max_draws`` drawn rows.
    """
    kept: list[pd.DataFrame] = []
    found = drawn = 0
    batch = max(n, 1_000)
    while found < n:
        if drawn >= max_draws:
            rate = found / max(drawn, 1)
            raise ConditionError(
                f"only {found} of {drawn:,} generated rows satisfied {dict(conditions)} "
                f"(acceptance {rate:.4%}); these conditions are too rare for this generator "
                "to meet within its bounded sampling budget"
            )
        size = min(batch, max_draws - drawn)
        rows = draw(size, rng)
        drawn += size
        mask = np.ones(size, dtype=bool)
        for column, value in conditions.items():
            mask &= _matches(rows[column], value).to_numpy()
        kept.append(rows[mask])
        found += int(mask.sum())
        rate = max(found, 1) / drawn
        batch = int(min(max_draws, max(1_000, 1.2 * (n - found) / rate)))
    out = pd.concat(kept, ignore_index=True).iloc[:n]
    accepted = n / drawn
    if accepted < 0.05:
        warnings.warn(
            f"conditional sampling kept {accepted:.2%} of {drawn:,} generated rows for "
            f"{dict(conditions)}; rare conditions are slow and the rows may be less varied",
            ConditionWarning,
            stacklevel=3,
        )
    return out.reset_index(drop=True)


def restore_column(values: pd.Series, col: ColumnMetadata, dtype: str) -> pd.Series:
    """Cast generated values back to the input dtype, within bounds and whole where needed."""
    if col.is_continuous:
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        if col.bounds is not None:
            numbers = numbers.clip(col.bounds[0], col.bounds[1])
        if col.integer:
            numbers = numbers.round()
        elif col.decimals is not None:
            numbers = numbers.round(col.decimals)
        return _cast(numbers, dtype)
    if dtype == "category":
        return values.astype(pd.CategoricalDtype(col.categories))
    return _cast(values, dtype)


def _cast(values: pd.Series, dtype: str) -> pd.Series:
    has_missing = bool(values.isna().any())
    if dtype.startswith(("int", "uint")) and has_missing:
        # A column with no missing values in training can only get NaN here by a generator
        # fault; keep the rows and move to the nullable integer type rather than fail.
        return values.astype(dtype.replace("int", "Int").replace("uInt", "UInt"))
    if dtype == "bool" and has_missing:
        return values.astype("boolean")
    if dtype in {"object", "str", "string"}:
        return values.astype(object).where(values.notna(), np.nan)
    return values.astype(dtype)


def _matches(values: pd.Series, value: Any) -> pd.Series:
    if isinstance(value, float) and math.isnan(value):
        return values.isna()
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        numbers = pd.to_numeric(values, errors="coerce")
        return np.isclose(numbers.astype(float), float(value), rtol=0, atol=1e-9) & numbers.notna()
    return values.astype(object) == value


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    try:
        return bool(a == b) or (pd.isna(a) and pd.isna(b))
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_value(value: Any) -> Any:
    value = _plain(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
