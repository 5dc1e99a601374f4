"""Grounded notes: a header of the row's facts, and the narrative's contradictions removed."""

from __future__ import annotations

import numpy as np
import pytest

import fedsynth
from fedsynth.text.backends import FakeBackend
from fedsynth.text.facts import extract_facts, row_consistency, row_facts, same_fact
from fedsynth.text.grounding import (
    drop_contradictions,
    fact_header,
    grounded_note,
    least_contradicting,
    narrative_consistency,
)

ROW = {
    "age": 71, "sex": "M", "hb": 9.1, "plt": 45.0, "anc": 1.2, "bm_blasts": 6.0,
    "cyto_ipssr": "Good", "ipssm_risk": "Moderate High", "TET2": 1, "SF3B1": 1, "TP53": 0,
}  # fmt: skip


def test_header_states_every_fact_of_the_row_readably():
    header = fact_header(ROW)
    found = extract_facts(header)
    truth = row_facts(ROW)
    assert set(found) == set(truth)
    assert all(same_fact(k, truth[k], found[k]) for k in truth)
    with pytest.raises(ValueError, match="none of the columns"):
        fact_header({"colour": "blue"})


def test_contradicting_sentences_are_removed_and_counted():
    narrative = (
        "A 64-year-old man was seen today. Hb 9.1 g/dL on arrival. "
        "NGS showed TP53 and TET2 mutations. Fatigue for three months.\nPlan: azacitidine."
    )
    # age and TP53 wrong; sex (man) and Hb right
    assert narrative_consistency(narrative, ROW) == (2, 4)
    body, dropped = drop_contradictions(narrative, ROW)
    assert dropped == 2
    assert "64-year-old" not in body and "TP53" not in body
    assert "Hb 9.1" in body and "Fatigue" in body and "azacitidine" in body
    note = grounded_note(narrative, ROW)
    assert note.startswith(fact_header(ROW))
    agreeing, stated = narrative_consistency(note, ROW)
    assert agreeing == stated == len(row_facts(ROW)) + 1  # the header's facts and Hb again
    assert row_consistency(note, ROW) == (len(row_facts(ROW)), len(row_facts(ROW)))


def test_least_contradicting_keeps_the_best_candidates():
    texts = ["Aged 50, Hb 7.0.", "Aged 71. Hb 7.0.", "Seen in clinic.", "71M, Hb 9.1"]
    assert least_contradicting(texts, ROW) == [2, 3]


class LengthEmbedder:
    """Every text the same direction: the choice is left to the consistency check."""

    def embed(self, texts):
        return np.ones((len(texts), 4)) / 2.0


def test_conditioned_release_keeps_the_candidate_that_agrees():
    private = [f"Private note {i} about marrow and counts." for i in range(8)]

    def respond(messages, seed):
        if "Example note" in messages[-1]["content"]:
            return "Answer of a private prompt."
        return "A 71-year-old man, Hb 9.1." if seed % 4 == 0 else "A 50-year-old woman, Hb 7."

    gen = fedsynth.make("dp_icl", dp=None, n_prompts=2, candidates=6, seed=3)
    gen.set_backend(FakeBackend(respond=respond), embedder=LengthEmbedder()).fit(private)
    (note,) = gen.sample(1, conditions=ROW)
    assert note.startswith(fact_header(ROW))
    assert "50-year-old" not in note
    raw = fedsynth.make("dp_icl", dp=None, grounded=False, n_prompts=2, candidates=1, seed=3)
    raw.set_backend(
        FakeBackend(respond=lambda m, s: "A 50-year-old woman."), embedder=LengthEmbedder()
    )
    assert raw.fit(private).sample(1, conditions=ROW) == ["A 50-year-old woman."]
    with pytest.raises(ValueError, match="grounded must be True or False"):
        fedsynth.make("dp_icl", grounded="yes").fit(private)
