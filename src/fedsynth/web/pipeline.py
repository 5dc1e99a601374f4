"""What a worker computes for one run, into the run's (partial) output folder.

A central run splits the table into training rows and a real holdout, fits the generator, samples
(with conditions, or the rows that rebalance a cohort), saves the model, and validates the
synthetic rows with SAFE. A federated run runs the experiment of
:mod:`fedsynth.experiments.runner` (centralized and isolated references and every strategy,
over Flower) and validates the first strategy's synthetic rows the same way.

An image run (``config["modality"] == "imaging"``) is computed by
:func:`fedsynth.web.image_pipeline.execute_images` instead.

Files written by table runs (the names offered for download): ``synthetic.csv``,
``synthetic.parquet``, ``model.zip``, ``report.html``, ``report.json`` and, for federated runs,
``experiment-scores.csv``, ``experiment-summary.csv`` and ``experiment-scores.png``.
"""

from __future__ import annotations

import shutil
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from fedsynth.core.metrics import FAMILIES
from fedsynth.core.progress import (
    EpochDone,
    ExperimentStarted,
    FamilyDone,
    FamilyStarted,
    ProgressEvent,
    StepDone,
    format_scores,
    validation_steps,
)
from fedsynth.tabular.metadata import ColumnMetadata, Metadata
from fedsynth.web.release import privacy_verdict
from fedsynth.web.storage import Storage
from fedsynth.web.uploads import read_upload

#: The headline scores kept with a run.
HEADLINE_SCORES = ("csf", "gsf", "utility", "privacy", "overall")
# Progress milestones of a central run (fractions of the whole).
_FIT, _SAMPLE, _VALIDATE, _WRITE = 0.05, 0.6, 0.7, 0.97


class Reporter(Protocol):
    """Where a run tells its progress and its log."""

    def log(self, message: str) -> None:
        """Add a line to the run's log."""

    def progress(self, fraction: float, stage: str) -> None:
        """Set the run's progress (in [0, 1]) and what it is doing."""


@dataclass
class Outcome:
    """What a finished run produced."""

    artifacts: list[str]
    scores: dict[str, float | None]
    privacy: str


def execute(config: Mapping[str, Any], storage: Storage, out: Path, say: Reporter) -> Outcome:
    """Compute a run described by ``config`` (as stored by the services) into ``out``.

    Raises
    ------
    FedsynthError, ValueError
        For data or settings that cannot be used; the message is shown to the user.
    """
    if config.get("modality") == "imaging":
        from fedsynth.web.image_pipeline import execute_images

        return execute_images(config, storage, out, say)
    say.progress(0.01, "reading the data")
    sources = config["sources"]
    tables = {
        source["site"]: read_upload(
            storage.dataset_file(source["dataset_id"], source["file_format"]),
            source["file_format"],
            filename=source["filename"],
        )[0]
        for source in sources
    }
    metadata = Metadata.from_dict(config["metadata"])
    for site, table in tables.items():
        say.log(
            f"read {sources[0]['filename'] if len(tables) == 1 else site}: "
            f"{len(table):,} rows x {table.shape[1]} columns"
        )
    if config.get("federated"):
        return _federated(config, tables, metadata, out, say)
    (table,) = tables.values()
    return _central(config, table, metadata, out, say)


# ---------------------------------------------------------------------- central
def _central(
    config: Mapping[str, Any], table: pd.DataFrame, metadata: Metadata, out: Path, say: Reporter
) -> Outcome:
    import fedsynth

    metadata.check(table)
    if config.get("public_domain"):
        metadata = _declare_public(metadata, say)
    train, holdout = split_holdout(table, metadata, config["holdout_fraction"], config["seed"])
    say.log(
        f"split: {len(train):,} training rows, {len(holdout):,} holdout rows (never trained on)"
    )
    generator = fedsynth.make(config["generator"], **generator_params(config))
    say.log(f"generator: {generator!r}")
    say.progress(_FIT, f"fitting {config['generator']}")
    with _watch_epochs(generator, _EpochReport(say, _FIT, _SAMPLE)):
        generator.fit(train, metadata=metadata)
    spent = getattr(generator, "privacy_spent_", None)
    if spent:
        say.log(f"differential privacy spent: {spent}")
    say.progress(_SAMPLE, "sampling")
    synthetic = _draw(generator, train, config, say)
    _write_outputs(generator, synthetic, out, say)
    report = _validate(train, synthetic, holdout, metadata, config, out, say, _VALIDATE)
    return _outcome(report, ["synthetic.csv", "synthetic.parquet", "model.zip"])


def split_holdout(
    table: pd.DataFrame, metadata: Metadata, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows and holdout rows, stratified on the survival event when there is one."""
    from sklearn.model_selection import train_test_split

    stratify = table[metadata.event] if metadata.event in table.columns else None
    try:
        train, holdout = train_test_split(
            table, test_size=fraction, random_state=seed, stratify=stratify
        )
    except ValueError:  # an event class too small to stratify: split at random
        train, holdout = train_test_split(table, test_size=fraction, random_state=seed)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def _declare_public(metadata: Metadata, say: Reporter) -> Metadata:
    """The metadata with its ranges and category lists declared public knowledge (the user
    said so): differential privacy spends nothing on them, and does not protect them."""
    from fedsynth.tabular.privacy import declare_public

    bounds = {n: c.bounds for n, c in metadata.columns.items() if c.bounds is not None}
    categories = {
        n: c.categories
        for n, c in metadata.columns.items()
        if c.categories is not None and c.kind != "identifier"
    }
    say.log(
        f"declared public: the ranges of {len(bounds)} and the categories of {len(categories)} "
        "column(s); differential privacy does not cover them"
    )
    return declare_public(metadata, bounds=bounds, categories=categories)


def generator_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``fedsynth.make`` from a run's settings."""
    params: dict[str, Any] = {"seed": config["seed"]}
    if config.get("epochs") is not None:
        params["epochs"] = config["epochs"]
    if config.get("epsilon") is not None:
        params["dp"] = {"epsilon": config["epsilon"], "delta": config["delta"]}
    return params


def _draw(generator: Any, train: pd.DataFrame, config: Mapping[str, Any], say: Reporter):
    rebalance = config.get("rebalance")
    if not rebalance:
        rows = config.get("rows") or len(train)
        conditions = config.get("conditions") or None
        return generator.sample(rows, conditions=conditions, seed=config["seed"])
    from fedsynth.tabular.augmentation import rebalance as rebalance_cohort
    from fedsynth.tabular.augmentation import rebalance_plan

    column = rebalance["column"]
    shares = category_shares(generator.metadata_, column, rebalance["shares"])
    plan = rebalance_plan(train, column, shares)
    for value, row in plan.iterrows():
        say.log(
            f"rebalance {column}={value}: {int(row['real'])} real rows, "
            f"{int(row['added'])} synthetic rows added, share {row['share']:.1%}"
        )
    if int(plan["added"].sum()) == 0:
        raise ValueError(f"{column!r} already meets the target shares: no row to add")
    cohort = rebalance_cohort(generator, train, column, shares, seed=config["seed"])
    # Only the added rows are synthetic; the real rows that come first never leave.
    return cohort.iloc[len(train) :][generator.columns_].reset_index(drop=True)


def category_shares(metadata: Metadata, column: str, shares: Mapping[str, float]) -> dict:
    """Target shares keyed by the column's own values (a form sends ``"1"`` for ``1``)."""
    col = metadata.columns.get(column)
    if col is None or not col.is_discrete or not col.categories:
        raise ValueError(f"{column!r} is not a discrete column; rebalancing needs categories")
    by_text = {str(category): category for category in col.categories}
    unknown = [key for key in shares if key not in by_text]
    if unknown:
        raise ValueError(f"{column!r} has no value(s) {unknown}; expected some of {list(by_text)}")
    return {by_text[key]: float(share) for key, share in shares.items()}


def _write_outputs(generator: Any, synthetic: pd.DataFrame, out: Path, say: Reporter) -> None:
    from fedsynth.tabular.io import write_table

    write_table(synthetic, out / "synthetic.csv")
    write_table(synthetic, out / "synthetic.parquet")
    say.log(f"sampled {len(synthetic):,} synthetic rows x {synthetic.shape[1]} columns")
    generator.save(out / "model")
    zip_folder(out / "model", out / "model.zip")


def zip_folder(folder: Path, archive: Path) -> Path:
    """Zip ``folder``'s files (flat) into ``archive`` and remove the folder."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                handle.write(path, path.relative_to(folder).as_posix())
    shutil.rmtree(folder)
    return archive


# ---------------------------------------------------------------------- validation
def _validate(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    metadata: Metadata,
    config: Mapping[str, Any],
    out: Path,
    say: Reporter,
    start: float,
):
    from fedsynth.tabular.validation import validate

    families = [f for f in FAMILIES if f in config["families"]]
    step = (_WRITE - start) / max(len(families), 1)
    done = {"n": 0}

    def family(event: ProgressEvent) -> None:
        if isinstance(event, FamilyStarted):
            say.progress(start + step * done["n"], event.label)
        elif isinstance(event, FamilyDone):
            done["n"] += 1
            say.log(event.message)

    say.progress(start, "validating")
    report = validate(
        train,
        synthetic,
        holdout=holdout,
        metadata=metadata,
        families=families,
        seed=config["seed"],
        progress=validation_steps(family),
    )
    say.progress(_WRITE, "writing the report")
    report.to_html(out / "report.html", title=f"fedsynth validation: {config['title']}")
    report.to_json(out / "report.json")
    shown = format_scores({k: v for k, v in report.scores.items() if k in HEADLINE_SCORES})
    say.log(f"SAFE report: {report.status.upper()} (its worst flag); {shown}")
    return report


def _outcome(report: Any, files: list[str]) -> Outcome:
    flags = [flag.to_dict() for flag in report.flags]
    scores = {k: report.scores.get(k) for k in HEADLINE_SCORES}
    return Outcome(
        artifacts=[*files, "report.html", "report.json"],
        scores=scores,
        privacy=privacy_verdict(flags),
    )


# ---------------------------------------------------------------------- federated
def _federated(
    config: Mapping[str, Any],
    tables: dict[str, pd.DataFrame],
    metadata: Metadata,
    out: Path,
    say: Reporter,
) -> Outcome:
    from fedsynth.experiments.runner import run_experiment
    from fedsynth.experiments.runner import split_holdout as split_sites
    from fedsynth.federated import partition

    settings = config["federated"]
    # Kinds and groups only: bounds and categories inferred on one site's file would refuse the
    # others' values; the experiment takes them from the pooled sites (a simulation).
    metadata = Metadata(
        {
            name: ColumnMetadata(kind=col.kind, group=col.group)
            for name, col in metadata.columns.items()
        }
    )
    if settings.get("site_column"):
        (table,) = tables.values()
        partitions = partition.by_column(table, settings["site_column"])
    else:
        partitions = partition.check_partitions(tables)
    for table in partitions.values():
        metadata.check(table)
    strategies = list(settings["strategies"])
    say.log(
        f"federation: {len(partitions)} sites ({', '.join(partitions)}), strategies "
        f"{', '.join(strategies)}, {settings['rounds']} round(s) of {settings['local_epochs']} "
        "local epoch(s)"
    )
    families = [f for f in FAMILIES if f in config["families"]]
    params = generator_params(config)
    params.pop("epochs", None)  # sites train local_epochs per round
    result = run_experiment(
        partitions,
        out=out / "experiment",
        model=config["generator"],
        strategies=strategies,
        rounds=settings["rounds"],
        local_epochs=settings["local_epochs"],
        params=params,
        metadata=metadata,
        holdout_fraction=config["holdout_fraction"],
        families=families,
        round_families=[f for f in families if f in ("fidelity", "survival", "genomic")],
        seed=config["seed"],
        secure_aggregation=bool(settings.get("secure_aggregation", False)),
        progress=_ExperimentReport(say, 0.05, 0.8),
    )
    for name, why in result.federation.refused.items():
        say.log(f"site {name} refused: {why}")
    primary = strategies[0]
    train, holdout, _ = split_sites(partitions, config["holdout_fraction"], seed=config["seed"])
    pooled = pd.concat(train.values(), ignore_index=True)
    say.progress(0.82, f"sampling from {primary}")
    rows = config.get("rows") or len(pooled)
    synthetic = result.federation.sample(rows, primary, seed=config["seed"])
    from fedsynth.tabular.io import write_table

    write_table(synthetic, out / "synthetic.csv")
    write_table(synthetic, out / "synthetic.parquet")
    say.log(f"sampled {len(synthetic):,} synthetic rows from the {primary} model")
    paths = result.federation.model_paths[primary]
    model = out / "model"
    shutil.copytree(paths[max(paths)], model)
    zip_folder(model, out / "model.zip")
    experiment = out / "experiment"
    for source, name in (
        ("scores.csv", "experiment-scores.csv"),
        ("summary.csv", "experiment-summary.csv"),
        ("scores.png", "experiment-scores.png"),
    ):
        shutil.copyfile(experiment / source, out / name)
    # The other strategies' synthetic rows and the sites' messages are not offered: only the
    # validated synthetic data leave the server.
    shutil.rmtree(experiment)
    report = _validate(pooled, synthetic, holdout, metadata, config, out, say, 0.85)
    files = ["synthetic.csv", "synthetic.parquet", "model.zip"]
    files += ["experiment-scores.csv", "experiment-summary.csv", "experiment-scores.png"]
    return _outcome(report, files)


# ---------------------------------------------------------------------- progress
class _ExperimentReport:
    """Follows an experiment's events: the bar moves from ``start`` to ``end`` by one step per
    reference and per round (:class:`~fedsynth.core.progress.StepDone`), and every event is
    logged."""

    def __init__(self, say: Reporter, start: float, end: float):
        self.say = say
        self.start = start
        self.end = end
        self.steps = 0
        self.done = 0

    def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, ExperimentStarted):
            self.steps = event.steps
        elif isinstance(event, StepDone):
            self.done += 1
        share = min(self.done / self.steps, 1.0) if self.steps else 0.0
        self.say.log(event.message)
        self.say.progress(self.start + (self.end - self.start) * share, event.label)


class _EpochReport:
    """Follows a fit's epochs: the bar moves from ``start`` to ``end``, and about twenty epochs
    per fit are logged, whatever the number of epochs."""

    def __init__(self, say: Reporter, start: float, end: float):
        self.say = say
        self.start = start
        self.end = end
        self.logged = 0

    def __call__(self, event: EpochDone) -> None:
        share = min(event.epoch / event.epochs, 1.0)
        self.say.progress(self.start + (self.end - self.start) * share, event.label)
        if event.epoch - self.logged >= max(1, event.epochs // 20):
            self.say.log(event.message)
            self.logged = event.epoch


@contextmanager
def _watch_epochs(generator: Any, report: Callable[[EpochDone], None]) -> Iterator[None]:
    """Report a neural generator's epochs while it trains (it appends one entry per epoch to
    ``history_``), as an :class:`~fedsynth.core.progress.EpochDone` for the latest epoch seen
    at each look; a generator without epochs trains without intermediate progress."""
    epochs = getattr(generator, "epochs", None)
    if not isinstance(epochs, int) or epochs < 1:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        seen = 0
        while not stop.wait(0.5):
            history = list(getattr(generator, "history_", []) or [])
            if len(history) > seen:
                seen = len(history)
                losses = {k: v for k, v in history[-1].items() if k != "epoch"}
                report(EpochDone(seen, epochs, losses))

    thread = threading.Thread(target=watch, name="fedsynth-epochs", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
