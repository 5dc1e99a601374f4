"""SDV's side of the generator benchmark; runs in the benchmark's own SDV environment.

It imports neither fedsynth nor anything of this repository, so that SDV and its pins stay out of
fedsynth's environment. Two commands, each printing one JSON line:

``fit MODEL TRAIN METADATA OUT [--epochs N] [--seed S]``
    Fit an SDV synthesizer (default settings unless ``--epochs``) on the ``TRAIN`` parquet file,
    sample as many rows, write them to ``OUT`` (parquet); report fit seconds, sampling speed
    (a timed draw of ``THROUGHPUT_ROWS`` rows) and the process's peak resident memory.
``quality TRAIN SYNTHETIC METADATA [--details]``
    SDMetrics' QualityReport score of a synthetic table against the training table; with
    ``--details``, also each column's shape score and each pair's trend score.

``METADATA`` is SDV's single-table metadata as JSON (``{"columns": {name: {"sdtype": ...}}}``).
"""

from __future__ import annotations

import argparse
import json
import warnings

import pandas as pd
from _clock import THROUGHPUT_ROWS, Clock, preload_torch_optimiser_imports, timings

PEERS = {
    "sdv_gaussian_copula": "GaussianCopulaSynthesizer",
    "sdv_ctgan": "CTGANSynthesizer",
    "sdv_tvae": "TVAESynthesizer",
}


def fit(args: argparse.Namespace) -> dict:
    import numpy as np
    import sdv.single_table
    import torch
    from sdv.metadata import Metadata

    np.random.seed(args.seed)  # noqa: NPY002 -- SDV draws from numpy's global generator
    torch.manual_seed(args.seed)
    train = pd.read_parquet(args.train)
    # SDV's CTGAN and TVAE refuse pandas' category dtype and ask for object columns.
    for column in train.columns[train.dtypes == "category"]:
        train[column] = train[column].astype(object)
    with open(args.metadata) as fh:
        metadata = Metadata.load_from_dict(json.load(fh), single_table_name="table")
    cls = getattr(sdv.single_table, PEERS[args.model])
    neural = args.model != "sdv_gaussian_copula"
    params = {"epochs": args.epochs} if neural and args.epochs is not None else {}
    synthesizer = cls(metadata, **params)
    if neural:
        preload_torch_optimiser_imports()
    with Clock() as fit_clock:
        synthesizer.fit({"table": train})  # SDV 2 takes and returns {table name: frame}
    synthetic = synthesizer.sample(num_rows=len(train))["table"]
    synthetic.to_parquet(args.out, index=False)
    with Clock() as sample_clock:
        synthesizer.sample(num_rows=THROUGHPUT_ROWS)
    return timings(fit_clock, sample_clock, THROUGHPUT_ROWS)


def quality(args: argparse.Namespace) -> dict:
    from sdmetrics.reports import QualityReport

    train = pd.read_parquet(args.train)
    synthetic = pd.read_parquet(args.synthetic)[train.columns]
    with open(args.metadata) as fh:
        metadata = {"tables": {"table": json.load(fh)}}
    report = QualityReport()
    report.generate({"table": train}, {"table": synthetic}, metadata, verbose=False)
    properties = report.get_properties().set_index("Property")["Score"].to_dict()
    result = {"quality": float(report.get_score()), "quality_properties": properties}
    if args.details:
        shapes = report.get_details(property_name="Column Shapes")
        pairs = report.get_details(property_name="Column Pair Trends")
        result["column_shapes"] = {
            row["Column"]: [row["Metric"], _number(row["Score"])] for _, row in shapes.iterrows()
        }
        result["pair_trends"] = [
            [row["Column 1"], row["Column 2"], row["Metric"], _number(row["Score"])]
            for _, row in pairs.iterrows()
        ]
    return result


def _number(value) -> float | None:
    """A score as JSON holds it: NaN (a pair SDMetrics could not score) as null."""
    return None if pd.isna(value) else float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fit_parser = commands.add_parser("fit")
    fit_parser.add_argument("model", choices=sorted(PEERS))
    fit_parser.add_argument("train")
    fit_parser.add_argument("metadata")
    fit_parser.add_argument("out")
    fit_parser.add_argument("--epochs", type=int)
    fit_parser.add_argument("--seed", type=int, default=0)
    quality_parser = commands.add_parser("quality")
    quality_parser.add_argument("train")
    quality_parser.add_argument("synthetic")
    quality_parser.add_argument("metadata")
    quality_parser.add_argument("--details", action="store_true")
    args = parser.parse_args()
    # SDV and SDMetrics warn about their own deprecations and about the data; the numbers are
    # what the benchmark reads.
    warnings.simplefilter("ignore")
    result = fit(args) if args.command == "fit" else quality(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
