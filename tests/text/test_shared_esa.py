"""The shared-aggregate mode, the projection onto the candidates' span and the signal-to-noise
estimates, with the deterministic fake backend."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fedsynth
from fedsynth.exceptions import NoteDataError
from fedsynth.text.backends import FakeBackend
from fedsynth.text.esa import (
    SENSITIVITY,
    esa_epsilon,
    esa_sigma,
    nearest_candidate,
    shared_prompts,
    signal_to_noise,
    span_projection,
)
from fedsynth.text.metrics import frechet_bootstrap, frechet_distance

from .test_dp_icl import DP, HashEmbedder, ngrams, private_notes


def shared_gen(backend=None, **params):
    params = {
        "dp": DP,
        "n_prompts": 6,
        "candidates": 3,
        "max_tokens": 30,
        "seed": 0,
        "aggregation": "shared",
        **params,
    }
    gen = fedsynth.make("dp_icl", **params)
    return gen.set_backend(backend or FakeBackend(), embedder=HashEmbedder())


def is_private_call(call) -> bool:
    return "Example note" in call[-1]["content"]


class SeedRecorder(FakeBackend):
    """The fake backend, also recording each call's prompt and seed."""

    def __init__(self):
        super().__init__()
        self.asked: list[tuple[str, int]] = []

    def chat(self, messages, *, max_tokens=256, temperature=0.7, seed=0, stop=()):
        self.asked.append((messages[-1]["content"], seed))
        return super().chat(messages, max_tokens=max_tokens, temperature=temperature, seed=seed)


def test_shared_release_is_one_gaussian_mechanism_for_any_number_of_notes():
    backend = FakeBackend()
    gen = shared_gen(backend).fit(private_notes())
    gen.sample(5)
    (spend,) = gen.privacy_spent_.spends
    sigma = esa_sigma(DP["epsilon"], DP["delta"], 1)
    assert spend.details["releases"] == 1 and spend.details["sigma"] == pytest.approx(sigma)
    assert gen.shared_sigma_ == pytest.approx(sigma)
    assert esa_epsilon(sigma, DP["delta"], 1) == pytest.approx(DP["epsilon"], rel=1e-6)
    assert gen.privacy_spent_.epsilon == pytest.approx(DP["epsilon"], rel=1e-9)
    # n_prompts private generations once, then only public candidates.
    private_calls = [c for c in backend.calls if is_private_call(c)]
    assert len(private_calls) == 6 and len(backend.calls) == 6 + 5 * 3
    first = gen.shared_aggregate_.copy()
    gen.sample(4)
    assert len(gen.privacy_spent_.spends) == 1  # reused: post-processing, nothing spent
    assert len([c for c in backend.calls if is_private_call(c)]) == 6
    np.testing.assert_array_equal(gen.shared_aggregate_, first)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_shared_accounting_equals_one_gaussian_mechanism_in_opacus():
    from opacus.accountants import PRVAccountant, RDPAccountant

    gen = shared_gen().fit(private_notes())
    gen.sample(10)
    sigma = gen.shared_sigma_
    # One full-batch step of a Gaussian mechanism, whatever the number of notes.
    history = [(sigma / SENSITIVITY, 1.0, 1)]
    rdp, prv = RDPAccountant(), PRVAccountant()
    rdp.history, prv.history = list(history), list(history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alphas = [1 + x / 10 for x in range(1, 100)] + list(range(12, 1000))
        eps_rdp = rdp.get_epsilon(DP["delta"], alphas=alphas)
    eps_prv = prv.get_epsilon(DP["delta"])
    assert gen.privacy_spent_.epsilon <= eps_rdp <= 1.3 * gen.privacy_spent_.epsilon
    assert eps_prv == pytest.approx(gen.privacy_spent_.epsilon, rel=0.02)


def test_shared_noise_is_calibrated_per_coordinate():
    # The noise of the shared sum: the noisy aggregates of many seeds around the noiseless one.
    clean = shared_gen(dp=None).fit(private_notes())
    clean.sample(1)
    draws = []
    for seed in range(40):
        gen = shared_gen(seed=0).fit(private_notes())
        gen._noise_rng = np.random.default_rng(seed + 100)  # another noise, same prompts
        gen.sample(1)
        draws.append(gen.shared_aggregate_ - clean.shared_aggregate_)
    assert np.std(draws) == pytest.approx(esa_sigma(DP["epsilon"], DP["delta"], 1), rel=0.1)


def test_candidate_is_chosen_by_cosine_to_the_shared_aggregate():
    embedder, recorder = HashEmbedder(), SeedRecorder()
    gen = shared_gen(recorder, dp=None).set_backend(embedder=embedder).fit(private_notes())
    released = gen.sample(3)
    # Noiseless: the aggregate is the sum of the unit embeddings of the 6 private answers.
    private = [
        FakeBackend().chat(call, max_tokens=30, temperature=0.7, seed=seed)
        for call, (_, seed) in zip(recorder.calls[:6], recorder.asked[:6], strict=True)
    ]
    np.testing.assert_allclose(gen.shared_aggregate_, embedder.embed(private).sum(0), atol=1e-6)
    for k, (note, log) in enumerate(zip(released, gen.release_log_, strict=True)):
        candidates = [c for c, _ in recorder.asked[6 + 3 * k : 9 + 3 * k]]
        assert len(candidates) == 3
        scores = embedder.embed([note])[0] @ gen.shared_aggregate_
        assert log["chosen"] == int(np.argmax(log["scores"]))
        assert scores == pytest.approx(max(log["scores"]))
    assert gen.shared_sigma_ == 0.0


def test_released_notes_never_copy_the_private_prompts():
    notes = private_notes()
    backend = FakeBackend()
    released = shared_gen(backend).fit(notes).sample(6)
    private = set().union(*(ngrams(n) for n in notes))
    for text in released:
        assert not ngrams(text) & private and "zeta" not in text
    assert any("zeta" in m["content"] for c in backend.calls if is_private_call(c) for m in c)


def test_shared_prompts_are_row_free_and_disjoint():
    notes = private_notes(12)
    chats = shared_prompts(notes, "Write a note.", 4, seed=0, max_shots=12)
    seen = [n for chat in chats for n in notes if n in chat[-1]["content"]]
    assert sorted(seen) == sorted(notes) and len(chats) == 4
    assert all(chat[-1]["content"].endswith("Write a note.") for chat in chats)


def test_modes_share_the_candidates_of_a_note():
    # The candidates' seeds come from the seed and the note's number only: zero-shot, per-note
    # and shared ESA compare choices among the same public texts.
    notes, row = private_notes(), {"age": 70, "sex": "M"}
    asked = {}
    for name, params, mode in (
        ("per_note", {"aggregation": "per_note"}, "esa"),
        ("shared", {}, "esa"),
        ("zero_shot", {"aggregation": "per_note"}, "zero_shot"),
    ):
        recorder = SeedRecorder()
        shared_gen(recorder, dp=None, **params).fit(notes).sample(3, conditions=row, mode=mode)
        asked[name] = {(c, s) for c, s in recorder.asked if "Example note" not in c}
    shared_candidates = {(c, s) for c, s in asked["shared"] if "The patient: 70" in c}
    assert len(shared_candidates) == 3 * 3
    assert asked["zero_shot"] <= shared_candidates <= asked["per_note"]


def test_saved_shared_aggregate_is_reused_without_private_notes(tmp_path):
    gen = shared_gen().fit(private_notes())
    gen.sample(2)
    loaded = fedsynth.load(gen.save(tmp_path / "model"))
    np.testing.assert_allclose(loaded.shared_aggregate_, gen.shared_aggregate_)
    stored = b"".join(p.read_bytes() for p in (tmp_path / "model").rglob("*") if p.is_file())
    assert b"zeta" not in stored
    loaded.set_backend(FakeBackend(), embedder=HashEmbedder())
    assert len(loaded.sample(2)) == 2
    assert len(loaded.privacy_spent_.spends) == 1
    # Per-note ESA needs the notes again.
    loaded.set_params(aggregation="per_note")
    with pytest.raises(NoteDataError, match="fit again"):
        loaded.sample(1)


def test_shared_release_is_charged_before_any_generation():
    seen = []
    gen = shared_gen(dp=DP).fit(private_notes())

    def respond(messages, seed):
        seen.append(gen.privacy_spent_.epsilon)
        return messages[-1]["content"][:80]

    gen.set_backend(FakeBackend(respond=respond)).sample(2)
    assert seen and seen[0] == pytest.approx(DP["epsilon"])


def test_bad_aggregation_is_named():
    with pytest.raises(ValueError, match="aggregation must be one of"):
        shared_gen(aggregation="pooled").fit(private_notes())


def test_projection_onto_the_candidates_span_is_post_processing():
    rng = np.random.default_rng(0)
    candidates = rng.normal(size=(4, 384))
    noisy = rng.normal(size=384) * 3
    projected = span_projection(noisy, candidates)
    # A function of the released sum and public candidates only; idempotent; same choice.
    np.testing.assert_allclose(span_projection(projected, candidates), projected, atol=1e-8)
    np.testing.assert_allclose(span_projection(noisy, candidates), projected)
    assert nearest_candidate(projected, candidates) == nearest_candidate(noisy, candidates)
    units = candidates / np.linalg.norm(candidates, axis=1, keepdims=True)
    np.testing.assert_allclose(units @ projected, units @ noisy, rtol=1e-6)
    for _ in range(50):
        v = rng.normal(size=384)
        assert nearest_candidate(span_projection(v, candidates), candidates) == (
            nearest_candidate(v, candidates)
        )


def test_signal_to_noise_estimates_the_noiseless_norms():
    rng = np.random.default_rng(1)
    candidates = rng.normal(size=(4, 384))
    units = candidates / np.linalg.norm(candidates, axis=1, keepdims=True)
    signal = 40 * units[0] + 10 * rng.normal(size=384) / np.sqrt(384)
    inside = span_projection(signal, candidates)
    sigma = 2.0
    reports = [
        signal_to_noise(signal + rng.normal(0, sigma, 384), candidates, sigma=sigma)
        for _ in range(300)
    ]
    assert np.mean([r["signal"] ** 2 for r in reports]) == pytest.approx(signal @ signal, rel=0.1)
    assert np.mean([r["span_signal"] ** 2 for r in reports]) == pytest.approx(
        inside @ inside, rel=0.05
    )
    first = reports[0]
    assert first["span_dim"] == 4 and first["span_noise"] == pytest.approx(sigma * 2)
    assert first["noise"] == pytest.approx(sigma * np.sqrt(384))
    clean = signal_to_noise(signal, candidates, sigma=0.0)
    assert clean["snr"] == np.inf and clean["signal"] == pytest.approx(np.linalg.norm(signal))


def test_frechet_bootstrap_matches_the_distance_and_brackets_it():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(60, 8))
    near, far = rng.normal(size=(20, 8)), rng.normal(0.8, 1.0, size=(20, 8))
    boot = frechet_bootstrap(real, {"near": near, "far": far}, reps=300, seed=0)
    for name, x in (("near", near), ("far", far)):
        assert boot[name]["value"] == pytest.approx(frechet_distance(real, x), rel=1e-6)
        assert boot[name]["low"] < boot[name]["high"] and len(boot[name]["draws"]) == 300
    assert np.mean(boot["far"]["draws"] > boot["near"]["draws"]) > 0.95
    with pytest.raises(ValueError, match="same number"):
        frechet_bootstrap(real, {"a": near, "b": far[:10]})
