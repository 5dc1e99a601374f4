"""The downstream classifier and the study's statistics: metrics on cases with known answers,
McNemar's exact p, a separable toy set, and FedAvg of the classifier's weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import comb

from fedsynth.exceptions import ImageDataError
from fedsynth.imaging.downstream import (
    ImageClassifier,
    average_weights,
    classification_metrics,
    evaluate_classifier,
    fedavg_classifier,
    mcnemar_test,
)
from fedsynth.imaging.imageset import ImageSet

TINY = {"epochs": 12, "width": 4, "norm_groups": 2, "batch_size": 8, "lr": 5e-3}


def _toy(n: int, seed: int) -> ImageSet:
    """Class 1 holds a bright square somewhere, class 0 only noise: separable by any CNN."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0, 0.1, (n, 2, 16, 16)).astype(np.float32)
    label = np.arange(n) % 2
    for i in np.flatnonzero(label):
        r, c = rng.integers(0, 11, 2)
        images[i, :, r : r + 5, c : c + 5] += 2.0
    return ImageSet(images, pd.DataFrame({"spot": label, "site": np.arange(n) % 3}))


def test_binary_metrics_known_answer():
    truth = [0, 0, 0, 1, 1, 1, 1]
    p1 = np.array([0.1, 0.2, 0.6, 0.7, 0.8, 0.9, 0.4])
    result = classification_metrics(truth, np.c_[1 - p1, p1], [0, 1])
    assert result.accuracy == pytest.approx(5 / 7)
    assert result.sensitivity == pytest.approx(3 / 4) and result.specificity == pytest.approx(2 / 3)
    # 12 positive-negative pairs, 11 ordered right (0.4 is below 0.6 only).
    assert result.auc == pytest.approx(11 / 12)
    toy = np.array([[0.6, 0.4], [0.45, 0.55]] * 2)
    separable = classification_metrics([0, 1, 0, 1], toy, [0, 1])
    assert separable.auc == 1.0 and separable.accuracy == 1.0


def test_multiclass_metrics_per_class_and_macro():
    truth = ["a", "a", "b", "b", "c", "c"]
    probabilities = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.5, 0.4, 0.1],
            [0.2, 0.7, 0.1],
            [0.6, 0.3, 0.1],
            [0.1, 0.1, 0.8],
            [0.2, 0.2, 0.6],
        ]
    )
    result = classification_metrics(truth, probabilities, ["a", "b", "c"])
    assert result.accuracy == pytest.approx(5 / 6)
    assert result.per_class["b"]["sensitivity"] == 0.5
    assert result.per_class["a"]["specificity"] == pytest.approx(3 / 4)
    assert result.per_class["c"]["auc"] == 1.0
    assert result.sensitivity == pytest.approx(np.mean([1.0, 0.5, 1.0]))
    assert result.auc == pytest.approx(np.mean([v["auc"] for v in result.per_class.values()]))


def test_mcnemar_is_the_exact_binomial_p_of_the_discordant_pairs():
    # 8 images only the first classifier gets right, 2 only the second, 5 both, 3 neither.
    truth = np.ones(18, int)
    first = np.r_[np.ones(8), np.zeros(2), np.ones(5), np.zeros(3)].astype(int)
    second = np.r_[np.zeros(8), np.ones(2), np.ones(5), np.zeros(3)].astype(int)
    result = mcnemar_test(truth, first, second)
    assert (result.only_first, result.only_second) == (8, 2)
    expected = 2 * sum(comb(10, k) for k in range(3)) / 2**10  # two-sided, p = 1/2
    assert result.p_value == pytest.approx(expected) == pytest.approx(0.109375)
    assert mcnemar_test(truth, first, first).p_value == 1.0


def test_classifier_separates_a_toy_set_and_names_bad_labels():
    import torch

    torch.set_num_threads(1)
    clf = ImageClassifier(**TINY, seed=0).fit(_toy(48, 0), "spot")
    result = evaluate_classifier(clf, _toy(40, 1))
    assert result.auc > 0.95 and result.accuracy > 0.85
    assert clf.predict(_toy(4, 2)).shape == (4,)
    with pytest.raises(ImageDataError, match="'grade' is not among the labels"):
        ImageClassifier(**TINY).fit(_toy(8, 0), "grade")
    with pytest.raises(ImageDataError, match="outside the classifier's classes"):
        ImageClassifier(**TINY).fit(_toy(8, 0), "spot", classes=[0, 2])


def test_fedavg_averages_the_sites_weights_by_size():
    import torch

    torch.set_num_threads(1)
    data = _toy(30, 0)
    sites = [data.take(data.labels["site"] != 2), data.take(data.labels["site"] == 2)]
    params = {**TINY, "seed": 4}
    template = ImageClassifier(**params)
    one_round = fedavg_classifier(sites, "spot", rounds=1, local_epochs=1, classifier=template)
    # The same round by hand: each site from the initial weights, then the weighted average.
    start = ImageClassifier(**params).initialise(2, "spot", [0, 1]).get_weights()
    updates = []
    for k, site in enumerate(sites):
        local = ImageClassifier(**params).initialise(2, "spot", [0, 1]).set_weights(start)
        local.n_rounds_ = k
        local.train_epochs(site, 1)
        updates.append(local.get_weights())
    expected = average_weights(updates, [20, 10])
    for got, want in zip(one_round.get_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(expected[0], (2 * updates[0][0] + updates[1][0]) / 3, rtol=1e-5)
    trained = fedavg_classifier(sites, "spot", rounds=6, local_epochs=2, classifier=template)
    assert len(trained.history_) == 6 and trained.history_[-1] < trained.history_[0]
    assert evaluate_classifier(trained, _toy(40, 1)).auc > 0.9
