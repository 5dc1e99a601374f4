"""The federated experiment: centralized vs isolated vs each strategy, scored after every round.

One call of :func:`run_experiment` (or ``fedsynth federate``):

1. splits every site's rows 70/30 (``holdout_fraction``) into training rows and a real holdout
   that no generator sees;
2. trains the **centralized** reference (one generator on the pooled training rows, the upper
   bound) and the **isolated** references (one generator per site on its own rows, the lower
   bound), each for ``rounds * local_epochs`` epochs, the training a federated site gets;
3. runs every strategy in one federation (:func:`~fedsynth.federated.federate`) and, as each
   round's model is saved, samples as many rows as the pooled training set and scores them with
   SAFE (:func:`fedsynth.tabular.validation.validate`: CSF, GSF, utility, privacy, overall)
   against the pooled training rows and the holdout;
4. after every scored round, rewrites ``scores.csv`` (every score), ``summary.csv`` and
   ``summary.md`` (the last round of each method) and ``scores.png`` (score vs round, one line per
   strategy, centralized and isolated as reference lines), and at the end writes the final
   synthetic data (``synthetic/<method>.csv``) and ``experiment.json`` (settings, timings, memory).

Isolated generators are scored twice: on their own site (its training rows and holdout) and on
all data (the pooled ones), which is the lower bound drawn in the plot (mean over sites).

The experiment holds every site's rows in one process: it is a simulation, for comparing
strategies; a real federation runs :func:`~fedsynth.federated.federate`'s apps at the sites.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fedsynth.core.progress import (
    ExperimentStarted,
    ProgressCallback,
    ReferenceDone,
    ReferenceStarted,
    RoundDone,
    StageFinished,
    StageStarted,
)
from fedsynth.exceptions import DataWarning
from fedsynth.federated.federation import FederationResult, federate, shared_metadata
from fedsynth.federated.partition import check_partitions
from fedsynth.federated.strategies import STRATEGIES
from fedsynth.federated.task import load_model, new_generator
from fedsynth.tabular.metadata import Metadata

#: The SAFE scores tabulated and plotted.
SCORES: tuple[str, ...] = ("csf", "gsf", "utility", "privacy", "overall")
#: Tabulated too, not plotted: 1 − the largest total variation distance over discrete columns,
#: which shows a model that gets one column (the site mix, say) wrong while the means look fine.
TABULATED: tuple[str, ...] = (*SCORES, "worst_discrete_column")


@dataclass
class ExperimentResult:
    """Scores, timings and files of an experiment.

    Attributes
    ----------
    scores : DataFrame
        One row per scored model: ``method`` (a strategy, ``centralized`` or ``isolated``),
        ``round`` (0 for the references), ``site`` and ``scope`` (``all`` or ``own`` for
        isolated generators), then the SAFE scores.
    summary : DataFrame
        The last round of each strategy and the references, by method; ``models`` is how many
        scores are averaged (isolated: one per site).
    federation : FederationResult
        The federated run.
    timings : dict of str to float
        Seconds spent on each part.
    out : Path
        The output folder.
    """

    scores: pd.DataFrame
    summary: pd.DataFrame
    federation: FederationResult
    timings: dict[str, float]
    out: Path


def split_holdout(
    partitions: Mapping[str, pd.DataFrame], fraction: float = 0.3, *, seed: int = 0
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, dict[str, pd.DataFrame]]:
    """Each site's rows split into training rows and holdout rows, at random.

    Returns
    -------
    train : dict of str to DataFrame
        Each site's training rows.
    holdout : DataFrame
        All sites' holdout rows, pooled.
    site_holdout : dict of str to DataFrame
        Each site's holdout rows.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    train, held = {}, {}
    for name, part in partitions.items():
        order = rng.permutation(len(part))
        n_held = round(fraction * len(part))
        held[name] = part.iloc[np.sort(order[:n_held])].reset_index(drop=True)
        train[name] = part.iloc[np.sort(order[n_held:])].reset_index(drop=True)
    return train, pd.concat(held.values(), ignore_index=True), held


def run_experiment(
    partitions: Mapping[str, pd.DataFrame],
    *,
    out: str | os.PathLike,
    model: str = "vae_bgm",
    strategies: Sequence[str] = tuple(STRATEGIES),
    rounds: int = 5,
    local_epochs: int = 10,
    params: Mapping[str, Any] | None = None,
    metadata: Metadata | Mapping | str | os.PathLike | None = None,
    holdout_fraction: float = 0.3,
    centralized: bool = True,
    isolated: bool = True,
    families: Iterable[str] | None = None,
    round_families: Iterable[str] | None = None,
    max_rows: int = 5000,
    n_attacks: int = 200,
    seed: int = 0,
    timeout: float = 3600.0,
    audit: bool = False,
    secure_aggregation: bool = False,
    progress: ProgressCallback | None = None,
) -> ExperimentResult:
    """Compare the federated strategies with centralized and isolated training (module doc).

    Parameters
    ----------
    partitions : mapping of str to DataFrame
        Every site's rows (see :mod:`fedsynth.federated.partition`).
    out : path
        Output folder.
    model, strategies, rounds, local_epochs, params
        As for :func:`~fedsynth.federated.federate`.
    metadata : Metadata, dict or path, optional
        The shared metadata (inferred from all rows when omitted).
    holdout_fraction : float, default 0.3
        Share of each site's rows kept out of training, for SAFE's holdout.
    centralized, isolated : bool, default True
        Train the references.
    families : iterable of str, optional
        SAFE metric families to score the references and each strategy's last round with
        (default: all).
    round_families : iterable of str, optional
        Families for the rounds before the last (default: ``families``). Scoring dominates
        small experiments: ``("fidelity", "survival", "genomic")`` still gives CSF and GSF
        after every round, in a fraction of the time utility and privacy take.
    max_rows, n_attacks : int
        As for :func:`fedsynth.tabular.validation.validate`.
    seed : int, default 0
        Seed of the split, the generators, the samples and the scores.
    timeout : float, default 3600
        Seconds the federated run may take.
    audit : bool, default False
        Keep a copy of every message every site sent.
    secure_aggregation : bool, default False
        Average fedavg's and fedprox's weights with Flower's secure aggregation.
    progress : callable, optional
        Called with a progress event (:mod:`fedsynth.core.progress`) at each step: an
        :class:`~fedsynth.core.progress.ExperimentStarted` that says how many steps follow, a
        :class:`~fedsynth.core.progress.ReferenceStarted` and a
        :class:`~fedsynth.core.progress.ReferenceDone` per reference, the federation's
        :class:`~fedsynth.core.progress.StageStarted` and
        :class:`~fedsynth.core.progress.StageFinished`, and a
        :class:`~fedsynth.core.progress.RoundDone` with the scores of each strategy's rounds.

    Returns
    -------
    ExperimentResult

    Examples
    --------
    >>> import fedsynth
    >>> from fedsynth.federated import partition
    >>> from fedsynth.experiments.runner import run_experiment
    >>> real = fedsynth.datasets.mds_cohort(n=1500, sites=3, seed=0)
    >>> result = run_experiment(partition.by_column(real, "site"), out="fl-experiment",
    ...                         rounds=2)  # doctest: +SKIP
    >>> result.summary[["csf", "gsf"]]  # doctest: +SKIP
    """
    from fedsynth.tabular.validation import FAMILIES

    say = progress or _ignore
    partitions = check_partitions(partitions)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    strategies = list(strategies)
    params = dict(params or {})
    families = tuple(FAMILIES if families is None else families)
    round_families = families if round_families is None else tuple(round_families)
    shared = shared_metadata(partitions, metadata)
    train, holdout, site_holdout = split_holdout(partitions, holdout_fraction, seed=seed)
    pooled = pd.concat(train.values(), ignore_index=True)
    recorder = _Recorder(out, strategies)
    timings: dict[str, float] = {}

    def score(
        synthetic: pd.DataFrame, real: pd.DataFrame, held: pd.DataFrame, last: bool = True
    ) -> dict:
        from fedsynth.tabular.validation import validate

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            report = validate(
                real,
                synthetic,
                holdout=held,
                metadata=shared,
                families=families if last else round_families,
                max_rows=max_rows,
                n_attacks=n_attacks,
                seed=seed,
            )
        return {k: report.scores.get(k) for k in TABULATED}

    synthetic: dict[str, pd.DataFrame] = {}
    reference_epochs = rounds * local_epochs
    plan = ExperimentStarted(
        model=model,
        sites=tuple(train),
        strategies=tuple(strategies),
        rounds=rounds,
        centralized=centralized,
        isolated=isolated,
    )
    say(plan)
    if centralized:
        say(ReferenceStarted("centralized", model, len(pooled), reference_epochs))
        start = time.perf_counter()
        generator = _reference(model, params, reference_epochs, seed).fit(pooled, metadata=shared)
        timings["centralized_fit"] = time.perf_counter() - start
        synthetic["centralized"] = generator.sample(len(pooled), seed=seed)
        scored = time.perf_counter()
        scores = score(synthetic["centralized"], pooled, holdout)
        recorder.add("centralized", 0, scores)
        timings["centralized_score"] = time.perf_counter() - scored
        say(ReferenceDone("centralized", scores, time.perf_counter() - start))
    if isolated:
        start = time.perf_counter()
        for site, rows in train.items():
            say(ReferenceStarted("isolated", model, len(rows), reference_epochs, site=site))
            began = time.perf_counter()
            generator = _reference(model, params, reference_epochs, seed).fit(rows, metadata=shared)
            sample = generator.sample(len(pooled), seed=seed)
            synthetic[f"isolated_{site}"] = sample.iloc[: len(rows)]
            own = score(sample.iloc[: len(rows)], rows, site_holdout[site])
            everywhere = score(sample, pooled, holdout)
            recorder.add("isolated", 0, own, site=site, scope="own")
            recorder.add("isolated", 0, everywhere, site=site, scope="all")
            seconds = time.perf_counter() - began
            say(ReferenceDone("isolated", everywhere, seconds, site=site, own_scores=own))
        timings["isolated"] = time.perf_counter() - start

    scoring = {"seconds": 0.0}

    def on_round(strategy: str, round: int, path: Path) -> None:
        start = time.perf_counter()
        sample = load_model(path).sample(len(pooled), seed=seed)
        scores = score(sample, pooled, holdout, last=round == rounds)
        recorder.add(strategy, round, scores)
        scoring["seconds"] += time.perf_counter() - start
        say(RoundDone(strategy, round, rounds, scores))

    say(
        StageStarted("Federated", f"{', '.join(strategies)} on {len(train)} sites, {rounds} rounds")
    )
    start = time.perf_counter()
    federation = federate(
        train,
        model=model,
        strategy=strategies,
        rounds=rounds,
        local_epochs=local_epochs,
        params=params,
        metadata=shared,
        seed=seed,
        timeout=timeout,
        out=out / "federation",
        audit=audit,
        secure_aggregation=secure_aggregation,
        on_round=on_round,
    )
    timings["federation"] = time.perf_counter() - start
    say(StageFinished("Federated", timings["federation"]))
    timings["federated_scoring"] = scoring["seconds"]
    for strategy in federation.model_paths:
        synthetic[strategy] = federation.sample(len(pooled), strategy, seed=seed)
    folder = out / "synthetic"
    folder.mkdir(exist_ok=True)
    for name, table in synthetic.items():
        table.to_csv(folder / f"{name}.csv", index=False)
    record = {
        "model": model,
        "params": params,
        "strategies": strategies,
        "rounds": rounds,
        "local_epochs": local_epochs,
        "secure_aggregation": secure_aggregation,
        "sites": {name: len(rows) for name, rows in train.items()},
        "holdout_rows": len(holdout),
        "families": list(families),
        "round_families": list(round_families),
        "timings_seconds": {k: round(v, 2) for k, v in timings.items()},
        "federation_runtime": federation.runtime,
        "refused": federation.refused,
    }
    (out / "experiment.json").write_text(json.dumps(record, indent=2) + "\n")
    return ExperimentResult(recorder.scores(), recorder.summary(), federation, timings, out)


def _ignore(event: Any) -> None:
    """The progress callback of a run that nobody follows."""


def _reference(model: str, params: Mapping[str, Any], epochs: int, seed: int):
    """A centralized or isolated generator, trained as long as a federated site in total."""
    generator = new_generator(model, {"seed": seed, **params})
    if "epochs" in generator.get_params():
        generator.set_params(epochs=epochs)
    return generator


class _Recorder:
    """Keeps every score and rewrites the table, the summary and the plot after each one."""

    def __init__(self, out: Path, strategies: Sequence[str]):
        self.out = out
        self.strategies = list(strategies)
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        method: str,
        round: int,
        scores: Mapping[str, float | None],
        *,
        site: str = "",
        scope: str = "all",
    ) -> None:
        self.rows.append({"method": method, "round": round, "site": site, "scope": scope, **scores})
        self.scores().to_csv(self.out / "scores.csv", index=False)
        summary = self.summary()
        summary.to_csv(self.out / "summary.csv")
        (self.out / "summary.md").write_text(_markdown(summary) + "\n")
        plot_scores(self.scores(), self.out / "scores.png")

    def scores(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["method", "round", "site", "scope", *TABULATED])

    def summary(self) -> pd.DataFrame:
        scores = self.scores()
        rows = []
        for method, group in scores[scores["scope"] == "all"].groupby("method", sort=False):
            last = group[group["round"] == group["round"].max()]
            row = {"method": method, "round": int(last["round"].iloc[0]), "models": len(last)}
            row.update(last[list(TABULATED)].astype(float).mean().to_dict())
            rows.append(row)
        columns = ["method", "round", "models", *TABULATED]
        return pd.DataFrame(rows, columns=columns).set_index("method")


def format_summary(summary: pd.DataFrame) -> list[list[str]]:
    """The summary's rows as text cells: counts as integers, scores to 3 decimals."""
    return [
        [str(method)]
        + [
            "n/a" if pd.isna(value) else f"{value:.3f}" if name in TABULATED else str(int(value))
            for name, value in row.items()
        ]
        for method, row in summary.iterrows()
    ]


def _markdown(table: pd.DataFrame) -> str:
    header = "| method | " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|---" * (len(table.columns) + 1) + "|"
    rows = ["| " + " | ".join(cells) + " |" for cells in format_summary(table)]
    return "\n".join([header, rule, *rows])


def plot_scores(scores: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Score vs round, one line per strategy, centralized and isolated as reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s for s in SCORES if s != "overall"]
    figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
    everything = scores[scores["scope"] == "all"]
    federated = everything[~everything["method"].isin(["centralized", "isolated"])]
    for ax, name in zip(axes[0], names, strict=True):
        for method, group in federated.groupby("method", sort=False):
            ax.plot(group["round"], group[name].astype(float), marker="o", label=method)
        for method, style in (("centralized", "--"), ("isolated", ":")):
            values = everything.loc[everything["method"] == method, name].astype(float)
            if len(values) and values.notna().any():
                ax.axhline(values.mean(), linestyle=style, color="grey", label=method)
        ax.set_title(name.upper() if len(name) == 3 else name)
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
