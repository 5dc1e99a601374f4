"""latent_diffusion: fit and sample, conditions, seeds, save/load, DP path, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import fedsynth
from fedsynth.core.privacy.config import PrivacyConfigError
from fedsynth.core.progress import EpochDone
from fedsynth.exceptions import ConditionError, ImageDataError, ModelFileError
from fedsynth.imaging import ImageSet
from tests.imaging.generators.conftest import LABEL_VALUES, TINY


@pytest.fixture(scope="module")
def fitted(cohort):
    events = []
    gen = fedsynth.make("latent_diffusion", seed=0, **TINY["latent_diffusion"])
    gen.fit(cohort, progress=events.append)
    return gen, events


def test_fit_reports_every_epoch_and_samples_images_with_labels(fitted, cohort):
    gen, events = fitted
    assert [e.epoch for e in events] == [1, 2, 3] and all(isinstance(e, EpochDone) for e in events)
    assert set(events[0].losses) == {"reconstruction", "kl"} and "diffusion" in events[-1].losses
    out = gen.sample(7, seed=1)
    assert isinstance(out, ImageSet) and out.shape == (7, 4, 32, 32)
    assert out.channels == cohort.channels and out.spacing == cohort.spacing
    assert list(out.labels.columns) == ["tumour_type", "idh_mutant"]
    assert out.labels["idh_mutant"].dtype == cohort.labels["idh_mutant"].dtype
    assert np.isfinite(out.images).all()
    low, high = cohort.images.min(), cohort.images.max()
    assert out.images.min() >= low - 1e-5 and out.images.max() <= high + 1e-5


def test_conditions_hold_on_every_image(fitted):
    gen, _ = fitted
    out = gen.sample(9, conditions={"idh_mutant": 1}, seed=2)
    assert (out.labels["idh_mutant"] == 1).all()
    # Oligodendrogliomas are IDH-mutant by definition: never drawn with idh_mutant=0.
    out = gen.sample(9, conditions={"idh_mutant": 0}, seed=2)
    assert "oligodendroglioma" not in set(out.labels["tumour_type"])
    both = gen.sample(4, conditions={"tumour_type": "astrocytoma", "idh_mutant": 1}, seed=3)
    assert (both.labels["tumour_type"] == "astrocytoma").all()


def test_same_seed_same_images_and_seedless_calls_differ(fitted):
    gen, _ = fitted
    a, b = gen.sample(5, seed=4), gen.sample(5, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(gen.sample(5).images, gen.sample(5).images)


def test_save_load_and_bytes_give_the_same_images(fitted, tmp_path):
    gen, _ = fitted
    expected = gen.sample(6, conditions={"idh_mutant": 1}, seed=5)
    loaded = fedsynth.load(gen.save(tmp_path / "ldm"))
    again = loaded.sample(6, conditions={"idh_mutant": 1}, seed=5)
    np.testing.assert_array_equal(again.images, expected.images)
    assert again.labels.equals(expected.labels)
    copy = type(gen).from_bytes(gen.to_bytes())
    np.testing.assert_array_equal(
        copy.sample(6, conditions={"idh_mutant": 1}, seed=5).images, expected.images
    )
    assert "pickle" not in (tmp_path / "ldm" / "model.json").read_text()


def test_a_tampered_model_file_is_refused(fitted, tmp_path):
    gen, _ = fitted
    folder = gen.save(tmp_path / "ldm")
    with np.load(folder / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    name = next(k for k in arrays if k.startswith("weights/unet/"))
    arrays[name] = arrays[name] + 0.01
    np.savez(folder / "arrays.npz", **arrays)
    with pytest.raises(ModelFileError, match="damaged"):
        fedsynth.load(folder)


def test_bad_input_gets_a_clear_error(fitted, cohort):
    gen, _ = fitted
    with pytest.raises(ConditionError, match=r"'idh_mutant' takes only \[0, 1\]"):
        gen.sample(2, conditions={"idh_mutant": 7})
    with pytest.raises(ConditionError, match="unknown condition column 'grade'"):
        gen.sample(2, conditions={"grade": 4})
    three = ImageSet(cohort.images[:, :3], cohort.labels, channels=cohort.channels[:3])
    with pytest.raises(ImageDataError, match="3 channel"):
        gen.train_local(three, epochs=1)
    with pytest.raises(ImageDataError, match="35 label rows for 36 images"):
        fedsynth.make("latent_diffusion", **TINY["latent_diffusion"]).fit(
            cohort.images, cohort.labels.iloc[:35]
        )
    with pytest.raises(ImageDataError, match="label column 'grade' is not among the labels"):
        fedsynth.make(
            "latent_diffusion", **{**TINY["latent_diffusion"], "label_columns": ["grade"]}
        ).fit(cohort)
    with pytest.raises(ImageDataError, match="N x C x H x W"):
        fedsynth.make("latent_diffusion", **TINY["latent_diffusion"]).fit(cohort.images[0])
    with pytest.raises(ValueError, match="norm_groups=3 must divide"):
        fedsynth.make("latent_diffusion", **{**TINY["latent_diffusion"], "norm_groups": 3}).fit(
            cohort
        )


def test_dp_path_trains_the_unet_privately_on_a_public_autoencoder(cohort, public_cohort):
    params = {**TINY["latent_diffusion"], "label_columns": None, "label_values": LABEL_VALUES}
    dp = {"epsilon": 8.0, "delta": 1e-4}
    gen = fedsynth.make("latent_diffusion", seed=0, dp=dp, **params)
    gen.fit(cohort, public_images=public_cohort)
    ledger = gen.privacy_spent_
    (spend,) = ledger.spends
    assert spend.mechanism == "dp-sgd (rdp)" and "UNet" in spend.what
    assert 0 < ledger.epsilon <= 8.0 * 1.01 and ledger.delta == 1e-4
    noise, rate, steps = spend.details["history"][0]
    assert noise > 0 and rate == pytest.approx(12 / 36) and steps == 2 * 3
    # No loss computed on the private images is kept in the model.
    assert all(set(h) == {"epoch"} for h in gen.history_[1:])
    # Every declared class can be asked for, each drawn alike.
    assert gen.schema_.n_classes == 6 and len(set(gen.schema_.class_weights)) == 1
    out = gen.sample(4, conditions={"tumour_type": "oligodendroglioma"}, seed=0)
    assert out.shape == (4, 4, 32, 32)
    with pytest.raises(PrivacyConfigError, match="public_images"):
        fedsynth.make("latent_diffusion", dp=dp, **params).fit(cohort)
    no_values = {**TINY["latent_diffusion"], "label_columns": ["idh_mutant"]}
    with pytest.raises(PrivacyConfigError, match="label_values"):
        fedsynth.make("latent_diffusion", dp=dp, **no_values).fit(
            cohort, public_images=public_cohort
        )
    with pytest.raises(ImageDataError, match="public_images"):
        fedsynth.make("latent_diffusion", dp=dp, **params).fit(
            cohort, public_images=public_cohort.images[:, :2]
        )


def test_device_auto_and_a_missing_device(cohort):
    import torch

    gen = fedsynth.make(
        "latent_diffusion", seed=0, **{**TINY["latent_diffusion"], "device": "auto"}
    )
    gen.init_from_schema(fedsynth.imaging.generators.ImageSchema.from_images(cohort))
    assert gen.device_.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            fedsynth.make("latent_diffusion", device="cuda").fit(cohort)
