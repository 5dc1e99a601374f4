"""Utility, survival and privacy scores of the generator benchmark (fedsynth's environment).

Every score compares a synthetic table (or the ``real`` stand-in, half of the real holdout) with
the real training rows and the other half of the holdout, which no generator saw:

- :func:`tstr_auroc`: AUROC on the evaluation rows of a gradient-boosting classifier of the
  event trained on a table (features without the duration).
- :func:`km_gap`: mean absolute gap between the Kaplan-Meier curves of a table and of the
  training rows, on a common grid of times.
- :func:`dcr`: median distance of a table's rows to their closest training row, on standardised
  numbers (missing as 0 plus an indicator) and one-hot categories.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from fedsynth.tabular.metadata import Metadata

#: Points of the time grid of :func:`km_gap`, from 0 to the training durations' 95th percentile
#: (past it, few patients remain at risk and the curves say little).
KM_GRID_POINTS = 200


def _codes(values: pd.Series, categories: list[Any]) -> np.ndarray:
    """Category index of each value (NaN for missing or unknown); ``1``, ``1.0`` and ``"1"``
    from a parquet round trip through another library all find category ``1``."""

    def key(value: Any) -> Any:
        if isinstance(value, str):
            number = pd.to_numeric(value, errors="coerce")
            return value if pd.isna(number) else float(number)
        return float(value)

    lookup = {key(c): i for i, c in enumerate(categories)}
    return np.array(
        [np.nan if pd.isna(v) else lookup.get(key(v), np.nan) for v in values], dtype=float
    )


def _numbers(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def tstr_auroc(train: pd.DataFrame, test: pd.DataFrame, metadata: Metadata, seed: int = 0) -> float:
    """AUROC on ``test`` of a classifier of the event trained on ``train``.

    Scikit-learn's ``HistGradientBoostingClassifier`` (default settings, categories native),
    features: every column but the duration and the event.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    event, duration = metadata.event, metadata.duration
    features = [c for c in train.columns if c not in (event, duration)]
    discrete = [metadata.columns[c].is_discrete for c in features]

    def design(frame: pd.DataFrame) -> np.ndarray:
        columns = [
            _codes(frame[c], metadata.columns[c].categories) if d else _numbers(frame[c])
            for c, d in zip(features, discrete, strict=True)
        ]
        return np.column_stack(columns)

    labels = _numbers(train[event]) == 1
    if labels.all() or not labels.any():
        return 0.5  # a constant outcome teaches nothing
    model = HistGradientBoostingClassifier(categorical_features=discrete, random_state=seed)
    # One thread: scoring is not timed, and threads waiting on a busy shared machine are slow.
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(design(train), labels)
        scores = model.predict_proba(design(test))[:, 1]
    return float(roc_auc_score(_numbers(test[event]) == 1, scores))


def km_gap(table: pd.DataFrame, train: pd.DataFrame, metadata: Metadata) -> float:
    """Mean absolute difference of the Kaplan-Meier survival curves of ``table`` and ``train``
    on :data:`KM_GRID_POINTS` times from 0 to the training durations' 95th percentile."""
    from lifelines import KaplanMeierFitter

    duration, event = metadata.duration, metadata.event
    grid = np.linspace(0.0, np.quantile(_numbers(train[duration]), 0.95), KM_GRID_POINTS)
    curves = []
    for frame in (table, train):
        times, events = _numbers(frame[duration]), _numbers(frame[event])
        keep = ~(np.isnan(times) | np.isnan(events))
        fitter = KaplanMeierFitter().fit(np.maximum(times[keep], 0.0), events[keep] == 1)
        curves.append(fitter.survival_function_at_times(grid).to_numpy())
    return float(np.mean(np.abs(curves[0] - curves[1])))


def dcr(
    tables: dict[str, pd.DataFrame], train: pd.DataFrame, metadata: Metadata
) -> dict[str, float]:
    """Median distance to the closest training row of each table's rows.

    Numeric columns are standardised with the training mean and deviation (a missing value is
    0 plus a missing indicator), discrete columns one-hot encoded (missing is a category); the
    distance is Euclidean.
    """
    from sklearn.neighbors import NearestNeighbors

    columns = list(train.columns)

    def encode(frame: pd.DataFrame) -> np.ndarray:
        parts = []
        for column in columns:
            col = metadata.columns[column]
            if col.is_discrete:
                codes = _codes(frame[column], col.categories)
                codes = np.where(np.isnan(codes), len(col.categories), codes).astype(int)
                parts.append(np.eye(len(col.categories) + 1)[codes])
                continue
            reference = _numbers(train[column])
            mean, sd = np.nanmean(reference), np.nanstd(reference) or 1.0
            values = (_numbers(frame[column]) - mean) / sd
            parts.append(np.nan_to_num(values, nan=0.0)[:, None])
            if np.isnan(reference).any():
                parts.append(np.isnan(_numbers(frame[column]))[:, None].astype(float))
        return np.hstack(parts)

    index = NearestNeighbors(n_neighbors=1, n_jobs=1).fit(encode(train))
    return {
        name: float(np.median(index.kneighbors(encode(frame))[0][:, 0]))
        for name, frame in tables.items()
    }
