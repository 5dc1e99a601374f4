"""Scale: fit and sample 1,000,000 rows x 50 columns with fedsynth's default generators.

One run builds a 1,000,000-row x 50-column table from SUPPORT2 (SurvSet, offline; see
:func:`build_table`), writes it once to a Parquet file in a temporary folder, then, for each
generator (``gaussian_copula``, ``bayesian_network``, ``vae_bgm`` by default), runs one child
process that reads the file, fits the generator with its default settings and draws 100,000,
250,000, 500,000 and 1,000,000 rows, after a draw of 1,000 rows that takes the one-time costs of
a first draw (timed apart, left out of the rates). The four draws are made in ``--repeats``
rounds (default 3) and each size is read at its median, so a burst of load on the shared
machine does not pass for a cost of the rows; sampling runs on ``--sample-threads`` torch
threads (default 1). Each child
reports the wall and CPU seconds (all its threads, ``getrusage(RUSAGE_SELF)``) of the fit and of
every draw, its peak resident memory (``ru_maxrss``) after reading the table, after the fit and
at the end, and the machine's load average around its run (the machine is shared: wall time
measures the neighbours too, CPU time does not).

Targets (issue 23, part 4): each fit within 10 minutes on 2 cores and at most 4 GB of peak
memory; sampling time linear in the rows. A fit runs with ``--threads`` threads (default 1, set
through ``OMP_NUM_THREADS`` and friends and ``torch.set_num_threads``), so its CPU seconds are
the time it would take on one idle core of the two; the fit target is judged on both CPU and
wall seconds. Linearity is judged on CPU seconds: every draw's median within 15% of the
straight line (fixed cost >= 0 plus cost per row) fitted through the four medians.

Run ``python benchmarks/scale.py [--models ...] [--rows N] [--threads T]``; it prints a table
and writes ``benchmarks/results/<name>.md`` and ``.json`` (``--name``, default ``scale``).
``--rows 20000 --name scale_quick`` smoke-tests the run in a minute.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _clock import Clock, preload_torch_optimiser_imports
from scipy.optimize import nnls

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MODELS = ("gaussian_copula", "bayesian_network", "vae_bgm")
ROWS = 1_000_000
#: Draws after the fit, in this order; the last is the full table's size.
SAMPLE_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
WARM_UP_ROWS = 1_000
MAX_FIT_S = 600  # "<= 10 minutes on 2 cores"
MAX_PEAK_MB = 4096  # "<= 4 GB peak memory", in MiB of resident memory
#: Sampling is called linear when every draw's CPU seconds are within this fraction of the
#: straight line fitted through them (CPU time on a loaded machine varies by a few percent).
LINEAR_TOLERANCE = 0.15
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
SOURCE = "support2"

# Widening SUPPORT2's 36 columns to 50. Each added column is computed from the resampled,
# jittered real columns, as a second measurement, a derived index or a recoding would be.
#: Second measurements: a copy with its own Gaussian noise of this fraction of the column's SD.
REPEATS = ("age", "meanbp", "wblc", "hrt", "temp", "crea", "bun", "glucose")
REPEAT_NOISE = 0.25
#: Jitter of every resampled numeric value, as a fraction of its column's SD.
JITTER = 0.05


# ---------------------------------------------------------------------- data
def build_table(rows: int, seed: int = 0):
    """SUPPORT2 resampled to ``rows`` rows with jitter and widened to 50 columns, and the
    metadata (kinds only; the generators fill in the rest from the rows).

    - Rows are drawn with replacement from SUPPORT2's 9,105.
    - Numeric columns (the duration ``time`` included) get Gaussian noise of ``JITTER`` (5%)
      of their SD; whole-number columns are rounded back; every value is clipped to the
      column's observed range (the duration to at least 1 day). Missing values stay missing.
      Categorical columns and the event are copied as drawn.
    - 14 columns are added: ``REPEATS`` (8) as ``<name>_2``, each with its own noise of 25% of
      the SD; ``bun_crea_ratio`` (bun / crea) and ``log_bili`` (log1p of bili); ``age_group``
      (decades, categorical) and ``sps_band`` (quartiles of sps, categorical); ``sex_race``
      and ``dzclass_ca`` (crossed categories).
    """
    import numpy as np
    import pandas as pd

    import fedsynth

    real, metadata = fedsynth.datasets.load_survset(SOURCE, return_metadata=True)
    real = real.drop(columns=metadata.identifiers)
    rng = np.random.default_rng(seed)
    table = real.iloc[rng.integers(0, len(real), size=rows)].reset_index(drop=True)
    kinds = {name: col.kind for name, col in metadata.columns.items() if name in table}
    for name, kind in kinds.items():
        if kind not in ("numeric", "duration"):
            continue
        values = real[name].to_numpy(dtype=np.float64)
        low, high = np.nanmin(values), np.nanmax(values)
        if kind == "duration":
            low = max(low, 1.0)
        jittered = table[name].to_numpy(dtype=np.float64)
        jittered = jittered + rng.normal(0.0, JITTER * np.nanstd(values), size=rows)
        if metadata.columns[name].integer:
            jittered = np.round(jittered)
        table[name] = np.clip(jittered, low, high).astype(real[name].dtype)
    for name in REPEATS:
        values = table[name].to_numpy(dtype=np.float64)
        table[f"{name}_2"] = values + rng.normal(0.0, REPEAT_NOISE * np.nanstd(values), size=rows)
        kinds[f"{name}_2"] = "numeric"
    table["bun_crea_ratio"] = table["bun"] / table["crea"].clip(lower=0.1)
    table["log_bili"] = np.log1p(table["bili"].clip(lower=0))
    decade = (table["age"] // 10 * 10).astype(int).clip(10, 90)
    table["age_group"] = pd.Categorical(decade.astype(str) + "s")
    table["sps_band"] = pd.qcut(table["sps"], 4, labels=["q1", "q2", "q3", "q4"])
    table["sex_race"] = pd.Categorical(table["sex"].astype(str) + "/" + table["race"].astype(str))
    table["dzclass_ca"] = pd.Categorical(
        table["dzclass"].astype(str) + "/" + table["ca"].astype(str)
    )
    kinds.update(bun_crea_ratio="numeric", log_bili="numeric")
    kinds.update(dict.fromkeys(("age_group", "sps_band", "sex_race", "dzclass_ca"), "categorical"))
    return table, {"columns": kinds}


# ---------------------------------------------------------------------- one model, one process
def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(
    model: str,
    table_path: str,
    metadata_path: str,
    seed: int,
    repeats: int = 3,
    sample_threads: int = 1,
) -> dict[str, Any]:
    """Fit ``model`` (defaults) on the Parquet table and time the draws, in this process."""
    import warnings

    import pandas as pd

    import fedsynth
    from fedsynth.core.registry import get_generator_class
    from fedsynth.tabular.metadata import Metadata

    warnings.simplefilter("ignore")
    neural = "epochs" in get_generator_class(model)._param_names()
    if neural:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        preload_torch_optimiser_imports()
    data = pd.read_parquet(table_path)
    metadata = Metadata.from_dict(json.loads(Path(metadata_path).read_text()))
    result: dict[str, Any] = {"rows": len(data), "columns": data.shape[1]}
    result["peak_rss_mb_data"] = _peak_mb()
    gen = fedsynth.make(model, seed=seed)
    load = [os.getloadavg()[0]]
    with Clock() as fit:
        gen.fit(data, metadata=metadata)
    load.append(os.getloadavg()[0])
    result.update(fit_s=fit.wall, fit_cpu_s=fit.cpu, peak_rss_mb_fit=_peak_mb())
    del data  # what sampling needs is the model, not the rows
    # One-time costs of a first draw (lazy imports, caches) are not the rows' cost: a small
    # draw takes them first, reported apart.
    with Clock() as warm:
        gen.sample(WARM_UP_ROWS, seed=seed)
    result.update(warm_up_s=warm.wall, warm_up_cpu_s=warm.cpu)
    if neural:
        # Sampling's CPU seconds are read on one thread: with two, a neighbour on the machine
        # makes one OpenMP thread wait for the other, which counts as CPU time too.
        torch.set_num_threads(sample_threads)
    sizes = [round(fraction * result["rows"]) for fraction in SAMPLE_FRACTIONS]
    timings: dict[int, list[tuple[float, float]]] = {n: [] for n in sizes}
    # Rounds of every size in turn, so a burst of load on the machine hits all sizes alike;
    # each size is then read at its median.
    for _ in range(repeats):
        for n in sizes:
            with Clock() as clock:
                synthetic = gen.sample(n, seed=seed + 1)
            assert len(synthetic) == n
            del synthetic
            timings[n].append((clock.wall, clock.cpu))
            load.append(os.getloadavg()[0])
    draws = [
        {
            "rows": n,
            "s": float(np.median([w for w, _ in timings[n]])),
            "cpu_s": float(np.median([c for _, c in timings[n]])),
            "repeats_s": [w for w, _ in timings[n]],
            "repeats_cpu_s": [c for _, c in timings[n]],
        }
        for n in sizes
    ]
    result.update(draws=draws, peak_rss_mb=_peak_mb(), load_1min=load)
    return result


def measure(model: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`run_one` in a child process; its error text on failure."""
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(args.threads))}
    command = [sys.executable, __file__, "--one", model, str(work / "table.parquet")]
    command += [str(work / "metadata.json"), "--seed", str(args.seed)]
    command += ["--repeats", str(args.repeats), "--sample-threads", str(args.sample_threads)]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, env=env, timeout=args.timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout} s"}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit status {done.returncode}"}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["process_s"] = time.perf_counter() - start
    return row


# ---------------------------------------------------------------------- verdicts
def judge(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of one generator, each with its verdict and numbers."""
    draws = row["draws"]
    rates = [d["rows"] / max(d["cpu_s"], 1e-3) for d in draws]
    ratio = rates[-1] / rates[0]
    # Linear growth is a fixed cost per draw plus a cost per row: a straight line through the
    # draws' (median) CPU seconds, each draw judged by its distance to it. A fixed cost cannot
    # be negative: a free fit through four noisy draws can make it so and then misjudges the
    # smallest draw, so the line is fitted with intercept >= 0.
    rows, cpu = (np.array([d[key] for d in draws], dtype=float) for key in ("rows", "cpu_s"))
    (intercept, slope), _ = nnls(np.column_stack([np.ones_like(rows), rows]), cpu)
    worst = float(np.max(np.abs(cpu - (intercept + slope * rows)) / cpu))
    return [
        {
            "target": f"fit <= {MAX_FIT_S} CPU s (one thread: <= 10 min on one of 2 idle cores)",
            "met": row["fit_cpu_s"] <= MAX_FIT_S,
            "numbers": f"{row['fit_cpu_s']:.0f} CPU s",
        },
        {
            "target": f"fit <= {MAX_FIT_S} s wall on this shared machine",
            "met": row["fit_s"] <= MAX_FIT_S,
            "numbers": f"{row['fit_s']:.0f} s (load {max(row['load_1min']):.1f} at most)",
        },
        {
            "target": f"peak memory <= {MAX_PEAK_MB} MB",
            "met": row["peak_rss_mb"] <= MAX_PEAK_MB,
            "numbers": f"{row['peak_rss_mb']:.0f} MB ({row['peak_rss_mb_data']:.0f} MB after "
            f"reading the table, {row['peak_rss_mb_fit']:.0f} MB after the fit)",
        },
        {
            "target": "sampling time linear in the rows: each draw's median CPU s within "
            f"{LINEAR_TOLERANCE:.0%} of a straight line a + b x rows (a >= 0)",
            "met": bool(slope > 0 and worst <= LINEAR_TOLERANCE),
            "numbers": f"a = {intercept:.2f} CPU s, b = {slope * 1e5:.2f} CPU s per 100,000 rows, "
            f"largest deviation {worst:.0%}; rows per CPU s at the largest draw / smallest "
            f"{ratio:.2f}",
        },
    ]


# ---------------------------------------------------------------------- output
def write_results(rows: list[dict], args: argparse.Namespace, table_s: float) -> Path:
    """Write ``<name>.json`` and ``<name>.md`` under ``benchmarks/results``; returns the .md."""
    meta = {
        "date": _dt.date.today().isoformat(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "threads_per_fit": args.threads,
        "repeats": args.repeats,
        "sample_threads": args.sample_threads,
        "seed": args.seed,
        "rows": args.rows,
        "source": SOURCE,
        "table_build_s": table_s,
        "load_average_1min_at_write": os.getloadavg()[0],
    }
    for row in rows:
        if "error" not in row:
            row["targets"] = judge(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / args.name
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    sizes = [round(f * args.rows) for f in SAMPLE_FRACTIONS]
    lines = [
        f"# Scale: {args.rows:,} rows x 50 columns",
        "",
        f"One run of `benchmarks/scale.py`, {meta['date']}; {meta['cpus']} CPUs shared with "
        f"other work (see the load column), Python {meta['python']}, {args.threads} thread(s) per "
        "fit. Table: SUPPORT2 (9,105 rows, 36 columns) resampled with replacement to "
        f"{args.rows:,} rows, numeric values jittered by 5% of their SD, widened to 50 columns "
        "with 8 noisy second measurements, 2 derived numbers, 2 binned and 2 crossed "
        "categories (`build_table`). Each generator: default settings, its own process, fitted "
        f"once, then a {WARM_UP_ROWS:,}-row draw (one-time costs of a first draw, left out of "
        "the rates) and draws of " + ", ".join(f"{n:,}" for n in sizes) + " rows, in "
        f"{args.repeats} round(s), each size read at its median, sampling on "
        f"{args.sample_threads} torch thread(s). CPU seconds "
        "count all the process's threads; peak memory is the process's peak RSS, the table "
        "included.",
        "",
        "| generator | fit s (CPU s) | sample "
        f"{sizes[-1]:,} s (CPU s) | rows per CPU s at " + " / ".join(f"{n:,}" for n in sizes)
        + " | largest / smallest | peak MB (table, after fit) | load 1 min |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | failed: {r['error'][:200]} | | | | | |")
            continue
        rates = [d["rows"] / max(d["cpu_s"], 1e-3) for d in r["draws"]]
        last = r["draws"][-1]
        lines.append(
            f"| {r['model']} | {r['fit_s']:.1f} ({r['fit_cpu_s']:.1f}) "
            f"| {last['s']:.1f} ({last['cpu_s']:.1f}) "
            f"| {' / '.join(f'{x:,.0f}' for x in rates)} | {rates[-1] / rates[0]:.2f} "
            f"| {r['peak_rss_mb']:.0f} ({r['peak_rss_mb_data']:.0f}, {r['peak_rss_mb_fit']:.0f}) "
            f"| {min(r['load_1min']):.1f}-{max(r['load_1min']):.1f} |"
        )
    targets = [(r["model"], t) for r in rows if "error" not in r for t in r["targets"]]
    failed = [t for _, t in targets if not t["met"]]
    lines += [
        "",
        f"## Targets: {len(targets) - len(failed)} of {len(targets)} met",
        "",
        "| generator | target | met | numbers |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {m} | {t['target']} | {'yes' if t['met'] else '**no**'} | {t['numbers']} |"
        for m, t in targets
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return stem.with_suffix(".md")


# ---------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="threads per fit (default 1)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of draws; each size read at its median"
    )
    parser.add_argument(
        "--sample-threads", type=int, default=1, help="torch threads while sampling (default 1)"
    )
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per generator")
    parser.add_argument("--name", default="scale", help="results file stem")
    parser.add_argument(
        "--from-json", type=Path, help="rewrite the tables from a results .json, running nothing"
    )
    parser.add_argument(
        "--one", nargs=3, metavar=("MODEL", "TABLE", "META"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:  # child process
        print(json.dumps(run_one(*args.one, args.seed, args.repeats, args.sample_threads)))
        return
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        rows = [{k: v for k, v in r.items() if k != "targets"} for r in saved["rows"]]
        args.rows, args.seed = saved["meta"]["rows"], saved["meta"]["seed"]
        args.threads = saved["meta"]["threads_per_fit"]
        args.repeats = saved["meta"].get("repeats", 1)
        args.sample_threads = saved["meta"].get("sample_threads", args.threads)
        print(write_results(rows, args, saved["meta"]["table_build_s"]).read_text())
        return
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="fedsynth-scale-") as tmp:
        work = Path(tmp)
        with Clock() as built:
            table, metadata = build_table(args.rows, args.seed)
            table.to_parquet(work / "table.parquet", index=False)
        (work / "metadata.json").write_text(json.dumps(metadata))
        print(f"table {table.shape} built and written in {built.wall:.1f} s", flush=True)
        del table
        for model in args.models:
            row = {"model": model, **measure(model, work, args)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            write_results(rows, args, built.wall)  # partial results survive an interruption
    path = write_results(rows, args, built.wall)
    print()
    print(path.read_text())


if __name__ == "__main__":
    main()
