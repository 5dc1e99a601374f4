"""Utility: a model trained on synthetic data, tested on real holdout rows (TSTR).

Each model family is trained twice, on the real training rows (TRTR, the reference) and on the
synthetic rows (TSTR), and both are scored on the holdout, which neither the generator nor the
models saw. Discrete targets are scored by AUROC (one-vs-rest macro average beyond two
classes), numeric targets by R². When the target is the survival event, the duration is left
out of the features (it would leak the follow-up), and the other way round.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from fedsynth.core.metrics import Metric, Outcome, Skip, clip01
from fedsynth.tabular.validation.data import ValidationData

#: Holdout rows used for permutation importances (they refit nothing, but predict many times).
IMPORTANCE_ROWS = 1000
IMPORTANCE_REPEATS = 2
MODEL_FAMILIES = ("gradient_boosting", "logistic_regression")


def _features(data: ValidationData) -> list[str]:
    leaked = set(data.survival) if data.survival and data.target in data.survival else set()
    return [c for c in data.columns if c != data.target and c not in leaked]


def _design(data: ValidationData, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Features as a float matrix: numbers, and labels as codes of the real categories (labels
    the real data lack, and missing labels, are NaN).

    A plain matrix keeps the many predictions of permutation importance cheap.
    """
    columns = []
    for column in features:
        if column in data.numeric:
            columns.append(frame[column].to_numpy(dtype=float))
        else:
            codes = pd.Index(data.categories(column), dtype=object).get_indexer(frame[column])
            columns.append(np.where(codes < 0, np.nan, codes))
    return np.column_stack(columns)


def _model(family: str, data: ValidationData, features: list[str], classify: bool):
    # Gradient boosting splits labels natively, up to 255 levels; beyond, codes are numbers.
    labels = [
        i for i, c in enumerate(features) if c not in data.numeric and len(data.categories(c)) < 255
    ]
    if family == "gradient_boosting":
        cls = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        return cls(
            max_iter=100,
            early_stopping=False,
            categorical_features=labels or None,
            random_state=data.seed,
        )
    numbers = [i for i in range(len(features)) if i not in set(labels)]
    prepare = ColumnTransformer(
        [
            (
                "numbers",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                ),
                numbers,
            ),
            (
                "labels",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                labels,
            ),
        ],
        sparse_threshold=0.0,
    )
    # Newton-Cholesky converges in a few steps on tall one-hot designs, where lbfgs takes many.
    estimator = LogisticRegression(solver="newton-cholesky", max_iter=200) if classify else Ridge()
    return make_pipeline(prepare, estimator)


def _score(model, x: np.ndarray, y: pd.Series, classify: bool, classes: list[str]) -> float:
    if not classify:
        return float(r2_score(y, model.predict(x)))
    fitted = list(model.classes_)
    proba = model.predict_proba(x)
    # A model trained on data lacking a class gives it probability 0.
    full = np.zeros((len(x), len(classes)))
    for j, cls in enumerate(classes):
        if cls in fitted:
            full[:, j] = proba[:, fitted.index(cls)]
    present = [c for c in classes if (y == c).any()]
    if len(present) < 2:
        return float("nan")
    if len(classes) == 2:
        return float(roc_auc_score(y == classes[1], full[:, 1]))
    keep = [classes.index(c) for c in present]
    scores = full[:, keep]
    scores = scores / np.clip(scores.sum(axis=1, keepdims=True), 1e-12, None)
    return float(roc_auc_score(y, scores, multi_class="ovr", labels=present))


def utility_results(data: ValidationData) -> dict:
    """TRTR and TSTR models, their holdout scores and importances (computed once)."""

    def compute() -> dict:
        # Gradient boosting's OpenMP threads spin while waiting; on a small machine shared with
        # other work that makes many short fits and predictions far slower than one thread.
        with threadpool_limits(limits=1, user_api="openmp"):
            return _utility_results(data)

    return data.cached("utility", compute)


def _utility_results(data: ValidationData) -> dict:
    if data.holdout is None:
        raise Skip("needs a real holdout table (rows the generator never saw)")
    if data.target is None:
        raise Skip("no target: name one (target=...) or give the data a survival event")
    target = data.target
    classify = target not in data.numeric
    features = _features(data)
    if not features:
        raise Skip("no feature column besides the target")
    holdout = data.holdout[data.holdout[target].notna()]
    classes = data.categories(target) if classify else []
    if classify:
        if holdout[target].nunique() < 2:
            raise Skip(f"the holdout has a single value of {target!r}: AUROC is undefined")
        classes = [c for c in classes if c in set(data.real[target].dropna())]
        holdout = holdout[holdout[target].isin(classes)]
    outcome: dict = {"target": target, "task": "classification" if classify else "regression"}
    outcome["metric"] = "AUROC" if classify else "R²"
    scores: dict[str, dict[str, float]] = {"real": {}, "synthetic": {}}
    importances: dict[str, np.ndarray] = {}
    x_holdout = _design(data, holdout, features)
    x_importance = x_holdout[:IMPORTANCE_ROWS]
    y_importance = holdout[target].iloc[:IMPORTANCE_ROWS]
    if len(holdout) > IMPORTANCE_ROWS:
        data.note(f"feature importances: {IMPORTANCE_ROWS:,} of {len(holdout):,} holdout rows")
    for source in ("real", "synthetic"):
        train = data.subsample(source, "utility models")
        train = train[train[target].notna()]
        if classify and train[target].nunique() < 2:
            # One class only: every model predicts it; AUROC of a constant is 0.5.
            scores[source] = {family: 0.5 for family in MODEL_FAMILIES}
            importances[source] = np.zeros(len(features))
            continue
        x_train = _design(data, train, features)
        for family in MODEL_FAMILIES:
            model = _model(family, data, features, classify)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x_train, train[target])
            scores[source][family] = _score(model, x_holdout, holdout[target], classify, classes)
            if family == "gradient_boosting":
                importances[source] = permutation_importance(
                    model,
                    x_importance,
                    y_importance,
                    scoring=(
                        (lambda m, x, y: _score(m, x, y, True, classes)) if classify else "r2"
                    ),
                    n_repeats=IMPORTANCE_REPEATS,
                    random_state=data.seed,
                ).importances_mean
    outcome["scores"] = scores
    outcome["importances"] = {
        source: dict(zip(features, values, strict=True)) for source, values in importances.items()
    }
    return outcome


class TSTRPerformance(Metric):
    """Holdout performance of models trained on synthetic data (and, for reference, on real)."""

    name = "tstr_performance"
    family = "utility"
    direction = "higher"
    description = (
        "Holdout AUROC (R² for a numeric target) of gradient boosting and logistic (ridge) "
        "regression trained on synthetic rows, mean over model families; TRTR scores (trained "
        "on real) in the details. Informative; the ratio below is scored."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        results = utility_results(data)
        tstr = results["scores"]["synthetic"]
        details = {k: results[k] for k in ("target", "task", "metric")}
        details["trtr"] = results["scores"]["real"]
        return Outcome(float(np.nanmean(list(tstr.values()))), None, columns=tstr, details=details)


class PerformanceRatio(Metric):
    """TSTR over TRTR performance, per model family."""

    name = "tstr_ratio"
    family = "utility"
    direction = "higher"
    description = (
        "Mean over model families of TSTR / TRTR AUROC (or R²). Score: mean of "
        "(TSTR − 0.5) / (TRTR − 0.5) for AUROC (chance-adjusted, so that a useless model "
        "scores 0), TSTR / TRTR for R², each clipped to [0, 1]."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        results = utility_results(data)
        real, synthetic = results["scores"]["real"], results["scores"]["synthetic"]
        chance = 0.5 if results["task"] == "classification" else 0.0
        ratios, adjusted = {}, []
        for family in MODEL_FAMILIES:
            r, s = real[family], synthetic[family]
            if not (np.isfinite(r) and np.isfinite(s)) or r <= chance:
                continue  # the real-trained model is no better than chance: nothing to match
            ratios[family] = s / r
            adjusted.append(clip01((s - chance) / (r - chance)))
        if not ratios:
            raise Skip("models trained on real data do no better than chance on the holdout")
        value = float(np.mean(list(ratios.values())))
        return Outcome(value, float(np.mean(adjusted)), columns=ratios)


class FeatureImportanceAgreement(Metric):
    """Similarity of permutation importances of the TRTR and TSTR gradient boosting."""

    name = "feature_importance_agreement"
    family = "utility"
    direction = "higher"
    description = (
        f"Cosine similarity of the permutation importances (holdout, {IMPORTANCE_REPEATS} "
        "repeats, negative importances set to 0) of gradient boosting trained on real vs on "
        "synthetic rows: features that matter weigh most, noise-level ones little. Spearman's "
        "ρ and the top-5 overlap are in the details. The score is the value."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        results = utility_results(data)
        real = results["importances"]["real"]
        synthetic = results["importances"]["synthetic"]
        features = list(real)
        a = np.clip([real[f] for f in features], 0.0, None)
        b = np.clip([synthetic[f] for f in features], 0.0, None)
        if len(features) < 2 or not a.any() or not b.any():
            raise Skip("no feature improves the models' holdout performance")
        cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        top = min(5, len(features))
        details = {
            "spearman": float(stats.spearmanr(a, b).statistic),
            f"top_{top}_overlap": len(set(np.argsort(-a)[:top]) & set(np.argsort(-b)[:top])) / top,
            "importances_real": real,
            "importances_synthetic": synthetic,
        }
        return Outcome(cosine, cosine, details=details)


METRICS: tuple[Metric, ...] = (
    TSTRPerformance(),
    PerformanceRatio(),
    FeatureImportanceAgreement(),
)
