"""ImageSet: conversion, checks with clear errors, subsets and splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedsynth.exceptions import ImageDataError
from fedsynth.imaging.imageset import ImageSet


def test_defaults_and_float32():
    s = ImageSet(np.zeros((3, 2, 4, 4), np.uint8))
    assert s.images.dtype == np.float32
    assert s.channels == ("channel_0", "channel_1")
    assert s.spacing == (1.0, 1.0)
    assert len(s.labels) == 3 and len(s) == 3
    assert not s.is_volume


def test_every_problem_is_listed_at_once():
    images = np.zeros((2, 2, 4, 4))
    images[1, 0, 0, 0] = np.nan
    with pytest.raises(ImageDataError) as caught:
        ImageSet(
            images,
            pd.DataFrame({"y": [0, 1, 1]}),
            channels=["T1"],
            spacing=(1.0, -1.0),
            orientation=("X", "A"),
            sources=["a.png", "b.png"],
        )
    message = str(caught.value)
    for part in (
        "'b.png'",
        "3 label rows for 2 images",
        "1 channel names",
        "spacing",
        "orientation",
    ):
        assert part in message
    with pytest.raises(ImageDataError, match="N x C x H x W"):
        ImageSet(np.zeros((4, 4)))
    with pytest.raises(ImageDataError, match="distinct"):
        ImageSet(np.zeros((1, 2, 4, 4)), channels=["T1", "T1"])
    with pytest.raises(ImageDataError, match="site column 'hospital'"):
        ImageSet(np.zeros((1, 1, 4, 4)), site_column="hospital")


def test_take_and_stratified_split():
    labels = pd.DataFrame({"y": [0] * 10 + [1] * 10, "site": ["a", "b"] * 10})
    s = ImageSet(
        np.arange(20, dtype=float).reshape(20, 1, 1, 1) * np.ones((1, 1, 2, 2)),
        labels,
        site_column="site",
        sources=[f"f{i}" for i in range(20)],
    )
    train, test = s.split(0.3, seed=1, stratify="y")
    assert len(train) == 14 and len(test) == 6
    assert test.labels["y"].sum() == 3
    assert set(train.sources).isdisjoint(test.sources)
    assert np.all(test.images[:, 0, 0, 0] == [int(f[1:]) for f in test.sources])
    assert set(s.take(s.labels["site"] == "a").sites()) == {"a"}
    with pytest.raises(ImageDataError, match="no site column"):
        ImageSet(np.zeros((1, 1, 2, 2))).sites()
    assert "20 images of 2x2" in repr(s)
