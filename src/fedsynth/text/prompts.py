"""The public instructions of DP in-context learning, and the facts of a patient row in words.

The instruction is public: it says what to write and, when a note is conditioned on a
(synthetic) patient row, lists that row's facts in a wording :func:`fedsynth.text.facts.
extract_facts` reads back, so that the consistency of the note with its row can be scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fedsynth.text.facts import row_facts

#: What every note is about when no row is given (public).
DEFAULT_INSTRUCTION = (
    "Write a short haematology clinic note about an adult patient with a myelodysplastic "
    "syndrome (MDS): presentation, blood counts, bone marrow findings, cytogenetics, "
    "mutations, IPSS-M risk and plan."
)

#: Public instructions of other common kinds of haematology note, written from general
#: clinical-writing conventions (never from private notes), for candidates that differ in
#: style: ``DPICLGenerator(candidate_styles="clinical")`` cycles its candidates through the
#: generator's instruction and these, so that the noisy aggregate chooses a style as well as a
#: wording (:func:`candidate_bases`).
CLINICAL_STYLES = (
    "Write a short consult letter from the haematology clinic to the referring GP about an "
    "adult patient with a myelodysplastic syndrome (MDS): reason for referral, blood counts, "
    "bone marrow findings, cytogenetics, mutations, IPSS-M risk and the plan agreed, signed "
    "by the haematologist.",
    "Write a short hospital discharge summary for an adult patient with a myelodysplastic "
    "syndrome (MDS): reason for admission, course in hospital, blood counts, bone marrow "
    "findings, cytogenetics, mutations, IPSS-M risk, medication and follow-up.",
    "Write a terse haematology clinic entry in shorthand, as doctors type them: abbreviations "
    "(pt, Hx, FBC, Hb, PLT, ANC, BM, cyto, f/u), short lines, no full sentences: counts, "
    "marrow, cytogenetics, mutations, IPSS-M risk, plan.",
)
#: Names of the built-in sets of candidate styles (``candidate_styles``).
STYLE_SETS = {"clinical": CLINICAL_STYLES}


def candidate_bases(instruction: str, styles: str | Sequence[str] | None) -> list[str]:
    """The public instructions the candidates of a note cycle through, ``instruction`` first.

    Parameters
    ----------
    instruction : str
        The generator's instruction: the private prompts' and the first candidate's (so the
        zero-shot note, the first candidate, is the same with or without styles).
    styles : {"clinical"} or sequence of str, optional
        More public instructions: a built-in set (:data:`STYLE_SETS`) or one's own. ``None``:
        the instruction alone, as published (Wu et al. sample every candidate from one prompt).

    Returns
    -------
    list of str
        ``[instruction, *styles]`` without repeats, in order.

    Raises
    ------
    ValueError
        An unknown set name, or a style that is not a non-blank string (its position named).

    Examples
    --------
    >>> candidate_bases("Write a note.", ["Write a letter.", "Write a note."])
    ['Write a note.', 'Write a letter.']
    """
    if styles is None:
        return [instruction]
    if isinstance(styles, str) or not isinstance(styles, Sequence):
        if styles not in STYLE_SETS:
            raise ValueError(
                f"candidate_styles must be one of {sorted(STYLE_SETS)}, a list of public "
                f"instructions or None, got {styles!r}"
            )
        styles = STYLE_SETS[styles]
    bad = [i for i, s in enumerate(styles) if not (isinstance(s, str) and s.strip())]
    if bad or not len(styles):
        raise ValueError(
            "candidate_styles must hold non-blank strings (public instructions); "
            f"{'positions ' + str(bad) + ' are not' if bad else 'it is empty'}"
        )
    return list(dict.fromkeys([instruction, *styles]))


def style_problems(styles: Any) -> list[str]:
    """What is wrong with a ``candidate_styles`` value (empty when nothing is)."""
    try:
        candidate_bases("instruction", styles)
    except (TypeError, ValueError) as error:
        return [str(error)]
    return []


def describe_facts(facts: Mapping[str, Any]) -> str:
    """The facts of :func:`~fedsynth.text.facts.row_facts` as one line of text.

    Examples
    --------
    >>> describe_facts({"age": 71, "sex": "M", "hb": 9.1, "mutations": ("TET2",)})
    '71-year-old man; Hb 9.1 g/dL; mutations: TET2'
    """
    parts = []
    if "age" in facts and "sex" in facts:
        parts.append(f"{facts['age']}-year-old {'man' if facts['sex'] == 'M' else 'woman'}")
    elif "age" in facts:
        parts.append(f"{facts['age']}-year-old patient")
    elif "sex" in facts:
        parts.append("male patient" if facts["sex"] == "M" else "female patient")
    labels = {
        "hb": "Hb {} g/dL",
        "plt": "PLT {} x10^9/L",
        "anc": "ANC {} x10^9/L",
        "bm_blasts": "BM blasts {}%",
        "cyto_ipssr": "cytogenetics: {}",
        "ipssm_risk": "IPSS-M risk: {}",
    }
    for key, label in labels.items():
        if key in facts:
            value = facts[key]
            parts.append(label.format(f"{value:g}" if isinstance(value, float) else value))
    if "mutations" in facts:
        genes = facts["mutations"]
        parts.append(f"mutations: {', '.join(genes)}" if genes else "no mutations found")
    return "; ".join(parts)


def row_instruction(row: Mapping[str, Any] | None, *, base: str = DEFAULT_INSTRUCTION) -> str:
    """The public instruction of one note, conditioned on ``row`` when given.

    Parameters
    ----------
    row : mapping, optional
        A patient row with the MDS cohort's columns (``age``, ``sex``, ``hb``, ... gene flags).
    base : str
        What to write.

    Raises
    ------
    ValueError
        A row none of whose columns is a fact a note can state.
    """
    if row is None:
        return base
    facts = row_facts(row)
    if not facts:
        raise ValueError(
            "the conditioning row has none of the columns a note states (age, sex, hb, plt, "
            f"anc, bm_blasts, cyto_ipssr, ipssm_risk, gene flags); its keys are {list(row)}"
        )
    return f"{base}\nThe patient: {describe_facts(facts)}.\nState these facts exactly."


def shot_text(note: str, row: Mapping[str, Any] | None) -> str:
    """A private example note, preceded by its patient's facts when its row is known."""
    facts = row_facts(row) if row is not None else {}
    if not facts:
        return note
    return f"The patient: {describe_facts(facts)}.\n{note}"
