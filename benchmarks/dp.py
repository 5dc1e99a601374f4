"""Differentially private synthesis on support2: fedsynth against smartnoise-synth's AIM and MST.

For each epsilon (default 0.1, 1, 5, 10, 40; delta 1e-5) and each model, fit on 70 % of
``support2`` (split stratified on the event), sample as many rows, and measure on the 30 %
holdout:

* quality: the mean of a column-shape score (1 - KS statistic for numbers, 1 - total variation
  for categories, missing values a category of their own) and a pair-trend score (1 - total
  variation between the joint distributions of every pair of columns, numbers cut at the real
  data's deciles), both in [0, 1];
* AUROC: a gradient-boosted classifier trained on the synthetic rows to predict death
  (``event``) from the other columns except ``time``, tested on the real holdout. A
  majority-class predictor scores 0.5; the same classifier trained on the real rows is the
  ceiling.

Models: ``privbayes`` (fedsynth's ``bayesian_network`` with ``dp``), ``vae_bgm`` and ``ctgan``
(fedsynth, DP-SGD), ``aim`` and ``mst`` (smartnoise-synth 1.0.8). smartnoise-synth pins
``opacus<0.15``, which cannot live beside fedsynth's Opacus 1.6, so the script creates its own
virtual environment for it (``benchmarks/.venv-smartnoise``, git-ignored) and runs the peers
there, one process per run.

Every model gets the same public knowledge: the domain (each numeric column's bounds and each
categorical column's categories, from the whole dataset), as DP synthesis benchmarks assume
(Tao et al. 2021); numeric columns are cut into the same number of bins for the three models
that discretise (PrivBayes, AIM, MST), and all three draw a value uniformly within its bin
(smartnoise itself returns the bin's midpoint, which only its decoder would be judged by).
Run with ``python benchmarks/dp.py [--models ...]
[--epsilons ...]``; writes ``benchmarks/results/dp.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PEER_VENV = HERE / ".venv-smartnoise"
PEER_REQUIREMENTS = ["torch==2.13.0", "smartnoise-synth==1.0.8"]
PEERS = ("aim", "mst")
DEFAULT_MODELS = ["privbayes", "vae_bgm", "ctgan", "aim", "mst"]
DEFAULT_EPSILONS = [0.1, 1.0, 5.0, 10.0, 40.0]
PRV_BELOW = 0.5  # DP-SGD uses the PRV accountant below this epsilon, RDP above
TARGET = "event"
EXCLUDED_FEATURES = ("time",)  # the survival time reveals the outcome


# ---------------------------------------------------------------------- data
def load_split(seed: int, declared: bool = True):
    """Training and holdout frames of support2, and its metadata with the domain declared
    (``declared=False``: nothing declared, so that fedsynth releases the domain under DP)."""
    from sklearn.model_selection import train_test_split

    import fedsynth
    from fedsynth.tabular.privacy import declare_public

    df, metadata = fedsynth.datasets.load_survset("support2", return_metadata=True)
    metadata = metadata.resolve(df)
    columns = metadata.columns
    if declared:
        declare_public(
            metadata,
            bounds={c: col.bounds for c, col in columns.items() if col.is_continuous},
            categories={c: col.categories for c, col in columns.items() if col.is_discrete},
        )
    train, holdout = train_test_split(
        df, test_size=0.3, random_state=seed, stratify=df[metadata.event]
    )
    return train.reset_index(drop=True), holdout.reset_index(drop=True), metadata


# ---------------------------------------------------------------------- metrics
def _label(value) -> str | None:
    """A category as text, whole numbers without decimals (``1`` and ``1.0`` from a CSV)."""
    import pandas as pd

    if pd.isna(value):
        return None
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and float(value).is_integer()
    ):
        return str(int(value))
    return str(value)


def _codes(real, synthetic, column: str, discrete: bool):
    """Integer codes of a column in both tables: categories, or the real deciles; missing last."""
    import numpy as np
    import pandas as pd

    if discrete:
        categories = sorted({_label(v) for v in real[column].dropna()})
        lookup = {c: i for i, c in enumerate(categories)}

        def encode(values):
            labels = [_label(v) for v in values]
            missing = len(categories) + 1
            return np.array(
                [missing if x is None else lookup.get(x, len(categories)) for x in labels],
                dtype=np.int64,
            )

        return encode(real[column]), encode(synthetic[column]), len(categories) + 2
    edges = np.unique(np.nanquantile(real[column].to_numpy(dtype=float), np.linspace(0, 1, 11)))

    def cut(values):
        values = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        out = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 1)
        return np.where(np.isnan(values), len(edges), out)

    return cut(real[column]), cut(synthetic[column]), len(edges) + 1


def quality(real, synthetic, metadata) -> dict[str, float]:
    """Column shapes, pair trends and their mean (see the module docstring)."""
    import itertools

    import numpy as np
    from scipy import stats

    columns = [c for c in real.columns if metadata.columns[c].kind != "identifier"]
    shapes, coded = [], {}
    for column in columns:
        discrete = metadata.columns[column].is_discrete
        a, b, size = _codes(real, synthetic, column, discrete)
        coded[column] = (a, b, size)
        if discrete:
            p = np.bincount(a, minlength=size) / len(a)
            q = np.bincount(b, minlength=size) / len(b)
            shapes.append(1 - 0.5 * np.abs(p - q).sum())
            continue
        x = real[column].dropna().to_numpy(dtype=float)
        y = synthetic[column].dropna().to_numpy(dtype=float)
        shapes.append(1 - stats.ks_2samp(x, y).statistic if len(y) else 0.0)
    pairs = []
    for first, second in itertools.combinations(columns, 2):
        a1, b1, s1 = coded[first]
        a2, b2, s2 = coded[second]
        p = np.bincount(a1 * s2 + a2, minlength=s1 * s2) / len(a1)
        q = np.bincount(b1 * s2 + b2, minlength=s1 * s2) / len(b1)
        pairs.append(1 - 0.5 * np.abs(p - q).sum())
    shape, pair = float(np.mean(shapes)), float(np.mean(pairs))
    return {"column_shapes": shape, "pair_trends": pair, "quality": (shape + pair) / 2}


def auroc(train, holdout, metadata) -> float:
    """AUROC on ``holdout`` of a classifier of the event trained on ``train`` (0.5 if one class)."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    features = [c for c in holdout.columns if c not in (TARGET, *EXCLUDED_FEATURES)]
    discrete = [c for c in features if metadata.columns[c].is_discrete]

    def design(frame):
        out = pd.DataFrame(index=frame.index)
        for column in features:
            if column in discrete:
                categories = [_label(c) for c in metadata.columns[column].categories]
                values = frame[column].map(_label)
                out[column] = pd.Categorical(values, categories=categories).codes.astype(float)
                out.loc[out[column] < 0, column] = np.nan
            else:
                out[column] = pd.to_numeric(frame[column], errors="coerce")
        return out

    y = pd.to_numeric(train[TARGET], errors="coerce").round()
    train, y = train[y.notna()], y[y.notna()]  # a synthesiser may leave some events missing
    if y.nunique() < 2:
        return 0.5
    model = HistGradientBoostingClassifier(
        categorical_features=[c in discrete for c in features], random_state=0
    )
    x_train, x_holdout = design(train), design(holdout)
    # A column the synthesiser left entirely missing carries nothing to learn (and
    # scikit-learn's binning fails on it): it is left out of both tables.
    empty = [c for c in features if x_train[c].isna().all()]
    model.set_params(categorical_features=[c in discrete for c in features if c not in empty])
    x_train, x_holdout = x_train.drop(columns=empty), x_holdout.drop(columns=empty)
    # One thread: on shared CPUs OpenMP's spinning threads make the fit tens of times slower.
    with threadpool_limits(1):
        model.fit(x_train, y.astype(int))
        scores = model.predict_proba(x_holdout)[:, 1]
    return float(roc_auc_score(holdout[TARGET].astype(int), scores))


# ---------------------------------------------------------------------- fedsynth models
def fit_fedsynth(model: str, train, metadata, epsilon: float, delta: float, args) -> tuple:
    """Fit one fedsynth model under DP; returns (synthetic rows, epsilon spent, delta spent)."""
    import fedsynth

    dp = {"epsilon": epsilon, "delta": delta}
    if model != "privbayes" and epsilon < PRV_BELOW:
        # Opacus's RDP accountant cannot certify such small budgets at this delta.
        dp["accountant"] = "prv"
    if model == "privbayes":
        gen = fedsynth.make("bayesian_network", dp=dp, n_bins=args.bins, seed=args.seed)
    else:
        gen = fedsynth.make(
            model, dp=dp, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed
        )
    gen.fit(train, metadata=metadata.copy())
    spent = gen.privacy_spent_
    return gen.sample(len(train), seed=args.seed), spent.epsilon, spent.delta


# ---------------------------------------------------------------------- smartnoise peers
def ensure_peer_venv() -> Path:
    """The smartnoise-synth environment, created on first use; its Python."""
    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / ".installed"
    if stamp.is_file() and stamp.read_text().split() == PEER_REQUIREMENTS:
        return python
    print(f"creating {PEER_VENV} for smartnoise-synth (first run: a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
    (PEER_VENV / ".gitignore").write_text("*\n")  # never committed, like the project's .venv
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # torch first, at fedsynth's pin: an unpinned resolve pulls a CUDA build of several GB.
    subprocess.run([*pip, PEER_REQUIREMENTS[0]], check=True)
    subprocess.run([*pip, *PEER_REQUIREMENTS[1:]], check=True)
    stamp.write_text("\n".join(PEER_REQUIREMENTS))
    return python


def run_peer(model: str, epsilon: float, delta: float, workdir: Path, args) -> float:
    """Run a smartnoise synthesiser in its environment; returns its fit + sample seconds."""
    python = ensure_peer_venv()
    command = [
        str(python), str(Path(__file__).resolve()), "--peer", model, str(epsilon),
        "--delta", str(delta), "--workdir", str(workdir), "--bins", str(args.bins),
        "--seed", str(args.seed), "--aim-rounds", str(args.aim_rounds or 0),
    ]  # fmt: skip
    if args.aim_num_marginals:
        command += ["--aim-num-marginals", str(args.aim_num_marginals)]
    start = time.perf_counter()
    subprocess.run(command, check=True, timeout=args.peer_timeout)
    return time.perf_counter() - start


def peer_main(model: str, epsilon: float, args) -> None:
    """In the smartnoise environment: fit ``model`` on ``train.csv`` with ``domain.json``."""
    import numpy as np
    import pandas as pd
    from snsynth import Synthesizer
    from snsynth.transform import BinTransformer, LabelTransformer, TableTransformer

    workdir = Path(args.workdir)
    domain = json.loads((workdir / "domain.json").read_text())
    train = pd.read_csv(workdir / "train.csv")[list(domain)]
    transformers = [
        LabelTransformer(nullable=spec["nullable"])
        if spec["discrete"]
        else BinTransformer(
            bins=args.bins,
            lower=spec["bounds"][0],
            upper=spec["bounds"][1],
            nullable=spec["nullable"],
        )
        for spec in domain.values()
    ]
    np.random.seed(args.seed)  # noqa: NPY002 - smartnoise draws from numpy's global generator
    options = {}
    if model == "aim" and args.aim_rounds:
        options["rounds"] = args.aim_rounds
    if model == "aim" and args.aim_num_marginals:
        # a random subset of the 2-way workload, drawn from the generator seeded above
        options["num_marginals"] = args.aim_num_marginals
    synth = Synthesizer.create(model, epsilon=epsilon, delta=args.delta, verbose=False, **options)
    synth.fit(train, transformer=TableTransformer(transformers), preprocessor_eps=0.0)
    synthetic = synth.sample(len(train))
    # smartnoise decodes a bin to its midpoint; draw the value uniformly within the bin
    # instead, as PrivBayes does (post-processing, no privacy cost), so that the column shapes
    # compare the models rather than their decoders. Whole-number columns are rounded.
    rng = np.random.default_rng(args.seed)
    for column, spec in domain.items():
        if spec["discrete"]:
            continue
        low, high = spec["bounds"]
        half = (high - low) / args.bins / 2
        values = pd.to_numeric(synthetic[column], errors="coerce").to_numpy(dtype=float)
        values = np.clip(values + rng.uniform(-half, half, len(values)), low, high)
        synthetic[column] = np.round(values) if spec["integer"] else values
    synthetic.to_csv(workdir / "synthetic.csv", index=False)


# ---------------------------------------------------------------------- driver
def run(args) -> list[dict]:
    import warnings

    import pandas as pd

    from fedsynth.tabular.privacy.dp_statistics import can_be_missing

    warnings.simplefilter("ignore")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    train, holdout, metadata = load_split(args.seed, declared=not args.private_domains)
    rows = [
        {
            "model": "real data (ceiling)",
            "epsilon": None,
            "auroc": auroc(train, holdout, metadata),
            **quality(holdout, train, metadata),
        },
        {"model": "majority class (baseline)", "epsilon": None, "auroc": 0.5},
    ]
    print(f"ceiling: AUROC {rows[0]['auroc']:.3f}, quality {rows[0]['quality']:.3f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        train.to_csv(workdir / "train.csv", index=False)
        # The same missing states as fedsynth's: a column whose dtype cannot hold a missing
        # value (int64) has none.
        domain = {
            c: {
                "discrete": col.is_discrete,
                "bounds": col.bounds,
                "nullable": can_be_missing(str(train[c].dtype)),
                "integer": bool(col.integer),
            }
            for c, col in metadata.columns.items()
        }
        (workdir / "domain.json").write_text(json.dumps(domain))
        for epsilon in args.epsilons:
            for model in args.models:
                row = {"model": model, "epsilon": epsilon}
                if model in ("vae_bgm", "ctgan", "tvae"):
                    row["epochs"] = args.epochs
                try:
                    start, cpu_start = time.perf_counter(), time.process_time()
                    if model in PEERS:
                        run_peer(model, epsilon, args.delta, workdir, args)
                        synthetic = pd.read_csv(workdir / "synthetic.csv")
                        spent = (epsilon, args.delta)
                    else:
                        synthetic, *spent = fit_fedsynth(
                            model, train, metadata, epsilon, args.delta, args
                        )
                    row["seconds"] = time.perf_counter() - start
                    # this process only: a peer's CPU time is in its own process
                    row["cpu_seconds"] = time.process_time() - cpu_start
                    row["epsilon_spent"], row["delta_spent"] = spent
                    row["auroc"] = auroc(synthetic, holdout, metadata)
                    row.update(quality(holdout, synthetic, metadata))
                except Exception as exc:  # one failed run must not lose the others
                    row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                print(_line(row), flush=True)
                rows.append(row)
                save(rows, args)  # a long sweep stopped midway keeps what it measured
    return rows


def _line(row: dict) -> str:
    if "error" in row:
        return f"{row['model']:>10} eps={row['epsilon']}: failed: {row['error']}"
    return (
        f"{row['model']:>10} eps={row['epsilon']:<5} AUROC {row['auroc']:.3f}  quality "
        f"{row['quality']:.3f}  ({row['seconds']:.0f} s)"
    )


def save(rows: list[dict], args) -> None:
    """Write the results, with ``--update`` keeping the rows of other runs of the same file."""
    rows = list(rows)
    previous = RESULTS / f"{args.name}.json"
    if args.update and previous.is_file():
        done = {(r["model"], r["epsilon"]) for r in rows}
        kept = json.loads(previous.read_text())["rows"][2:]
        rows += [r for r in kept if (r["model"], r["epsilon"]) not in done]
    write_results(rows, args, args.name)


def write_results(rows: list[dict], args, name: str) -> None:
    """``results/{name}.json`` (every number) and ``results/{name}.md`` (the tables)."""
    RESULTS.mkdir(exist_ok=True)
    machine = f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    settings = {
        "epsilons": args.epsilons,
        "delta": args.delta,
        "bins": args.bins,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "aim_rounds": args.aim_rounds,
        "aim_num_marginals": args.aim_num_marginals,
        "private_domains": args.private_domains,
        "threads": args.threads,
    }
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"machine": machine, "settings": settings, "rows": rows}, indent=2) + "\n"
    )
    ceiling, baseline = rows[0], rows[1]
    runs = rows[2:]
    models = list(dict.fromkeys(r["model"] for r in runs))
    lines = [
        "# Differential privacy on support2: fedsynth against AIM and MST",
        "",
        f"{machine}; seed {args.seed}; delta {args.delta:g}; {args.bins} bins per numeric "
        f"column for PrivBayes, AIM and MST; neural models {args.epochs} epochs, batch "
        f"{args.batch_size}, DP-SGD accounted with Opacus's PRV accountant below epsilon "
        f"{PRV_BELOW:g} and its RDP accountant above. Training rows: 70 % of support2; "
        "synthetic rows: as many. AIM's rounds T: "
        f"{args.aim_rounds or '16 x columns (its default)'}. "
        + (
            f"AIM's workload: {args.aim_num_marginals} random 2-way marginals. "
            if args.aim_num_marginals
            else ""
        )
        + (
            "fedsynth declared nothing (`--private-domains`): it released the bounds and "
            "categories under DP. "
            if args.private_domains
            else ""
        )
        + "Generated by `benchmarks/dp.py` (its docstring defines the measures).",
        "",
        f"Real data (ceiling): AUROC {ceiling['auroc']:.3f}, quality {ceiling['quality']:.3f}. "
        f"Majority class (baseline): AUROC {baseline['auroc']:.3f}.",
    ]
    for measure in ("auroc", "quality"):
        lines += [
            "",
            f"## {'AUROC (train on synthetic, test on real)' if measure == 'auroc' else 'Quality'}",
            "",
        ]
        lines.append("| model | " + " | ".join(f"eps {e:g}" for e in args.epsilons) + " |")
        lines.append("|---|" + "---|" * len(args.epsilons))
        for model in models:
            cells = []
            for epsilon in args.epsilons:
                found = [r for r in runs if r["model"] == model and r["epsilon"] == epsilon]
                if not found:
                    cells.append("")
                elif "error" in found[0]:
                    cells.append("failed")
                else:
                    cells.append(f"{found[0][measure]:.3f}")
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    failures = [r for r in runs if "error" in r]
    if failures:
        lines += ["", "## Failed runs", ""]
        lines += [f"- {r['model']} at epsilon {r['epsilon']:g}: {r['error']}" for r in failures]
    for key, title in (
        ("seconds", "Fit + sample seconds"),
        ("cpu_seconds", "Fit + sample CPU seconds (fedsynth's process; a peer runs in its own)"),
    ):
        lines += ["", f"## {title}", ""]
        lines.append("| model | " + " | ".join(f"eps {e:g}" for e in args.epsilons) + " |")
        lines.append("|---|" + "---|" * len(args.epsilons))
        for model in models:
            cells = []
            for epsilon in args.epsilons:
                found = [r for r in runs if r["model"] == model and r["epsilon"] == epsilon]
                cells.append(f"{found[0][key]:.0f}" if found and key in found[0] else "")
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--epsilons", nargs="+", type=float, default=DEFAULT_EPSILONS)
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--bins", type=int, default=10, help="bins per numeric column")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the neural models")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--aim-rounds",
        type=int,
        default=None,
        help="AIM's maximum number of rounds T (default: AIM's own, 16 x columns)",
    )
    parser.add_argument(
        "--aim-num-marginals",
        type=int,
        default=None,
        help="AIM's workload: this many random 2-way marginals (default: AIM's own, all of them)",
    )
    parser.add_argument("--peer-timeout", type=int, default=1800, help="seconds per peer run")
    parser.add_argument("--name", default="dp", help="results file stem")
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the other models' rows of an existing results file (run models separately)",
    )
    parser.add_argument(
        "--private-domains",
        action="store_true",
        help="declare nothing: fedsynth releases the bounds and categories under DP "
        "(the peers still get the declared domain)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--peer", nargs=2, metavar=("MODEL", "EPSILON"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        peer_main(args.peer[0], float(args.peer[1]), args)
        return
    run(args)
    print(f"wrote {RESULTS / args.name}.md and .json")


if __name__ == "__main__":
    main()
