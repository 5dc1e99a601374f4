"""The non-published ``aggregation="note_centroid"`` option: one noisy sum of the private notes'
own unit embeddings (sensitivity 1), with the deterministic fake backend."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fedsynth
from fedsynth.core.privacy import PrivacyBudgetError
from fedsynth.core.privacy.mechanisms import gaussian_sigma
from fedsynth.text.backends import FakeBackend
from fedsynth.text.centroid import SENSITIVITY, centroid_sigma, note_centroid
from fedsynth.text.esa import esa_sigma

from .test_dp_icl import DP, HashEmbedder, private_notes


def centroid_gen(backend=None, **params):
    params = {
        "dp": DP,
        "candidates": 3,
        "max_tokens": 30,
        "seed": 0,
        "aggregation": "note_centroid",
        **params,
    }
    gen = fedsynth.make("dp_icl", **params)
    return gen.set_backend(backend or FakeBackend(), embedder=HashEmbedder())


def test_one_gaussian_mechanism_of_sensitivity_one_for_any_number_of_notes():
    gen = centroid_gen().fit(private_notes())
    gen.sample(4)
    gen.sample(3)  # a later call reuses the released vector: post-processing
    (spend,) = gen.privacy_spent_.spends
    sigma = gaussian_sigma(1.0, DP["epsilon"], DP["delta"])
    assert SENSITIVITY == 1.0 and spend.details["sensitivity"] == 1.0
    assert spend.details["sigma"] == pytest.approx(sigma) == gen.shared_sigma_
    assert gen.privacy_spent_.epsilon == pytest.approx(DP["epsilon"], rel=1e-9)
    # Half the noise of a shared ESA sum (sensitivity 2) at the same epsilon.
    assert sigma == pytest.approx(esa_sigma(DP["epsilon"], DP["delta"], 1) / 2)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_spend_equals_one_gaussian_mechanism_in_opacus():
    from opacus.accountants import PRVAccountant

    sigma = centroid_sigma(DP["epsilon"], DP["delta"])
    prv = PRVAccountant()
    prv.history = [(sigma / SENSITIVITY, 1.0, 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert prv.get_epsilon(DP["delta"]) == pytest.approx(DP["epsilon"], rel=0.02)


def test_no_private_note_reaches_the_language_model():
    backend = FakeBackend()
    notes = private_notes()
    centroid_gen(backend).fit(notes).sample(5)
    assert len(backend.calls) == 5 * 3  # the public candidates only
    prompts = [call[-1]["content"] for call in backend.calls]
    assert not any("Example note" in p or any(n in p for n in notes) for p in prompts)


def test_noiseless_vector_is_the_sum_of_the_notes_own_unit_embeddings():
    notes = private_notes()
    gen = centroid_gen(dp=None).fit(notes)
    gen.sample(2)
    expected = HashEmbedder().embed(notes).sum(axis=0)
    np.testing.assert_allclose(gen.shared_aggregate_, expected, atol=1e-6)
    assert gen.shared_sigma_ == 0.0
    # Add/remove one note moves the noiseless sum by that note's unit vector: norm 1.
    fewer = centroid_gen(dp=None).fit(notes[1:])
    fewer.sample(1)
    assert np.linalg.norm(gen.shared_aggregate_ - fewer.shared_aggregate_) == pytest.approx(1.0)


def test_rows_are_scaled_to_norm_one_and_noise_is_calibrated():
    vectors = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]])
    clean = note_centroid(vectors, sigma=0.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(clean, [0.6, -0.2])
    draws = np.stack(
        [note_centroid(vectors, sigma=2.0, rng=np.random.default_rng(s)) for s in range(2000)]
    )
    assert draws.std(axis=0) == pytest.approx([2.0, 2.0], rel=0.06)


def test_release_is_the_candidate_nearest_to_the_vector_and_saved_model_reuses_it(tmp_path):
    gen = centroid_gen().fit(private_notes())
    gen.sample(4)
    for entry in gen.release_log_:
        assert entry["chosen"] == int(np.argmax(entry["scores"]))
    loaded = fedsynth.load(gen.save(tmp_path / "model"))
    np.testing.assert_allclose(loaded.shared_aggregate_, gen.shared_aggregate_)
    loaded.set_backend(FakeBackend(), embedder=HashEmbedder())
    assert len(loaded.sample(2)) == 2 and len(loaded.privacy_spent_.spends) == 1


def test_refused_spend_embeds_nothing():
    class Counting(HashEmbedder):
        calls = 0

        def embed(self, texts):
            Counting.calls += 1
            return super().embed(texts)

    gen = fedsynth.make(
        "dp_icl", dp={**DP, "max_epsilon": 4.0}, aggregation="note_centroid", seed=0
    )
    gen.set_backend(FakeBackend(), embedder=Counting()).fit(private_notes())
    gen.privacy_spent_.charge("an earlier release", "gaussian", 2.0, 0.0)
    with pytest.raises(PrivacyBudgetError, match="max_epsilon=4"):
        gen.sample(1)
    assert Counting.calls == 0 and gen.shared_aggregate_ is None
