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

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from fedsynth.exceptions import ImageDataError
from fedsynth.imaging.imageset import ImageSet

if TYPE_CHECKING:
    import torch

#: Images predicted together (bounds the memory of any test set).
PREDICT_BLOCK = 256


def standardise(images: np.ndarray) -> np.ndarray:
    """Each image's channels to zero mean and unit standard deviation (``N x C x H x W``)."""
    images = np.asarray(images, dtype=np.float32)
    mean = images.mean(axis=(2, 3), keepdims=True)
    std = images.std(axis=(2, 3), keepdims=True)
    return (images - mean) / np.maximum(std, 1e-6)


def _network(channels: int, n_classes: int, width: int, groups: int) -> torch.nn.Module:
    from torch import nn

    sizes = (channels, width, 2 * width, 4 * width, 4 * width)
    layers: list[nn.Module] = []
    for c_in, c_out in itertools.pairwise(sizes):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(groups, c_out)]
        layers.append(nn.SiLU())
    return nn.Sequential(
        *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(sizes[-1], n_classes)
    )


def column_values(images: ImageSet, column: str) -> np.ndarray:
    """The values of label ``column`` of ``images``, checked.

    Raises
    ------
    ImageDataError
        When the column is missing or holds missing values.
    """
    if column not in images.labels.columns:
        raise ImageDataError(
            [f"label column {column!r} is not among the labels {list(images.labels.columns)}"]
        )
    values = images.labels[column]
    if values.isna().any():
        raise ImageDataError(
            [f"label column {column!r} has {int(values.isna().sum())} missing value(s)"]
        )
    return values.to_numpy()


class ImageClassifier:
    """A small CNN that predicts one label column of 2-D images (see the module docstring).

    Parameters
    ----------
    epochs : int
        Passes over the training images.
    batch_size : int
    lr : float
        AdamW learning rate.
    weight_decay : float
        AdamW weight decay.
    width : int
        Channels of the first stage (then doubled twice).
    norm_groups : int
        GroupNorm groups (must divide ``width``).
    flip : bool
        Augment with random left-right flips.
    seed : int
        Seeds the weights and the batch order: the same images and seed give the same model.

    Notes
    -----
    Sized on the simulated cohort (64 x 64 x 4, one torch thread): trained on two sites' 672
    slices and tested on the third site's 328, 30 epochs of width 16 took 7 CPU s (IDH AUC
    0.913, tumour type 0.947), 60 epochs of width 32 37 CPU s (0.936, 0.966).

    Examples
    --------
    >>> from fedsynth.imaging import brain_mri_cohort
    >>> train, test = brain_mri_cohort(60, size=32).split(0.5)
    >>> clf = ImageClassifier(epochs=2).fit(train, "idh_mutant")  # doctest: +SKIP
    >>> clf.predict_proba(test).shape  # doctest: +SKIP
    (30, 2)
    """

    def __init__(
        self,
        *,
        epochs: int = 40,
        batch_size: int = 32,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        width: int = 32,
        norm_groups: int = 4,
        flip: bool = True,
        seed: int = 0,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.width = width
        self.norm_groups = norm_groups
        self.flip = flip
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters, as given."""
        names = ("epochs", "batch_size", "lr", "weight_decay", "width", "norm_groups", "flip")
        return {name: getattr(self, name) for name in (*names, "seed")}

    def __repr__(self) -> str:
        fitted = f", column={self.column_!r}" if hasattr(self, "column_") else ""
        return f"ImageClassifier(epochs={self.epochs}, width={self.width}{fitted})"

    # ------------------------------------------------------------------ set-up
    def initialise(self, channels: int, column: str, classes: Sequence[Any]) -> Self:
        """Build the untrained network for ``classes`` of ``column`` (every FedAvg site builds
        the same one from the same seed)."""
        import torch

        classes = list(classes)
        problems = []
        if len(classes) < 2 or len(set(classes)) != len(classes):
            problems.append(f"{column!r} needs at least two distinct classes; got {classes}")
        if self.width < 1 or self.width % self.norm_groups:
            problems.append(f"norm_groups={self.norm_groups} must divide width={self.width}")
        if problems:
            raise ImageDataError(problems)
        self.column_ = column
        self.classes_ = np.asarray(classes, dtype=object)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.network_ = _network(channels, len(classes), self.width, self.norm_groups)
        self.n_rounds_ = 0
        return self

    def _encode(self, images: ImageSet) -> np.ndarray:
        values = column_values(images, self.column_)
        index = {v: i for i, v in enumerate(self.classes_)}
        unknown = sorted({str(v) for v in values if v not in index})
        if unknown:
            raise ImageDataError(
                [
                    f"label column {self.column_!r} has value(s) {unknown} outside the "
                    f"classifier's classes {list(self.classes_)}"
                ]
            )
        return np.array([index[v] for v in values], dtype=np.int64)

    # ------------------------------------------------------------------ training
    def fit(self, images: ImageSet, column: str, *, classes: Sequence[Any] | None = None) -> Self:
        """Train on ``images`` to predict label ``column``.

        Parameters
        ----------
        images : ImageSet
            2-D images with the label column.
        column : str
        classes : sequence, optional
            All values the column can take, in order (default: those in ``images``, sorted);
            pass them when the training images might lack one (e.g. synthetic images).
        """
        values = column_values(images, column)
        if classes is None:
            classes = sorted(set(values.tolist()), key=str)
        self.initialise(images.shape[1], column, classes)
        self.train_epochs(images, int(self.epochs))
        return self

    def train_epochs(self, images: ImageSet, epochs: int) -> float:
        """``epochs`` more epochs on ``images`` (a FedAvg site's local training); returns the
        mean cross-entropy of the last epoch."""
        import torch
        from torch.nn import functional

        if images.is_volume:
            raise ImageDataError(["the classifier takes 2-D images (e.g. axial slices)"])
        data = torch.from_numpy(standardise(images.images))
        target = torch.from_numpy(self._encode(images))
        # A fresh seed per round: sites and rounds draw different batches, reproducibly.
        generator = torch.Generator().manual_seed(self.seed * 7919 + self.n_rounds_)
        optimiser = torch.optim.AdamW(
            self.network_.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay)
        )
        self.network_.train()
        loss_sum = 0.0
        for _ in range(int(epochs)):
            loss_sum = 0.0
            for batch in torch.randperm(len(data), generator=generator).split(self.batch_size):
                x = data[batch]
                if self.flip:
                    flipped = torch.rand(len(batch), generator=generator) < 0.5
                    x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
                loss = functional.cross_entropy(self.network_(x), target[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                loss_sum += loss.item() * len(batch)
        self.n_rounds_ += 1
        self.network_.eval()
        return loss_sum / max(len(data), 1)

    # ------------------------------------------------------------------ prediction
    def predict_proba(self, images: ImageSet | np.ndarray) -> np.ndarray:
        """Class probabilities (``N x classes``, columns in ``classes_`` order)."""
        import torch

        if not hasattr(self, "network_"):
            raise ImageDataError(["the classifier is not trained: call fit first"])
        array = images.images if isinstance(images, ImageSet) else np.asarray(images)
        data = torch.from_numpy(standardise(array))
        self.network_.eval()
        with torch.no_grad():
            parts = [self.network_(b).softmax(dim=1).numpy() for b in data.split(PREDICT_BLOCK)]
        return np.concatenate(parts).astype(np.float64)

    def predict(self, images: ImageSet | np.ndarray) -> np.ndarray:
        """The most probable class of each image (values of ``classes_``)."""
        return self.classes_[self.predict_proba(images).argmax(axis=1)]

    # ------------------------------------------------------------------ weights
    def get_weights(self) -> list[np.ndarray]:
        """The network's parameters and buffers as arrays, in a fixed order."""
        return [v.detach().cpu().numpy().copy() for v in self.network_.state_dict().values()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> Self:
        """Load arrays from :meth:`get_weights` of a classifier built alike."""
        import torch

        state = self.network_.state_dict()
        if len(weights) != len(state):
            raise ImageDataError([f"expected {len(state)} weight arrays, got {len(weights)}"])
        self.network_.load_state_dict(
            {k: torch.as_tensor(np.asarray(w)) for k, w in zip(state, weights, strict=True)}
        )
        return self


def fedavg_classifier(
    sites: Mapping[str, ImageSet] | Sequence[ImageSet],
    column: str,
    *,
    rounds: int = 10,
    local_epochs: int = 4,
    classes: Sequence[Any] | None = None,
    classifier: ImageClassifier | None = None,
) -> ImageClassifier:
    """Train an :class:`ImageClassifier` by FedAvg over the sites' images, in process.

    Each round every site starts from the global weights, trains ``local_epochs`` epochs on its
    own images, and the new global weights are the sites' weights averaged with weights
    proportional to their number of images (McMahan et al. 2017). This is the study's FedAvg
    baseline run in one process to evaluate synthetic images against: not a Flower run, and not
    a model that fedsynth releases.

    Parameters
    ----------
    sites : dict of str to ImageSet, or list of ImageSet
        Each site's images with the label column.
    column : str
        The label to predict.
    rounds, local_epochs : int
        FedAvg rounds, and epochs of local training per round.
    classes : sequence, optional
        All values of the column (default: the sites' values, sorted), known to the server.
    classifier : ImageClassifier, optional
        Whose parameters the sites' and the server's networks take (its ``epochs`` are not
        used: ``rounds`` x ``local_epochs`` are). Default: ``ImageClassifier()``.

    Returns
    -------
    ImageClassifier
        With the final global weights; ``history_`` holds each round's size-weighted mean of
        the sites' last-epoch losses.
    """
    sets = list(sites.values()) if isinstance(sites, Mapping) else list(sites)
    if not sets:
        raise ImageDataError(["FedAvg needs at least one site"])
    if classes is None:
        values = set().union(*(set(column_values(s, column).tolist()) for s in sets))
        classes = sorted(values, key=str)
    params = (classifier or ImageClassifier()).get_params()
    sizes = np.array([len(s) for s in sets], dtype=float)
    server = ImageClassifier(**params).initialise(sets[0].shape[1], column, classes)
    server.history_ = []
    for round_no in range(int(rounds)):
        updates, losses = [], []
        for k, images in enumerate(sets):
            site = ImageClassifier(**params).initialise(images.shape[1], column, classes)
            site.set_weights(server.get_weights())
            site.n_rounds_ = round_no * len(sets) + k  # distinct batch orders per site and round
            losses.append(site.train_epochs(images, int(local_epochs)))
            updates.append(site.get_weights())
        server.set_weights(average_weights(updates, sizes))
        server.history_.append(float(np.dot(losses, sizes) / sizes.sum()))
    server.n_rounds_ = int(rounds)
    return server


def average_weights(
    updates: Sequence[Sequence[np.ndarray]], sizes: Sequence[float]
) -> list[np.ndarray]:
    """The arrays of several models averaged with weights proportional to ``sizes``.

    Examples
    --------
    >>> average_weights([[np.array([0.0])], [np.array([3.0])]], [2, 1])
    [array([1.])]
    """
    shares = np.asarray(sizes, dtype=float) / float(np.sum(sizes))
    out = []
    for arrays in zip(*updates, strict=True):
        mean = sum(np.asarray(a, dtype=np.float64) * s for a, s in zip(arrays, shares, strict=True))
        out.append(np.asarray(mean, dtype=np.asarray(arrays[0]).dtype))
    return out


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
