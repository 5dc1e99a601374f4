"""``fedsynth evaluate``: the validation report of one or several synthetic tables.

Registered on the app by :mod:`fedsynth.cli.app` (``app.command("evaluate")(evaluate)``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedsynth.cli.progress import console, step
from fedsynth.exceptions import InvalidDataError, Problem


def evaluate(
    real: Annotated[Path, typer.Argument(help="Real training table (.csv, .tsv or .parquet).")],
    synthetic: Annotated[
        list[Path],
        typer.Argument(help="Synthetic table(s); several are compared side by side."),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for report.html and report.json.")
    ] = Path("report"),
    holdout: Annotated[
        Path | None,
        typer.Option(help="Real rows the generator never saw (utility and privacy baselines)."),
    ] = None,
    metadata: Annotated[
        Path | None,
        typer.Option(help="Metadata JSON/YAML (all or some columns; the rest are inferred)."),
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Column the utility models predict (default: the event).")
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="Column whose levels get their own survival curves.")
    ] = None,
    max_rows: Annotated[
        int, typer.Option(min=50, help="Most rows per table that heavy metrics use.")
    ] = 5000,
    n_attacks: Annotated[int, typer.Option(min=10, help="Attacks per Anonymeter evaluator.")] = 500,
    family: Annotated[
        list[str] | None,
        typer.Option(
            help="Metric family to run (repeatable; default all): fidelity, diversity, "
            "utility, survival, genomic, privacy."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Validate synthetic data against the real data: fidelity, utility, survival, genomic
    structure and privacy, written as an HTML report and the same numbers as JSON."""
    from fedsynth.tabular.io import read_table
    from fedsynth.tabular.validation import FAMILIES, comparison_table, validate
    from fedsynth.tabular.validation.report import render_comparison_html

    if out.exists() and not out.is_dir():  # refused before the metrics, not after them
        raise typer.BadParameter(
            f"{out} is a file; expected a folder for the report", param_hint="--out"
        )
    names = _names(synthetic)
    unknown = sorted(set(family or ()) - set(FAMILIES))
    if unknown:
        raise typer.BadParameter(
            f"unknown famil(y/ies) {unknown}; expected some of {list(FAMILIES)}",
            param_hint="--family",
        )
    with step(f"Reading {real}"):
        real_table = read_table(real)
    holdout_table = None
    if holdout is not None:
        with step(f"Reading {holdout}"):
            holdout_table = read_table(holdout)
    reports = {}
    for name, path in zip(names, synthetic, strict=True):
        with step(f"Reading {path}"):
            table = read_table(path)
        console.print(f"[bold]Validating {path.name}[/] against {real.name}")
        report = validate(
            real_table,
            table,
            holdout=holdout_table,
            metadata=metadata,
            target=target,
            group=group,
            max_rows=max_rows,
            n_attacks=n_attacks,
            families=family or FAMILIES,
            seed=seed,
            progress=step,
        )
        where = out if len(synthetic) == 1 else out / name
        report.to_html(where / "report.html", title=f"fedsynth validation: {path.name}")
        report.to_json(where / "report.json")
        reports[name] = report
    console.print(_summary(reports))
    if len(synthetic) == 1:
        console.print(
            f"Report: [bold]{(out / 'report.html').resolve()}[/] (numbers in report.json)"
        )
        return
    table = comparison_table(reports)
    (out / "comparison.json").write_text(
        json.dumps(json.loads(table.to_json(orient="index")), indent=1) + "\n"
    )
    table.to_csv(out / "comparison.csv")
    links = {name: f"{name}/report.html" for name in reports}
    (out / "comparison.html").write_text(
        render_comparison_html(table, links=links), encoding="utf-8"
    )
    console.print(f"Comparison: [bold]{(out / 'comparison.html').resolve()}[/]")


def _names(paths: list[Path]) -> list[str]:
    """A folder name per synthetic file: its stem, made unique and safe."""
    names = [re.sub(r"[^A-Za-z0-9_.-]", "_", p.stem) or "synthetic" for p in paths]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InvalidDataError(
            [Problem(None, f"synthetic files share the name(s) {duplicated}; rename them")]
        )
    return names


def _summary(reports: dict) -> Table:
    table = Table(title="Validation scores (0 to 1, higher is better)")
    table.add_column("dataset")
    for column in ("CSF", "GSF", "utility", "privacy", "overall", "status"):
        table.add_column(column, justify="right")
    for name, report in reports.items():
        cells = [
            "n/a" if report.scores.get(k) is None else f"{report.scores[k]:.3f}"
            for k in ("csf", "gsf", "utility", "privacy", "overall")
        ]
        style = {"pass": "green", "warn": "yellow", "fail": "red"}[report.status]
        table.add_row(name, *cells, f"[{style}]{report.status.upper()}[/]")
    return table
