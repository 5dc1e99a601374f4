"""Candidates from several public instructions (``candidate_styles``), with the fake backend:
which prompts the candidates get, the choice by the noisy sum, and the unchanged privacy."""

from __future__ import annotations

import numpy as np
import pytest

import fedsynth
from fedsynth.text.backends import FakeBackend
from fedsynth.text.prompts import CLINICAL_STYLES, DEFAULT_INSTRUCTION, candidate_bases

from .test_dp_icl import DP, HashEmbedder, private_notes
from .test_shared_esa import SeedRecorder, is_private_call

STYLES = ["Write a consult letter.", "Write a discharge summary.", "Write in shorthand."]
ROW = {"age": 70, "sex": "M", "hb": 9.1}


def styled_gen(backend, **params):
    params = {"dp": DP, "n_prompts": 4, "candidates": 8, "max_tokens": 30, "seed": 0, **params}
    gen = fedsynth.make("dp_icl", **params)
    return gen.set_backend(backend, embedder=HashEmbedder())


def test_candidates_cycle_through_the_public_instructions():
    recorder = SeedRecorder()
    gen = styled_gen(recorder, candidate_styles=STYLES).fit(private_notes())
    gen.sample(2, conditions=ROW)
    bases = [DEFAULT_INSTRUCTION, *STYLES]
    asked = [c for c, _ in recorder.asked if "Example note" not in c]
    assert len(asked) == 2 * 8
    for k, content in enumerate(asked):
        assert content.startswith(bases[(k % 8) % 4]) and "The patient: 70-year-old man" in content
    assert asked[:8] == gen.candidate_instructions(ROW)
    assert gen.release_log_[0]["styles"] == [j % 4 for j in range(8)]


def test_builtin_styles_and_default():
    assert candidate_bases(DEFAULT_INSTRUCTION, "clinical") == [
        DEFAULT_INSTRUCTION,
        *CLINICAL_STYLES,
    ]
    assert candidate_bases("Write.", None) == ["Write."]
    plain = styled_gen(FakeBackend(), candidates=3)
    assert plain.candidate_instructions() == [DEFAULT_INSTRUCTION] * 3


def test_private_notes_never_enter_a_candidate_prompt():
    backend = FakeBackend()
    notes = private_notes()
    gen = styled_gen(backend, candidate_styles="clinical").fit(notes)
    gen.sample(3, conditions=ROW)
    public = set(gen.candidate_instructions(ROW))
    candidate_calls = [c for c in backend.calls if not is_private_call(c)]
    assert len(candidate_calls) == 3 * 8
    for call in candidate_calls:
        assert call[-1]["content"] in public
        assert not any(
            note in m["content"] or "zeta" in m["content"] for note in notes for m in call
        )


def test_the_noisy_sum_chooses_the_style_the_private_answers_point_at():
    # Private answers read like discharge summaries; each candidate reads like its instruction.
    axes = {"summary": 0, "letter": 1, "shorthand": 2, "clinic note": 3}

    def respond(messages, seed):
        prompt = messages[-1]["content"]
        if "Example note" in prompt:
            return f"a discharge summary {seed}"
        return next(f"{word} {seed}" for word in axes if word in prompt)

    class AxisEmbedder:
        def embed(self, texts):
            out = 0.3 * HashEmbedder(8).embed(texts)
            for i, text in enumerate(texts):
                out[i, next(a for w, a in axes.items() if w in text)] += 1.0
            return out

    for dp in (None, {"epsilon": 8.0, "delta": 1e-5}):
        gen = styled_gen(FakeBackend(respond=respond), dp=dp, candidate_styles=STYLES, n_prompts=20)
        gen.set_backend(embedder=AxisEmbedder()).fit(private_notes())
        released = gen.sample(4)
        for note, log in zip(released, gen.release_log_, strict=True):
            # The choice is the largest cosine to the (noisy) sum, whatever the style.
            assert log["chosen"] == int(np.argmax(log["scores"]))
            assert log["style"] == 2 and note.startswith("summary")
        assert all(log["styles"] == [0, 1, 2, 3] * 2 for log in gen.release_log_)


@pytest.mark.parametrize("aggregation", ["per_note", "shared"])
def test_styles_change_neither_the_private_prompts_nor_the_epsilon(aggregation):
    private, spent, sigmas = {}, {}, {}
    for styles in (None, "clinical", STYLES):
        recorder = SeedRecorder()
        gen = styled_gen(recorder, candidate_styles=styles, aggregation=aggregation)
        gen.fit(private_notes()).sample(3, conditions=ROW)
        private[str(styles)] = [(c, s) for c, s in recorder.asked if "Example note" in c]
        spent[str(styles)] = gen.privacy_spent_.epsilon
        sigmas[str(styles)] = [log["sigma"] for log in gen.release_log_]
    assert private["None"] and len(set(map(tuple, private.values()))) == 1
    assert spent == {k: pytest.approx(DP["epsilon"]) for k in spent}
    assert len({tuple(v) for v in sigmas.values()}) == 1 and sigmas["None"][0] > 0


def test_zero_shot_is_the_first_candidate_of_the_default_instruction():
    asked = {}
    for mode in ("esa", "zero_shot"):
        recorder = SeedRecorder()
        gen = styled_gen(recorder, dp=None, candidate_styles="clinical").fit(private_notes())
        gen.sample(2, conditions=ROW, mode=mode)
        asked[mode] = [(c, s) for c, s in recorder.asked if "Example note" not in c]
    assert len(asked["zero_shot"]) == 2
    assert asked["zero_shot"] == [asked["esa"][0], asked["esa"][8]]
    assert all(c.startswith(DEFAULT_INSTRUCTION) for c, _ in asked["zero_shot"])


def test_styles_are_saved_with_the_model(tmp_path):
    gen = styled_gen(FakeBackend(), candidate_styles=STYLES).fit(private_notes())
    loaded = fedsynth.load(gen.save(tmp_path / "model"))
    assert list(loaded.candidate_styles) == STYLES
    assert loaded.candidate_instructions(ROW) == gen.candidate_instructions(ROW)


@pytest.mark.parametrize(
    ("styles", "message"),
    [("fancy", "must be one of"), (["ok", "  "], "positions \\[1\\]"), ([], "empty"), (3, "got 3")],
)
def test_bad_styles_are_named(styles, message):
    with pytest.raises(ValueError, match="candidate_styles"):
        styled_gen(FakeBackend(), candidate_styles=styles).fit(private_notes())
    with pytest.raises(ValueError, match=message):
        candidate_bases("Write.", styles)
