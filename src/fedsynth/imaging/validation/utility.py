"""Image utility: a classifier trained on synthetic images, tested on real ones (TSTR), per label.

For every label column the synthetic and the real images share (a class label with 2 to
:data:`MAX_CLASSES` values, not the site column), a small CNN
(:class:`~fedsynth.imaging.downstream.ImageClassifier`, width 16, ``utility_epochs`` epochs)
is trained twice, on the synthetic images (TSTR) and on the real training images (TRTR, the
reference), and both are tested on the real holdout, which neither the generator nor the
classifiers saw. The value is the mean TSTR AUC over the label columns (one-vs-rest macro AUC
beyond two classes); the score the mean of (TSTR AUC − 0.5) / (TRTR AUC − 0.5), clipped to
[0, 1], over the labels whose real-trained classifier beats chance: 1 when synthetic images
teach as much as real ones. The per-label numbers (AUC, accuracy, sensitivity, specificity of
both) are in the details.

This is a screening classifier for the report; ``benchmarks/imaging.py`` runs the study's
comparison (held-out site, FedAvg, McNemar's test) with the larger default classifier.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedsynth.core.metrics import Metric, Outcome, Skip, clip01
from fedsynth.imaging.downstream import ImageClassifier, evaluate_classifier
from fedsynth.imaging.imageset import ImageSet
from fedsynth.imaging.validation.data import ImageValidationData

#: Label columns with more distinct real values than this are not classified (ages, ids).
MAX_CLASSES = 8
#: Width of the screening classifier (its first stage's channels).
UTILITY_WIDTH = 16


def utility_columns(data: ImageValidationData) -> list[str]:
    """The label columns the utility metric classifies (see the module docstring)."""
    if data.holdout_labels is None or data.real_labels is None or data.synthetic_labels is None:
        return []
    found = []
    for column in data.synthetic_labels.columns:
        if column == data.site_column or column not in data.real_labels.columns:
            continue
        if column not in data.holdout_labels.columns:
            continue
        real = data.real_labels[column]
        if real.isna().any() or data.synthetic_labels[column].isna().any():
            continue
        if 2 <= real.nunique() <= MAX_CLASSES:
            found.append(column)
    return found


def utility_results(data: ImageValidationData) -> dict[str, dict[str, Any]]:
    """TSTR and TRTR results per label column (cached on ``data``)."""
    if "utility" in data.cache:
        return data.cache["utility"]
    found: dict[str, dict[str, Any]] = {}
    real = ImageSet(data.real, data.real_labels)
    synthetic = ImageSet(data.synthetic, data.synthetic_labels)
    holdout = ImageSet(data.holdout, data.holdout_labels)
    for column in utility_columns(data):
        if holdout.labels[column].nunique() < 2:
            continue  # no AUC on one class
        values = set(real.labels[column]) | set(holdout.labels[column])
        classes = sorted(values | set(synthetic.labels[column]), key=str)
        params = {"epochs": data.utility_epochs, "width": UTILITY_WIDTH, "seed": data.seed}
        found[column] = {
            name: evaluate_classifier(
                ImageClassifier(**params).fit(train, column, classes=classes), holdout
            ).to_dict()
            for name, train in (("synthetic", synthetic), ("real", real))
        }
    data.cache["utility"] = found
    return found


class ClassifierUtility(Metric):
    """Train on synthetic images, test on real ones, per label column."""

    name = "classifier_utility"
    family = "utility"
    direction = "higher"
    description = (
        "Mean holdout AUC of a small CNN trained on synthetic images, per label column (TSTR); "
        "score: mean of (TSTR AUC − 0.5) / (AUC trained on real − 0.5), clipped to [0, 1]."
    )

    def _compute(self, data: ImageValidationData) -> Outcome:
        if data.holdout is None:
            raise Skip("needs a real holdout (images that neither generator nor classifier saw)")
        results = utility_results(data)
        if not results:
            raise Skip(
                "no class label shared by the synthetic, real and holdout images "
                f"(2 to {MAX_CLASSES} values, not the site)"
            )
        columns = {c: r["synthetic"]["auc"] for c, r in results.items()}
        ratios = []
        for r in results.values():
            tstr, trtr = r["synthetic"]["auc"], r["real"]["auc"]
            if tstr is not None and trtr is not None and trtr > 0.5:
                ratios.append(clip01((tstr - 0.5) / (trtr - 0.5)))
        finite = [v for v in columns.values() if v is not None]
        value = float(np.mean(finite)) if finite else float("nan")
        details = {
            "per_label": results,
            "trtr_auc": {c: r["real"]["auc"] for c, r in results.items()},
            "classifier_epochs": data.utility_epochs,
        }
        return Outcome(value, float(np.mean(ratios)) if ratios else None, columns, details)
