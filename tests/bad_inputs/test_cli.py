"""Bad input through the command line: exit code 1 with an error that names the file, or the
table read in its dialect (and the dialect said)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fedsynth
from fedsynth.cli import main
from tests.bad_inputs.conftest import LATIN1, cohort, european_csv, write


def test_fit_on_a_european_export_keeps_lab_values_and_survival(tmp_path, capsys):
    data = write(tmp_path, "eu.csv", european_csv(cohort()))
    model = tmp_path / "model"
    assert main(["fit", str(data), "-o", str(model), "-m", "gaussian_copula"]) == 0
    assert "Read eu.csv as semicolon-separated, decimal comma, utf-8" in capsys.readouterr().out
    fitted = fedsynth.load(model)
    assert fitted.metadata_.kinds["hb"] == "numeric"
    assert fitted.metadata_.survival == ("os_months", "os_status")


#: name -> (file name, content, the dialect printed, a column shown).
READ = {
    "semicolon": ("s.csv", cohort().to_csv(index=False, sep=";").encode(),
                  "semicolon-separated, decimal point, utf-8", "os_status"),
    "tab in .csv": ("t.csv", cohort().to_csv(index=False, sep="\t").encode(),
                    "tab-separated, decimal point, utf-8", "os_months"),
    "latin-1": ("l.csv", LATIN1, "semicolon-separated, decimal point, cp1252", "âge"),
    "byte-order mark": ("b.csv", b"\xef\xbb\xbf" + cohort().to_csv(index=False).encode(),
                        "comma-separated, decimal point, utf-8-sig", "age"),
}  # fmt: skip


@pytest.mark.parametrize("case", READ, ids=list(READ))
def test_metadata_infer_says_how_it_read_the_table(tmp_path, capsys, case):
    name, content, described, column = READ[case]
    assert main(["metadata", "infer", str(write(tmp_path, name, content))]) == 0
    out = capsys.readouterr().out
    assert f"Read {name} as {described}" in out
    assert column in out


#: name -> (file name, content, words of the error).
REFUSED = {
    "one column": ("one.csv", b"age sex\n61 F\n", "'one.csv' reads as a single column"),
    "header only": ("h.csv", b"age;sex\n", "'h.csv' has no data rows (2 columns, 0 rows)"),
    "ragged rows": ("r.csv", b"age,sex\n61,F\n70\n", "'r.csv' line 3 has 1 field(s)"),
    "repeated name": ("d.csv", b"age,age\n1,2\n", "'d.csv' repeats the column name(s) ['age']"),
}  # fmt: skip


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_unreadable_tables_exit_1_naming_the_file(tmp_path, capsys, case):
    name, content, message = REFUSED[case]
    path = write(tmp_path, name, content)
    assert main(["fit", str(path), "-o", str(tmp_path / "model")]) == 1
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "model").exists()


def test_an_event_coded_0_1_2_is_taken_as_competing_risks_with_a_warning(tmp_path, capsys):
    frame = cohort().assign(os_status=[i % 3 for i in range(40)])
    path = write(tmp_path, "cr.csv", frame.to_csv(index=False))
    assert main(["metadata", "infer", str(path)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "'os_status' was taken as a competing-risks event with 2 causes [1, 2]" in err
    assert "overrides={'os_status': 'categorical', 'os_months': 'numeric'}" in err


def test_an_event_coded_1_2_warns_with_the_options_to_declare_it(tmp_path, capsys):
    frame = cohort().assign(os_status=[1 + i % 2 for i in range(40)])
    path = write(tmp_path, "r.csv", frame.to_csv(index=False))
    assert main(["metadata", "infer", str(path)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: column 'os_status' looks like a survival event" in err
    assert "--duration os_months --event os_status_event" in err


def test_random_record_numbers_are_excluded_with_a_warning(tmp_path, capsys):
    codes = np.random.default_rng(3).choice(np.arange(100_000, 999_999), 40, replace=False)
    path = write(tmp_path, "ids.csv", cohort().assign(record_no=codes).to_csv(index=False))
    assert main(["metadata", "infer", str(path)]) == 0
    captured = capsys.readouterr()
    assert "warning: column 'record_no' looks like an identifier" in captured.err
    assert "identifier" in captured.out


@pytest.mark.parametrize("epsilon", ["NaN", "Infinity", "-1"])
def test_a_non_finite_epsilon_exits_1_with_the_reason(tmp_path, capsys, epsilon):
    path = write(tmp_path, "c.csv", cohort().to_csv(index=False))
    dp = f'dp={{"epsilon": {epsilon}, "delta": 1e-5}}'
    code = main(["fit", str(path), "-o", str(tmp_path / "m"), "-m", "bayesian_network", "-p", dp])
    assert code == 1
    shown = json.loads(epsilon)
    assert f"epsilon must be a finite positive number, got {shown!r}" in capsys.readouterr().err
