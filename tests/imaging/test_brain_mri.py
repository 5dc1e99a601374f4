"""The simulated brain MRI cohort: shapes, reproducibility, epidemiology and the label signal."""

from __future__ import annotations

import numpy as np
import pytest

from fedsynth.exceptions import InvalidDataError
from fedsynth.imaging.datasets import SEQUENCES, BrainMRITruth, brain_mri_cohort


@pytest.fixture(scope="module")
def cohort():
    return brain_mri_cohort(400, sites=3, size=32, seed=0, return_truth=True)


def test_shape_labels_and_reproducibility(cohort):
    images, truth = cohort
    assert isinstance(truth, BrainMRITruth)
    assert images.shape == (400, 4, 32, 32)
    assert images.channels == SEQUENCES
    assert images.spacing == (7.5, 7.5)
    assert list(images.labels.columns) == [
        "patient_id",
        "site",
        "age",
        "sex",
        "tumour_type",
        "idh_mutant",
    ]
    assert images.sites().nunique() == 3
    again = brain_mri_cohort(400, sites=3, size=32, seed=0)
    np.testing.assert_array_equal(images.images, again.images)
    other = brain_mri_cohort(400, sites=3, size=32, seed=1)
    assert not np.array_equal(images.images, other.images)


def test_epidemiology(cohort):
    labels = cohort[0].labels
    idh = labels.groupby("tumour_type")["idh_mutant"].mean()
    assert idh["oligodendroglioma"] == 1.0
    assert idh["glioblastoma"] < 0.15 < 0.6 < idh["astrocytoma"]
    age = labels.groupby("idh_mutant")["age"].mean()
    assert age[1] < age[0] - 10


def test_tissue_contrasts_and_label_signal(cohort):
    images, _ = cohort
    x = images.images
    centre = x[:, :, 12:20, 12:20].mean(axis=(2, 3))
    t1, t2, flair = (SEQUENCES.index(s) for s in ("T1", "T2", "FLAIR"))
    # Fluid-filled ventricles and oedema: brighter on T2 than on T1.
    assert centre[:, t2].mean() > centre[:, t1].mean()
    # Enhancement: the T1c - T1 difference is larger in IDH-wildtype tumours.
    enhancement = (x[:, 1] - x[:, 0]).max(axis=(1, 2))
    mutant = images.labels["idh_mutant"].to_numpy() == 1
    assert enhancement[~mutant].mean() > enhancement[mutant].mean() + 0.05
    # ...but the groups overlap: the label is not readable from one number.
    assert np.mean(enhancement[mutant] > np.median(enhancement[~mutant])) > 0.1
    assert x[:, flair].mean() > 0


def test_sites_differ_like_scanners(cohort):
    images, truth = cohort
    assert set(truth.sites["site"]) == set(images.sites())
    assert truth.sites["noise"].nunique() == 3
    background = images.images[:, 0, :2, :2].mean(axis=(1, 2))
    by_site = {s: background[images.sites().to_numpy() == s].mean() for s in truth.sites["site"]}
    noisiest = truth.sites.loc[truth.sites["noise"].idxmax(), "site"]
    quietest = truth.sites.loc[truth.sites["noise"].idxmin(), "site"]
    assert by_site[noisiest] > by_site[quietest]


def test_bad_arguments():
    with pytest.raises(InvalidDataError, match="size"):
        brain_mri_cohort(10, size=8)


def test_idh_is_learnable_but_not_trivially(cohort):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    images, _ = cohort
    x = images.images
    # Intensity quantiles of each sequence and of the enhancement and T2-FLAIR differences.
    maps = np.concatenate([x, x[:, 1:2] - x[:, 0:1], x[:, 2:3] - x[:, 3:4]], axis=1)
    features = np.quantile(maps.reshape(len(x), maps.shape[1], -1), [0.5, 0.9, 0.99], axis=2)
    features = features.transpose(1, 0, 2).reshape(len(x), -1)
    y = images.labels["idh_mutant"].to_numpy()
    model = LogisticRegression(max_iter=2000).fit(features[:250], y[:250])
    auc = roc_auc_score(y[250:], model.predict_proba(features[250:])[:, 1])
    assert 0.7 < auc < 0.97
