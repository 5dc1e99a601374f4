"""The facts a haematology note states, read back with regular expressions.

:func:`extract_facts` recovers, from the free text of a consult letter or discharge summary,
the facts that tie a note to a patient's row: age, sex, the blood counts (Hb, PLT, ANC), the
marrow blast percentage, the IPSS-R cytogenetic category, the IPSS-M risk category and the
mutated genes. It serves two purposes: checking the simulated corpus against its ground truth,
and scoring the consistency of a synthetic note with the row it was conditioned on
(:func:`row_consistency`).

Fact keys and their units: ``age`` (years, int), ``sex`` (``"F"``/``"M"``), ``hb`` (g/dL),
``plt`` and ``anc`` (10^9/L), ``bm_blasts`` (%), ``cyto_ipssr`` and ``ipssm_risk`` (the category
names of the MDS cohort, e.g. ``"Very Good"``, ``"Moderate High"``), ``mutations`` (sorted tuple
of gene names; empty when the note says none were found).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: Genes of the myeloid NGS panel that the notes name (those of the simulated MDS cohort).
MYELOID_PANEL: tuple[str, ...] = (
    "TET2", "SF3B1", "ASXL1", "SRSF2", "DNMT3A", "RUNX1", "TP53", "U2AF1", "STAG2", "EZH2",
    "ZRSR2", "BCOR", "IDH2", "NRAS", "CBL", "PPM1D", "IDH1", "ETV6", "CUX1", "SETBP1", "KRAS",
    "PHF6", "DDX41", "KMT2A", "BCORL1", "NF1", "JAK2", "NPM1", "FLT3", "WT1", "GATA2", "ETNK1",
)  # fmt: skip
CYTO_CATEGORIES: tuple[str, ...] = ("Very Good", "Good", "Intermediate", "Poor", "Very Poor")
RISK_CATEGORIES: tuple[str, ...] = (
    "Very Low", "Low", "Moderate Low", "Moderate High", "High", "Very High",
)  # fmt: skip
NUMERIC_FACTS: tuple[str, ...] = ("hb", "plt", "anc", "bm_blasts")
FACT_KEYS: tuple[str, ...] = (
    "age", "sex", *NUMERIC_FACTS, "cyto_ipssr", "ipssm_risk", "mutations",
)  # fmt: skip

_NUMBER = r"(\d+(?:\.\d+)?)"
# Words that may sit between a label and its value ("Hb of 9.1", "platelets were 46", "ANC: 1.2").
_JOIN = r"\s*(?:of|was|were|is|at|:|=|-)?\s*(?:of\s*)?"
_AGE = [
    re.compile(r"\b(\d{2,3})[- ]?(?:year|yr)s?[- ]old\b", re.I),
    re.compile(r"\b(?:aged|age)\s*:?\s*(\d{2,3})\b", re.I),
    re.compile(r"\b(\d{2,3})\s*(?:y/?o|yo)\b", re.I),
    re.compile(r"\b(\d{2,3})\s*[MF]\b"),
]
_SEX = [
    (re.compile(r"\b\d{2,3}\s*M\b|\b(?:man|male|gentleman|Mr)\b", re.I), "M"),
    (re.compile(r"\b\d{2,3}\s*F\b|\b(?:woman|female|lady|Mrs|Ms)\b", re.I), "F"),
]
_HB = re.compile(r"\b(?:Hb|Hgb|ha?emoglobin)" + _JOIN + _NUMBER + r"\s*(g/dL|g/L)?", re.I)
_PLT = re.compile(r"\b(?:PLT|Plts?|platelets?(?:\s+count)?)" + _JOIN + _NUMBER, re.I)
_ANC = re.compile(
    r"\b(?:ANC|neuts|neutrophils|(?:absolute\s+)?neutrophil\s+count)" + _JOIN + _NUMBER, re.I
)
_BLASTS = [
    re.compile(r"\b(?:BM|marrow|bone marrow)\s+blasts?" + _JOIN + _NUMBER + r"\s*%", re.I),
    re.compile(_NUMBER + r"\s*%\s*(?:bone marrow\s+|marrow\s+|BM\s+)?blasts", re.I),
    re.compile(r"\bblasts?" + _JOIN + _NUMBER + r"\s*%", re.I),
]
_CYTO_NAME = r"(very[ -]good|good|intermediate|very[ -]poor|poor)"
_CYTO = [
    re.compile(_CYTO_NAME + r"[ -](?:risk\s+)?(?:karyotype|cytogenetics)", re.I),
    re.compile(
        r"\b(?:cytogenetics|karyotype|IPSS-R\s+cytogenetic(?:\s+risk)?(?:\s+group)?)"
        r"\s*(?:risk)?\s*[:\-]?\s*(?:was\s+|is\s+)?" + _CYTO_NAME,
        re.I,
    ),
]
_RISK_NAME = r"(very[ -]low|moderate[ -]low|moderate[ -]high|very[ -]high|low|high)"
_RISK = re.compile(
    r"\bIPSS-?M\b\s*(?:risk\s*)?(?:category|group)?\s*(?::|-|of|was|is)?\s*" + _RISK_NAME, re.I
)
_RISK_AFTER = re.compile(_RISK_NAME + r"[ -]risk\s+(?:by|per|on)\s+(?:the\s+)?IPSS-?M\b", re.I)
_NO_MUTATIONS = re.compile(
    r"\bno\s+(?:pathogenic\s+|somatic\s+|reportable\s+)?(?:variants?|mutations?)\b", re.I
)
_GENE = re.compile(r"\b(" + "|".join(sorted(MYELOID_PANEL, key=len, reverse=True)) + r")\b")


def _category(text: str, names: tuple[str, ...]) -> str:
    wanted = re.sub(r"[ -]+", " ", text).strip().lower()
    return next(name for name in names if name.lower() == wanted)


def extract_facts(note: str) -> dict[str, Any]:
    """The facts a note states, read with regular expressions.

    Parameters
    ----------
    note : str
        A consult letter, discharge summary or any free text.

    Returns
    -------
    dict
        Only the facts found, under the keys of :data:`FACT_KEYS` (units in the module's
        docstring). ``mutations`` is present when genes of :data:`MYELOID_PANEL` are named or
        the note says that no mutation was found.

    Examples
    --------
    >>> extract_facts("74M, Hb 9.1 g/dL, PLT 45, 6% BM blasts; IPSS-M: Moderate High; SF3B1")
    ... # doctest: +NORMALIZE_WHITESPACE
    {'age': 74, 'sex': 'M', 'hb': 9.1, 'plt': 45.0, 'bm_blasts': 6.0,
     'ipssm_risk': 'Moderate High', 'mutations': ('SF3B1',)}
    """
    facts: dict[str, Any] = {}
    for pattern in _AGE:
        if match := pattern.search(note):
            facts["age"] = int(match.group(1))
            break
    for pattern, sex in _SEX:
        if pattern.search(note):
            facts["sex"] = sex
            break
    if match := _HB.search(note):
        value = float(match.group(1))
        # g/L, stated or implied by a value no g/dL haemoglobin reaches.
        facts["hb"] = (
            round(value / 10, 2)
            if (match.group(2) or "").lower() == "g/l" or (value > 25)
            else value
        )
    for key, pattern in (("plt", _PLT), ("anc", _ANC)):
        if match := pattern.search(note):
            facts[key] = float(match.group(1))
    for pattern in _BLASTS:
        if match := pattern.search(note):
            facts["bm_blasts"] = float(match.group(1))
            break
    for pattern in _CYTO:
        if match := pattern.search(note):
            facts["cyto_ipssr"] = _category(match.group(1), CYTO_CATEGORIES)
            break
    if match := _RISK.search(note) or _RISK_AFTER.search(note):
        facts["ipssm_risk"] = _category(match.group(1), RISK_CATEGORIES)
    genes = sorted(set(_GENE.findall(note)), key=MYELOID_PANEL.index)
    if genes:
        facts["mutations"] = tuple(genes)
    elif _NO_MUTATIONS.search(note):
        facts["mutations"] = ()
    return facts


def same_fact(key: str, stated: Any, found: Any) -> bool:
    """Whether two values of one fact agree (numbers to within rounding to the stated digits)."""
    if key in NUMERIC_FACTS:
        return found is not None and math.isclose(float(stated), float(found), abs_tol=0.051)
    if key == "mutations":
        return found is not None and tuple(sorted(stated)) == tuple(sorted(found))
    return stated == found


def fact_recall(stated: Iterable[Mapping[str, Any]], found: Iterable[Mapping[str, Any]]) -> float:
    """Share of the stated facts that were found with the same value.

    Parameters
    ----------
    stated, found : iterables of dict
        Per note, the facts it states (ground truth) and those extracted.

    Returns
    -------
    float
        Correct facts over stated facts (NaN when nothing is stated).
    """
    total = correct = 0
    for truth, extracted in zip(stated, found, strict=True):
        for key, value in truth.items():
            total += 1
            correct += same_fact(key, value, extracted.get(key))
    return correct / total if total else math.nan


def row_facts(row: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of one patient row of the MDS cohort, in the units of :func:`extract_facts`.

    Missing values and columns the row lacks are left out; ``mutations`` holds the panel genes
    whose flag is 1.
    """
    facts: dict[str, Any] = {}
    for key in ("age", "sex", *NUMERIC_FACTS, "cyto_ipssr", "ipssm_risk"):
        value = row.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        facts[key] = (
            int(value) if key == "age" else (float(value) if key in NUMERIC_FACTS else str(value))
        )
    genes = [gene for gene in MYELOID_PANEL if gene in row]
    if genes:
        facts["mutations"] = tuple(g for g in genes if int(row[g]) == 1)
    return facts


def row_consistency(note: str, row: Mapping[str, Any]) -> tuple[int, int]:
    """How many of the facts a note states agree with its conditioning row.

    Returns
    -------
    (agreeing, stated) : tuple of int
        Facts extracted from the note that the row also holds, and how many of those agree.
        A note that contradicts its row (another age, a gene the patient does not carry)
        lowers ``agreeing``; a fact the note leaves out counts in neither.
    """
    truth = row_facts(row)
    found = {k: v for k, v in extract_facts(note).items() if k in truth}
    agreeing = sum(same_fact(k, truth[k], v) for k, v in found.items())
    return agreeing, len(found)
