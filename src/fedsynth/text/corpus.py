"""A simulated corpus of haematology notes, written from the rows of the simulated MDS cohort.

No clinical-notes corpus can be shipped, so one is simulated: for each patient row, a consult
letter or a discharge summary that states some of the row's facts, with the variety of real
notes (section order, wording, abbreviations such as Hb, PLT, ANC, BM blasts and IPSS-M, units
g/dL or g/L, facts left out, occasional typos). Each note keeps the facts it states as ground
truth, so that :func:`fedsynth.text.facts.extract_facts` and the consistency of synthetic notes
can be checked. The notes are SIMULATED: they describe simulated patients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.exceptions import InvalidDataError, Problem
from fedsynth.text.facts import row_facts

KINDS: tuple[str, ...] = ("consult", "discharge")
#: Columns that :func:`simulate_notes` needs in the rows (the genes are optional).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "age",
    "sex",
    "hb",
    "plt",
    "anc",
    "bm_blasts",
    "cyto_ipssr",
    "ipssm_risk",
)
_TYPO_RATE = 0.25  # share of notes with one typo in a word (as in dictated, hurried notes)
_OMIT_RATE = 0.12  # chance that a note leaves out a given optional fact


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _number(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class _Writer:
    """Phrases for one note; records what the note states as it writes it."""

    def __init__(self, facts: dict[str, Any], rng: np.random.Generator):
        self.rng = rng
        self.available = facts
        self.stated: dict[str, Any] = {}

    def has(self, key: str, optional: bool = True) -> bool:
        if key not in self.available:
            return False
        return not (optional and self.rng.random() < _OMIT_RATE)

    def person(self) -> str:
        age, sex = self.available["age"], self.available["sex"]
        self.stated.update(age=age, sex=sex)
        noun = _pick(self.rng, ["man", "gentleman"] if sex == "M" else ["woman", "lady"])
        article = "an" if str(age).startswith("8") or age in (11, 18) else "a"
        return _pick(
            self.rng,
            [
                f"{article} {age}-year-old {noun}",
                f"{age}{sex}",
                f"a {noun} aged {age}",
                f"{age} y/o {noun}",
            ],
        )

    def counts(self) -> list[str]:
        parts = []
        if self.has("hb"):
            hb = self.available["hb"]
            self.stated["hb"] = round(hb, 1)
            if self.rng.random() < 0.3:
                parts.append(f"{_pick(self.rng, ['Hb', 'haemoglobin'])} {round(hb * 10):d} g/L")
            else:
                label = _pick(self.rng, ["Hb", "Hb", "haemoglobin", "Hgb"])
                parts.append(f"{label} {_number(hb, 1)} g/dL")
        if self.has("plt"):
            self.stated["plt"] = float(round(self.available["plt"]))
            label = _pick(self.rng, ["PLT", "Plt", "platelets", "platelet count"])
            unit = _pick(self.rng, [" x10^9/L", "", " x 10^9/L"])
            parts.append(f"{label} {round(self.available['plt']):d}{unit}")
        if self.has("anc"):
            anc = round(self.available["anc"], 2)
            self.stated["anc"] = anc
            label = _pick(self.rng, ["ANC", "ANC", "neutrophils", "neuts"])
            parts.append(f"{label} {_number(anc, 2)}")
        return parts

    def blasts(self) -> str | None:
        if not self.has("bm_blasts"):
            return None
        value = round(self.available["bm_blasts"], 1)
        self.stated["bm_blasts"] = value
        text = _number(value, 1)
        return _pick(
            self.rng,
            [
                f"BM blasts {text}%",
                f"the marrow aspirate showed {text}% blasts",
                f"{text}% bone marrow blasts",
                f"marrow blasts: {text}%",
            ],
        )

    def cytogenetics(self) -> str | None:
        if not self.has("cyto_ipssr"):
            return None
        category = self.available["cyto_ipssr"]
        self.stated["cyto_ipssr"] = category
        lower = category.lower()
        return _pick(
            self.rng,
            [
                f"{lower} risk karyotype",
                f"cytogenetics: {category}",
                f"IPSS-R cytogenetic risk {lower}",
                f"{lower} risk cytogenetics",
            ],
        )

    def mutations(self) -> str | None:
        if not self.has("mutations"):
            return None
        genes = self.available["mutations"]
        self.stated["mutations"] = tuple(genes)
        if not genes:
            return _pick(
                self.rng,
                ["NGS myeloid panel: no pathogenic variants detected", "no mutations on NGS"],
            )
        listed = ", ".join(genes)
        return _pick(
            self.rng,
            [
                f"NGS myeloid panel: {listed} mutated",
                f"mutations in {listed} on the myeloid panel",
                f"variants found: {listed}",
            ],
        )

    def risk(self) -> str | None:
        if not self.has("ipssm_risk", optional=False):
            return None
        category = self.available["ipssm_risk"]
        self.stated["ipssm_risk"] = category
        hyphenated = category.replace(" ", "-")
        return _pick(
            self.rng,
            [
                f"IPSS-M risk category: {category}",
                f"IPSS-M {hyphenated}",
                f"{category.lower()} risk by IPSS-M",
            ],
        )


def _plan(facts: dict[str, Any], rng: np.random.Generator) -> str:
    high = facts.get("ipssm_risk") in ("Moderate High", "High", "Very High")
    if high and facts.get("age", 99) < 75:
        return _pick(
            rng,
            [
                "Discussed at MDT for azacitidine and HLA typing for allograft.",
                "Plan: start azacitidine; refer for transplant assessment.",
            ],
        )
    if high:
        return _pick(
            rng,
            [
                "Plan: azacitidine 7-day cycles, review after 4 cycles.",
                "We agreed to start hypomethylating therapy.",
            ],
        )
    if facts.get("hb", 12) < 8:
        return _pick(
            rng,
            [
                "Transfusion dependent; start ESA and consider luspatercept.",
                "Red cell transfusion given; iron studies requested.",
            ],
        )
    return _pick(
        rng,
        [
            "Plan: watch and wait with FBC every 3 months.",
            "No treatment needed at present; review in clinic in 3 months.",
        ],
    )


def _bare(person: str) -> str:
    """``"an 81-year-old lady"`` without its article, to follow "this"."""
    return person.removeprefix("an ").removeprefix("a ")


def _consult(w: _Writer, rng: np.random.Generator) -> str:
    person = w.person()
    counts = w.counts()
    items = [x for x in (w.blasts(), w.cytogenetics(), w.mutations()) if x]
    rng.shuffle(items)
    risk = w.risk()
    lines = [
        _pick(rng, ["Dear Dr Patel,", "Dear Colleague,", "Dear Dr Okafor,"]),
        "",
        _pick(
            rng,
            [
                f"Thank you for referring this {_bare(person)} with cytopenias.",
                f"I saw {person} in the MDS clinic today.",
                f"Reviewed {person} with suspected MDS.",
            ],
        ),
    ]
    if counts:
        lines.append(
            _pick(rng, ["FBC today: ", "Bloods: ", "Recent counts: "]) + ", ".join(counts) + "."
        )
    if items:
        lines.append(
            _pick(rng, ["Work-up: ", "Marrow and genetics: ", ""]) + "; ".join(items) + "."
        )
    if risk:
        lines.append(risk[0].upper() + risk[1:] + ".")
    lines += [
        _plan(w.stated, rng),
        "",
        _pick(rng, ["Yours sincerely,", "Kind regards,"]),
        "Haematology registrar",
    ]
    return "\n".join(lines)


def _discharge(w: _Writer, rng: np.random.Generator) -> str:
    person = w.person()
    sections = {
        "Bloods on admission": ", ".join(w.counts()),
        "Bone marrow": w.blasts(),
        "Cytogenetics": w.cytogenetics(),
        "Molecular": w.mutations(),
        "Risk": w.risk(),
    }
    order = list(sections)
    head, tail = order[:1], order[1:]
    rng.shuffle(tail)
    lines = [
        _pick(rng, ["DISCHARGE SUMMARY", "Discharge summary - Haematology"]),
        f"Patient: {person}",
        "Diagnosis: " + _pick(rng, ["MDS", "myelodysplastic syndrome", "MDS with cytopenias"]),
        "Reason for admission: "
        + _pick(
            rng, ["symptomatic anaemia", "neutropenic fever", "bleeding with thrombocytopenia"]
        ),
    ]
    for name in head + tail:
        if sections[name]:
            lines.append(f"{name}: {sections[name]}")
    lines.append("Plan: " + _plan(w.stated, rng).removeprefix("Plan: "))
    return "\n".join(lines)


def _typo(text: str, rng: np.random.Generator, protected: set[str]) -> str:
    words = text.split(" ")
    candidates = [
        i
        for i, word in enumerate(words)
        if word.isalpha() and len(word) >= 5 and word not in protected
    ]
    if not candidates:
        return text
    i = candidates[int(rng.integers(len(candidates)))]
    word = words[i]
    j = int(rng.integers(1, len(word) - 1))
    # A swapped pair or a dropped letter: the commonest slips of typed notes.
    words[i] = (
        word[:j] + word[j + 1] + word[j] + word[j + 2 :]
        if rng.random() < 0.5
        else (word[:j] + word[j + 1 :])
    )
    return " ".join(words)


def _check_rows(rows: pd.DataFrame, kinds: Sequence[str]) -> None:
    problems = [
        Problem(c, "is needed to write the notes")
        for c in REQUIRED_COLUMNS
        if c not in rows.columns
    ]
    problems += [
        Problem(None, f"unknown note kind {k!r}; known: {list(KINDS)}")
        for k in kinds
        if k not in KINDS
    ]
    if not kinds:
        problems.append(Problem(None, f"kinds is empty; give some of {list(KINDS)}"))
    if problems:
        raise InvalidDataError(problems)


def simulate_notes(rows: pd.DataFrame, seed: int = 0, kinds: Sequence[str] = KINDS) -> pd.DataFrame:
    """One simulated haematology note per patient row.

    Parameters
    ----------
    rows : DataFrame
        Patients of the simulated MDS cohort (:func:`fedsynth.datasets.mds_cohort`), or any table
        with its columns: ``age``, ``sex``, ``hb``, ``plt``, ``anc``, ``bm_blasts``,
        ``cyto_ipssr``, ``ipssm_risk`` and the gene flags (optional), with ``patient_id``
        optional.
    seed : int
        Seed of the wording, of the facts left out and of the typos.
    kinds : sequence of {"consult", "discharge"}
        Kinds of note, drawn uniformly for each row.

    Returns
    -------
    DataFrame
        One row per note: ``patient_id`` (the row's, or its position when the table has none),
        ``row`` (position in ``rows``), ``kind``, ``text`` and ``facts`` (the facts the note
        states, a dict in the units of :mod:`fedsynth.text.facts`).

    Examples
    --------
    >>> import fedsynth
    >>> notes = simulate_notes(fedsynth.datasets.mds_cohort(n=20, seed=0), seed=0)
    >>> notes.columns.tolist()
    ['patient_id', 'row', 'kind', 'text', 'facts']
    """
    _check_rows(rows, kinds)
    rng = np.random.default_rng(seed)
    ids = rows["patient_id"].tolist() if "patient_id" in rows.columns else list(range(len(rows)))
    records = []
    for position, (_, row) in enumerate(rows.iterrows()):
        facts = row_facts(row.to_dict())
        kind = _pick(rng, list(kinds))
        writer = _Writer(facts, rng)
        text = _consult(writer, rng) if kind == "consult" else _discharge(writer, rng)
        if rng.random() < _TYPO_RATE:
            text = _typo(text, rng, protected=set(facts.get("mutations", ())))
        records.append((ids[position], position, kind, text, writer.stated))
    return pd.DataFrame(records, columns=["patient_id", "row", "kind", "text", "facts"])
