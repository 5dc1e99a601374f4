"""``fedsynth notes``: synthetic notes from the command line, conditioned rows, privacy gate."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import fedsynth
from fedsynth.cli import main
from fedsynth.text.corpus import simulate_notes
from fedsynth.text.facts import row_consistency


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return fedsynth.datasets.mds_cohort(n=40, seed=1)


@pytest.fixture
def files(tmp_path, cohort):
    notes = simulate_notes(cohort, seed=1)
    private, holdout = tmp_path / "notes.csv", tmp_path / "holdout.csv"
    notes.iloc[:30][["patient_id", "text"]].to_csv(private, index=False)
    notes.iloc[30:][["patient_id", "text"]].to_csv(holdout, index=False)
    rows = tmp_path / "rows.csv"
    cohort.iloc[30:33].drop(columns=["patient_id"]).to_csv(rows, index=False)
    return private, holdout, rows


def test_conditioned_notes_pass_the_gate_and_agree_with_their_rows(tmp_path, files, capsys):
    private, holdout, rows = files
    out = tmp_path / "synthetic.csv"
    args = ["notes", "generate", str(private), "-o", str(out), "--rows", str(rows)]
    args += ["--backend", "fake", "--holdout", str(holdout), "--epsilon", "2"]
    assert main(args) == 0
    written = pd.read_csv(out)
    table = pd.read_csv(rows)
    assert len(written) == 3 and list(written.columns[:-1]) == list(table.columns)
    for text, row in zip(written["text"], table.to_dict("records"), strict=True):
        agreeing, stated = row_consistency(text, row)
        assert stated >= 5 and agreeing == stated
    report = json.loads((tmp_path / "synthetic_report" / "report.json").read_text())
    assert report["verdict"] == "pass" and report["epsilon_spent"] == pytest.approx(2.0)
    assert {f["name"] for f in report["flags"]} == {
        "privacy.verbatim_copies",
        "privacy.note_membership_inference",
    }
    assert "privacy verdict: pass" in capsys.readouterr().out


def test_shared_aggregation_spends_one_gaussian_mechanism(tmp_path, files, capsys):
    private, _, rows = files
    out = tmp_path / "shared.csv"
    args = ["notes", "generate", str(private), "-o", str(out), "--rows", str(rows)]
    args += ["--backend", "fake", "--epsilon", "2", "--aggregation", "shared", "--prompts", "10"]
    assert main(args) == 0
    assert len(pd.read_csv(out)) == 3
    report = json.loads((tmp_path / "shared_report" / "report.json").read_text())
    assert report["epsilon_spent"] == pytest.approx(2.0)
    assert "10 private generation(s) once, then 4 per note" in capsys.readouterr().out


def test_candidate_styles_cost_no_epsilon(tmp_path, files, capsys):
    private, _, rows = files
    out = tmp_path / "styles.csv"
    args = ["notes", "generate", str(private), "-o", str(out), "--rows", str(rows)]
    args += ["--backend", "fake", "--epsilon", "2", "--candidate-styles", "clinical"]
    assert main(args) == 0
    assert len(pd.read_csv(out)) == 3
    report = json.loads((tmp_path / "styles_report" / "report.json").read_text())
    assert report["epsilon_spent"] == pytest.approx(2.0)
    capsys.readouterr()
    assert main([*args[:-1], "fancy"]) != 0
    assert "--candidate-styles" in "".join(capsys.readouterr())


def test_note_centroid_runs_no_private_prompt(tmp_path, files, capsys):
    private, _, rows = files
    out = tmp_path / "centroid.csv"
    args = ["notes", "generate", str(private), "-o", str(out), "--rows", str(rows)]
    args += ["--backend", "fake", "--epsilon", "2", "--aggregation", "note_centroid"]
    assert main(args) == 0
    assert len(pd.read_csv(out)) == 3
    report = json.loads((tmp_path / "centroid_report" / "report.json").read_text())
    assert report["epsilon_spent"] == pytest.approx(2.0)
    assert "no private generation, 4 per note" in capsys.readouterr().out


def test_copied_notes_are_held_back_unless_overridden(tmp_path, files, capsys):
    private, _, _ = files
    out = tmp_path / "copies.csv"
    # The fake model repeats its prompt: non-private ICL copies private notes.
    args = ["notes", "generate", str(private), "-o", str(out), "-n", "2", "--backend", "fake"]
    args += ["--no-dp", "--mode", "icl", "--report", str(tmp_path / "r")]
    assert main(args) == 1
    assert not out.exists()
    assert "privacy gate holds the notes back" in capsys.readouterr().err
    assert main([*args, "--override", "audit test"]) == 0
    assert len(pd.read_csv(out)) == 2
    assert json.loads((tmp_path / "r" / "report.json").read_text())["override"] == "audit test"


def test_bad_inputs_are_named(tmp_path, files, capsys):
    private, _, rows = files
    base = ["notes", "generate", str(private), "--backend", "fake"]
    assert main([*base, "-o", str(tmp_path / "x.txt")]) == 2
    assert main([*base, "-o", str(tmp_path / "x.csv"), "--rows", str(rows), "-n", "5"]) == 2
    assert main(["notes", "generate", str(tmp_path / "none.csv"), "-o", "x.csv"]) == 1
    assert "no such file or folder of notes" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "x.csv"), "--text-column", "note"]) == 1


@pytest.mark.slow
def test_real_local_model_end_to_end(tmp_path, files):
    """SmolLM2-135M through llama.cpp: one conditioned ESA note, tiny ensemble."""
    private, _, rows = files
    one_row = tmp_path / "one.csv"
    pd.read_csv(rows).iloc[:1].to_csv(one_row, index=False)
    out = tmp_path / "real_model.csv"
    args = ["notes", "generate", str(private), "-o", str(out), "--rows", str(one_row)]
    args += ["--prompts", "2", "--candidates", "1", "--shots", "1", "--max-tokens", "24"]
    assert main(args) == 0
    (text,) = pd.read_csv(out)["text"]
    row = pd.read_csv(one_row).iloc[0].to_dict()
    agreeing, stated = row_consistency(text, row)
    assert stated >= 5 and agreeing == stated
    assert len(text.splitlines()) >= 2  # the header, then the model's narrative
