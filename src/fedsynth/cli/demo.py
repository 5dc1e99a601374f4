"""The main job on built-in data: the simulated MDS cohort in, synthetic patients out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from fedsynth.cli.progress import console, fitting, make_generator, sample_with_progress, step


def run_demo(
    *, out: Path, model: str, patients: int, sites: int, seed: int, report: bool = True
) -> Path:
    """Simulate the MDS cohort, fit ``model`` on 70 % of it, sample, validate, write everything.

    Writes under ``out``: ``real_train.csv`` and ``real_holdout.csv`` (the simulated cohort split
    70/30, stratified on the event: no real patient), ``metadata.json``, ``model/``,
    ``synthetic.csv`` and, unless ``report`` is false, the SAFE validation report
    ``report.html`` + ``report.json`` (synthetic vs training rows, holdout as the baseline).
    Returns the path of the synthetic CSV.
    """
    from sklearn.model_selection import train_test_split

    import fedsynth
    from fedsynth.io import write_table

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
    generator = make_generator(model, seed=seed)
    with fitting(generator, f"Fitting {model} on {len(train):,} rows x {train.shape[1]} columns"):
        generator.fit(train, metadata=metadata)
    generator.save(out / "model")
    synthetic = sample_with_progress(generator, len(train), seed=seed)
    path = write_table(synthetic, out / "synthetic.csv")
    console.print(_comparison(train, synthetic, metadata))
    if report:
        result = fedsynth.validate(
            train, synthetic, holdout=holdout, metadata=metadata, seed=seed, progress=step
        )
        result.to_html(out / "report.html", title=f"fedsynth demo: MDS cohort, {model}")
        result.to_json(out / "report.json")
        console.print(repr(result), markup=False)
        console.print(f"Validation report: [bold]{(out / 'report.html').resolve()}[/]")
    console.print(f"\nSynthetic data: [bold]{path.resolve()}[/]")
    console.print(f"Model: {(out / 'model').resolve()}")
    console.print(f"Simulated real cohort (train/holdout): {out.resolve()}/real_*.csv")
    return path


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
