"""Time to build the whole validation report (every family, HTML and JSON) on this machine.

Cases, each run in a fresh process (so that one-off costs such as Anonymeter's numba compilation
count, as they do for a user):

- ``wide``: 10,000 training rows x 50 columns (the simulated MDS cohort plus five noisy
  laboratory columns), a 4,000-row holdout, 10,000 synthetic rows from ``gaussian_copula``;
- ``mds``: the 4427-patient MDS cohort, 70/30 split stratified on the event, as many synthetic
  rows as training rows from ``bayesian_network``.

Run with ``python benchmarks/validation.py [--cases ...] [--repeats N]``; prints a table and writes
``benchmarks/results/validation.md`` and ``.json``. Wall time depends on what else the machine
runs, so CPU time and the load average at the start are recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CASES = {
    "wide": ("gaussian_copula", 10_000),
    "mds": ("bayesian_network", None),
}


def load_case(name: str, seed: int = 0):
    """Training, holdout and synthetic frames and the metadata of a benchmark case."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    import fedsynth

    model, n_train = CASES[name]
    if name == "wide":
        df, truth = fedsynth.datasets.mds_cohort(n=14_000, sites=3, seed=seed, return_truth=True)
        rng = np.random.default_rng(seed)
        labs = {"ldh": 60.0, "ferritin": 400.0, "crp": 8.0, "creatinine": 0.3, "albumin": 1.2}
        for lab, scale in labs.items():
            df[lab] = np.round(
                scale * (2 + 0.3 * df["ipssm_score"] + rng.gamma(2.0, size=len(df))), 1
            )
        metadata = fedsynth.Metadata.infer(
            df, overrides={c: col.to_dict() for c, col in truth.metadata().columns.items()}
        )
        train, holdout = df.iloc[:n_train], df.iloc[n_train:]
    else:
        df, truth = fedsynth.datasets.mds_cohort(n=4427, sites=3, seed=seed, return_truth=True)
        metadata = truth.metadata()
        train, holdout = train_test_split(
            df, test_size=0.3, random_state=seed, stratify=df[metadata.event]
        )
    train, holdout = train.reset_index(drop=True), holdout.reset_index(drop=True)
    generator = fedsynth.make(model, seed=seed).fit(train, metadata=metadata)
    synthetic = generator.sample(len(train), seed=seed)
    return train, holdout, synthetic, metadata


def run_one(name: str, seed: int) -> dict:
    """Build the report once, in this process; returns the measurements."""
    from fedsynth.tabular.validation import validate

    train, holdout, synthetic, metadata = load_case(name, seed)
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    report = validate(train, synthetic, holdout=holdout, metadata=metadata, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        report.to_html(Path(tmp) / "report.html")
        report.to_json(Path(tmp) / "report.json")
        html_kb = (Path(tmp) / "report.html").stat().st_size / 1024
    return {
        "case": name,
        "generator": CASES[name][0],
        "rows": len(train),
        "holdout_rows": len(holdout),
        "columns": report.info["columns"],
        "report_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "load_average": load,
        "family_s": report.info["seconds"],
        "html_kb": html_kb,
        "scores": {k: v for k, v in report.scores.items() if v is not None},
        "status": report.status,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=1, help="runs per case (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", metavar="CASE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.seed)))
        return

    rows = []
    for case in args.cases:
        runs = []
        for _ in range(args.repeats):
            output = subprocess.run(
                [sys.executable, __file__, "--one", case, "--seed", str(args.seed)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs.append(json.loads(output.strip().splitlines()[-1]))
        best = sorted(runs, key=lambda r: r["report_s"])[len(runs) // 2]
        best["report_s_all"] = [r["report_s"] for r in runs]
        best["report_s_median"] = statistics.median(best["report_s_all"])
        rows.append(best)

    columns = [
        "case",
        "rows x cols",
        "generator",
        "report s (wall)",
        "CPU s",
        "load",
        "html KB",
        "CSF",
        "GSF",
        "privacy",
        "overall",
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        s = r["scores"]
        lines.append(
            f"| {r['case']} | {r['rows']:,} x {r['columns']} | {r['generator']} | "
            f"{r['report_s_median']:.1f} | {r['cpu_s']:.1f} | {r['load_average']:.1f} | "
            f"{r['html_kb']:.0f} | {s.get('csf', float('nan')):.3f} | "
            f"{s.get('gsf', float('nan')):.3f} | {s.get('privacy', float('nan')):.3f} | "
            f"{s.get('overall', float('nan')):.3f} |"
        )
    families = "\n".join(
        f"- {r['case']}: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["family_s"].items())
        for r in rows
    )
    text = (
        "# Validation report: time to build\n\n"
        f"Whole report (every metric family, HTML and JSON), median of {args.repeats} run(s), "
        f"each in a fresh process; {os.cpu_count()} CPUs, Python {platform.python_version()}. "
        "Holdout: 4,000 rows (wide), 30 % (mds). Heavy metrics use at most 5,000 rows per table "
        "(max_rows); Anonymeter runs 500 attacks per evaluator. Load: the 1-minute load average "
        "at the start (other work on the machine slows the wall time).\n\n"
        + "\n".join(lines)
        + f"\n\nSeconds by family:\n\n{families}\n"
    )
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "validation.md").write_text(text)
    (RESULTS / "validation.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
