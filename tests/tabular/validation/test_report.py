"""The report as JSON and HTML, the comparison mode and ``fedsynth evaluate``."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from fedsynth.cli.evaluate import evaluate
from fedsynth.exceptions import InvalidDataError
from fedsynth.tabular.validation import compare, validate

FAST = ("fidelity", "diversity", "survival", "genomic", "privacy")


@pytest.fixture(scope="module")
def report(split, metadata):
    train, other, holdout = split
    return validate(
        train, other, holdout=holdout, metadata=metadata, families=FAST, max_rows=300, n_attacks=30
    )


def test_json_holds_the_same_numbers(report, tmp_path):
    data = json.loads(report.to_json(tmp_path / "r.json").read_text())
    assert data["scores"] == pytest.approx(report.scores)
    assert data["status"] == report.status
    assert data["results"]["ks_statistic"]["value"] == pytest.approx(
        report.results["ks_statistic"].value
    )
    assert set(data["score_definitions"]) >= {"csf", "gsf", "utility", "privacy", "overall"}
    assert any("300 of 600" in note for note in data["notes"])


def test_html_is_self_contained_with_plots_and_no_real_record(report, split, tmp_path):
    page = report.to_html(tmp_path / "r.html").read_text()
    assert page.count('src="data:image/png;base64,') >= 6
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "subsample" in page
    train = split[0]
    dumped = json.dumps(report.to_dict())
    for patient in train["patient_id"].iloc[:50]:
        assert patient not in page and patient not in dumped
    # No full real row either: its lab values side by side would give it away.
    row = train.iloc[0]
    assert f"{row['hb']}, {row['plt']}" not in dumped


def test_compare_puts_datasets_side_by_side(split, metadata):
    train, other, holdout = split
    table = compare(
        {"real_sample": other, "copy": train},
        train,
        holdout=holdout,
        metadata=metadata,
        families=["fidelity", "privacy"],
        n_attacks=30,
    )
    assert list(table.index) == ["real_sample", "copy"]
    assert table.loc["copy", "exact_copy_share"] == 1.0
    assert table.loc["copy", "status"] == "fail"
    assert table.loc["copy", "privacy"] < table.loc["real_sample", "privacy"]


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("evaluate")(evaluate)
    app.command("noop")(lambda: None)  # a second command keeps "evaluate" as a subcommand
    return app


def test_cli_writes_report_and_comparison(split, tmp_path):
    train, other, holdout = split
    paths = {}
    small = (
        ("real", train.iloc[:300]),
        ("a", other.iloc[:200]),
        ("b", other.iloc[200:400]),
        ("test", holdout.iloc[:150]),
    )
    for name, frame in small:
        paths[name] = tmp_path / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    runner = CliRunner()
    out = tmp_path / "report"
    args = [
        "evaluate",
        str(paths["real"]),
        str(paths["a"]),
        "--holdout",
        str(paths["test"]),
        "--out",
        str(out),
        "--max-rows",
        "200",
        "--n-attacks",
        "20",
        "--family",
        "fidelity",
        "--family",
        "privacy",
    ]
    result = runner.invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file() and (out / "report.json").is_file()
    assert "Privacy: distances" in result.output and "overall" in result.output
    bad = runner.invoke(_app(), [*args, "--family", "speed"])
    assert bad.exit_code == 2 and "unknown famil" in bad.output
    result = runner.invoke(_app(), [*args[:3], str(paths["b"]), *args[3:-2]])
    assert result.exit_code == 0, result.output
    assert (out / "a" / "report.html").is_file() and (out / "b" / "report.json").is_file()
    comparison = json.loads((out / "comparison.json").read_text())
    assert set(comparison) == {"a", "b"}
    assert 'href="a/report.html"' in (out / "comparison.html").read_text()


def test_cli_reports_a_missing_column_as_a_fedsynth_error(split, tmp_path):
    train = split[0]
    train.to_csv(tmp_path / "real.csv", index=False)
    train.drop(columns=["hb"]).to_csv(tmp_path / "syn.csv", index=False)
    result = CliRunner().invoke(
        _app(), ["evaluate", str(tmp_path / "real.csv"), str(tmp_path / "syn.csv")]
    )
    assert isinstance(result.exception, InvalidDataError)
    assert "synthetic table lacks column(s) ['hb']" in str(result.exception)


def test_metrics_option_runs_only_the_named_metrics(split, metadata, report):
    train, other, holdout = split
    quick = validate(
        train,
        other,
        holdout=holdout,
        metadata=metadata,
        families=("fidelity",),
        metrics=["column_shapes", "missing_rate_difference"],
        max_rows=300,
    )
    assert set(quick.results) == {"column_shapes", "missing_rate_difference"}
    # The same metric on the same tables gives the same result as in the full report.
    assert quick.results["column_shapes"].score == report.results["column_shapes"].score
    with pytest.raises(ValueError, match="tstr_ratio"):
        validate(train, other, metadata=metadata, families=("fidelity",), metrics=["tstr_ratio"])
