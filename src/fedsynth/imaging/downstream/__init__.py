"""Downstream utility of images: a small CNN classifier trained on one image set, tested on
another, and the statistics of the imaging studies' comparisons.

CATphishing (Truong et al. 2025) judged synthetic brain MRI by what a classifier learns from
them: IDH status and tumour type, trained on centralized real images, by FedAvg over the sites'
real images, or on synthetic images only, each tested on a site held out of all training, and
compared by accuracy, AUC, sensitivity, specificity and McNemar's test. This module gives
those pieces:

* :class:`ImageClassifier`: a small convolutional network (four stride-2 stages of 3 x 3
  convolutions, GroupNorm and SiLU, global average pooling, a linear layer), CPU-friendly;
  every image's channels are standardised on their own (zero mean, unit standard deviation per
  image and channel), so scanner gains do not tell sites apart and synthetic images need no
  shared intensity scale; left-right flips augment training (a flip keeps the anterior-
  posterior axis, and so a tumour's lobe);
* :func:`fedavg_classifier`: FedAvg of the classifier's weights over the sites' images,
  weighted by site size, **in process**: an evaluation baseline of the study (what a network
  trained by federated learning on the real images reaches), not a model fedsynth releases,
  and not run over Flower;
* :func:`classification_metrics`: accuracy, AUC (one-vs-rest, macro over the classes present
  for more than two classes), sensitivity and specificity (of the positive class for two
  classes; per class one-vs-rest, and their macro means, for more);
* :func:`mcnemar_test`: McNemar's exact test of two classifiers' predictions on the same images
  (a two-sided binomial test on the discordant pairs).
"""

from fedsynth.imaging.downstream.classifier import (
    ImageClassifier,
    average_weights,
    column_values,
    fedavg_classifier,
    standardise,
)
from fedsynth.imaging.downstream.statistics import (
    Classification,
    McNemar,
    classification_metrics,
    evaluate_classifier,
    mcnemar_test,
)

__all__ = [
    "Classification",
    "ImageClassifier",
    "McNemar",
    "average_weights",
    "classification_metrics",
    "column_values",
    "evaluate_classifier",
    "fedavg_classifier",
    "mcnemar_test",
    "standardise",
]
