"""Where tab_ddpm loses quality to vae_bgm: SDMetrics per column and per pair, as scored.

Each run fits one generator (with optional keyword overrides) on one dataset and split seed of
``benchmarks/generators.py`` (same split, same seeds, same synthetic row count, same sampling
speed draw), scores the synthetic rows with SDMetrics' QualityReport in the SDV environment and
keeps each column's shape score and each pair's trend score::

    python benchmarks/tab_ddpm_diagnosis.py fit tab_ddpm flchain 1 --label v2
    python benchmarks/tab_ddpm_diagnosis.py fit vae_bgm flchain 1
    python benchmarks/tab_ddpm_diagnosis.py compare flchain 1 tab_ddpm:v2 vae_bgm

``compare`` prints the overall scores and the columns and pairs whose scores differ most. Runs
are kept as JSON in ``--store`` (default: a ``tab_ddpm_diagnosis`` folder in the system's
temporary directory), with the synthetic rows beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import generators as bench

STORE = Path(tempfile.gettempdir()) / "tab_ddpm_diagnosis"


def _key(model: str, dataset: str, seed: int, label: str | None) -> str:
    return f"{dataset}_{seed}_{model}" + (f"_{label}" if label else "")


def fit(args: argparse.Namespace) -> dict:
    """Fit, sample and score one generator on one split; store and return the record."""
    import torch

    torch.set_num_threads(1)
    store = Path(args.store)
    store.mkdir(parents=True, exist_ok=True)
    key = _key(args.model, args.dataset, args.seed, args.label)
    train, _, _, metadata = bench.load_split(args.dataset, args.seed)
    train_path = store / f"{args.dataset}_{args.seed}_train.parquet"
    metadata_path = store / f"{args.dataset}_{args.seed}_metadata.json"
    train.to_parquet(train_path, index=False)
    metadata_path.write_text(json.dumps(bench.sdv_metadata(metadata, train)))
    synthetic = store / f"{key}.parquet"
    params = json.loads(args.params) if args.params else None
    timing = bench.run_fedsynth(args.model, args.dataset, args.seed, False, str(synthetic), params)
    command = [str(bench.sdv_python()), str(bench.HERE / "_sdv_peer.py"), "quality"]
    command += [str(train_path), str(synthetic), str(metadata_path), "--details"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    record = {
        "model": args.model,
        "dataset": args.dataset,
        "seed": args.seed,
        "label": args.label,
        "params": params,
        **timing,
        **json.loads(done.stdout.strip().splitlines()[-1]),
    }
    (store / f"{key}.json").write_text(json.dumps(record, indent=1))
    print(
        f"{key}: quality {record['quality']:.4f} "
        f"(shapes {record['quality_properties']['Column Shapes']:.4f}, "
        f"pairs {record['quality_properties']['Column Pair Trends']:.4f}); "
        f"fit {record['fit_cpu_s']:.1f} CPU s; "
        f"{record['sample_rows_per_cpu_s']:,.0f} rows per CPU s",
        flush=True,
    )
    return record


def compare(args: argparse.Namespace) -> None:
    """Print two runs' scores side by side, the largest differences first."""
    store = Path(args.store)
    runs = []
    for name in (args.first, args.second):
        model, _, label = name.partition(":")
        path = store / f"{_key(model, args.dataset, args.seed, label or None)}.json"
        runs.append(json.loads(path.read_text()))
    a, b = runs
    print(f"{args.first} vs {args.second} on {args.dataset}, split seed {args.seed}")
    print(f"quality {a['quality']:.4f} vs {b['quality']:.4f} ({a['quality'] - b['quality']:+.4f})")
    for prop in a["quality_properties"]:
        x, y = a["quality_properties"][prop], b["quality_properties"][prop]
        print(f"  {prop}: {x:.4f} vs {y:.4f} ({x - y:+.4f})")
    print("column shapes (largest gaps first):")
    shapes = a["column_shapes"]
    gaps = sorted(shapes, key=lambda c: shapes[c][1] - b["column_shapes"][c][1])
    for column in gaps:
        x, y = shapes[column][1], b["column_shapes"][column][1]
        print(f"  {column:12s} {shapes[column][0]:16s} {x:.4f} vs {y:.4f} ({x - y:+.4f})")
    other = {(p[0], p[1]): p[3] for p in b["pair_trends"]}
    pairs = [(p[0], p[1], p[2], p[3], other[(p[0], p[1])]) for p in a["pair_trends"]]
    pairs = [p for p in pairs if p[3] is not None and p[4] is not None]
    pairs.sort(key=lambda p: p[3] - p[4])
    print(f"pair trends, {args.top} largest gaps each way:")
    for first, second, metric, x, y in [*pairs[: args.top], *pairs[-args.top :]]:
        print(f"  {first:>10s} x {second:10s} {metric:22s} {x:.4f} vs {y:.4f} ({x - y:+.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(STORE))
    commands = parser.add_subparsers(dest="command", required=True)
    fit_parser = commands.add_parser("fit")
    fit_parser.add_argument("model")
    fit_parser.add_argument("dataset")
    fit_parser.add_argument("seed", type=int)
    fit_parser.add_argument("--label")
    fit_parser.add_argument("--params", help="JSON of keyword overrides")
    compare_parser = commands.add_parser("compare")
    compare_parser.add_argument("dataset")
    compare_parser.add_argument("seed", type=int)
    compare_parser.add_argument("first", help="MODEL or MODEL:LABEL")
    compare_parser.add_argument("second", help="MODEL or MODEL:LABEL")
    compare_parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    if args.command == "fit":
        if os.environ.get("OMP_NUM_THREADS") != "1":
            raise SystemExit("run with OMP_NUM_THREADS=1: the benchmark fits on one thread")
        fit(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
