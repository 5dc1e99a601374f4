"""The simulated notes corpus and the fact extractor that reads it back."""

from __future__ import annotations

import pytest

import fedsynth
from fedsynth.exceptions import InvalidDataError
from fedsynth.text.corpus import simulate_notes
from fedsynth.text.facts import (
    extract_facts,
    fact_recall,
    row_consistency,
    row_facts,
    same_fact,
)


def test_one_note_per_row_linked_to_its_patient(cohort, notes):
    assert len(notes) == len(cohort)
    assert notes["patient_id"].tolist() == cohort["patient_id"].tolist()
    assert notes["row"].tolist() == list(range(len(cohort)))
    assert set(notes["kind"]) == {"consult", "discharge"}
    assert notes["text"].str.len().min() > 100


def test_stated_facts_are_the_rows_facts(cohort, notes):
    for (_, row), facts in zip(cohort.iterrows(), notes["facts"], strict=True):
        truth = row_facts(row.to_dict())
        assert {"age", "sex", "ipssm_risk"} <= set(facts)
        for key, value in facts.items():
            assert same_fact(key, truth[key], value), (key, truth[key], value)


def test_notes_vary_in_wording_and_abbreviations(notes):
    text = "\n".join(notes["text"])
    for term in ("Hb", "haemoglobin", "PLT", "platelets", "ANC", "neuts", "BM blasts",
                 "IPSS-M", "g/L", "g/dL"):  # fmt: skip
        assert term in text, term
    assert notes["text"].nunique() == len(notes)
    # Facts are sometimes left out (as in real notes) but the risk group never is.
    assert notes["facts"].map(len).min() < notes["facts"].map(len).max()


def test_same_seed_same_notes(cohort, notes):
    again = simulate_notes(cohort, seed=0)
    assert again["text"].tolist() == notes["text"].tolist()
    assert simulate_notes(cohort, seed=1)["text"].tolist() != notes["text"].tolist()


def test_extractor_recovers_at_least_90_percent_of_stated_facts():
    cohort = fedsynth.datasets.mds_cohort(n=300, seed=3)
    notes = simulate_notes(cohort, seed=3)
    recall = fact_recall(notes["facts"], [extract_facts(t) for t in notes["text"]])
    assert recall >= 0.9


def test_extractor_reads_units_and_abbreviations():
    facts = extract_facts(
        "Reviewed an 81-year-old lady. Bloods: Hb 86 g/L, platelets 23 x10^9/L, neuts 0.4. "
        "Marrow blasts: 12.5%. Very poor risk karyotype. IPSS-M Very-High. "
        "NGS myeloid panel: TP53, BCORL1 mutated."
    )
    assert facts == {
        "age": 81, "sex": "F", "hb": 8.6, "plt": 23.0, "anc": 0.4, "bm_blasts": 12.5,
        "cyto_ipssr": "Very Poor", "ipssm_risk": "Very High", "mutations": ("TP53", "BCORL1"),
    }  # fmt: skip
    assert extract_facts("no pathogenic variants detected")["mutations"] == ()
    assert extract_facts("Patient seen, well.") == {}


def test_consistency_counts_contradictions(cohort, notes):
    row = cohort.iloc[0].to_dict()
    agreeing, stated = row_consistency(notes["text"][0], row)
    assert stated >= 3 and agreeing == stated
    wrong_age = notes["text"][0].replace(f"{row['age']}", f"{row['age'] + 7}", 1)
    agreeing, stated = row_consistency(wrong_age, row)
    assert agreeing == stated - 1


def test_missing_columns_and_unknown_kinds_are_named(cohort):
    with pytest.raises(InvalidDataError) as error:
        simulate_notes(cohort.drop(columns=["hb", "ipssm_risk"]), kinds=("letter",))
    message = str(error.value)
    assert "'hb'" in message and "'ipssm_risk'" in message and "'letter'" in message
