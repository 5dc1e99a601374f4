"""dp_gan's warm start on public images: no privacy cost, a real change of the starting
weights, refused mismatches, save/load."""

from __future__ import annotations

import numpy as np
import pytest

import fedsynth
from fedsynth.exceptions import ImageDataError
from fedsynth.imaging import ImageSet, brain_mri_cohort
from fedsynth.imaging.generators._public import public_classes
from tests.imaging.generators.conftest import LABEL_VALUES, TINY

DP = {"epsilon": 5.0, "delta": 1e-5}
PRIVATE = {**TINY["dp_gan"], "label_values": LABEL_VALUES, "intensity_range": (0.0, 1.6)}


def _vector(module):
    import torch

    return torch.nn.utils.parameters_to_vector(module.parameters()).detach().clone()


@pytest.fixture(scope="module")
def warm_private(cohort, public_cohort):
    gen = fedsynth.make("dp_gan", seed=0, dp=DP, public_epochs=2, **PRIVATE)
    return gen.fit(cohort, public_images=public_cohort)


def test_public_pretraining_spends_no_epsilon(warm_private, cohort):
    cold = fedsynth.make("dp_gan", seed=0, dp=DP, **PRIVATE).fit(cohort)
    warm_ledger, cold_ledger = warm_private.privacy_spent_, cold.privacy_spent_
    assert len(warm_ledger.spends) == len(cold_ledger.spends) == 1
    assert warm_ledger.epsilon == cold_ledger.epsilon and warm_ledger.delta == DP["delta"]
    # The same private DP-SGD steps (noise multiplier, sample rate, count), nothing else.
    assert warm_ledger.spends[0].details["history"] == cold_ledger.spends[0].details["history"]
    assert warm_private.steps_taken() == cold.steps_taken()
    assert warm_private.public_pretraining_ == {"images": 24, "epochs": 2}
    assert cold.public_pretraining_ is None
    # Public epochs first, with their losses; the private ones keep none.
    public, private = warm_private.history_[:2], warm_private.history_[2:]
    assert all({"discriminator", "generator"} <= set(h) for h in public)
    assert len(private) == TINY["dp_gan"]["epochs"] and all(set(h) == {"epoch"} for h in private)


def test_warm_start_changes_the_starting_weights(cohort, public_cohort):
    starts = []

    def snapshot(event):  # after the last public epoch: the weights private training starts from
        if len(starts) == 0 and event.epoch == event.epochs:
            starts.append((_vector(gen.generator_), _vector(gen.discriminator_)))

    gen = fedsynth.make("dp_gan", seed=0, public_epochs=2, **TINY["dp_gan"])
    gen.fit(cohort, public_images=public_cohort, progress=snapshot)
    untrained = fedsynth.make("dp_gan", seed=0, **TINY["dp_gan"]).init_from_schema(
        gen.schema_, n_fits=0
    )
    (generator, discriminator), *_ = starts
    assert (generator - _vector(untrained.generator_)).abs().max() > 1e-4
    assert (discriminator - _vector(untrained.discriminator_)).abs().max() > 1e-4
    assert len(gen.history_) == 2 + TINY["dp_gan"]["epochs"]


def test_public_labels_are_read_or_drawn(cohort, public_cohort):
    gen = fedsynth.make("dp_gan", seed=0, **PRIVATE, dp=DP)
    gen.fit(cohort)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(
        public_classes(gen.schema_, public_cohort, rng), gen.schema_.check(public_cohort)
    )
    unlabelled = ImageSet(public_cohort.images, channels=public_cohort.channels)
    drawn = public_classes(gen.schema_, unlabelled, rng)
    assert drawn.shape == (24,) and set(drawn) <= set(range(gen.schema_.n_classes))
    # Unlabelled public images warm-start the model all the same.
    fedsynth.make("dp_gan", seed=0, public_epochs=1, **TINY["dp_gan"]).fit(
        cohort, public_images=unlabelled
    )


def test_mismatched_public_images_are_refused_naming_the_mismatch(cohort, public_cohort):
    gen = fedsynth.make("dp_gan", seed=0, public_epochs=1, **TINY["dp_gan"])
    with pytest.raises(ImageDataError, match=r"public_images have 2 channel\(s\).*have 4"):
        gen.fit(cohort, public_images=public_cohort.images[:, :2])
    small = brain_mri_cohort(8, size=16, seed=5)
    with pytest.raises(ImageDataError, match=r"public_images are 16 x 16 pixels.* 32 x 32"):
        gen.fit(cohort, public_images=small)
    swapped = ImageSet(public_cohort.images, public_cohort.labels, channels=["T2", "T1", "a", "b"])
    with pytest.raises(ImageDataError, match=r"public_images' channels are \['T2'"):
        gen.fit(cohort, public_images=swapped)
    labels = public_cohort.labels.assign(tumour_type="meningioma")
    with pytest.raises(ImageDataError, match="'tumour_type' holds \\['meningioma'\\]"):
        gen.fit(cohort, public_images=ImageSet(public_cohort.images, labels))
    with pytest.raises(TypeError, match="unknown option"):
        gen.fit(cohort, public_image=public_cohort)
    with pytest.raises(ValueError, match="public_epochs"):
        fedsynth.make("dp_gan", public_epochs=-1, **TINY["dp_gan"]).fit(cohort)


def test_warm_started_private_model_round_trips(warm_private, tmp_path):
    expected = warm_private.sample(5, conditions={"idh_mutant": 1}, seed=3)
    loaded = fedsynth.load(warm_private.save(tmp_path / "gan"))
    assert loaded.public_pretraining_ == warm_private.public_pretraining_
    assert loaded.privacy_spent_.epsilon == warm_private.privacy_spent_.epsilon
    np.testing.assert_array_equal(
        loaded.sample(5, conditions={"idh_mutant": 1}, seed=3).images, expected.images
    )
