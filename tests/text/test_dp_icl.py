"""DPICLGenerator with the fake backend and a fake embedder: releases, accounting, files, inputs."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.core.privacy import PrivacyBudgetError, PrivacyConfigError
from fedsynth.exceptions import NoteDataError
from fedsynth.text.backends import FakeBackend
from fedsynth.text.dp_icl import DPICLGenerator
from fedsynth.text.esa import esa_epsilon
from fedsynth.text.prompts import DEFAULT_INSTRUCTION

DP = {"epsilon": 3.0, "delta": 1e-5}


class HashEmbedder:
    """Deterministic unit vectors from a hash of the text."""

    def __init__(self, dimension: int = 16):
        self.dimension = dimension

    def embed(self, texts):
        out = np.empty((len(texts), self.dimension))
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            out[i] = np.random.default_rng(seed).normal(size=self.dimension)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def private_notes(n: int = 24) -> list[str]:
    return [
        f"Patient zeta{i} reviewed today with marrow findings code{i} and plan alpha{i} "
        f"beta{i} gamma{i} delta{i} epsilon{i} omega{i} and follow up in clinic{i}."
        for i in range(n)
    ]


def make_gen(**params) -> DPICLGenerator:
    params = {"dp": DP, "n_prompts": 4, "candidates": 3, "max_tokens": 30, "seed": 0, **params}
    gen = fedsynth.make("dp_icl", **params)
    return gen.set_backend(FakeBackend(), embedder=HashEmbedder())


def ngrams(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = re.findall(r"\S+", text)
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_registered_as_text_generator():
    assert "dp_icl" in fedsynth.available_generators("text")
    assert "dp_icl" not in fedsynth.available_generators("tabular")
    gen = fedsynth.make("dp_icl", dp=DP, shots=4, seed=1)
    assert isinstance(gen, DPICLGenerator) and gen.modality == "text"


def test_sample_returns_n_public_candidates():
    notes = private_notes()
    backend = FakeBackend()
    gen = fedsynth.make("dp_icl", dp=DP, n_prompts=4, candidates=3, seed=0)
    gen.set_backend(backend, embedder=HashEmbedder())
    released = gen.fit(notes).sample(5)
    assert len(released) == 5 and all(isinstance(t, str) and t for t in released)
    # 4 private prompts + 3 zero-shot candidates per note.
    assert len(backend.calls) == 5 * (4 + 3)
    private = set().union(*(ngrams(n) for n in notes))
    public = " ".join(m["content"] for m in backend.calls[-1] if m["role"] != "user")
    public += " " + DEFAULT_INSTRUCTION
    public_grams = ngrams(public) | ngrams(DEFAULT_INSTRUCTION)
    for text in released:
        assert not (ngrams(text) & private) - public_grams
        assert "zeta" not in text
    # The private prompts did see the notes (the fake copies them into their answers).
    assert any("zeta" in m["content"] for call in backend.calls for m in call)


def test_each_note_in_one_prompt_per_release():
    notes = private_notes(12)
    backend = FakeBackend()
    gen = make_gen(shots=12).set_backend(backend)
    gen.fit(notes).sample(1)
    private_calls = backend.calls[:4]
    seen = [note for call in private_calls for note in notes if note in call[-1]["content"]]
    assert sorted(seen) == sorted(notes)


def test_ledger_equals_esa_epsilon_of_n_releases():
    gen = make_gen().fit(private_notes())
    gen.sample(6)
    ledger = gen.privacy_spent_
    (spend,) = ledger.spends
    assert spend.details["releases"] == 6
    expected = esa_epsilon(spend.details["sigma"], DP["delta"], 6)
    assert ledger.epsilon == pytest.approx(expected, rel=1e-6)
    assert ledger.epsilon == pytest.approx(DP["epsilon"], rel=1e-6)
    assert gen.n_released_ == 6


def test_budget_refused_before_any_generation():
    backend = FakeBackend()
    gen = make_gen(dp={**DP, "max_epsilon": 4.0}).set_backend(backend).fit(private_notes())
    gen.sample(2)
    calls = len(backend.calls)
    with pytest.raises(PrivacyBudgetError, match="max_epsilon=4"):
        gen.sample(3)
    assert len(backend.calls) == calls
    assert gen.privacy_spent_.epsilon == pytest.approx(3.0)


def test_zero_shot_spends_nothing_and_icl_needs_no_dp():
    gen = make_gen().fit(private_notes())
    assert len(gen.sample(2, mode="zero_shot")) == 2
    assert gen.privacy_spent_.epsilon == 0
    with pytest.raises(PrivacyConfigError, match="dp=None"):
        gen.sample(1, mode="icl")
    plain = make_gen(dp=None).fit(private_notes())
    assert len(plain.sample(2, mode="icl")) == 2
    assert plain.privacy_spent_ is None
    with pytest.raises(ValueError, match="mode must be one of"):
        plain.sample(1, mode="fewshot")


def test_save_load_holds_no_private_text(tmp_path):
    notes = private_notes()
    gen = make_gen().fit(notes)
    gen.sample(2)
    path = gen.save(tmp_path / "model")
    stored = b"".join(p.read_bytes() for p in path.rglob("*") if p.is_file())
    stored += gen.to_bytes()
    for note in notes:
        assert note.split(" and ")[0].encode() not in stored
    assert b"zeta" not in stored
    loaded = fedsynth.load(path)
    assert loaded.get_params() == gen.get_params()
    assert loaded.privacy_spent_.epsilon == pytest.approx(gen.privacy_spent_.epsilon)
    assert loaded.n_released_ == 2
    loaded.set_backend(FakeBackend(), embedder=HashEmbedder())
    with pytest.raises(NoteDataError, match="fit again"):
        loaded.sample(1)
    assert len(loaded.sample(1, mode="zero_shot")) == 1


def test_conditioning_puts_the_row_facts_in_the_public_prompt():
    echo = FakeBackend(respond=lambda messages, seed: messages[-1]["content"])
    gen = make_gen().set_backend(echo).fit(private_notes())
    row = {"age": 71, "sex": "M", "hb": 9.1, "plt": 45.0, "ipssm_risk": "Low", "TET2": 1}
    (note,) = gen.sample(1, conditions=row)
    for fact in ("71-year-old man", "Hb 9.1 g/dL", "PLT 45", "IPSS-M risk: Low", "TET2"):
        assert fact in note
        assert fact in echo.calls[-1][-1]["content"]
    assert fedsynth.text.facts.row_consistency(note, row)[0] >= 4
    frame = pd.DataFrame([row, {**row, "age": 55, "sex": "F"}])
    notes = gen.sample(2, conditions=frame)
    assert "55-year-old woman" in notes[1] and "71-year-old man" in notes[0]
    with pytest.raises(ValueError, match="one row per note"):
        gen.sample(3, conditions=frame)
    with pytest.raises(ValueError, match="none of the columns"):
        gen.sample(1, conditions={"colour": "blue"})


def test_fit_on_a_frame_pairs_rows_and_notes():
    backend = FakeBackend()
    frame = pd.DataFrame({"text": private_notes(8), "age": range(60, 68), "sex": ["F"] * 8})
    gen = make_gen(dp=None).set_backend(backend).fit(frame)
    gen.sample(1, mode="icl")
    assert "-year-old woman" in backend.calls[-1][-1]["content"]
    with pytest.raises(NoteDataError, match="no column 'note'"):
        make_gen().fit(frame, text_column="note")


def test_progress_reports_every_note(capsys):
    seen = []
    gen = make_gen(verbose=True).fit(private_notes())
    gen.sample(3, progress=lambda done, total, info: seen.append((done, total, info)))
    assert [s[:2] for s in seen] == [(1, 3), (2, 3), (3, 3)]
    assert seen[-1][2]["prompts"] == 3 * (4 + 3)
    assert capsys.readouterr().err.count("[dp_icl] note") == 3


@pytest.mark.parametrize(
    ("notes", "message"),
    [
        ([], "empty"),
        (private_notes(3), "3 note\\(s\\) but n_prompts=4"),
        (["a note", 7, None, "  "], "positions 1, 2, 3"),
        ("one note", "list of strings"),
    ],
)
def test_bad_notes_are_named(notes, message):
    with pytest.raises(NoteDataError, match=message):
        make_gen().fit(notes)


def test_bad_params_are_named():
    with pytest.raises(ValueError, match="n_prompts must be an integer >= 1"):
        make_gen(n_prompts=0).fit(private_notes())
    with pytest.raises(ValueError, match="backend must be one of"):
        make_gen(backend="gpt").fit(private_notes())
    with pytest.raises(TypeError, match="LLMBackend"):
        make_gen().set_backend("local")
    with pytest.raises(fedsynth.exceptions.NotFittedError):
        make_gen().sample(1)
