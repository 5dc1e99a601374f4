"""fedsynth's generators against SDV's peers: speed, memory, quality, utility, survival, privacy.

One run fits, on each dataset, fedsynth's generators (those registered that import), SDV's
``GaussianCopulaSynthesizer``, ``CTGANSynthesizer`` and ``TVAESynthesizer`` (default settings),
and scores a ``real`` row: half of the real holdout in place of synthetic data, the limit.
Each (model, dataset) pair is fitted in its own process, so that its peak memory is its own; the
peers run in a separate environment (``benchmarks/.venv-sdv``, created on first use with
``torch==2.13.0`` first, then ``sdv==2.0.0``), so SDV never enters fedsynth's.

Run ``python benchmarks/generators.py [--models ...] [--datasets ...] [--repeats N] [--quick]``;
it prints a table and writes ``benchmarks/results/<name>.md`` and ``.json``.

Data: ``support2`` and ``flchain`` (SurvSet), 70/30 split stratified on the event; synthetic rows
= training rows. The holdout is halved (stratified): one half is the ``real`` row's table, the
other the evaluation rows of every table. Scores of each table:

- quality: SDMetrics' QualityReport score against the training rows (computed in the SDV
  environment from parquet files in a temporary folder);
- TSTR AUROC: gradient boosting of the event (features without the duration) trained on the
  table, tested on the evaluation rows; TRTR is the same trained on the training rows;
- KM gap: mean absolute gap between the table's and the training rows' Kaplan-Meier curves;
- DCR: median distance of the table's rows to their closest training row, next to the same for
  the evaluation rows (standardised numbers, one-hot categories).

Speed is measured as wall seconds and as CPU seconds of the child process (all its threads); the
speed targets are judged on CPU seconds, which other work on a shared machine does not inflate.
Neither side's fit clock counts torch's once-per-process import of its compiler stack, which the
first optimiser triggers (about 1 CPU s). Every fit, on both sides, runs with ``--threads`` threads
(default 1, set through ``OMP_NUM_THREADS`` and friends): on a shared machine, threads that spin
while they wait for each other inflate CPU time by a factor that depends on the neighbours, not on
the model. Sampling speed is that of a separate draw of ``THROUGHPUT_ROWS`` (100,000) rows after
the scored table, on both sides. ``--quick`` uses 1,000 training rows and 5 epochs for the
neural models, to smoke-test the run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _clock import THROUGHPUT_ROWS, Clock, preload_torch_optimiser_imports, timings

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SDV_VENV = HERE / ".venv-sdv"
# torch first, from its exact pin (an unpinned resolve pulls a CUDA build of several GB).
SDV_INSTALL = (("torch==2.13.0",), ("sdv==2.0.0", "pandas<3", "pyarrow"))
FEDSYNTH_MODELS = ("gaussian_copula", "bayesian_network", "ctgan", "tvae", "vae_bgm", "tab_ddpm")
PEERS = ("sdv_gaussian_copula", "sdv_ctgan", "sdv_tvae")
REAL = "real"
DEFAULT_DATASETS = ("support2", "flchain")
#: Each fedsynth deep generator and the SDV peer its targets are measured against.
TARGET_PEERS = {
    "tvae": "sdv_tvae",
    "vae_bgm": "sdv_tvae",
    "ctgan": "sdv_ctgan",
    "tab_ddpm": "sdv_tvae",
}
FIT_RATIO_TARGET = 1 / 3
MIN_SAMPLE_ROWS_PER_S = 50_000
#: Where a generator's targets differ from the above (issue 23 for TabDDPM, whose sampler runs
#: its network several times per row): fit-time ratio, sampling floor, and the fedsynth
#: generator whose quality and TSTR AUROC it must come within a tolerance of.
FIT_RATIO_TARGETS = {"tab_ddpm": 1 / 2}
MIN_SAMPLE_ROWS = {"tab_ddpm": 20_000}
MATCH_TARGETS = {"tab_ddpm": ("vae_bgm", 0.01)}
MAX_PEAK_MB = 2048  # "under 2 GB", in MiB of resident memory
MEMORY_DATASET = "support2"
QUICK_ROWS = 1000
QUICK_EPOCHS = 5


# ---------------------------------------------------------------------- data
def load_split(name: str, seed: int = 0, quick: bool = False):
    """Training rows, the ``real`` row's stand-in and the evaluation rows, and the metadata.

    Identifier columns are dropped: no generator learns them.
    """
    from sklearn.model_selection import train_test_split

    import fedsynth

    if name == "mds":
        df, truth = fedsynth.datasets.mds_cohort(n=4427, sites=3, seed=seed, return_truth=True)
        metadata = truth.metadata()
    else:
        df, metadata = fedsynth.datasets.load_survset(name, return_metadata=True)
    df = df.drop(columns=metadata.identifiers)
    event = metadata.event
    train, holdout = train_test_split(df, test_size=0.3, random_state=seed, stratify=df[event])
    if quick:
        train = train.sample(n=min(QUICK_ROWS, len(train)), random_state=seed)
        holdout = holdout.sample(n=min(QUICK_ROWS, len(holdout)), random_state=seed)
    stand_in, evaluation = train_test_split(
        holdout, test_size=0.5, random_state=seed, stratify=holdout[event]
    )
    return (
        train.reset_index(drop=True),
        stand_in.reset_index(drop=True),
        evaluation.reset_index(drop=True),
        metadata,
    )


def sdv_metadata(metadata, columns) -> dict[str, Any]:
    """SDV's single-table metadata: numbers are ``numerical``, everything else ``categorical``."""
    kinds = {c: metadata.columns[c] for c in columns}
    return {
        "columns": {
            c: {"sdtype": "numerical" if col.is_continuous else "categorical"}
            for c, col in kinds.items()
        }
    }


# ---------------------------------------------------------------------- environments
def available_models() -> list[str]:
    """fedsynth's benchmarked generators that are registered and import now."""
    import fedsynth
    from fedsynth.core.registry import get_generator_class

    names = []
    for name in FEDSYNTH_MODELS:
        if name not in fedsynth.available_generators():
            continue
        try:
            get_generator_class(name)
        except ImportError:
            continue
        names.append(name)
    return names


def sdv_python() -> Path:
    """The SDV environment's interpreter, creating the environment on first use."""
    python = SDV_VENV / "bin" / "python"
    stamp = SDV_VENV / ".fedsynth-benchmark"
    wanted = " ".join(" ".join(group) for group in SDV_INSTALL)
    if python.is_file() and stamp.is_file() and stamp.read_text().strip() == wanted:
        return python
    print(f"creating the SDV environment in {SDV_VENV} (first run: a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(SDV_VENV)], check=True)
    for group in SDV_INSTALL:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *group], check=True)
    stamp.write_text(wanted + "\n")
    return python


# ---------------------------------------------------------------------- one model, one process
def run_fedsynth(
    model: str, dataset: str, seed: int, quick: bool, out: str, overrides: dict | None = None
) -> dict:
    """Fit and sample once, in this process; write the synthetic rows to ``out``.

    ``overrides`` are keyword arguments for the generator, on top of its defaults."""
    import warnings

    import fedsynth
    from fedsynth.core.registry import get_generator_class

    warnings.simplefilter("ignore")
    train, _, _, metadata = load_split(dataset, seed, quick)
    params: dict[str, Any] = {"seed": seed}
    neural = "epochs" in get_generator_class(model)._param_names()
    if quick and neural:
        params["epochs"] = QUICK_EPOCHS
    gen = fedsynth.make(model, **{**params, **(overrides or {})})
    if neural:
        preload_torch_optimiser_imports()
    with Clock() as fit:
        gen.fit(train, metadata=metadata)
    synthetic = gen.sample(len(train), seed=seed)
    synthetic.to_parquet(out, index=False)
    with Clock() as sample:
        gen.sample(THROUGHPUT_ROWS, seed=seed + 1)
    return timings(fit, sample, THROUGHPUT_ROWS)


#: Threads each child may use (``--threads``), set through the environment before torch or
#: numpy start.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_threads = 1


def _child(command: list[str]) -> dict:
    """Run a child process that prints one JSON line last; its error text on failure."""
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(_threads))}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(model: str, dataset: str, work: Path, args: argparse.Namespace) -> dict:
    """Fit ``model`` ``args.repeats`` times, each in a fresh process; median timings.

    The first run's synthetic rows are kept (``work/<model>.parquet``) for scoring.
    """
    out = work / f"{model}.parquet"
    runs = []
    for repeat in range(args.repeats):
        target = out if repeat == 0 else work / f"{model}.{repeat}.parquet"
        if model in PEERS:
            command = [str(sdv_python()), str(HERE / "_sdv_peer.py"), "fit", model]
            command += [str(work / "train.parquet"), str(work / "sdv_metadata.json"), str(target)]
            command += ["--seed", str(args.seed)]
            if args.quick:
                command += ["--epochs", str(QUICK_EPOCHS)]
        else:
            command = [sys.executable, __file__, "--one", model, dataset, str(target)]
            command += ["--seed", str(args.seed)] + (["--quick"] if args.quick else [])
            if model in args.params:
                command += ["--params", json.dumps({model: args.params[model]})]
        result = _child(command)
        if "error" in result:
            return result
        runs.append(result)
    row: dict[str, Any] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    row["fit_s_min"] = min(r["fit_s"] for r in runs)
    row["fit_s_max"] = max(r["fit_s"] for r in runs)
    row["synthetic"] = str(out)
    return row


# ---------------------------------------------------------------------- scoring
def score(table_path: Path, work: Path, split, reference: dict[str, float]) -> dict:
    """Quality (SDMetrics, in the SDV environment), TSTR AUROC, KM gap and DCR of one table."""
    import pandas as pd
    from _scoring import dcr, km_gap, tstr_auroc

    train, _, evaluation, metadata = split
    table = pd.read_parquet(table_path)[list(train.columns)]
    quality = _child(
        [
            str(sdv_python()),
            str(HERE / "_sdv_peer.py"),
            "quality",
            str(work / "train.parquet"),
            str(table_path),
            str(work / "sdv_metadata.json"),
        ]
    )
    if "error" in quality:
        raise RuntimeError(f"SDMetrics failed on {table_path.name}: {quality['error']}")
    distances = dcr({"synthetic": table}, train, metadata)
    return {
        "quality": quality["quality"],
        "quality_properties": quality["quality_properties"],
        "auroc_tstr": tstr_auroc(table, evaluation, metadata),
        "auroc_trtr": reference["auroc_trtr"],
        "km_gap": km_gap(table, train, metadata),
        "dcr_synthetic": distances["synthetic"],
        "dcr_holdout": reference["dcr_holdout"],
    }


# ---------------------------------------------------------------------- comparisons
def compare(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Ratios against the peers of the same run, and every target with its verdict."""
    by_key = {(r["dataset"], r["model"]): r for r in rows if "error" not in r}
    comparisons, targets = [], []
    for (dataset, model), row in by_key.items():
        if model in PEERS or model == REAL:
            continue
        real = by_key.get((dataset, REAL))
        peer_rows = [by_key[(dataset, p)] for p in PEERS if (dataset, p) in by_key]
        best_peer = max(peer_rows, key=lambda r: r["quality"], default=None)
        item: dict[str, Any] = {"dataset": dataset, "model": model}
        if real is not None:
            item["quality_to_real"] = real["quality"] - row["quality"]
            item["km_gap_to_real"] = row["km_gap"] - real["km_gap"]
            if best_peer is not None:
                item["best_peer"] = best_peer["model"]
                item["best_peer_quality_to_real"] = real["quality"] - best_peer["quality"]
                item["closes_half"] = (
                    item["quality_to_real"] <= item["best_peer_quality_to_real"] / 2
                )
        ratio_target = FIT_RATIO_TARGETS.get(model, FIT_RATIO_TARGET)
        min_rows = MIN_SAMPLE_ROWS.get(model, MIN_SAMPLE_ROWS_PER_S)
        match, tolerance = MATCH_TARGETS.get(model, ("", 0.0))
        matched = by_key.get((dataset, match))
        if matched is not None:
            for key, label in (("quality", "quality"), ("auroc_tstr", "TSTR AUROC")):
                gap = row[key] - matched[key]
                targets.append(
                    _target(dataset, model, f"{label} within {tolerance} of {match}",
                            gap >= -tolerance,
                            f"{row[key]:.3f} vs {matched[key]:.3f} ({gap:+.3f})")
                )  # fmt: skip
        peer = by_key.get((dataset, TARGET_PEERS.get(model, "")))
        if peer is not None:
            item["peer"] = peer["model"]
            # CPU seconds decide: on a shared machine wall time measures the neighbours too.
            item["fit_ratio"] = row["fit_cpu_s"] / peer["fit_cpu_s"]
            item["fit_wall_ratio"] = row["fit_s"] / peer["fit_s"]
            item["quality_diff"] = row["quality"] - peer["quality"]
            item["auroc_diff"] = row["auroc_tstr"] - peer["auroc_tstr"]
            targets += [
                _target(dataset, model, f"quality >= {peer['model']}", item["quality_diff"] >= 0,
                        f"{row['quality']:.3f} vs {peer['quality']:.3f}"),
                _target(dataset, model, f"TSTR AUROC >= {peer['model']}", item["auroc_diff"] >= 0,
                        f"{row['auroc_tstr']:.3f} vs {peer['auroc_tstr']:.3f}"),
                _target(dataset, model, f"fit CPU time <= 1/{round(1 / ratio_target)} of "
                        f"{peer['model']}", item["fit_ratio"] <= ratio_target,
                        f"{row['fit_cpu_s']:.0f} vs {peer['fit_cpu_s']:.0f} CPU s "
                        f"(ratio {item['fit_ratio']:.2f}; wall {row['fit_s']:.0f} vs "
                        f"{peer['fit_s']:.0f} s, ratio {item['fit_wall_ratio']:.2f})"),
            ]  # fmt: skip
        targets.append(
            _target(dataset, model, f"samples >= {min_rows:,} rows per CPU s",
                    row["sample_rows_per_cpu_s"] >= min_rows,
                    f"{row['sample_rows_per_cpu_s']:,.0f} rows per CPU s "
                    f"({row['sample_rows_per_s']:,.0f} rows/s wall)")
        )  # fmt: skip
        if dataset == MEMORY_DATASET:
            targets.append(
                _target(dataset, model, f"peak memory < {MAX_PEAK_MB} MB",
                        row["peak_rss_mb"] < MAX_PEAK_MB, f"{row['peak_rss_mb']:.0f} MB")
            )  # fmt: skip
        if "closes_half" in item:
            targets.append(
                _target(dataset, model, "stretch: closes half the best peer's gap to real",
                        item["closes_half"],
                        f"gap {item['quality_to_real']:.3f} vs peer's "
                        f"{item['best_peer_quality_to_real']:.3f}")
            )  # fmt: skip
        comparisons.append(item)
    return comparisons, targets


def _target(dataset: str, model: str, what: str, met: bool, numbers: str) -> dict:
    return {
        "dataset": dataset,
        "model": model,
        "target": what,
        "met": bool(met),
        "numbers": numbers,
    }


# ---------------------------------------------------------------------- output
def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def write_results(rows: list[dict], args: argparse.Namespace, missing: list[str]) -> Path:
    """Write ``<name>.json`` and ``<name>.md`` under ``benchmarks/results``; returns the .md."""
    comparisons, targets = compare(rows)
    meta = {
        "date": _dt.date.today().isoformat(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "repeats": args.repeats,
        "threads_per_fit": args.threads,
        "seed": args.seed,
        "quick": args.quick,
        "params": args.params,
        "missing_models": missing,
        # The machine is shared: how busy it was tells how far timings can be trusted.
        "load_average_1min_at_write": os.getloadavg()[0],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / args.name
    payload = {"meta": meta, "rows": rows, "comparisons": comparisons, "targets": targets}
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    scope = "QUICK smoke run (1,000 training rows, 5 epochs): not a measurement. " * args.quick
    lines = [
        "# Generators against SDV: speed, memory, quality, utility, survival, privacy",
        "",
        f"{scope}One run of `benchmarks/generators.py`, {meta['date']}; {meta['cpus']} CPUs "
        f"(shared; load average {meta['load_average_1min_at_write']:.1f} when written), "
        f"Python {meta['python']}, {args.threads} thread(s) per fit on both sides, "
        f"median of {args.repeats} fit(s) per pair, each in a "
        "fresh process. 70/30 split stratified on the event; synthetic rows = training rows. "
        "SDV 2.0.0 peers with default settings; fedsynth generators with theirs"
        + "".join(f", {m} with {json.dumps(p)}" for m, p in args.params.items())
        + ". `real`: half of "
        "the holdout in place of synthetic rows (the limit); the other half is the evaluation "
        "set of every row. Quality: SDMetrics QualityReport vs the training rows. AUROC: "
        "HistGradientBoosting of the event, features without time, tested on the evaluation "
        "rows (TRTR: trained on the training rows). KM gap: mean absolute gap of Kaplan-Meier "
        "curves vs the training rows (200 times up to the 95th percentile). DCR: median "
        "distance to the closest training row, synthetic vs evaluation rows. Sampling speed: "
        f"a draw of {THROUGHPUT_ROWS:,} rows.",
        "",
        "| dataset | generator | fit s (CPU s) | sample rows/s (per CPU s) | peak MB | quality "
        "| AUROC TSTR (TRTR) | KM gap | DCR syn / holdout |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['dataset']} | {r['model']} | failed: {r['error'][:120]} "
                         "| | | | | | |")  # fmt: skip
            continue
        lines.append(
            f"| {r['dataset']} | {r['model']} "
            f"| {_fmt(r.get('fit_s'), '.1f')} ({_fmt(r.get('fit_cpu_s'), '.1f')}) "
            f"| {_fmt(r.get('sample_rows_per_s'), ',.0f')} "
            f"({_fmt(r.get('sample_rows_per_cpu_s'), ',.0f')}) "
            f"| {_fmt(r.get('peak_rss_mb'), '.0f')} "
            f"| {r['quality']:.3f} | {r['auroc_tstr']:.3f} ({r['auroc_trtr']:.3f}) "
            f"| {r['km_gap']:.3f} | {r['dcr_synthetic']:.2f} / {r['dcr_holdout']:.2f} |"
        )
    lines += [
        "",
        "## Against the peers and the limit",
        "",
        "Fit-time ratio (CPU seconds; wall in brackets) and differences against the SDV peer of "
        "the same kind (TVAE for `tvae` and `vae_bgm`, CTGAN for `ctgan`); distance to `real` = "
        "real's quality - quality, next to the best SDV peer's. Speed targets are judged on CPU "
        "seconds, which the other work on a shared machine does not inflate.",
        "",
        "| dataset | generator | peer | fit-time ratio | Δ quality | Δ AUROC "
        "| quality distance to real (best peer's) | KM gap - real's |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        distance = _fmt(c.get("quality_to_real"), ".3f")
        if "best_peer_quality_to_real" in c:
            distance += f" ({c['best_peer_quality_to_real']:.3f}, {c['best_peer']})"
        lines.append(
            f"| {c['dataset']} | {c['model']} | {c.get('peer', '-')} "
            f"| {_fmt(c.get('fit_ratio'), '.2f')} ({_fmt(c.get('fit_wall_ratio'), '.2f')}) "
            f"| {_fmt(c.get('quality_diff'), '+.3f')} "
            f"| {_fmt(c.get('auroc_diff'), '+.3f')} | {distance} "
            f"| {_fmt(c.get('km_gap_to_real'), '+.3f')} |"
        )
    failed = [t for t in targets if not t["met"]]
    lines += [
        "",
        f"## Targets: {len(targets) - len(failed)} of {len(targets)} met",
        "",
        "| dataset | generator | target | met | numbers |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {t['dataset']} | {t['model']} | {t['target']} | {'yes' if t['met'] else '**no**'} "
        f"| {t['numbers']} |"
        for t in targets
    ]
    if missing:
        lines += ["", f"Not benchmarked (not registered or not importable): {', '.join(missing)}."]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return stem.with_suffix(".md")


# ---------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="+",
        help=f"default: fedsynth's {', '.join(FEDSYNTH_MODELS)} that import, "
        f"{', '.join(PEERS)} and {REAL}",
    )
    parser.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS))
    parser.add_argument("--repeats", type=int, default=1, help="fits per pair (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="1,000 rows, 5 epochs: smoke test")
    parser.add_argument("--name", default="generators", help="results file stem")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads per fit, both sides (default 1: on a shared machine, threads that wait "
        "for each other burn CPU time and blur the ratios)",
    )
    parser.add_argument(
        "--params",
        type=json.loads,
        default={},
        help="JSON of generator keyword arguments per fedsynth model, on top of the defaults, "
        'e.g. \'{"vae_bgm": {"loss_factor": 8}}\' (the table notes them)',
    )
    parser.add_argument(
        "--one", nargs=3, metavar=("MODEL", "DATASET", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:  # child process
        print(
            json.dumps(
                run_fedsynth(
                    *args.one[:2],
                    args.seed,
                    args.quick,
                    args.one[2],
                    args.params.get(args.one[0]),
                )
            )
        )
        return

    from _scoring import dcr, tstr_auroc

    global _threads
    _threads = args.threads
    present = available_models()
    missing = [m for m in FEDSYNTH_MODELS if m not in present]
    models = args.models or [*present, *PEERS, REAL]
    if args.models:
        missing = [m for m in missing if m in args.models]
        models = [m for m in models if m not in missing]
    sdv_python()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="fedsynth-benchmark-") as tmp:
        for dataset in args.datasets:
            work = Path(tmp) / dataset
            work.mkdir()
            split = load_split(dataset, args.seed, args.quick)
            train, stand_in, evaluation, metadata = split
            train.to_parquet(work / "train.parquet", index=False)
            stand_in.to_parquet(work / f"{REAL}.parquet", index=False)
            (work / "sdv_metadata.json").write_text(json.dumps(sdv_metadata(metadata, train)))
            reference = {
                "auroc_trtr": tstr_auroc(train, evaluation, metadata),
                "dcr_holdout": dcr({"holdout": evaluation}, train, metadata)["holdout"],
            }
            for model in models:
                row: dict[str, Any] = {
                    "model": model,
                    "dataset": dataset,
                    "rows": len(train),
                    "columns": train.shape[1],
                }
                if model == REAL:
                    row.update(synthetic=str(work / f"{REAL}.parquet"), rows=len(stand_in))
                else:
                    row.update(measure(model, dataset, work, args))
                if "error" not in row:
                    try:
                        row.update(score(Path(row.pop("synthetic")), work, split, reference))
                    except Exception as exc:  # a table that cannot be scored is reported
                        row["error"] = f"scoring: {type(exc).__name__}: {exc}"
                rows.append(row)
                _print_row(row)
                write_results(rows, args, missing)  # partial results survive an interruption
    path = write_results(rows, args, missing)
    print()
    print(path.read_text())


def _print_row(row: dict) -> None:
    if "error" in row:
        print(f"{row['dataset']:9s} {row['model']:20s} FAILED: {row['error']}", flush=True)
        return
    print(
        f"{row['dataset']:9s} {row['model']:20s} fit {_fmt(row.get('fit_s'), '8.1f')} s "
        f"({_fmt(row.get('fit_cpu_s'), '.1f')} CPU s)  "
        f"sample {_fmt(row.get('sample_rows_per_s'), '>10,.0f')} rows/s  "
        f"peak {_fmt(row.get('peak_rss_mb'), '5.0f')} MB  quality {row['quality']:.3f}  "
        f"AUROC {row['auroc_tstr']:.3f} ({row['auroc_trtr']:.3f})  KM gap {row['km_gap']:.3f}  "
        f"DCR {row['dcr_synthetic']:.2f}/{row['dcr_holdout']:.2f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
