""":func:`federate`: train a generator over several sites that never share a row."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fedsynth.exceptions import DataWarning
from fedsynth.federated.errors import FederationError
from fedsynth.federated.image_sites import (
    IMAGING,
    TABULAR,
    check_image_sites,
    federation_params,
    is_image_sites,
    write_image_sites,
)
from fedsynth.federated.partition import check_partitions
from fedsynth.federated.settings import RunSettings
from fedsynth.federated.strategies import STRATEGIES
from fedsynth.federated.task import averages_weights, load_model, new_generator
from fedsynth.tabular.metadata import Metadata

#: Called with ``(strategy, round, model directory)`` as each round's model is saved.
RoundCallback = Callable[[str, int, Path], None]


class FederationResult:
    """What a federated run left in its output folder, read back.

    Attributes
    ----------
    out_dir : Path
        The server's output folder (see :mod:`fedsynth.federated.server_app`).
    strategies : list of str
        The strategies that ran.
    sites : dict of str to int
        The sites that took part, and their rows.
    refused : dict of str to str
        Sites refused because their data did not fit the shared metadata, and why.
    rounds : DataFrame
        One row per strategy and round: participants, rejected and failed sites, losses.
    model_paths : dict of str to dict of int to Path
        Each strategy's saved model after each round.
    runtime : dict
        ``wall_seconds`` of the run (start-up included) and ``peak_memory_mb`` per site and for
        the server, when the run was started by :func:`federate`.
    release : dict
        Generator sharing's checked release (``checked_release``): images released, draws each
        site flagged, draws dropped per generator, rounds; or the ``error`` that stopped it.
        Empty without one.
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        sites = json.loads((self.out_dir / "sites.json").read_text())
        self.sites: dict[str, int] = sites["sites"]
        self.refused: dict[str, str] = sites["refused"]
        self.rounds = pd.DataFrame(_read_jsonl(self.out_dir / "rounds.jsonl"))
        self.model_paths: dict[str, dict[int, Path]] = {}
        for entry in _read_jsonl(self.out_dir / "models.jsonl"):
            self.model_paths.setdefault(entry["strategy"], {})[entry["round"]] = Path(entry["path"])
        self.strategies = list(dict.fromkeys(self.rounds["strategy"])) if len(self.rounds) else []
        runtime = self.out_dir / "runtime.json"
        self.runtime = json.loads(runtime.read_text()) if runtime.is_file() else {}
        release = self.out_dir / "release.json"
        self.release = json.loads(release.read_text()) if release.is_file() else {}

    def __repr__(self) -> str:
        last = {s: max(p) for s, p in self.model_paths.items()}
        return (
            f"FederationResult({len(self.sites)} sites, strategies {self.strategies}, "
            f"last round per strategy {last}, out_dir={str(self.out_dir)!r})"
        )

    def model(self, strategy: str | None = None, round: int | None = None):
        """The model of ``strategy`` (default: the first) after ``round`` (default: the last).

        Returns a generator, or a :class:`~fedsynth.federated.task.GeneratorMixture` for
        ``generator_sharing``; both have ``sample(n, seed=...)``.
        """
        strategy = strategy or self.strategies[0]
        paths = self.model_paths.get(strategy)
        if not paths:
            raise FederationError(f"no model of strategy {strategy!r} was saved")
        if round is None:
            round = max(paths)
        if round not in paths:
            raise FederationError(f"{strategy} has no model for round {round}; has {sorted(paths)}")
        return load_model(paths[round])

    def sample(
        self,
        n: int,
        strategy: str | None = None,
        *,
        round: int | None = None,
        seed: int = 0,
        conditions: Mapping[str, Any] | None = None,
    ) -> Any:
        """``n`` synthetic rows (a DataFrame), or images (an
        :class:`~fedsynth.imaging.ImageSet`) when the sites held images, from a strategy's
        model (see :meth:`model`), meeting ``conditions`` when given."""
        options = {} if conditions is None else {"conditions": conditions}
        return self.model(strategy, round).sample(n, seed=seed, **options)

    def released(self) -> Any:
        """Generator sharing's released images, each checked at every site (an
        :class:`~fedsynth.imaging.ImageSet`; see :mod:`~fedsynth.federated.checked_release`).

        Raises
        ------
        FederationError
            When the run made no checked release, or it failed (saying why).
        """
        from fedsynth.federated.checked_release import RELEASED
        from fedsynth.imaging.npz import load_image_set

        if not self.release:
            raise FederationError("this run made no checked release (checked_release=0)")
        if "error" in self.release:
            raise FederationError(f"the checked release failed: {self.release['error']}")
        return load_image_set(self.out_dir / RELEASED)

    @property
    def privacy_spent(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per strategy, the ``{"epsilon": ..., "delta": ...}`` each site had spent by the last
        round (empty without ``dp``): the sum over rounds for weight averaging, the site
        model's own ledger for the sharing strategies."""
        spent: dict[str, dict[str, dict[str, float]]] = {}
        if not len(self.rounds):
            return spent
        for strategy, logs in self.rounds.groupby("strategy", sort=False):
            last = logs.sort_values("round").iloc[-1]["metrics"]
            for key, value in last.items():
                kind, _, site = key.partition("/")
                if kind in ("epsilon", "delta") and site:
                    spent.setdefault(strategy, {}).setdefault(site, {})[kind] = float(value)
        return spent


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def shared_metadata(
    partitions: Mapping[str, pd.DataFrame],
    metadata: Metadata | Mapping | str | os.PathLike | None = None,
) -> Metadata:
    """The metadata every site shares, resolved on the pooled partitions (a simulation only).

    Categories and bounds, which no site sends, come from the pooled data here; at a real
    deployment they are written by hand into the shared metadata.
    """
    pooled = pd.concat(list(partitions.values()), ignore_index=True)
    with warnings.catch_warnings():
        # Each identifier column was already announced when the partitions were made, or is
        # announced once by the caller's own Metadata.infer.
        warnings.simplefilter("ignore", DataWarning)
        if metadata is None:
            metadata = Metadata.infer(pooled)
        elif not isinstance(metadata, Metadata):
            metadata = Metadata.infer(pooled, overrides=metadata)
    return metadata.resolve(pooled)


def federate(
    partitions: Mapping[str, pd.DataFrame],
    *,
    model: str = "vae_bgm",
    strategy: str | Sequence[str] = "fedavg",
    rounds: int = 5,
    local_epochs: int = 10,
    params: Mapping[str, Any] | None = None,
    metadata: Metadata | Mapping | str | os.PathLike | None = None,
    proximal_mu: float = 0.01,
    min_sites: int = 2,
    round_timeout: float = 600.0,
    connect_timeout: float = 120.0,
    timeout: float = 3600.0,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    audit: bool = False,
    secure_aggregation: bool = False,
    tls: bool = False,
    plugins: Sequence[str] = (),
    on_round: RoundCallback | None = None,
    checked_release: int = 0,
) -> FederationResult:
    """Train a generator over several sites with Flower, without any row (or image) leaving its
    site.

    Each partition plays one hospital: it is written to its own file (an image site: its own
    folder), read only by that site's
    Flower SuperNode. A SuperLink and the SuperNodes run as local processes on loopback
    (:class:`~fedsynth.federated.runtime.LocalFederation`); the same apps run at a real
    deployment. What leaves a site depends on the strategy
    (:mod:`fedsynth.federated.strategies`).

    Parameters
    ----------
    partitions : mapping of str to DataFrame or to ImageSet
        Site name to its table (see :mod:`fedsynth.federated.partition`), or to its images
        (an :class:`~fedsynth.imaging.ImageSet` each, for an image generator; see
        :mod:`fedsynth.federated.image_sites`).
    model : str, default "vae_bgm"
        Generator name; ``fedavg``/``fedprox`` need a neural generator, image sites an image
        generator (``latent_diffusion``, ``dp_gan``).
    strategy : str or list of str, default "fedavg"
        ``fedavg``, ``fedprox``, ``synthetic_sharing``, ``generator_sharing``, or several: they
        then run in lock-step in one federation (one message per site and round).
    rounds : int, default 5
        Federated rounds (a generator without weights, e.g. ``bayesian_network``, is fitted once
        and its rounds repeat the same model).
    local_epochs : int, default 10
        Epochs of local training per round.
    params : dict, optional
        The generator's hyperparameters (its ``epochs`` is not used). For images without
        ``label_columns`` or ``label_values``, the label columns are chosen on the pooled
        labels, as a simulation allows.
    metadata : Metadata, dict or path, optional
        The shared metadata of tables; inferred from the pooled partitions when omitted, and
        resolved on them (categories, bounds), as a simulation allows. Images take none.
    proximal_mu : float, default 0.01
        FedProx's proximal weight.
    min_sites : int, default 2
        Fewest sites a round may run with; a site that crashes or times out is left out of its
        round, and the run goes on while at least this many remain.
    round_timeout : float, default 600
        Seconds to wait for a round's replies.
    connect_timeout : float, default 120
        Seconds to wait for ``min_sites`` connected sites before failing.
    timeout : float, default 3600
        Seconds the whole run may take.
    seed : int, default 0
        Seed of the shared encoder and of the generators.
    out : path, optional
        Folder for everything the run writes (default: a temporary folder that is kept). The
        sites' tables are written to ``out/sites`` for their SuperNodes and deleted at the end.
    audit : bool, default False
        Keep a copy of every message every site sent (``out/server/audit``).
    secure_aggregation : bool, default False
        Average fedavg's and fedprox's weights with Flower's secure aggregation (SecAgg+): the
        server learns the average update only, at the cost of four exchanges per round
        instead of one (:mod:`~fedsynth.federated.secure_aggregation` says what it protects).
    tls : bool, default False
        Encrypt the local connections (throw-away certificates).
    plugins : list of str
        Modules to import in the Flower processes (e.g. one that registers a custom generator).
    on_round : callable, optional
        ``on_round(strategy, round, model_dir)`` as each round's model is saved.
    checked_release : int, default 0
        Image sites with ``generator_sharing``: at the end of the run, release this many
        images, each checked at every site against that site's own images; flagged ones are
        redrawn with their labels (only a boolean per image leaves a site;
        :mod:`~fedsynth.federated.checked_release`). Read them with
        :meth:`FederationResult.released`.

    Returns
    -------
    FederationResult

    Raises
    ------
    FederationError
        When too few sites can take part, a deadline passes, or the run fails.
    ImageDataError
        Naming each image site whose images do not fit (channels, size or label columns that
        differ from the other sites', a missing label column), before any process starts.

    Examples
    --------
    >>> import fedsynth
    >>> from fedsynth.federated import federate, partition
    >>> real = fedsynth.datasets.mds_cohort(n=900, sites=3, seed=0)
    >>> sites = partition.by_column(real, "site")
    >>> result = federate(sites, model="vae_bgm", strategy="fedavg", rounds=2)  # doctest: +SKIP
    >>> synthetic = result.sample(500)  # doctest: +SKIP

    Images: one ImageSet per site; the result samples an ImageSet.

    >>> from fedsynth.imaging import brain_mri_cohort
    >>> mri = brain_mri_cohort(300, sites=3, size=64)  # doctest: +SKIP
    >>> names = mri.labels["site"]  # doctest: +SKIP
    >>> sites = {s: mri.take(names == s) for s in sorted(set(names))}  # doctest: +SKIP
    >>> result = federate(sites, model="latent_diffusion", strategy="generator_sharing",
    ...                   rounds=3, local_epochs=5)  # doctest: +SKIP
    >>> images = result.sample(64, conditions={"idh_mutant": 1})  # doctest: +SKIP
    """
    from fedsynth.federated.runtime import LocalFederation

    strategies = [strategy] if isinstance(strategy, str) else list(strategy)
    params = dict(params or {})
    images = is_image_sites(partitions)
    if images:
        params = _check_image_run(partitions, model, params, metadata)
    else:
        partitions = check_partitions(partitions)
    averaging = [s for s in strategies if s in STRATEGIES and STRATEGIES[s].averages_weights]
    if averaging and not averages_weights(new_generator(model, params)):
        raise FederationError(
            f"{model} has no trainable weights, so {', '.join(averaging)} cannot average them; "
            "use synthetic_sharing or generator_sharing"
        )
    # Absolute: the Flower processes that read these paths run in folders of their own.
    root = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="fedsynth-federate-"))
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    metadata_path = root / "metadata.json"
    if images:
        site_files = write_image_sites(partitions, root / "sites")
    else:
        shared = shared_metadata(partitions, metadata)
        site_files = _write_sites(partitions, root / "sites")
        metadata_path.write_text(json.dumps(shared.to_dict(), indent=2) + "\n")
    settings = RunSettings(
        metadata_path="" if images else str(metadata_path),
        out_dir=str(root / "server"),
        modality=IMAGING if images else TABULAR,
        model=model,
        params=params,
        plugins=",".join(plugins),
        strategies=strategies,
        rounds=rounds,
        local_epochs=local_epochs,
        proximal_mu=proximal_mu,
        min_sites=min_sites,
        round_timeout=round_timeout,
        connect_timeout=connect_timeout,
        seed=seed,
        audit=audit,
        secure_aggregation=secure_aggregation,
        checked_release=checked_release,
    )
    watcher = _RoundWatcher(Path(settings.out_dir), on_round)
    start = time.perf_counter()
    try:
        with LocalFederation(site_files, workdir=root / "flower", tls=tls) as federation:
            federation.run(settings, timeout=timeout, on_poll=watcher.poll)
            runtime = {
                "wall_seconds": round(time.perf_counter() - start, 2),
                "peak_memory_mb": {k: round(v, 1) for k, v in federation.peak_memory_mb.items()},
            }
    finally:
        # The sites' files are copies of real rows: they do not outlive the run.
        shutil.rmtree(root / "sites", ignore_errors=True)
    (Path(settings.out_dir) / "runtime.json").write_text(json.dumps(runtime, indent=2) + "\n")
    watcher.poll()
    return FederationResult(settings.out_dir)


def _check_image_run(
    partitions: Mapping[str, Any], model: str, params: dict[str, Any], metadata: Any
) -> dict[str, Any]:
    """Check a federation of image sites before any process starts; the generator's params
    with the label columns every site conditions on."""
    if metadata is not None:
        raise FederationError("metadata describes tables; image sites take none")
    modality = getattr(new_generator(model, params), "modality", None)
    if modality != IMAGING:
        raise FederationError(
            f"the sites hold images but {model} is a {modality} generator; use an image "
            "generator (latent_diffusion, dp_gan)"
        )
    params = federation_params(partitions, params)
    check_image_sites(partitions, params)
    return params


def _write_sites(partitions: Mapping[str, pd.DataFrame], folder: Path) -> dict[str, Path]:
    """One file per site, what the site's SuperNode reads: Parquet, which keeps dtypes, or CSV
    for a table Parquet cannot hold (a column mixing text and numbers)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for i, (name, table) in enumerate(partitions.items()):
        path = folder / f"site_{i}.parquet"
        try:
            table.to_parquet(path, index=False)
        except (TypeError, ValueError):  # pyarrow's ArrowTypeError / ArrowInvalid
            path.unlink(missing_ok=True)
            path = path.with_suffix(".csv")
            table.to_csv(path, index=False)
        files[name] = path
    return files


class _RoundWatcher:
    """Calls ``on_round`` once for each new line of ``models.jsonl``."""

    def __init__(self, out_dir: Path, on_round: RoundCallback | None):
        self.index = out_dir / "models.jsonl"
        self.on_round = on_round
        self.seen = 0

    def poll(self) -> None:
        if self.on_round is None:
            return
        entries = _read_jsonl(self.index)
        for entry in entries[self.seen :]:
            self.on_round(entry["strategy"], entry["round"], Path(entry["path"]))
        self.seen = len(entries)
