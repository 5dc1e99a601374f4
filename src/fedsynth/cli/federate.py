"""``fedsynth federate``: compare federated strategies with centralized and isolated training.

Registered on the app by ``app.command("federate")(federate)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedsynth.cli.progress import console, following


def federate(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="With --data: one table per site. With --partition-by or --split: one table.",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    data: Annotated[
        bool, typer.Option("--data", help="Each file is one site's table (named by its stem).")
    ] = False,
    partition_by: Annotated[
        str | None, typer.Option("--partition-by", help="Column naming each row's site.")
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(help="Simulate sites: 'iid', or 'dirichlet' over --split-column."),
    ] = None,
    sites: Annotated[int, typer.Option(min=2, help="Number of simulated sites (--split).")] = 3,
    split_column: Annotated[
        str | None, typer.Option(help="Column whose mix differs between Dirichlet sites.")
    ] = None,
    alpha: Annotated[float, typer.Option(help="Dirichlet concentration (smaller: more skew).")] = (
        0.5
    ),
    strategies: Annotated[
        str,
        typer.Option(help="Comma-separated strategies."),
    ] = "fedavg,fedprox,synthetic_sharing,generator_sharing",
    rounds: Annotated[int, typer.Option(min=1, help="Federated rounds.")] = 5,
    local_epochs: Annotated[int, typer.Option(min=1, help="Local epochs per round.")] = 10,
    model: Annotated[str, typer.Option("--model", "-m", help="Generator name.")] = "vae_bgm",
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Generator parameter NAME=VALUE (repeatable)."),
    ] = None,
    metadata: Annotated[
        Path | None, typer.Option(help="Shared metadata JSON/YAML (the rest is inferred).")
    ] = None,
    holdout: Annotated[
        float, typer.Option(min=0.05, max=0.9, help="Share of each site kept as holdout.")
    ] = 0.3,
    centralized: Annotated[
        bool, typer.Option(help="Train the centralized reference (pooled data).")
    ] = True,
    isolated: Annotated[
        bool, typer.Option(help="Train the isolated references (one per site).")
    ] = (True),
    families: Annotated[
        str | None,
        typer.Option(help="Comma-separated SAFE families to score with (default: all)."),
    ] = None,
    round_families: Annotated[
        str | None,
        typer.Option(help="Families for the rounds before the last (default: --families)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds the federated run may take.")
    ] = 3600.0,
    audit: Annotated[
        bool, typer.Option(help="Keep a copy of every message every site sent.")
    ] = False,
    secure_aggregation: Annotated[
        bool,
        typer.Option(
            "--secure-aggregation",
            help="Average fedavg/fedprox weights with Flower's SecAgg+ (the server sees sums).",
        ),
    ] = False,
) -> None:
    """Train generators over several sites with Flower (no row leaves a site) and compare
    each strategy, round by round, with centralized and isolated training on a real holdout."""
    from rich.table import Table

    from fedsynth.cli.app import _parse_pairs
    from fedsynth.experiments.runner import format_summary, run_experiment

    partitions = _partitions(files, data, partition_by, split, sites, split_column, alpha, seed)
    with following("Experiment") as show:
        result = run_experiment(
            partitions,
            out=out,
            model=model,
            strategies=_names(strategies),
            rounds=rounds,
            local_epochs=local_epochs,
            params={"seed": seed, **_parse_pairs(param or [], "--param")},
            metadata=metadata,
            holdout_fraction=holdout,
            centralized=centralized,
            isolated=isolated,
            families=_names(families),
            round_families=_names(round_families),
            seed=seed,
            timeout=timeout,
            audit=audit,
            secure_aggregation=secure_aggregation,
            progress=show,
        )
    shown = Table(title=f"SAFE scores after round {rounds} ({model})")
    shown.add_column("method")
    for column in result.summary.columns:
        shown.add_column(str(column), justify="right")
    for cells in format_summary(result.summary):
        shown.add_row(*cells)
    console.print(shown)
    for name, text in result.federation.refused.items():
        console.print(f"[yellow]refused[/] {name}: {text}", soft_wrap=True)
    console.print(
        f"Scores: [bold]{out / 'scores.csv'}[/], plot: [bold]{out / 'scores.png'}[/], "
        f"synthetic data: [bold]{out / 'synthetic'}[/]"
    )


def _names(text: str | None) -> list[str] | None:
    """A comma-separated list of names."""
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


def _partitions(files, data, partition_by, split, sites, split_column, alpha, seed):
    """The sites' tables from the command-line choices (exactly one way of making them)."""
    from fedsynth.federated import partition
    from fedsynth.tabular.io import read_table

    options = {"--data": data, "--partition-by": partition_by, "--split": split}
    chosen = [name for name, value in options.items() if value]
    if len(chosen) != 1:
        raise typer.BadParameter(
            "choose one of --data (one file per site), --partition-by COLUMN or --split",
            param_hint="FILES",
        )
    if data:
        if len(files) < 2:
            raise typer.BadParameter("--data needs one file per site (2 or more)")
        return partition.from_files(files)
    if len(files) != 1:
        raise typer.BadParameter(f"{chosen[0]} takes one table, got {len(files)} files")
    table = read_table(files[0])
    if partition_by is not None:
        return partition.by_column(table, partition_by)
    if split == "iid":
        return partition.split_iid(table, sites, seed=seed)
    if split == "dirichlet":
        if split_column is None:
            raise typer.BadParameter("--split dirichlet needs --split-column")
        return partition.split_dirichlet(table, sites, split_column, alpha=alpha, seed=seed)
    raise typer.BadParameter(f"--split must be 'iid' or 'dirichlet', got {split!r}")
