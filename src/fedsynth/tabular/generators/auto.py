"""``auto``: fit several generators on an internal split, keep the one that scores best.

Each candidate is fitted on the training part of a split of the data, scored on the validation
part with :func:`selection_score` (fidelity + utility), and the winner is fitted again on all the
data. Sampling, conditions and saving go to the winner. Until the SAFE validation framework
provides an overall score, :func:`selection_score` is the documented criterion.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from fedsynth.core.io import load_model_files
from fedsynth.core.privacy.config import DPSettings, PrivacyConfigError
from fedsynth.core.registry import get_generator_class, make, register
from fedsynth.exceptions import (
    DataWarning,
    FedsynthError,
    FedsynthWarning,
    UnknownGeneratorError,
)
from fedsynth.tabular.generators._discrete import to_codes
from fedsynth.tabular.generators.base import BaseGenerator
from fedsynth.tabular.metadata import Metadata

#: Candidates tried when none are named, in order of fitting cost. Deep ones are skipped when
#: their module (or torch) cannot be imported. TVAE is left out: VAE-BGM is the same network
#: with a better latent distribution, so it would rarely win and would double the deep cost.
DEFAULT_CANDIDATES: tuple[str, ...] = ("gaussian_copula", "bayesian_network", "vae_bgm", "ctgan")
_STATISTICAL = frozenset({"gaussian_copula", "bayesian_network"})
#: Numeric columns are cut into at most this many quantile bins for the pairwise part.
_PAIR_BINS = 10
_SCORE_COLUMNS = ["score", "score_sd", "marginal", "pairwise", "utility", "fit_s", "error"]
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
    against the validation part with :func:`selection_score`. On small tables this is repeated
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
        ``pairwise`` and ``utility`` (see :func:`selection_score`), each the mean over the
        splits, ``score_sd`` (standard deviation of the score over the splits, NaN with one),
        ``fit_s`` (mean seconds to fit on a training part) and ``error`` (why a candidate was
        left out, else empty).

    Notes
    -----
    Candidates whose scores differ by less than ``score_sd`` are a tie in practice: on a few
    hundred rows the score of one split varies by about 0.03. Conditional sampling uses the
    winner's own conditioning.

    Examples
    --------
    >>> import fedsynth
    >>> real = fedsynth.datasets.mds_cohort(n=500, seed=0)
    >>> gen = fedsynth.make("auto", candidates=("gaussian_copula", "bayesian_network"))
    >>> gen = gen.fit(real)  # doctest: +SKIP
    >>> gen.best_, gen.candidate_scores_["score"].round(3).to_dict()  # doctest: +SKIP
    ('bayesian_network', {'bayesian_network': 0.874, 'gaussian_copula': 0.861})
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
                raise ValueError(
                    f"candidates must be a non-empty tuple of generator names, "
                    f"got {self.candidates!r}"
                )
            names = list(dict.fromkeys(self.candidates))
            if "auto" in names:
                raise ValueError("'auto' cannot be one of its own candidates")
            for name in names:
                get_generator_class(name)  # unknown or unimportable names fail here, loudly
        unused = sorted(set(self.candidate_params or {}) - set(names))
        if unused:
            raise ValueError(
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
            raise ValueError(f"validation_fraction must be in [0.05, 0.5], got {fraction!r}")
        n_splits = self.n_splits
        if n_splits is not None and (
            not isinstance(n_splits, int) or isinstance(n_splits, bool) or n_splits < 1
        ):
            raise ValueError(f"n_splits must be a positive integer or None, got {n_splits!r}")
        if n_splits is None:
            n_splits = _SMALL_TABLE_SPLITS if len(data) < _SMALL_TABLE_ROWS else 1
        if round(len(data) * fraction) < 10 or len(data) - round(len(data) * fraction) < 20:
            raise ValueError(
                f"auto needs at least 10 validation and 20 training rows to compare candidates; "
                f"got {len(data)} rows with validation_fraction={fraction}"
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
    """Fidelity + utility score of a synthetic table, in [0, 1] (1 best), used by ``auto``.

    The score is the mean of the parts that can be computed:

    - ``marginal``: mean over columns of the similarity of each column's distribution in
      ``synthetic`` and ``holdout``: 1 - Kolmogorov-Smirnov statistic for numeric columns
      (a missing value counts as a point below every value, so missingness rates are compared
      too), 1 - total variation distance for discrete ones (missing is a category).
    - ``pairwise``: mean over pairs of columns of 1 - total variation distance between the
      pair's joint frequencies in ``synthetic`` and ``holdout`` (SDMetrics' contingency
      similarity): numeric columns are cut into at most 10 bins at the holdout's quantiles,
      missing is a bin of its own. It sees correlations between any kinds of columns.
    - ``utility``: when the table has a survival event with both outcomes in every table,
      a gradient-boosting classifier of the event (features without the duration) is trained
      on ``synthetic`` and on ``real``, and both are tested on ``holdout``; the part is the
      ratio of their AUROCs, ``min(1, AUROC_syn / AUROC_real)``. Left out when the real model
      does no better than chance (AUROC below 0.55). The plain ratio, rather than the ratio of
      skill above chance, keeps the noise of a small holdout from being magnified when the
      event is hard to predict.

    Parameters
    ----------
    real : DataFrame
        Rows the generator was trained on (only used to train the reference classifier).
    synthetic : DataFrame
        The generated rows, best as many as ``real``.
    holdout : DataFrame
        Real rows the generator never saw; every part compares against them.
    metadata : Metadata
        Resolved metadata of the columns (kinds, categories, survival pair).
    seed : int or None, default 0
        Seed of the classifiers.

    Returns
    -------
    dict of str to float
        ``score`` and the parts ``marginal``, ``pairwise`` and ``utility`` (NaN when left out).

    Examples
    --------
    >>> import fedsynth
    >>> from fedsynth.tabular.generators.auto import selection_score
    >>> real = fedsynth.datasets.mds_cohort(n=600, seed=0)
    >>> md = fedsynth.Metadata.infer(real).resolve(real)  # doctest: +SKIP
    >>> selection_score(real[:300], real[300:450], real[450:], md)["score"]  # doctest: +SKIP
    0.93...
    """
    columns = [
        c
        for c in holdout.columns
        if c in metadata.columns
        and c in synthetic.columns
        and c in real.columns
        and metadata.columns[c].kind != "identifier"
    ]
    discrete = np.array([metadata.columns[c].is_discrete for c in columns], dtype=bool)
    sizes = [len(metadata.columns[c].categories or []) for c in columns]
    views = [_numeric_view(frame, columns, metadata) for frame in (real, synthetic, holdout)]
    synthetic_view, holdout_view = views[1:]
    similarities = []
    for j in range(len(columns)):
        a, b = holdout_view[:, j], synthetic_view[:, j]
        if discrete[j]:
            similarities.append(_tvd_similarity(_with_missing_code(a, sizes[j]), b, sizes[j]))
        else:  # a missing value counts as a point below every value
            a, b = np.nan_to_num(a, nan=-np.inf), np.nan_to_num(b, nan=-np.inf)
            similarities.append(1.0 - float(stats.ks_2samp(a, b).statistic))
    binned = [
        _binned(view, holdout_view, discrete, sizes) for view in (holdout_view, synthetic_view)
    ]
    parts = {
        "marginal": float(np.mean(similarities)),
        "pairwise": _pairwise_similarity(*binned),
        "utility": _utility(views, columns, discrete, sizes, metadata, seed),
    }
    present = [v for v in parts.values() if not np.isnan(v)]
    return {"score": float(np.mean(present)), **parts}


def _numeric_view(frame: pd.DataFrame, columns: list[str], metadata: Metadata) -> np.ndarray:
    """Every column as floats: numbers as they are, categories as their codes; NaN missing."""
    out = np.empty((len(frame), len(columns)))
    for j, column in enumerate(columns):
        col = metadata.columns[column]
        if col.is_discrete:
            codes = to_codes(frame[column].reset_index(drop=True), col.categories)
            out[:, j] = np.where(codes < 0, np.nan, codes)
        else:
            out[:, j] = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    return out


def _with_missing_code(codes: np.ndarray, n_categories: int) -> np.ndarray:
    return np.where(np.isnan(codes), n_categories, codes).astype(np.int64)


def _tvd_similarity(a: np.ndarray, b: np.ndarray, n_categories: int) -> float:
    """1 - total variation distance of two integer-coded samples (missing coded last)."""
    b = _with_missing_code(b, n_categories)
    p = np.bincount(a, minlength=n_categories + 1) / len(a)
    q = np.bincount(b, minlength=n_categories + 1) / len(b)
    return 1.0 - 0.5 * float(np.abs(p - q).sum())


def _binned(
    view: np.ndarray, reference: np.ndarray, discrete: np.ndarray, sizes: list[int]
) -> np.ndarray:
    """Small integer codes of every column: categories, or bins at ``reference``'s quantiles;
    missing is the last code of its column."""
    out = np.empty(view.shape, dtype=np.int64)
    inner = np.linspace(0, 1, _PAIR_BINS + 1)[1:-1]
    for j in range(view.shape[1]):
        if discrete[j]:
            out[:, j] = _with_missing_code(view[:, j], sizes[j])
            continue
        ref = reference[:, j][~np.isnan(reference[:, j])]
        edges = np.unique(np.quantile(ref, inner)) if len(ref) else np.empty(0)
        codes = np.searchsorted(edges, view[:, j], side="right")
        out[:, j] = np.where(np.isnan(view[:, j]), len(edges) + 1, codes)
    return out


def _pairwise_similarity(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape[1] < 2:
        return np.nan
    sizes = np.maximum(a.max(axis=0, initial=0), b.max(axis=0, initial=0)) + 1
    similarities = []
    for i, j in combinations(range(a.shape[1]), 2):
        cells = int(sizes[i] * sizes[j])
        p = np.bincount(a[:, i] * sizes[j] + a[:, j], minlength=cells) / len(a)
        q = np.bincount(b[:, i] * sizes[j] + b[:, j], minlength=cells) / len(b)
        similarities.append(1.0 - 0.5 * np.abs(p - q).sum())
    return float(np.mean(similarities))


def _utility(
    views: list[np.ndarray],
    columns: list[str],
    discrete: np.ndarray,
    sizes: list[int],
    metadata: Metadata,
    seed: int | None,
) -> float:
    """``min(1, AUROC_syn / AUROC_real)`` of the event, NaN when there is nothing to predict."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    event = metadata.event
    if event not in columns:
        return np.nan
    kinds = [metadata.columns[c].kind for c in columns]
    features = np.array([k not in {"duration", "event"} for k in kinds], dtype=bool)
    if not features.any():
        return np.nan
    # Boosting takes categories as codes below its bin count; larger ones stay ordinal codes.
    categorical = (discrete & (np.array(sizes) < 250))[features]
    target = [view[:, columns.index(event)] == 1 for view in views]
    real, synthetic, holdout = views
    if target[2].all() or not target[2].any():
        return np.nan

    def auroc(train: np.ndarray, labels: np.ndarray) -> float:
        if labels.all() or not labels.any():
            return 0.5  # a constant outcome teaches nothing: chance level
        model = HistGradientBoostingClassifier(
            max_iter=100, categorical_features=categorical, random_state=seed
        )
        model.fit(train[:, features], labels)
        return float(roc_auc_score(target[2], model.predict_proba(holdout[:, features])[:, 1]))

    # One thread: on a few thousand rows the gain of more is small, and OpenMP threads that
    # wait on busy cores (a shared machine, or torch training beside) slow boosting tenfold.
    with threadpool_limits(limits=1, user_api="openmp"):
        reference = auroc(real, target[0])
        if reference < 0.55:
            return np.nan
        return float(min(1.0, auroc(synthetic, target[1]) / reference))


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
