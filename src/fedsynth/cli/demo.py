"""The main job on built-in data: the simulated MDS cohort in, synthetic patients out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from fedsynth.cli.progress import (
    console,
    fitting,
    following,
    make_generator,
    sample_with_progress,
    step,
)
from fedsynth.core.progress import RoundDone

#: Defaults of the demo: a federation trains the default deep generator, a central fit the
#: quickest generator that keeps the cohort's structure.
FEDERATED_MODEL = "vae_bgm"
CENTRAL_MODEL = "bayesian_network"


def run_demo(
    *,
    out: Path,
    model: str | None = None,
    patients: int = 4427,
    sites: int = 3,
    seed: int = 0,
    report: bool = True,
    federated: bool = True,
    strategy: str = "fedavg",
    rounds: int = 3,
    local_epochs: int = 10,
) -> Path:
    """Simulate the MDS cohort, train ``model`` on 70 % of it, sample, validate, write everything.

    With ``federated`` (the default) the training rows stay at their ``sites`` hospitals: a
    ``strategy`` federation over Flower's deployment runtime on loopback (one SuperNode per
    site) trains the generator for ``rounds`` rounds of ``local_epochs`` epochs; otherwise one
    generator is fitted on the pooled rows.

    Writes under ``out``: ``real_train.csv`` and ``real_holdout.csv`` (the simulated cohort split
    70/30, stratified on the event: no real patient), ``metadata.json``, ``model/``,
    ``synthetic.csv``, ``federation/`` (the federated run's rounds, models and logs) and, unless
    ``report`` is false, the SAFE validation report ``report.html`` + ``report.json``
    (synthetic vs training rows, holdout as the baseline). Returns the path of the synthetic CSV.
    """
    from sklearn.model_selection import train_test_split

    import fedsynth
    from fedsynth.tabular.io import write_table

    out.mkdir(parents=True, exist_ok=True)
    with step(f"Simulating an MDS cohort of {patients:,} patients at {sites} sites"):
        real, truth = fedsynth.datasets.mds_cohort(
            n=patients, sites=sites, seed=seed, return_truth=True
        )
        metadata = truth.metadata()
        train, holdout = train_test_split(
            real, test_size=0.3, random_state=seed, stratify=real[metadata.event]
        )
    write_table(train, out / "real_train.csv")
    write_table(holdout, out / "real_holdout.csv")
    metadata.save(out / "metadata.json")
    model = model or (FEDERATED_MODEL if federated else CENTRAL_MODEL)
    if federated:
        generator = _federate(train, metadata, out, model, strategy, rounds, local_epochs, seed)
        title = f"fedsynth demo: MDS cohort, {model} federated ({strategy}) over {sites} sites"
    else:
        generator = make_generator(model, seed=seed)
        rows = f"{len(train):,} rows x {train.shape[1]} columns"
        with fitting(generator, f"Fitting {model} on {rows}"):
            generator.fit(train, metadata=metadata)
        title = f"fedsynth demo: MDS cohort, {model}"
    generator.save(out / "model")
    synthetic = sample_with_progress(generator, len(train), seed=seed)
    path = write_table(synthetic, out / "synthetic.csv")
    console.print(_comparison(train, synthetic, metadata))
    if report:
        result = fedsynth.validate(
            train, synthetic, holdout=holdout, metadata=metadata, seed=seed, progress=step
        )
        result.to_html(out / "report.html", title=title)
        result.to_json(out / "report.json")
        console.print(repr(result), markup=False)
        console.print(
            f"Validation report: [bold]{(out / 'report.html').resolve()}[/]", soft_wrap=True
        )
    # Paths are printed whole (soft_wrap): a path broken over two lines cannot be copied.
    console.print(f"\nSynthetic data: [bold]{path.resolve()}[/]", soft_wrap=True)
    console.print(f"Model: {(out / 'model').resolve()}", soft_wrap=True)
    cohort = f"{out.resolve()}/real_*.csv"
    console.print(f"Simulated real cohort (train/holdout): {cohort}", soft_wrap=True)
    return path


_SITE_BATCH = 100


def _federate(train, metadata, out: Path, model, strategy, rounds, local_epochs, seed):
    """Train ``model`` over the cohort's sites with Flower; the last round's model."""
    import fedsynth
    from fedsynth.federated import federate, partition

    if metadata.site is None:
        raise fedsynth.exceptions.InvalidDataError("the federated demo needs a site column")
    partitions = partition.by_column(train, metadata.site)
    if len(partitions) < 2:
        raise fedsynth.exceptions.InvalidDataError(
            f"a federation needs at least 2 sites, the cohort has {len(partitions)}: "
            "pass --sites 2 or more, or --central"
        )
    sizes = ", ".join(f"{site} {len(rows):,}" for site, rows in partitions.items())
    console.print(
        f"Federating {model} with {strategy} over {len(partitions)} sites ({sizes} rows), "
        f"{rounds} rounds of {local_epochs} local epochs; no row leaves its site"
    )

    with following("Federating", total=rounds) as show:

        def on_round(name: str, number: int, path: Path) -> None:
            show(RoundDone(name, number, rounds))

        result = federate(
            partitions,
            model=model,
            strategy=strategy,
            rounds=rounds,
            local_epochs=local_epochs,
            # Sites of 1,000-2,000 rows: batches of 500 would give them 1-4 steps per epoch.
            params={"batch_size": _SITE_BATCH},
            metadata=metadata,
            seed=seed,
            out=out / "federation",
            on_round=on_round,
        )
    last = max(result.model_paths[strategy])
    wall = result.runtime.get("wall_seconds")
    console.print(
        f"Federation finished: {len(result.sites)} sites, {last} rounds"
        + (f" in {wall:.0f} s" if wall else "")
    )
    return fedsynth.load(result.model_paths[strategy][last])


def _comparison(real: pd.DataFrame, synthetic: pd.DataFrame, metadata) -> Table:
    """A few headline figures, real next to synthetic (the full report is ``fedsynth evaluate``)."""
    table = Table(title="Real (simulated) vs synthetic: headline figures")
    table.add_column("figure")
    table.add_column("real", justify="right")
    table.add_column("synthetic", justify="right")
    table.add_row("patients", f"{len(real):,}", f"{len(synthetic):,}")
    if metadata.survival:
        duration, event = metadata.survival
        table.add_row(
            "deaths (event rate)", f"{real[event].mean():.1%}", f"{synthetic[event].mean():.1%}"
        )
        table.add_row(
            "median OS",
            _median_survival(real, duration, event),
            _median_survival(synthetic, duration, event),
        )
    genes = metadata.genomic_columns
    if genes:
        top = real[genes].mean().sort_values(ascending=False).index[:5]
        for gene in top:
            table.add_row(
                f"{gene} mutated", f"{real[gene].mean():.1%}", f"{synthetic[gene].mean():.1%}"
            )
        table.add_row(
            "mean mutations per patient",
            f"{real[genes].sum(axis=1).mean():.2f}",
            f"{synthetic[genes].sum(axis=1).mean():.2f}",
        )
    return table


def _median_survival(df: pd.DataFrame, duration: str, event: str) -> str:
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter().fit(df[duration], df[event])
    median = kmf.median_survival_time_
    return "not reached" if not np.isfinite(median) else f"{median:.1f}"
