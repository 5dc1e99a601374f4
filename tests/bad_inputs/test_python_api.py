"""Bad input through the Python API: files the shared reader must read right or refuse with a
reason, columns inference must not get silently wrong, privacy settings that are not numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import fedsynth
from fedsynth.core.privacy.config import PrivacyConfigError, resolve_dp
from fedsynth.exceptions import DataWarning, InvalidDataError
from fedsynth.tabular.io import detect_dialect, read_table
from tests.bad_inputs.conftest import LATIN1, cohort, european_csv, quiet_infer, write

#: name -> (file name, content, dialect in words, expected columns, a checked cell).
READ_RIGHT = {
    "semicolon": ("a.csv", b"age;sex\n61;F\n70;M\n", "semicolon-separated, decimal point, utf-8",
                  ["age", "sex"], ("age", 1, 70)),
    "semicolon decimal comma": ("a.csv", b"age;hb\n61;12,5\n70;9,8\n",
                                "semicolon-separated, decimal comma, utf-8", ["age", "hb"],
                                ("hb", 0, 12.5)),
    "tab in .csv": ("a.csv", b"age\thb\n61\t12.5\n70\t9.8\n", "tab-separated, decimal point, utf-8",
                    ["age", "hb"], ("hb", 1, 9.8)),
    "pipe": ("a.txt", b"age|sex\n61|F\n70|M\n", "pipe-separated, decimal point, utf-8",
             ["age", "sex"], ("sex", 0, "F")),
    "latin-1": ("a.csv", LATIN1, "semicolon-separated, decimal point, cp1252",
                ["ville", "âge", "hb"], ("ville", 1, "Besançon")),
    "byte-order mark": ("a.csv", b"\xef\xbb\xbfage,sex\n61,F\n70,M\n",
                        "comma-separated, decimal point, utf-8-sig", ["age", "sex"],
                        ("age", 0, 61)),
    "quoted delimiters": ("a.csv", b'drugs,age\n"aza, ven",61\n"len",70\n',
                          "comma-separated, decimal point, utf-8", ["drugs", "age"],
                          ("drugs", 0, "aza, ven")),
    "windows line ends": ("a.csv", b"age;hb\r\n61;12,5\r\n70;9,8\r\n",
                          "semicolon-separated, decimal comma, utf-8", ["age", "hb"],
                          ("hb", 1, 9.8)),
    "tsv": ("a.tsv", b"age\tsex\n61\tF\n", "tab-separated, decimal point, utf-8", ["age", "sex"],
            ("sex", 0, "F")),
}  # fmt: skip


@pytest.mark.parametrize("case", READ_RIGHT, ids=list(READ_RIGHT))
def test_text_tables_are_read_in_their_dialect(tmp_path, case):
    name, content, described, columns, (column, row, value) = READ_RIGHT[case]
    path = write(tmp_path, name, content)
    assert detect_dialect(path).describe() == described
    table = read_table(path)
    assert list(table.columns) == columns
    assert table[column].iloc[row] == value


#: name -> (file name, content, words the message must hold).
REFUSED = {
    "header only": ("h.csv", b"age;sex;hb\n", "'h.csv' has no data rows (3 columns, 0 rows)"),
    "one column": ("one.csv", b"age sex hb\n61 F 12.5\n",
                   "'one.csv' reads as a single column (header 'age sex hb')"),
    "short row": ("r.csv", b"age,sex,hb\n61,F,12.5\n70,M\n",
                  "'r.csv' line 3 has 2 field(s) where the header has 3"),
    "long row": ("r.csv", b"age,sex\n61,F\n70,M,9.8\n",
                 "'r.csv' line 3 has 3 field(s) where the header has 2"),
    "repeated name": ("d.csv", b"age;age\n61;62\n", "'d.csv' repeats the column name(s) ['age']"),
    "empty": ("e.csv", b"", "'e.csv' is empty (0 bytes)"),
    "blank lines": ("b.csv", b"\n\n  \n", "'b.csv' holds no header line"),
    "workbook": ("w.xlsx", b"PK\x03\x04", "'w.xlsx': expected one of .csv"),
}  # fmt: skip


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_unreadable_tables_are_refused_with_the_reason(tmp_path, case):
    name, content, message = REFUSED[case]
    path = write(tmp_path, name, content)
    with pytest.raises(InvalidDataError) as caught:
        read_table(path)
    assert message in str(caught.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InvalidDataError, match=r"nowhere\.csv' does not exist"):
        read_table(tmp_path / "nowhere.csv")


def test_european_export_fits_with_numeric_lab_values_and_the_survival_pair(tmp_path):
    real = cohort()
    table = read_table(write(tmp_path, "eu.csv", european_csv(real)))
    pd.testing.assert_frame_equal(table, real)
    generator = fedsynth.make("gaussian_copula", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generator.fit(table)
    assert generator.metadata_.kinds["hb"] == "numeric"
    assert generator.metadata_.survival == ("os_months", "os_status")
    assert generator.sample(20)["hb"].dtype == np.float64


#: event column name -> (its values: censored, event; the categories expected).
TEXT_EVENTS = {
    "os_status": (["no", "yes"], ["no", "yes"]),
    "vital_status": (["Living", "Deceased"], ["Living", "Deceased"]),
    "death": (["false", "true"], ["false", "true"]),
    "event": (["alive", "dead"], ["alive", "dead"]),
}


@pytest.mark.parametrize("column", TEXT_EVENTS, ids=list(TEXT_EVENTS))
def test_text_events_keep_the_survival_pair(column):
    labels, categories = TEXT_EVENTS[column]
    frame = cohort().drop(columns="os_status")
    frame[column] = [labels[i % 2] for i in range(len(frame))]
    metadata, _ = quiet_infer(frame)
    assert metadata.survival == ("os_months", column)
    assert metadata.columns[column].categories == categories  # second one = the event


def test_a_yes_no_event_is_learned_and_emitted_as_its_labels():
    frame = cohort().assign(os_status=lambda f: np.where(f.os_status == 1, "yes", "no"))
    generator = fedsynth.make("bayesian_network", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generator.fit(frame)
    assert generator.metadata_.survival == ("os_months", "os_status")
    assert set(generator.sample(50)["os_status"]) <= {"no", "yes"}


def test_an_event_coded_1_2_warns_how_to_declare_it():
    frame = cohort().assign(os_status=[(1, 2)[i % 2] for i in range(40)])
    metadata, messages = quiet_infer(frame)
    assert metadata.survival is None
    (message,) = [m for m in messages if "os_status" in m]
    assert "values [1, 2] are not one censored and one event code" in message
    assert "(df['os_status'] == 2).astype(int)" in message
    assert "Metadata.infer(df, duration='os_months', event='os_status_event')" in message
    assert "--duration os_months --event os_status_event" in message


def test_an_event_coded_0_1_2_is_taken_as_competing_risks_with_a_warning():
    frame = cohort().assign(os_status=[i % 3 for i in range(40)])
    metadata, messages = quiet_infer(frame)
    assert metadata.survival == ("os_months", "os_status")
    (message,) = [m for m in messages if "os_status" in m]
    assert "competing-risks event with 2 causes [1, 2] (0 = censored)" in message
    assert "overrides={'os_status': 'categorical', 'os_months': 'numeric'}" in message


def _codes(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).choice(np.arange(1_000_000, 9_999_999), n, replace=False)


@pytest.mark.parametrize(
    "name", ["mrn", "record_no", "hospital_number", "EncounterID", "accession", "nhs_no"]
)
def test_record_numbers_are_identifiers_with_a_warning(name):
    frame = cohort().assign(**{name: _codes(40)})
    metadata, messages = quiet_infer(frame)
    assert metadata.kinds[name] == "identifier"
    (message,) = [m for m in messages if repr(name) in m]
    assert "excluded from learning and never emitted" in message
    assert f"overrides={{{name!r}: 'numeric'}}" in message


def test_random_codes_under_any_name_are_identifiers():
    frame = cohort().assign(ref=_codes(40))
    metadata, messages = quiet_infer(frame)
    assert metadata.kinds["ref"] == "identifier"
    assert any("'ref' looks like an identifier: random codes" in m for m in messages)


def test_unique_integer_measurements_stay_numeric():
    platelets = np.random.default_rng(2).choice(np.arange(20, 450), 40, replace=False)
    metadata, messages = quiet_infer(cohort().assign(platelets=platelets))
    assert metadata.kinds["platelets"] == "numeric"
    assert not [m for m in messages if "platelets" in m]


def test_an_override_keeps_a_record_number():
    metadata, _ = quiet_infer(cohort().assign(mrn=_codes(40)), overrides={"mrn": "numeric"})
    assert metadata.kinds["mrn"] == "numeric"


def test_free_text_is_excluded_with_a_warning():
    words = ["fatigue", "cough", "rash", "fever", "nausea", "pain", "dizziness", "edema"]
    notes = [f"reports {words[i % 8]} after cycle {i % 5} of therapy" for i in range(40)]
    metadata, messages = quiet_infer(cohort().assign(notes=notes))
    assert metadata.kinds["notes"] == "identifier"
    assert any("'notes' looks like an identifier: free text" in m for m in messages)


def test_a_few_long_category_labels_stay_categorical():
    labels = ["refractory anemia with ring sideroblasts", "refractory cytopenia with dysplasia"]
    metadata, _ = quiet_infer(cohort().assign(who=[labels[i % 2] for i in range(40)]))
    assert metadata.kinds["who"] == "categorical"


def test_a_table_exported_as_text_fits_and_comes_back_as_text(tmp_path):
    # What pd.read_csv(dtype=str), a Stata/SPSS export or a string Parquet column gives.
    real = cohort()
    text = real.astype(str).assign(district=[str(1 + i % 24) for i in range(40)])
    table = read_table(write(tmp_path, "t.parquet", text.to_parquet()))
    generator = fedsynth.make("gaussian_copula", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generator.fit(table)
    assert generator.metadata_.kinds["district"] == "categorical"
    assert generator.metadata_.kinds["hb"] == "numeric"
    synthetic = generator.sample(30, seed=0)
    assert (synthetic.dtypes == table.dtypes).all()
    assert synthetic["hb"].str.fullmatch(r"\d+\.\d").all()


def test_stray_text_in_lab_values_is_refused_with_the_values_and_the_fix():
    hb = [f"{v:.1f}" for v in cohort()["hb"]]
    hb[3], hb[7] = "haemolysed", "see note"
    with pytest.raises(InvalidDataError) as caught:
        fedsynth.make("gaussian_copula").fit(cohort().assign(hb=hb))
    assert (
        "column 'hb': expected numbers for a numeric column, found 2 value(s) that are not "
        "numbers, such as 'haemolysed', 'see note'; make them missing or fix them, or declare "
        "the column categorical (overrides={'hb': 'categorical'})"
    ) in str(caught.value)


def test_censored_lab_values_are_read_as_their_bound_with_a_warning():
    crp = [f"{v:.1f}" for v in np.random.default_rng(1).uniform(0.5, 30, 40)]
    crp[::8] = ["<0.5"] * 5
    with pytest.warns(DataWarning, match=r"column 'crp': 5 censored value\(s\) such as '<0.5'"):
        generator = fedsynth.make("gaussian_copula", seed=0).fit(cohort().assign(crp=crp))
    assert generator.metadata_.columns["crp"].bounds[0] == 0.5
    assert generator.sample(20)["crp"].astype(float).min() >= 0.5


@pytest.mark.parametrize(
    "epsilon", [float("nan"), float("inf"), -1.0, 0, "1.0", None, True], ids=repr
)
def test_epsilon_that_is_not_a_finite_positive_number_is_refused(epsilon):
    with pytest.raises(PrivacyConfigError) as caught:
        resolve_dp({"epsilon": epsilon, "delta": 1e-5})
    assert f"epsilon must be a finite positive number, got {epsilon!r}" in str(caught.value)
    assert "max_epsilon" not in str(caught.value)
