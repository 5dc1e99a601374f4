"""``fedsynth images federate``: train an image generator over several sites with Flower.

Registered on ``fedsynth images`` by :mod:`fedsynth.cli.app`. The sites are one input each
(``DATA...``, any input of ``images fit``, named by its file or folder name), one input split by
a label column (``--split-by site``) or the simulated cohort's sites (``--demo``). Writes in
``--out``: ``federation/`` (the run: round logs, each round's model, audit log; see
:mod:`fedsynth.federated.server_app`), ``models/<strategy>/`` (the last round's model) and
``samples/<strategy>/`` (``images.npz`` + ``labels.csv`` drawn from it; with
``--checked-release``, generator sharing's are the images released during the run, each checked
at every site, :mod:`fedsynth.federated.checked_release`).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from fedsynth.cli.images import IMAGE_MODELS, ImageInputError, read_images, write_sample_folder
from fedsynth.cli.progress import console, step
from fedsynth.imaging.imageset import ImageSet


def federate_images(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    data: Annotated[
        list[Path] | None,
        typer.Argument(
            help="One input per site (named by its stem), or one input with --split-by.",
            show_default=False,
        ),
    ] = None,
    labels: Annotated[
        list[Path] | None,
        typer.Option(help="Labels CSV: one per DATA, or one with --split-by (repeatable)."),
    ] = None,
    split_by: Annotated[
        str | None, typer.Option("--split-by", help="Label column naming each image's site.")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="The simulated brain MRI cohort's sites (no DATA).")
    ] = False,
    demo_n: Annotated[int, typer.Option(min=4, help="Patients of the demo cohort.")] = 120,
    demo_size: Annotated[int, typer.Option(min=16, help="Pixels per side (demo).")] = 32,
    demo_sites: Annotated[int, typer.Option(min=2, help="Sites of the demo cohort.")] = 3,
    model: Annotated[
        str, typer.Option("--model", "-m", help="latent_diffusion or dp_gan.")
    ] = "latent_diffusion",
    strategies: Annotated[
        str, typer.Option(help="Comma-separated: fedavg, fedprox, generator_sharing.")
    ] = "fedavg,generator_sharing",
    rounds: Annotated[int, typer.Option(min=1, help="Federated rounds.")] = 3,
    local_epochs: Annotated[int, typer.Option(min=1, help="Local epochs per round.")] = 5,
    label_column: Annotated[
        list[str] | None,
        typer.Option("--label-column", "-l", help="Label to condition on (repeatable)."),
    ] = None,
    channels: Annotated[
        str | None, typer.Option(help="Channel names, comma-separated (checked).")
    ] = None,
    epsilon: Annotated[
        float | None,
        typer.Option(min=0.0, help="Train under DP: each round's budget (totals are shown)."),
    ] = None,
    delta: Annotated[float, typer.Option(help="Delta of the DP guarantee.")] = 1e-5,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Generator parameter NAME=VALUE, JSON (repeatable)."),
    ] = None,
    n: Annotated[
        int, typer.Option("--images", "-n", min=1, help="Images sampled per strategy.")
    ] = 64,
    proximal_mu: Annotated[float, typer.Option(help="FedProx's proximal weight.")] = 0.01,
    checked_release: Annotated[
        bool,
        typer.Option(
            "--checked-release",
            help="generator_sharing's samples checked at every site against its own images "
            "(only a boolean per image leaves a site); images too close are redrawn.",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds the federated run may take.")
    ] = 3600.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Train an image generator over several sites with Flower (no image leaves a site), then
    sample each strategy's model: FedAvg/FedProx average the weights, generator sharing pools
    the sites' own generators in proportion to their sizes (a 'site' label says whose)."""
    from rich.table import Table

    from fedsynth.cli.app import _parse_pairs
    from fedsynth.cli.federate import _names
    from fedsynth.federated import federate

    if model not in IMAGE_MODELS:
        raise typer.BadParameter(
            f"expected one of {list(IMAGE_MODELS)}, got {model!r}", param_hint="--model"
        )
    sites = _sites(data or [], labels or [], split_by, demo, demo_n, demo_size, demo_sites, seed)
    if channels is not None:
        wanted = [c.strip() for c in channels.split(",") if c.strip()]
        for name, images in sites.items():
            if list(images.channels) != wanted:
                raise ImageInputError(
                    [f"site {name!r}: channels {list(images.channels)}, expected {wanted}"]
                )
    params: dict[str, Any] = {"seed": seed, **_parse_pairs(param or [], "--param")}
    if label_column:
        params["label_columns"] = list(label_column)
    elif demo:
        params.setdefault("label_columns", ["tumour_type", "idh_mutant"])
    if epsilon is not None:
        params["dp"] = {"epsilon": epsilon, "delta": delta}
        if demo:  # simulated patients, nothing private: their values and scale are public
            params.setdefault(
                "label_values",
                {
                    c: sorted({v for s in sites.values() for v in s.labels[c].unique().tolist()})
                    for c in params["label_columns"]
                },
            )
            params.setdefault("intensity_range", [0.0, 1.5])
    described = ", ".join(f"{name} ({len(images)})" for name, images in sites.items())
    console.print(f"Sites: {described}")

    def on_round(strategy: str, round: int, path: Path) -> None:
        console.print(f"  {strategy}: round {round} of {rounds} done")

    start = time.perf_counter()
    with step(f"Federated training of {model} over Flower ({rounds} rounds)"):
        result = federate(
            sites,
            model=model,
            strategy=_names(strategies) or [],
            rounds=rounds,
            local_epochs=local_epochs,
            params=params,
            proximal_mu=proximal_mu,
            seed=seed,
            timeout=timeout,
            out=out / "federation",
            on_round=on_round,
            checked_release=n if checked_release else 0,
        )
    shown = Table(title=f"{model}, {len(sites)} sites, {rounds} rounds")
    for column in ("strategy", "sites in last round", "privacy spent", "model", "samples"):
        shown.add_column(column)
    spent = result.privacy_spent
    rng = np.random.default_rng(seed)
    for strategy in result.strategies:
        last = max(result.model_paths[strategy])
        model_dir = out / "models" / strategy
        shutil.rmtree(model_dir, ignore_errors=True)
        shutil.copytree(result.model_paths[strategy][last], model_dir)
        seed = int(rng.integers(2**31))
        if checked_release and strategy == "generator_sharing":
            images = result.released()  # drawn and checked at the sites during the run
            flagged = ", ".join(f"{k} {v}" for k, v in result.release["flagged_by"].items())
            console.print(f"Checked release: {len(images)} images; flagged by site: {flagged}")
            write_sample_folder(images, out / "samples" / strategy)
        else:
            with step(f"Sampling {n} images from {strategy}"):
                images = result.sample(n, strategy, seed=seed)
                write_sample_folder(images, out / "samples" / strategy)
        logs = result.rounds[result.rounds["strategy"] == strategy]
        participants = logs.sort_values("round").iloc[-1]["participants"]
        privacy = ", ".join(
            f"{site} eps {v['epsilon']:.3g}" for site, v in spent.get(strategy, {}).items()
        )
        shown.add_row(
            strategy,
            ", ".join(participants),
            privacy or "no DP",
            str(model_dir),
            str(out / "samples" / strategy),
        )
    console.print(shown)
    memory = ", ".join(
        f"{k} {v:.0f} MB" for k, v in result.runtime.get("peak_memory_mb", {}).items()
    )
    console.print(
        f"Done in {time.perf_counter() - start:.0f} s; peak memory per site: {memory}. "
        f"Round logs: [bold]{result.out_dir / 'rounds.jsonl'}[/]"
    )


def _sites(
    data: list[Path],
    labels: list[Path],
    split_by: str | None,
    demo: bool,
    demo_n: int,
    demo_size: int,
    demo_sites: int,
    seed: int,
) -> dict[str, ImageSet]:
    """The sites' image sets from the command-line choices (exactly one way of making them)."""
    if demo:
        if data:
            raise typer.BadParameter("give DATA or --demo (one of them)", param_hint="DATA")
        from fedsynth.imaging.datasets import brain_mri_cohort

        with step(f"Simulating {demo_n} brain MRI slices at {demo_sites} sites"):
            cohort = brain_mri_cohort(demo_n, sites=demo_sites, size=demo_size, seed=seed)
        return _split(cohort, "site", "--demo")
    if not data:
        raise typer.BadParameter("give one input per site, or one with --split-by", "DATA")
    if split_by is not None:
        if len(data) != 1 or len(labels) > 1:
            raise typer.BadParameter(
                f"--split-by takes one input (and at most one --labels), got {len(data)}"
            )
        return _split(read_images(data[0], labels[0] if labels else None), split_by, data[0])
    if len(data) < 2:
        raise typer.BadParameter("federated training needs 2 sites or more", param_hint="DATA")
    if labels and len(labels) != len(data):
        raise typer.BadParameter(f"{len(labels)} --labels for {len(data)} sites: give one each")
    sites: dict[str, ImageSet] = {}
    for i, path in enumerate(data):
        name = path.name.removesuffix(".gz").rsplit(".", 1)[0] if path.is_file() else path.name
        if name in sites:
            raise ImageInputError([f"{path}: two sites are named {name!r}; rename one"])
        sites[name] = read_images(path, labels[i] if labels else None)
    return sites


def _split(images: ImageSet, column: str, source: Any) -> dict[str, ImageSet]:
    if column not in images.labels.columns:
        raise ImageInputError(
            [f"{source}: no label column {column!r} to split by; has {list(images.labels)}"]
        )
    values = images.labels[column].astype(str)
    sites = {value: images.take(np.flatnonzero(values == value)) for value in sorted(set(values))}
    if len(sites) < 2:
        raise ImageInputError([f"{source}: column {column!r} names one site only"])
    return sites
