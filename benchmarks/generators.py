"""Fit and sampling speed (and memory) of fedsynth's generators on the MDS cohort and real data.

Each (generator, dataset) pair runs in its own process so that its peak memory is its own.
Run with ``python benchmarks/generators.py [--models ...] [--datasets ...] [--repeats N]``; prints a
table and writes ``benchmarks/results/generators.md`` and ``.json``.

Datasets: ``mds`` (the simulated cohort, 4427 patients, 70 % for training), ``support2`` and
``flchain`` (SurvSet, 70/30 split stratified on the event). Synthetic rows = training rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
DEFAULT_MODELS = ["gaussian_copula", "bayesian_network"]
DEFAULT_DATASETS = ["mds", "support2", "flchain"]


def load_split(name: str, seed: int = 0):
    """Training and holdout frames and the metadata of a benchmark dataset."""
    from sklearn.model_selection import train_test_split

    import fedsynth

    if name == "mds":
        df, truth = fedsynth.datasets.mds_cohort(n=4427, sites=3, seed=seed, return_truth=True)
        metadata = truth.metadata()
    else:
        df, metadata = fedsynth.datasets.load_survset(name, return_metadata=True)
    train, holdout = train_test_split(
        df, test_size=0.3, random_state=seed, stratify=df[metadata.event]
    )
    return train.reset_index(drop=True), holdout.reset_index(drop=True), metadata


def run_one(model: str, dataset: str, seed: int) -> dict:
    """Fit and sample once, in this process; returns the measurements."""
    import warnings

    import fedsynth

    warnings.simplefilter("ignore")
    train, _, metadata = load_split(dataset, seed)
    gen = fedsynth.make(model, seed=seed)
    start = time.perf_counter()
    gen.fit(train, metadata=metadata)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    synthetic = gen.sample(len(train), seed=seed)
    sample_s = time.perf_counter() - start
    return {
        "model": model,
        "dataset": dataset,
        "rows": len(train),
        "columns": train.shape[1],
        "fit_s": fit_s,
        "sample_rows_per_s": len(synthetic) / sample_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS)
    parser.add_argument("--repeats", type=int, default=3, help="runs per pair (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="generators", help="results file stem")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "DATASET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # child process
        print(json.dumps(run_one(args.one[0], args.one[1], args.seed)))
        return

    rows = []
    for dataset in args.datasets:
        for model in args.models:
            runs = []
            for _ in range(args.repeats):
                child = subprocess.run(
                    [sys.executable, __file__, "--one", model, dataset, "--seed", str(args.seed)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
            row = dict(runs[0])
            for key in ("fit_s", "sample_rows_per_s", "peak_rss_mb"):
                row[key] = statistics.median(r[key] for r in runs)
            row["fit_s_min"] = min(r["fit_s"] for r in runs)
            row["fit_s_max"] = max(r["fit_s"] for r in runs)
            rows.append(row)
            print(
                f"{dataset:9s} {model:18s} fit {row['fit_s']:7.2f} s  "
                f"sample {row['sample_rows_per_s']:>12,.0f} rows/s  "
                f"peak {row['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
    write_results(rows, args)


def write_results(rows: list[dict], args) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "repeats": args.repeats,
        "seed": args.seed,
    }
    stem = RESULTS / args.name
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        "# Generators: fit and sampling speed",
        "",
        f"Median of {args.repeats} runs, each in a fresh process; {meta['cpus']} CPUs, "
        f"Python {meta['python']}. Training rows = 70 % of each dataset; synthetic rows = training "
        "rows. Peak memory is the process's maximum resident set size.",
        "",
        "| dataset | rows x cols | generator | fit s (min-max) | sample rows/s | peak MB |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['rows']} x {r['columns']} | {r['model']} | "
            f"{r['fit_s']:.2f} ({r['fit_s_min']:.2f}-{r['fit_s_max']:.2f}) | "
            f"{r['sample_rows_per_s']:,.0f} | {r['peak_rss_mb']:.0f} |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"\nwritten {stem.with_suffix('.md')}")


if __name__ == "__main__":
    main()
