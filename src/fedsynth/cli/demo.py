"""The main job on built-in data: the simulated MDS cohort in, synthetic patients out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from fedsynth.cli.progress import console, fitting, make_generator, sample_with_progress, step


def run_demo(*, out: Path, model: str, patients: int, sites: int, seed: int) -> Path:
    """Simulate the MDS cohort, fit ``model``, sample as many patients, write the CSV.

    Writes ``real.csv`` (the simulated cohort: no real patient), ``metadata.json``, ``model/``
    and ``synthetic.csv`` under ``out``, prints a short real-vs-synthetic comparison, and returns
    the path of the synthetic CSV.
    """
    import fedsynth
    from fedsynth.io import write_table

    out.mkdir(parents=True, exist_ok=True)
    with step(f"Simulating an MDS cohort of {patients:,} patients at {sites} sites"):
        real, truth = fedsynth.datasets.mds_cohort(
            n=patients, sites=sites, seed=seed, return_truth=True
        )
        metadata = truth.metadata()
    write_table(real, out / "real.csv")
    metadata.save(out / "metadata.json")
    generator = make_generator(model, seed=seed)
    with fitting(generator, f"Fitting {model} on {len(real):,} rows x {real.shape[1]} columns"):
        generator.fit(real, metadata=metadata)
    generator.save(out / "model")
    synthetic = sample_with_progress(generator, len(real), seed=seed)
    path = write_table(synthetic, out / "synthetic.csv")
    console.print(_comparison(real, synthetic, metadata))
    console.print(f"\nSynthetic data: [bold]{path.resolve()}[/]")
    console.print(f"Model: {(out / 'model').resolve()}")
    console.print(f"Simulated real cohort: {(out / 'real.csv').resolve()}")
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
