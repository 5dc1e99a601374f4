"""Notes that agree with their patient row: a public header of the row's facts and a checked
narrative.

A small model (SmolLM2-135M) ignores most of the facts an instruction lists: it writes another
age, another count, genes the patient does not carry. A conditioned note is therefore built
from two public parts, neither of which reads a private note:

1. a structured **header** written from the row by a template (:func:`fact_header`), which
   states every fact the row holds, in the wording :func:`~fedsynth.text.facts.extract_facts`
   reads back;
2. the model's **narrative** (a zero-shot candidate, written from the public instruction and
   the row), from which every sentence that states a fact contradicting the row is removed
   (:func:`drop_contradictions`).

Among the candidates of one release, those whose narratives contradict the row least are kept
(:func:`least_contradicting`) before the noisy aggregate of ESA chooses: a choice among public
texts by a public check, so no privacy is spent on it. :func:`narrative_consistency` measures
what the model itself got right, before any sentence was removed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from fedsynth.text.facts import extract_facts, row_facts, same_fact
from fedsynth.text.prompts import describe_facts

#: Where a note splits into sentences: line ends, semicolons and full stops before a space
#: (so "9.1" and "x10^9/L" stay whole).
_SENTENCE_END = re.compile(r"\n+|;\s*|(?<=[.!?])\s+")


def fact_header(row: Mapping[str, Any]) -> str:
    """The row's facts as the first line of a note.

    Examples
    --------
    >>> fact_header({"age": 71, "sex": "M", "hb": 9.1, "TET2": 1, "SF3B1": 0})
    'Patient: 71-year-old man; Hb 9.1 g/dL; mutations: TET2.'
    """
    facts = row_facts(row)
    if not facts:
        raise ValueError(
            "the row has none of the columns a note states (age, sex, hb, plt, anc, bm_blasts, "
            f"cyto_ipssr, ipssm_risk, gene flags); its keys are {list(row)}"
        )
    return f"Patient: {describe_facts(facts)}."


def sentences(text: str) -> list[str]:
    """The sentences (and list items) of a note, blanks left out."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def _contradictions(sentence: str, truth: Mapping[str, Any]) -> tuple[int, int]:
    """(facts of ``truth`` this sentence states, how many of them it gets wrong)."""
    found = extract_facts(sentence)
    stated = wrong = 0
    for key, value in found.items():
        if key not in truth:
            continue
        stated += 1
        if key == "mutations":
            # A sentence may name some of the patient's genes; it is wrong when it names one
            # the patient does not carry, or says "no mutation" of a patient who has some.
            carried = set(truth[key])
            wrong += bool(set(value) - carried) or (not value and bool(carried))
        else:
            wrong += not same_fact(key, truth[key], value)
    return stated, wrong


def narrative_consistency(text: str, row: Mapping[str, Any]) -> tuple[int, int]:
    """Facts a text states (sentence by sentence) that agree with the row, and facts stated.

    Stricter than :func:`~fedsynth.text.facts.row_consistency`, which reads each fact once:
    here every sentence's statement counts, so a second, wrong age is caught.
    """
    truth = row_facts(row)
    agreeing = stated = 0
    for sentence in sentences(text):
        s, w = _contradictions(sentence, truth)
        stated += s
        agreeing += s - w
    return agreeing, stated


def drop_contradictions(text: str, row: Mapping[str, Any]) -> tuple[str, int]:
    """The text without the sentences that contradict the row, and how many were removed.

    The kept sentences are joined one per line, in their order.
    """
    truth = row_facts(row)
    kept, dropped = [], 0
    for sentence in sentences(text):
        if _contradictions(sentence, truth)[1]:
            dropped += 1
        else:
            kept.append(sentence)
    return "\n".join(kept), dropped


def least_contradicting(texts: Sequence[str], row: Mapping[str, Any]) -> list[int]:
    """Indices of the texts with the fewest wrong facts (all texts when none states any)."""
    if not texts:
        raise ValueError("no candidate texts")
    wrong = [
        stated - agreeing for agreeing, stated in (narrative_consistency(t, row) for t in texts)
    ]
    fewest = min(wrong)
    return [i for i, w in enumerate(wrong) if w == fewest]


def grounded_note(narrative: str, row: Mapping[str, Any]) -> str:
    """The released note: the row's header, then the narrative without its contradictions."""
    body, _ = drop_contradictions(narrative, row)
    header = fact_header(row)
    return f"{header}\n{body}" if body else header
