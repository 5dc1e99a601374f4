"""``auto``: fit several generators on an internal split, keep the one that scores best.

Each candidate is fitted on the training part of a split of the data, scored on the validation
part with :func:`selection_score` (the SAFE validation's fidelity and utility families), and the
winner is fitted again on all the data. Sampling, conditions and saving go to the winner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.core.io import load_model_files
from fedsynth.core.privacy.config import DPSettings, PrivacyConfigError
from fedsynth.core.registry import get_generator_class, make, register
from fedsynth.exceptions import (
    DataWarning,
    FedsynthError,
    FedsynthWarning,
    InvalidDataError,
    ParameterError,
    Problem,
    UnknownGeneratorError,
)
from fedsynth.tabular.generators.base import BaseGenerator
from fedsynth.tabular.metadata import Metadata

#: Candidates tried when none are named, in order of fitting cost. Deep ones are skipped when
#: their module (or torch) cannot be imported. TVAE is left out: VAE-BGM is the same network
#: with a better latent distribution, so it would rarely win and would double the deep cost.
DEFAULT_CANDIDATES: tuple[str, ...] = ("gaussian_copula", "bayesian_network", "vae_bgm", "ctgan")
_STATISTICAL = frozenset({"gaussian_copula", "bayesian_network"})
#: The parts of :func:`selection_score` taken from SAFE's fidelity metrics, by metric name.
_FIDELITY_PARTS = {
    "marginal": "column_shapes",
    "pairwise": "pairwise_association",
    "missing": "missing_rate_difference",
}
_SCORE_COLUMNS = [
    "score",
    "score_sd",
    "marginal",
    "pairwise",
    "missing",
    "utility",
    "fit_s",
    "error",
]
#: Below this many rows the candidates are compared on several splits (fits are cheap there,
#: and one small validation part ranks close candidates by chance).
_SMALL_TABLE_ROWS = 3_000
_SMALL_TABLE_SPLITS = 3


class CandidateWarning(FedsynthWarning):
    """A candidate of ``auto`` failed to fit or sample and was left out of the selection."""


@register("auto")
class AutoGenerator(BaseGenerator):
    """Pick the best generator for a table by fitting candidates on an internal split.

    ``fit`` splits the data (stratified on the survival event when there is one), fits every
    candidate on the training part, draws as many synthetic rows as that part has and scores them
    against the validation part with :func:`selection_score` (SAFE's fidelity and utility
    scores). On small tables this is repeated
    on several random splits and the scores averaged. The candidate with the highest mean score
    is fitted again, with the same hyperparameters, on all the data.

    Parameters
    ----------
    candidates : tuple of str or None, default None
        Generator names to try. ``None`` means :data:`DEFAULT_CANDIDATES`, keeping only the
        deep generators whose module imports; a name given here that cannot be imported is an
        error.
    candidate_params : dict of str to dict, or None, default None
        Hyperparameters of each candidate, e.g. ``{"vae_bgm": {"epochs": 50}}``; a candidate
        without ``seed`` here gets this generator's ``seed``.
    validation_fraction : float, default 0.3
        Share of the rows held out to score the candidates, in [0.05, 0.5].
    n_splits : int or None, default None
        Random splits on which every candidate is fitted and scored. ``None``: 3 for tables of
        fewer than 3,000 rows (where fits are cheap and one small validation part ranks close
        candidates by chance), else 1.
    seed : int or None, default 0
        Seed of the split, the candidates, the scoring draws and the sample stream.
    dp : None
        Not supported: any setting other than ``None`` fails at ``fit`` with
        :class:`~fedsynth.core.privacy.PrivacyConfigError`. Choosing the candidate by its score on
        the private validation rows is itself a release that no candidate's guarantee covers
        (selection under DP needs its own mechanism and budget, and a validation part spent on
        it). Pick the generator and give it ``dp=`` directly: ``vae_bgm`` or ``ctgan``
        (DP-SGD), ``bayesian_network`` (PrivBayes) or ``gaussian_copula``.

    Attributes
    ----------
    best_ : str
        Name of the chosen generator.
    best_generator_ : BaseGenerator
        The chosen generator, fitted on all the data.
    candidate_scores_ : DataFrame
        One row per candidate (index: name), best first: ``score`` and its parts ``marginal``,
        ``pairwise``, ``missing`` and ``utility`` (SAFE scores, see :func:`selection_score`),
        each the mean over the splits, ``score_sd`` (standard deviation of the score over the
        splits, NaN with one), ``fit_s`` (mean seconds to fit on a training part) and ``error``
        (why a candidate was left out, else empty).

    Notes
    -----
    Candidates whose scores differ by less than ``score_sd`` are a tie in practice: on 500 rows
    of the MDS cohort the score of one split varied by 0.02 to 0.04 (standard deviation over 3
    splits). Conditional sampling uses the winner's own conditioning.

    Scoring costs more than fitting the statistical candidates: most of it is SAFE's utility
    models and their permutation importances. On the 500-row example below the fit took 337 s
    against 50 s with the former scorer of ``auto``'s own, both on a shared, heavily loaded
    2-core machine; a deep candidate's training still dominates its own share.

    Examples
    --------
    >>> import fedsynth
    >>> real = fedsynth.datasets.mds_cohort(n=500, seed=0)
    >>> gen = fedsynth.make("auto", candidates=("gaussian_copula", "bayesian_network"))
    >>> gen = gen.fit(real)  # doctest: +SKIP
    >>> gen.best_, gen.candidate_scores_["score"].round(3).to_dict()  # doctest: +SKIP
    ('bayesian_network', {'bayesian_network': 0.928, 'gaussian_copula': 0.882})
    """

    def __init__(
        self,
        *,
        candidates: tuple[str, ...] | None = None,
        candidate_params: Mapping[str, Mapping[str, Any]] | None = None,
        validation_fraction: float = 0.3,
        n_splits: int | None = None,
        seed: int | None = 0,
        dp: None = None,
    ):
        self.dp = dp
        self.candidates = candidates
        self.candidate_params = candidate_params
        self.validation_fraction = validation_fraction
        self.n_splits = n_splits
        self.seed = seed

    @property
    def native_conditioning(self) -> bool:  # type: ignore[override]
        """Whether the chosen generator conditions natively (``False`` before ``fit``)."""
        winner = getattr(self, "best_generator_", None)
        return winner is not None and bool(winner.native_conditioning)

    # ------------------------------------------------------------------ fit
    def _resolve_candidates(self) -> list[str]:
        """The candidate names to fit, checked; deep defaults that cannot be imported dropped."""
        if self.candidates is None:
            names = []
            for name in DEFAULT_CANDIDATES:
                try:
                    get_generator_class(name)
                except (ImportError, UnknownGeneratorError):
                    if name in _STATISTICAL:
                        raise
                    continue
                names.append(name)
        else:
            if isinstance(self.candidates, str) or not len(self.candidates):
                raise ParameterError(
                    f"candidates must be a non-empty tuple of generator names, "
                    f"got {self.candidates!r}"
                )
            names = list(dict.fromkeys(self.candidates))
            if "auto" in names:
                raise ParameterError("'auto' cannot be one of its own candidates")
            for name in names:
                get_generator_class(name)  # unknown or unimportable names fail here, loudly
        unused = sorted(set(self.candidate_params or {}) - set(names))
        if unused:
            raise ParameterError(
                f"candidate_params names {unused}, which are not candidates; candidates: {names}"
            )
        return names

    def _make_candidate(self, name: str) -> BaseGenerator:
        params = dict((self.candidate_params or {}).get(name, {}))
        params.setdefault("seed", self.seed)
        return make(name, **params)

    def _check_params(self, settings: DPSettings | None) -> None:
        if settings is not None:
            raise PrivacyConfigError(
                "auto does not support dp: choosing a candidate by its score on the private "
                "rows is a release that no candidate's guarantee covers. Pick the generator and "
                "give it dp= directly, e.g. fedsynth.make('vae_bgm', dp=...) (DP-SGD) or "
                "fedsynth.make('bayesian_network', dp=...) (PrivBayes)"
            )

    def _fit(self, data: pd.DataFrame, metadata: Metadata, rng: np.random.Generator) -> None:
        fraction = self.validation_fraction
        if not isinstance(fraction, (float, int)) or not 0.05 <= fraction <= 0.5:
            raise ParameterError(f"validation_fraction must be in [0.05, 0.5], got {fraction!r}")
        n_splits = self.n_splits
        if n_splits is not None and (
            not isinstance(n_splits, int) or isinstance(n_splits, bool) or n_splits < 1
        ):
            raise ParameterError(f"n_splits must be a positive integer or None, got {n_splits!r}")
        if n_splits is None:
            n_splits = _SMALL_TABLE_SPLITS if len(data) < _SMALL_TABLE_ROWS else 1
        if round(len(data) * fraction) < 10 or len(data) - round(len(data) * fraction) < 20:
            raise InvalidDataError(
                [
                    Problem(
                        None,
                        "auto needs at least 10 validation and 20 training rows to compare "
                        f"candidates; got {len(data)} rows with validation_fraction={fraction}",
                    )
                ]
            )
        names = self._resolve_candidates()
        # Hyperparameter mistakes surface before any time is spent fitting.
        for name in names:
            self._make_candidate(name)
        learned = _learned_metadata(metadata, data.columns)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        errors: dict[str, str] = {}
        for train, valid in _splits(data, learned, fraction, n_splits, rng):
            score_seed = int(rng.integers(2**31 - 1))
            for name in names:
                if name in errors:
                    continue
                start = time.perf_counter()
                try:
                    with _quiet_data_warnings():
                        candidate = self._make_candidate(name).fit(train, metadata=learned)
                    fit_s = time.perf_counter() - start
                    synthetic = candidate.sample(len(train), seed=score_seed)
                    parts = selection_score(train, synthetic, valid, learned, seed=score_seed)
                except Exception as exc:  # one broken candidate must not sink the selection
                    warnings.warn(
                        f"auto: candidate {name!r} failed and is left out: {exc}",
                        CandidateWarning,
                        stacklevel=3,
                    )
                    errors[name] = f"{type(exc).__name__}: {exc}"
                    continue
                runs[name].append({**parts, "fit_s": fit_s})
        if len(errors) == len(names):
            raise FedsynthError(
                "auto: every candidate failed:\n  - "
                + "\n  - ".join(f"{n}: {e}" for n, e in errors.items())
            )
        rows = {}
        for name in names:
            if name in errors:
                rows[name] = {"error": errors[name]}
                continue
            table = pd.DataFrame(runs[name])
            rows[name] = {**table.mean().to_dict(), "error": ""}
            rows[name]["score_sd"] = table["score"].std(ddof=1) if len(table) > 1 else np.nan
        scores = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=_SCORE_COLUMNS)
        scores = scores.astype({c: float for c in _SCORE_COLUMNS[:-1]})
        # A stable sort keeps the candidates' order on ties, so cheaper generators win them.
        self.candidate_scores_ = scores.sort_values("score", ascending=False, kind="stable")
        self.best_ = str(self.candidate_scores_.index[0])
        with _quiet_data_warnings():
            self.best_generator_ = self._make_candidate(self.best_).fit(data, metadata=learned)

    # ------------------------------------------------------------------ sample
    def _sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        return self.best_generator_._sample(n, rng)

    def _sample_conditioned(
        self, n: int, conditions: dict[str, Any], rng: np.random.Generator
    ) -> pd.DataFrame:
        return self.best_generator_._sample_conditioned(n, conditions, rng)

    def get_info(self) -> dict[str, Any]:
        """As :meth:`BaseGenerator.get_info`, with the chosen generator and every candidate's
        score."""
        info = super().get_info()
        info["best"] = self.best_
        info["candidate_scores"] = _scores_to_records(self.candidate_scores_)
        return info

    # ------------------------------------------------------------------ state
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        # The winner's part is exactly what its own ``save`` writes, so loading it goes through
        # the same code (and checks) as loading that generator on its own.
        with tempfile.TemporaryDirectory(prefix="fedsynth-auto-") as tmp:
            self.best_generator_.save(tmp)
            config, arrays = load_model_files(tmp)
        state = {
            "best": self.best_,
            "candidate_scores": _scores_to_records(self.candidate_scores_),
            "winner": config,
        }
        return state, {f"winner/{k}": v for k, v in arrays.items()}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        prefix = "winner/"
        winner_arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        config = state["winner"]
        self.best_ = state["best"]
        self.best_generator_ = get_generator_class(config["generator"])._from_saved(
            config, winner_arrays
        )
        records = state["candidate_scores"]
        scores = pd.DataFrame.from_records(records, index="name", columns=["name", *_SCORE_COLUMNS])
        scores.index.name = None
        scores["error"] = scores["error"].fillna("")
        self.candidate_scores_ = scores.astype({c: float for c in _SCORE_COLUMNS[:-1]})

    @classmethod
    def _from_saved(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> BaseGenerator:
        params = dict(config["params"])
        if params.get("candidates") is not None:  # JSON has no tuples
            params["candidates"] = tuple(params["candidates"])
        return super()._from_saved({**config, "params": params}, arrays)


# ---------------------------------------------------------------------- score
def selection_score(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    metadata: Metadata,
    *,
    seed: int | None = 0,
) -> dict[str, float]:
    """SAFE fidelity + utility score of a synthetic table, in [0, 1] (1 best), used by ``auto``.

    The parts are scores of the SAFE validation (:func:`fedsynth.tabular.validation.validate`),
    run on its fidelity and utility families only, and the score is the mean of those that
    can be computed:

    - ``marginal``: SAFE's ``column_shapes`` (mean over columns of 1 - Kolmogorov-Smirnov
      statistic or 1 - total variation distance), ``synthetic`` against ``holdout``;
    - ``pairwise``: SAFE's ``pairwise_association`` (weighted agreement of the two tables'
      association matrices), ``synthetic`` against ``holdout``;
    - ``missing``: SAFE's ``missing_rate_difference`` score (1 - the mean gap of the columns'
      missing rates), ``synthetic`` against ``holdout``;
    - ``utility``: SAFE's ``tstr_ratio`` score: models of the target (the survival event)
      trained on ``synthetic`` and on ``real``, tested on ``holdout``, their chance-adjusted
      AUROC ratio. NaN when there is nothing to predict. (SAFE's utility score also averages
      in ``feature_importance_agreement``, which on a validation part of a few hundred rows is
      mostly noise: 0.26 for a Gaussian copula of the MDS cohort on 120 rows.)

    The fidelity parts compare the synthetic rows with ``holdout``, rows the generator never
    saw, rather than with its training rows as a SAFE report does: a candidate that copies its
    training rows then gains nothing over one that generalises.

    Parameters
    ----------
    real : DataFrame
        Rows the generator was trained on (only used to train the reference models).
    synthetic : DataFrame
        The generated rows, best as many as ``real``.
    holdout : DataFrame
        Real rows the generator never saw; every part compares against them.
    metadata : Metadata
        Resolved metadata of the columns (kinds, categories, survival pair).
    seed : int or None, default 0
        Seed of the validation's subsamples and models (``None``: 0).

    Returns
    -------
    dict of str to float
        ``score`` and the parts ``marginal``, ``pairwise``, ``missing`` and ``utility`` (NaN
        when left out).

    Examples
    --------
    >>> import fedsynth
    >>> from fedsynth.tabular.generators.auto import selection_score
    >>> real = fedsynth.datasets.mds_cohort(n=600, seed=0)
    >>> md = fedsynth.Metadata.infer(real).resolve(real)  # doctest: +SKIP
    >>> selection_score(real[:300], real[300:450], real[450:], md)["score"]  # doctest: +SKIP
    0.9...
    """
    from fedsynth.tabular.validation import validate

    seed = 0 if seed is None else int(seed)
    # Only the metrics scored here run: SAFE's permutation importances and associations that
    # select nothing would triple the cost of every candidate.
    fidelity = validate(
        holdout,
        synthetic,
        metadata=metadata,
        families=("fidelity",),
        metrics=_FIDELITY_PARTS.values(),
        seed=seed,
    )
    utility = validate(
        real,
        synthetic,
        holdout=holdout,
        metadata=metadata,
        families=("utility",),
        metrics=("tstr_ratio",),
        seed=seed,
    )
    parts = {
        part: _nan_if_none(fidelity.results[metric].score)
        for part, metric in _FIDELITY_PARTS.items()
    }
    parts["utility"] = _nan_if_none(utility.results["tstr_ratio"].score)
    present = [v for v in parts.values() if not np.isnan(v)]
    return {"score": float(np.mean(present)) if present else np.nan, **parts}


def _nan_if_none(value: float | None) -> float:
    return np.nan if value is None else float(value)


# ---------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _quiet_data_warnings() -> Iterator[None]:
    """Silence data warnings of the candidates' fits: ``auto``'s own fit already gave those of
    the whole table, and a column constant in one part of the split is not the user's concern."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        yield


def _learned_metadata(metadata: Metadata, columns: pd.Index) -> Metadata:
    """The metadata of the learned columns; a survival column whose partner was constant (and so
    removed) is described as a plain numeric or binary column, which it then is."""
    kept = {c: metadata.columns[c] for c in columns}
    survival = [c for c in kept if kept[c].kind in {"duration", "event"}]
    if len(survival) == 1:
        column = survival[0]
        kind = "numeric" if kept[column].kind == "duration" else "binary"
        kept[column] = dataclasses.replace(kept[column], kind=kind)
    return Metadata(kept)


def _splits(
    data: pd.DataFrame, metadata: Metadata, fraction: float, n_splits: int, rng: np.random.Generator
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """``n_splits`` random (training, validation) splits, stratified on the event if any."""
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    event = metadata.event
    seed = int(rng.integers(2**31 - 1))
    splitter = ShuffleSplit(n_splits=n_splits, test_size=fraction, random_state=seed)
    labels = None
    if event is not None and data[event].notna().all():
        counts = data[event].value_counts()
        if len(counts) > 1 and counts.min() >= 2:
            splitter = StratifiedShuffleSplit(n_splits, test_size=fraction, random_state=seed)
            labels = data[event]
    for train, valid in splitter.split(data, labels):
        yield data.iloc[train].reset_index(drop=True), data.iloc[valid].reset_index(drop=True)


def _scores_to_records(scores: pd.DataFrame) -> list[dict[str, Any]]:
    records = []
    for name, row in scores.iterrows():
        record: dict[str, Any] = {"name": name}
        for key in _SCORE_COLUMNS:
            value = row[key]
            record[key] = None if isinstance(value, float) and np.isnan(value) else value
        records.append(record)
    return records
