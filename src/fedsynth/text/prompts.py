"""The public instructions of DP in-context learning, and the facts of a patient row in words.

The instruction is public: it says what to write and, when a note is conditioned on a
(synthetic) patient row, lists that row's facts in a wording :func:`fedsynth.text.facts.
extract_facts` reads back, so that the consistency of the note with its row can be scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedsynth.text.facts import row_facts

#: What every note is about when no row is given (public).
DEFAULT_INSTRUCTION = (
    "Write a short haematology clinic note about an adult patient with a myelodysplastic "
    "syndrome (MDS): presentation, blood counts, bone marrow findings, cytogenetics, "
    "mutations, IPSS-M risk and plan."
)


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
