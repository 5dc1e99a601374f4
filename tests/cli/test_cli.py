"""The fedsynth command line: exit codes 0 (ok), 1 (failure), 2 (bad usage)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from fedsynth.cli import main


@pytest.fixture
def csv(tmp_path, clinical):
    path = tmp_path / "real.csv"
    clinical.to_csv(path, index=False)
    return path


def test_help_everywhere(capsys):
    for args in (
        [],
        ["--help"],
        ["fit", "--help"],
        ["sample", "--help"],
        ["metadata", "infer", "--help"],
        ["demo", "--help"],
    ):
        assert main(args) in (0, 2)  # no arguments shows help (click exits 2 for a missing command)
    assert "fit" in capsys.readouterr().out


def test_version(capsys):
    import fedsynth

    assert main(["--version"]) == 0
    assert fedsynth.__version__ in capsys.readouterr().out


def test_fit_then_sample_with_conditions(tmp_path, csv, capsys):
    model = tmp_path / "model"
    assert (
        main(["fit", str(csv), "--out", str(model), "--model", "gaussian_copula", "--seed", "1"])
        == 0
    )
    out = tmp_path / "syn.parquet"
    code = main(
        [
            "sample",
            str(model),
            "-n",
            "120",
            "-o",
            str(out),
            "-c",
            "sex=F",
            "-c",
            "TP53=1",
            "--seed",
            "3",
        ]
    )
    assert code == 0
    synthetic = pd.read_parquet(out)
    assert len(synthetic) == 120 and (synthetic.sex == "F").all() and (synthetic.TP53 == 1).all()
    assert "patient_id" not in synthetic.columns
    again = tmp_path / "again.parquet"
    main(
        [
            "sample",
            str(model),
            "-n",
            "120",
            "-o",
            str(again),
            "-c",
            "sex=F",
            "-c",
            "TP53=1",
            "--seed",
            "3",
        ]
    )
    pd.testing.assert_frame_equal(pd.read_parquet(again), synthetic)


def test_generator_parameters(tmp_path, csv):
    assert main(["fit", str(csv), "-o", str(tmp_path / "m"), "-p", "n_quantiles=50"]) == 0
    config = json.loads((tmp_path / "m" / "model.json").read_text())
    assert config["params"]["n_quantiles"] == 50


def test_metadata_infer_saves_an_editable_file(tmp_path, csv, capsys):
    out = tmp_path / "meta.yaml"
    assert main(["metadata", "infer", str(csv), "--out", str(out)]) == 0
    shown = capsys.readouterr()
    assert "duration" in shown.out and "identifier" in shown.out
    assert "looks like an identifier" in shown.err
    text = out.read_text().replace("os_status:\n    kind: event", "os_status:\n    kind: binary")
    text = text.replace("os_months:\n    kind: duration", "os_months:\n    kind: numeric")
    out.write_text(text)
    model = tmp_path / "model"
    assert main(["fit", str(csv), "-o", str(model), "--metadata", str(out)]) == 0
    config = json.loads((model / "model.json").read_text())
    assert config["metadata"]["columns"]["os_status"]["kind"] == "binary"


def test_bad_usage_exits_2(tmp_path, csv, capsys):
    assert main(["fit", str(csv), "-o", str(tmp_path / "m"), "--model", "gan"]) == 2
    assert "unknown generator 'gan'; available:" in capsys.readouterr().err
    assert main(["fit", str(csv), "-o", str(tmp_path / "m"), "-p", "epochs=3"]) == 2
    assert "unknown parameter(s) epochs" in capsys.readouterr().err
    assert main(["fit", str(csv)]) == 2  # --out missing
    assert main(["frobnicate"]) == 2
    main(["fit", str(csv), "-o", str(tmp_path / "m")])
    assert main(["sample", str(tmp_path / "m"), "-o", str(tmp_path / "s.csv"), "-c", "sex=X"]) == 2
    assert "'sex' has no category 'X'" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "m"), "-o", str(tmp_path / "s.csv"), "-c", "sexF"]) == 2


def test_bad_data_exits_1_with_the_column_named(tmp_path, clinical, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["fit", str(empty), "-o", str(tmp_path / "m")]) == 1
    assert "'empty.csv' is empty (0 bytes)" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    clinical.assign(os_months=-clinical.os_months).to_csv(bad, index=False)
    assert main(["fit", str(bad), "-o", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "column 'os_months'" in err and "negative survival time" in err
    assert "Traceback" not in err
    assert main(["sample", str(tmp_path / "nowhere"), "-o", str(tmp_path / "s.csv")]) == 1
    assert "is not a saved model" in capsys.readouterr().err
    wrong = tmp_path / "table.xlsx"
    wrong.write_text("x")
    assert main(["metadata", "infer", str(wrong)]) == 1


def test_demo_writes_synthetic_cohort_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--patients", "300", "--model", "gaussian_copula"]
    args += ["--central"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Synthetic data:" in printed and "synthetic.csv" in printed
    assert "Validation report:" in printed
    train = pd.read_csv(out / "real_train.csv")
    synthetic = pd.read_csv(out / "synthetic.csv")
    assert len(synthetic) == len(train) == 210
    assert list(synthetic.columns) == [c for c in train.columns if c != "patient_id"]
    scores = json.loads((out / "report.json").read_text())["scores"]
    assert {"csf", "gsf", "utility", "privacy", "overall"} <= set(scores)
    assert "<img" in (out / "report.html").read_text()
    assert main([*args, "--no-report", "--out", str(tmp_path / "quick")]) == 0
    assert not (tmp_path / "quick" / "report.html").exists()


@pytest.mark.slow
def test_demo_federates_over_the_sites_by_default(tmp_path, capsys, monkeypatch):
    # A relative --out, as the README's command gives: the Flower processes run elsewhere.
    monkeypatch.chdir(tmp_path)
    out = Path("demo")
    args = ["demo", "--out", str(out), "--patients", "300", "--rounds", "1", "--local-epochs", "1"]
    assert main([*args, "--no-report"]) == 0
    printed = capsys.readouterr().out
    assert "Federating vae_bgm with fedavg over 3 sites" in printed
    assert "fedavg round 1/1 done" in printed
    log = (out / "federation" / "server" / "rounds.jsonl").read_text().splitlines()
    rounds = [json.loads(line) for line in log]
    assert [(r["strategy"], r["round"]) for r in rounds] == [("fedavg", 1)]
    assert json.loads((out / "model" / "model.json").read_text())["generator"] == "vae_bgm"
    synthetic = pd.read_csv(out / "synthetic.csv")
    assert len(synthetic) == len(pd.read_csv(out / "real_train.csv"))
    # no site's table is left behind in the run's folder
    assert not list((out / "federation").rglob("sites/*.parquet"))


def test_following_prints_each_event_and_counts_the_steps(capsys):
    from fedsynth.cli.progress import following
    from fedsynth.core.progress import ExperimentStarted, ReferenceDone, RoundDone

    events = [
        ExperimentStarted("tvae", ("[north]", "south"), ("fedavg",), 1, True, False),
        ReferenceDone("centralized", {"csf": 0.75}, 1.0),
        RoundDone("fedavg", 1, 1, {"csf": 0.8}),
    ]
    with following("Experiment") as show:
        for event in events:
            show(event)
    printed = capsys.readouterr().out
    for event in events:
        assert event.message in printed  # a site named "[north]" is not read as markup
    assert events[0].steps == 2


def test_make_generator_switches_on_the_progress_bar_unless_told():
    from fedsynth.cli.progress import make_generator

    assert make_generator("tvae").verbose is True
    assert make_generator("tvae", verbose=False).verbose is False
    assert "verbose" not in make_generator("gaussian_copula").get_params()


def test_bad_parameter_values_exit_2_naming_the_parameter(tmp_path, csv, capsys):
    out = str(tmp_path / "m")
    assert main(["fit", str(csv), "-o", out, "-m", "tvae", "-p", "epochs=abc"]) == 2
    err = capsys.readouterr().err
    assert "epochs must be a positive integer, got 'abc'" in err and "Traceback" not in err


def _boxed_text(err: str) -> str:
    """A usage error as one line: typer draws it in a box that wraps long paths."""
    return " ".join(err.replace("│", " ").split())


def test_output_paths_of_the_wrong_kind_are_refused_before_the_work(tmp_path, csv, capsys):
    assert main(["fit", str(csv), "-o", str(csv)]) == 2
    assert "is a file; expected a folder for the model" in _boxed_text(capsys.readouterr().err)
    assert main(["fit", str(tmp_path), "-o", str(tmp_path / "m")]) == 1
    assert "is a folder; expected a table file" in capsys.readouterr().err
    main(["fit", str(csv), "-o", str(tmp_path / "m")])
    capsys.readouterr()
    xlsx = tmp_path / "s.xlsx"
    assert main(["sample", str(tmp_path / "m"), "-o", str(xlsx), "-n", "5"]) == 1
    assert "expected a name ending in .csv, .tsv, .parquet or .pq" in capsys.readouterr().err
    assert not xlsx.exists()
    assert main(["sample", str(tmp_path / "m"), "-o", str(tmp_path), "-n", "5"]) == 1
    assert "is a folder; expected a file name" in capsys.readouterr().err
    assert main(["evaluate", str(csv), str(csv), "-o", str(csv)]) == 2
    assert "is a file; expected a folder for the report" in _boxed_text(capsys.readouterr().err)
