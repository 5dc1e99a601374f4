"""Robustness sweep: every SurvSet table through every tabular generator and the validation.

Each loadable SurvSet dataset (row cap ``--rows``) is fitted by each tabular generator with
tiny settings, sampled, and checked for what a user would call silently wrong: columns lost or
added, dtypes changed, missing values invented or lost, categories outside the real ones,
identifiers emitted, real rows copied. Validation (all families, small caps) runs once per
dataset on the Gaussian copula's sample. Each run is time-boxed in CPU seconds (``ITIMER_PROF``,
so that a busy machine does not turn into timeouts); wide tables (more than ``--wide`` columns,
the expression arrays) get the statistical generators only.

Run: ``OMP_NUM_THREADS=1 nice -n 5 python benchmarks/robustness_survset.py --out results.jsonl``
"""

from __future__ import annotations

import argparse
import json
import signal
import time
import traceback
import warnings
from pathlib import Path

import pandas as pd

import fedsynth
from fedsynth.datasets import list_survset, load_survset
from fedsynth.tabular.privacy.guards import COMMON_PROFILE_COUNT

TINY = {
    "gaussian_copula": {"n_quantiles": 50},
    "bayesian_network": {},
    "ctgan": {"epochs": 1, "batch_size": 50, "generator_dims": (16,), "discriminator_dims": (16,)},
    "tvae": {"epochs": 1, "batch_size": 50, "hidden_dims": (16,)},
    "vae_bgm": {"epochs": 1, "batch_size": 50, "hidden_dims": (16,)},
    "tab_ddpm": {"epochs": 1, "batch_size": 50, "hidden_dims": (16,), "embedding_dim": 8},
}


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout


def check_sample(real: pd.DataFrame, synthetic: pd.DataFrame, metadata) -> list[str]:
    """What differs between the real table and the synthetic one, in words."""
    issues = []
    expected = [c for c in real.columns if metadata.columns[c].kind != "identifier"]
    if list(synthetic.columns) != expected:
        issues.append(f"columns {list(synthetic.columns)} != {expected}")
    for column in expected:
        if column not in synthetic:
            continue
        r, s = real[column], synthetic[column]
        if str(r.dtype) != str(s.dtype):
            issues.append(f"{column}: dtype {r.dtype} -> {s.dtype}")
        if not r.isna().any() and s.isna().any():
            issues.append(f"{column}: NaN invented ({int(s.isna().sum())})")
        if isinstance(r.dtype, pd.CategoricalDtype):
            extra = set(s.dropna().astype(str)) - set(r.cat.categories.astype(str))
            if extra:
                issues.append(f"{column}: unknown categories {sorted(extra)[:3]}")
    # The copy guard lets through a row that at least COMMON_PROFILE_COUNT patients share (it
    # identifies none of them); a copy of a rarer row is a leak.
    shared = [c for c in expected if c in synthetic]
    counts = real[shared].value_counts(dropna=False).rename("n_real").reset_index()
    rare = counts[counts["n_real"] < COMMON_PROFILE_COUNT]
    copies = synthetic[shared].merge(rare, how="inner")
    if len(copies):
        issues.append(f"{len(copies)} synthetic rows copy a real row held by < 5 patients")
    return issues


def run_one(name: str, rows: int, budget: int, validate: bool, wide: int) -> list[dict]:
    records = []
    try:
        real, metadata = load_survset(name, return_metadata=True)
    except Exception as exc:
        return [{"dataset": name, "stage": "load", "error": f"{type(exc).__name__}: {exc}"}]
    real = real.sample(n=min(rows, len(real)), random_state=0).reset_index(drop=True)
    first_sample = None
    generators = TINY if real.shape[1] <= wide else ["gaussian_copula", "bayesian_network"]
    for generator in generators:
        params = TINY[generator]
        record = {"dataset": name, "generator": generator, "shape": list(real.shape)}
        start = time.process_time()
        signal.setitimer(signal.ITIMER_PROF, budget)
        stage = "make"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = fedsynth.make(generator, seed=0, **params)
                stage = "fit"
                model.fit(real, metadata)
                stage = "sample"
                synthetic = model.sample(len(real), seed=1)
            record["issues"] = check_sample(real, synthetic, model.metadata_)
            record["warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
            if first_sample is None:
                first_sample = synthetic
        except Timeout:
            record["error"] = f"timeout at {stage} after {budget}s"
        except Exception as exc:
            record["error"] = f"{stage}: {type(exc).__name__}: {exc}"
            record["trace"] = traceback.format_exc(limit=-3)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        record["cpu_s"] = round(time.process_time() - start, 2)
        records.append(record)
    if validate and real.shape[1] <= wide and first_sample is not None:
        record = {"dataset": name, "generator": "validate"}
        start = time.process_time()
        signal.setitimer(signal.ITIMER_PROF, budget * 2)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                half = len(real) // 2
                report = fedsynth.validate(
                    real.iloc[:half],
                    first_sample,
                    holdout=real.iloc[half:],
                    metadata=metadata,
                    max_rows=200,
                    n_attacks=10,
                )
                report.to_dict() if hasattr(report, "to_dict") else None
            record["warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
        except Timeout:
            record["error"] = f"timeout after {budget * 2}s"
        except Exception as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
            record["trace"] = traceback.format_exc(limit=-3)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        record["cpu_s"] = round(time.process_time() - start, 2)
        records.append(record)
    return records


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--budget", type=int, default=10, help="CPU seconds per run")
    parser.add_argument("--wide", type=int, default=300)
    parser.add_argument("--skip", nargs="*", default=[])
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--no-validate", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGPROF, _alarm)
    table = list_survset()
    names = [n for n in args.only or table["name"].tolist() if n not in args.skip]
    with open(args.out, "a") as handle:
        for name in names:
            for record in run_one(name, args.rows, args.budget, not args.no_validate, args.wide):
                handle.write(json.dumps(record, default=str) + "\n")
                handle.flush()


if __name__ == "__main__":
    main()
