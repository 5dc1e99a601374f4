"""The statistics of the imaging studies' comparisons: accuracy, AUC, sensitivity and
specificity of a classifier, and McNemar's exact test of two classifiers on the same images
(see :mod:`fedsynth.imaging.downstream`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from fedsynth.imaging.downstream.classifier import ImageClassifier, column_values
from fedsynth.imaging.imageset import ImageSet


@dataclass
class Classification:
    """How well a classifier's predictions match the truth on one test set.

    Attributes
    ----------
    accuracy, auc, sensitivity, specificity : float
        For two classes, sensitivity and specificity of the positive (second) class; for more,
        macro means of the per-class one-vs-rest values. ``auc`` is NaN when the test set holds
        one class only.
    classes : list
    per_class : dict
        For more than two classes: ``{class: {"auc", "sensitivity", "specificity"}}``.
    n : int
        Test images.
    """

    accuracy: float
    auc: float
    sensitivity: float
    specificity: float
    classes: list[Any]
    n: int
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        from fedsynth.core.metrics import json_ready

        return json_ready(
            {
                "accuracy": self.accuracy,
                "auc": self.auc,
                "sensitivity": self.sensitivity,
                "specificity": self.specificity,
                "classes": [str(c) for c in self.classes],
                "n": self.n,
                "per_class": self.per_class,
            }
        )


def _one_vs_rest(truth: np.ndarray, predicted: np.ndarray, score: np.ndarray) -> dict[str, float]:
    positives, negatives = truth.sum(), (~truth).sum()
    return {
        "auc": float(roc_auc_score(truth, score)) if positives and negatives else float("nan"),
        "sensitivity": float((predicted & truth).sum() / positives) if positives else float("nan"),
        "specificity": float((~predicted & ~truth).sum() / negatives)
        if negatives
        else float("nan"),
    }


def classification_metrics(
    truth: Sequence[Any] | np.ndarray, probabilities: np.ndarray, classes: Sequence[Any]
) -> Classification:
    """Accuracy, AUC, sensitivity and specificity of class probabilities against the truth.

    Parameters
    ----------
    truth : sequence
        The true class of each image (values of ``classes``).
    probabilities : array (N x len(classes))
        Predicted probabilities, columns in ``classes`` order; the prediction is the argmax.
    classes : sequence
        The classes; with two, the second is the positive class (e.g. ``[0, 1]``: IDH-mutant).

    Examples
    --------
    >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    >>> r = classification_metrics([0, 1, 1, 1], p, [0, 1])
    >>> r.accuracy, r.auc, r.sensitivity, r.specificity
    (0.75, 1.0, 0.6666666666666666, 1.0)
    """
    classes = list(classes)
    truth = np.asarray(truth, dtype=object)
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.shape != (len(truth), len(classes)):
        raise ValueError(
            f"probabilities must be {len(truth)} x {len(classes)}; got {probabilities.shape}"
        )
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(t) for t in truth if t not in index})
    if unknown:
        raise ValueError(f"true classes {unknown} are not among {classes}")
    codes = np.array([index[t] for t in truth], dtype=int)
    predicted = probabilities.argmax(axis=1)
    accuracy = float((predicted == codes).mean())
    per_class = {
        str(c): _one_vs_rest(codes == k, predicted == k, probabilities[:, k])
        for k, c in enumerate(classes)
    }
    if len(classes) == 2:
        positive = per_class[str(classes[1])]
        return Classification(
            accuracy,
            positive["auc"],
            positive["sensitivity"],
            positive["specificity"],
            classes,
            len(truth),
        )

    def macro(key: str) -> float:
        found = [v[key] for v in per_class.values() if np.isfinite(v[key])]
        return float(np.mean(found)) if found else float("nan")

    return Classification(
        accuracy,
        macro("auc"),
        macro("sensitivity"),
        macro("specificity"),
        classes,
        len(truth),
        per_class,
    )


def evaluate_classifier(classifier: ImageClassifier, test: ImageSet) -> Classification:
    """:func:`classification_metrics` of a trained classifier on ``test``'s label column."""
    return classification_metrics(
        column_values(test, classifier.column_), classifier.predict_proba(test), classifier.classes_
    )


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test of two classifiers on the same images.

    Attributes
    ----------
    only_first, only_second : int
        Images that only the first (second) classifier got right: the discordant pairs.
    p_value : float
        Two-sided exact binomial p of ``only_first`` among the discordant pairs at 1/2
        (1 when there are none).
    """

    only_first: int
    only_second: int
    p_value: float


def mcnemar_test(
    truth: Sequence[Any] | np.ndarray,
    first: Sequence[Any] | np.ndarray,
    second: Sequence[Any] | np.ndarray,
) -> McNemar:
    """McNemar's exact test: do two classifiers err on the same images equally often?

    Parameters
    ----------
    truth, first, second : sequence
        The true classes and each classifier's predicted classes, image by image.

    Examples
    --------
    >>> mcnemar_test([1, 1, 1, 0], [1, 1, 0, 0], [0, 1, 1, 1])
    McNemar(only_first=2, only_second=1, p_value=1.0)
    """
    truth, first, second = (np.asarray(a, dtype=object) for a in (truth, first, second))
    if not len(truth) == len(first) == len(second):
        raise ValueError(
            f"truth and predictions must be as long: {len(truth)}, {len(first)}, {len(second)}"
        )
    right_first, right_second = first == truth, second == truth
    b = int((right_first & ~right_second).sum())
    c = int((~right_first & right_second).sum())
    p = 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5).pvalue)
    return McNemar(b, c, p)
