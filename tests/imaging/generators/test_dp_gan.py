"""dp_gan: fit and sample, conditions, save/load, DP-SGD epsilon checked by Opacus's RDP
accountant, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import fedsynth
from fedsynth.core.privacy.config import PrivacyConfigError
from fedsynth.exceptions import ConditionError, ImageDataError, ModelFileError
from fedsynth.imaging import brain_mri_cohort
from tests.imaging.generators.conftest import LABEL_VALUES, TINY

DP = {"epsilon": 5.0, "delta": 1e-5}


@pytest.fixture(scope="module")
def private(cohort):
    params = {**TINY["dp_gan"], "label_columns": None, "label_values": LABEL_VALUES}
    gen = fedsynth.make("dp_gan", seed=0, intensity_range=(0.0, 1.6), dp=DP, **params)
    return gen.fit(cohort)


def test_fit_and_sample_without_dp(cohort):
    gen = fedsynth.make("dp_gan", seed=0, **TINY["dp_gan"]).fit(cohort)
    assert gen.privacy_spent_ is None and set(gen.history_[-1]) == {
        "epoch",
        "discriminator",
        "generator",
    }
    out = gen.sample(10, conditions={"tumour_type": "glioblastoma"}, seed=0)
    assert out.shape == (10, 4, 32, 32) and (out.labels["tumour_type"] == "glioblastoma").all()
    np.testing.assert_array_equal(
        out.images, gen.sample(10, {"tumour_type": "glioblastoma"}, 0).images
    )


def test_epsilon_in_the_ledger_matches_an_independent_accountant(private, cohort):
    from opacus.accountants import RDPAccountant

    ledger = private.privacy_spent_
    (spend,) = ledger.spends
    ((noise, rate, steps),) = private.steps_taken()  # the steps DP-SGD really took
    assert [noise, rate, steps] == spend.details["history"][0]
    assert rate == pytest.approx(TINY["dp_gan"]["batch_size"] / len(cohort))
    assert steps == TINY["dp_gan"]["epochs"] * round(len(cohort) / TINY["dp_gan"]["batch_size"])
    accountant = RDPAccountant()
    for _ in range(steps):
        accountant.step(noise_multiplier=noise, sample_rate=rate)
    independent = accountant.get_epsilon(delta=DP["delta"])
    assert ledger.epsilon == pytest.approx(independent, rel=1e-9)
    assert ledger.epsilon <= DP["epsilon"] and ledger.delta == DP["delta"]
    assert all(set(h) == {"epoch"} for h in private.history_), "no loss on real images is kept"


def test_private_model_saves_its_ledger_and_samples_the_same(private, tmp_path):
    expected = private.sample(5, conditions={"idh_mutant": 0}, seed=1)
    loaded = fedsynth.load(private.save(tmp_path / "gan"))
    assert loaded.privacy_spent_.epsilon == private.privacy_spent_.epsilon
    np.testing.assert_array_equal(
        loaded.sample(5, conditions={"idh_mutant": 0}, seed=1).images, expected.images
    )
    assert (expected.labels["idh_mutant"] == 0).all()
    # Every declared combination is a class, even those unseen (oligodendroglioma, IDH 0).
    assert private.schema_.n_classes == 6


def test_a_tampered_model_file_is_refused(private, tmp_path):
    folder = private.save(tmp_path / "gan")
    with np.load(folder / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["weights/generator/embed.weight"][0, 0] += 1.0
    np.savez(folder / "arrays.npz", **arrays)
    with pytest.raises(ModelFileError, match=r"embed\.weight"):
        fedsynth.load(folder)


def test_bad_input_gets_a_clear_error(private, cohort):
    with pytest.raises(ConditionError, match="'tumour_type' takes only"):
        private.sample(2, conditions={"tumour_type": "meningioma"})
    params = {**TINY["dp_gan"], "label_columns": None, "label_values": LABEL_VALUES}
    with pytest.raises(PrivacyConfigError, match="intensity_range"):
        fedsynth.make("dp_gan", dp=DP, **params).fit(cohort)
    with pytest.raises(ImageDataError, match="label column 'grade' is not among the labels"):
        fedsynth.make("dp_gan", **{**params, "label_values": {"grade": [1, 2]}}).fit(cohort)
    odd = brain_mri_cohort(12, size=24, seed=1)
    with pytest.raises(ImageDataError, match="power of two"):
        fedsynth.make("dp_gan", **TINY["dp_gan"]).fit(odd)
    with pytest.raises(ImageDataError, match="not among the declared values"):
        declared = {"tumour_type": ["glioblastoma"], "idh_mutant": [0, 1]}
        fedsynth.make("dp_gan", **{**params, "label_values": declared}).fit(cohort)
    with pytest.raises(ImageDataError, match="intensity_range"):
        fedsynth.make("dp_gan", intensity_range=(1.0, 0.0), **TINY["dp_gan"]).fit(cohort)


def test_sampling_reads_the_moving_average_of_the_generator(cohort):
    import torch

    gen = fedsynth.make("dp_gan", seed=0, **{**TINY["dp_gan"], "epochs": 3}).fit(cohort)
    last = torch.nn.utils.parameters_to_vector(gen.generator_.parameters())
    average = torch.nn.utils.parameters_to_vector(gen.generator_average_.parameters())
    assert not torch.allclose(last, average), "the average lags the oscillating generator"
    out = gen.sample(6, conditions={"idh_mutant": 1}, seed=2)
    with torch.no_grad():  # the last weights are not what sampling reads
        for parameter in gen.generator_.parameters():
            parameter.zero_()
    np.testing.assert_array_equal(out.images, gen.sample(6, {"idh_mutant": 1}, 2).images)
    assert out.shape == (6, 4, 32, 32)
    plain = fedsynth.make("dp_gan", seed=0, average_decay=0.0, **TINY["dp_gan"]).fit(cohort)
    torch.testing.assert_close(
        torch.nn.utils.parameters_to_vector(plain.generator_.parameters()),
        torch.nn.utils.parameters_to_vector(plain.generator_average_.parameters()),
    )
    with pytest.raises(ValueError, match="average_decay"):
        fedsynth.make("dp_gan", average_decay=1.0, **TINY["dp_gan"]).fit(cohort)
