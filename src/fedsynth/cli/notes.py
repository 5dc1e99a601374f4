"""``fedsynth notes``: synthetic clinical notes by DP in-context learning, from the command line.

``generate`` reads private notes, writes synthetic ones with ``dp_icl`` (ESA under
differential privacy by default), one per row of a synthetic table when ``--rows`` is given (a
multimodal synthetic patient: its row and a note that agrees with it), validates them against
the private notes and writes them only when the privacy gate lets them out. Fitting and sampling
are one command: a saved ``dp_icl`` model holds no private note (see
:mod:`fedsynth.text.dp_icl`), so the notes are read, used and forgotten in one process.
``evaluate`` writes the report of notes written elsewhere.

Registered on the app by :mod:`fedsynth.cli.app` (``app.add_typer(notes_app, name="notes")``).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fedsynth.cli.progress import console, step
from fedsynth.exceptions import FedsynthError, NoteDataError

notes_app = typer.Typer(
    help="Synthetic clinical notes (DP in-context learning): generate, evaluate.",
    no_args_is_help=True,
)


class PrivacyGateError(FedsynthError):
    """Synthetic notes held back by the privacy gate."""


def read_notes(path: Path, text_column: str) -> pd.DataFrame:
    """Notes from a folder of ``.txt`` files or a column of a CSV/TSV/Parquet file."""
    from fedsynth.text.loaders import read_notes_folder, read_notes_table

    if not path.exists():
        raise NoteDataError(f"{path}: no such file or folder of notes")
    with step(f"Reading notes from {path}"):
        if path.is_dir():
            return read_notes_folder(path)
        return read_notes_table(path, text_column=text_column)


@functools.cache
def _embedder() -> Any:
    """all-MiniLM-L6-v2 from its wheel, loaded once per process (one thread)."""
    from fedsynth.text.embeddings import SentenceEmbedder

    return SentenceEmbedder(n_threads=1)


def _backend(name: str, model: str) -> str | dict[str, Any]:
    if name in ("local", "fake"):
        return name
    if name.startswith(("http://", "https://")):
        return {"url": name, "model": model}
    raise typer.BadParameter(
        f"expected 'local', 'fake' or an http(s) URL of an OpenAI-compatible server, got {name!r}",
        param_hint="--backend",
    )


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[work]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


@notes_app.command("generate")
def generate(
    notes: Annotated[
        Path, typer.Argument(help="Private notes: a folder of .txt files, or a CSV/Parquet file.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Synthetic notes (.csv).")],
    n: Annotated[
        int | None,
        typer.Option(
            "--notes", "-n", min=1, help="Notes to write (default: one per --rows row, else 10)."
        ),
    ] = None,
    rows: Annotated[
        Path | None,
        typer.Option(help="Synthetic table (.csv/.parquet): one note conditioned on each row."),
    ] = None,
    text_column: Annotated[str, typer.Option(help="Column of the notes in a table.")] = "text",
    epsilon: Annotated[
        float | None, typer.Option(min=0.0, help="Privacy budget of the release (ESA).")
    ] = 3.0,
    delta: Annotated[float, typer.Option(help="Delta of the release.")] = 1e-5,
    mode: Annotated[
        str, typer.Option(help="esa (DP), zero_shot (reads no note) or icl (non-private).")
    ] = "esa",
    no_dp: Annotated[
        bool, typer.Option("--no-dp", help="No privacy (baselines: icl, noiseless esa).")
    ] = False,
    backend: Annotated[
        str, typer.Option(help="local (SmolLM2 in-process), fake, or an OpenAI-compatible URL.")
    ] = "local",
    model: Annotated[str, typer.Option(help="Model name sent to an OpenAI server.")] = "default",
    prompts: Annotated[
        int,
        typer.Option(min=1, help="Private prompts per aggregate (per note, or the shared one)."),
    ] = 4,
    aggregation: Annotated[
        str,
        typer.Option(
            help="ESA: per_note (one noisy sum per note, as published) or shared (one noisy "
            "sum of row-free prompts for the whole release: one Gaussian mechanism); "
            "note_centroid: not published, not DP-ICL (one noisy sum of the private notes' own "
            "embeddings, no private prompt)."
        ),
    ] = "per_note",
    candidates: Annotated[int, typer.Option(min=1, help="Public candidates per note.")] = 4,
    candidate_styles: Annotated[
        str | None,
        typer.Option(
            help="clinical: the candidates cycle through the instruction, a consult letter, a "
            "discharge summary and clinic shorthand (public instructions, no epsilon; an "
            "extension of DP-ICL). Default: one instruction, as published."
        ),
    ] = None,
    shots: Annotated[int, typer.Option(min=1, help="Private notes per prompt.")] = 2,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most tokens of one note.")] = 160,
    holdout: Annotated[
        Path | None, typer.Option(help="Real notes never given to the generator (report).")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Folder of report.html/json [default: next to --out].")
    ] = None,
    override: Annotated[
        str | None,
        typer.Option(help="Write the notes although the privacy gate fails; the reason is kept."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write synthetic notes under DP, validate them, and write them if the privacy gate
    passes (or only warns)."""
    import fedsynth
    from fedsynth.text.grounding import fact_header
    from fedsynth.text.prompts import STYLE_SETS
    from fedsynth.text.report import notes_report, write_report

    if candidate_styles is not None and candidate_styles not in STYLE_SETS:
        raise typer.BadParameter(
            f"expected one of {sorted(STYLE_SETS)}, got {candidate_styles!r}",
            param_hint="--candidate-styles",
        )
    if out.suffix.lower() != ".csv":
        raise typer.BadParameter(f"expected a .csv file, got {out}", param_hint="--out")
    private = read_notes(notes, text_column)
    table = None
    if rows is not None:
        from fedsynth.tabular.io import read_table

        with step(f"Reading rows from {rows}"):
            table = read_table(rows)
        if n is not None and n != len(table):
            raise typer.BadParameter(
                f"--notes {n} but {rows.name} has {len(table)} rows: one note per row",
                param_hint="--notes",
            )
        n = len(table)
    n = n or 10
    dp = None if no_dp else {"epsilon": epsilon, "delta": delta}
    generator = fedsynth.make(
        "dp_icl",
        dp=dp,
        shots=shots,
        n_prompts=prompts,
        candidates=candidates,
        candidate_styles=candidate_styles,
        aggregation=aggregation,
        backend=_backend(backend, model),
        max_tokens=max_tokens,
        seed=seed,
    )
    generator.fit(private["text"].tolist())
    if mode == "esa" and aggregation == "shared":
        work = f"{prompts} private generation(s) once, then {candidates} per note"
    elif mode == "esa" and aggregation == "note_centroid":
        work = f"no private generation, {candidates} per note"
    else:
        work = f"{ {'esa': prompts + candidates}.get(mode, 1) } generation(s) each"
    console.print(
        f"Writing {n} note(s) by {mode} ({work}) from "
        f"{len(private)} private notes" + (f" at epsilon {epsilon:g}" if dp else ", no DP")
    )
    start = time.perf_counter()
    with _progress_bar() as bar:
        task = bar.add_task("Notes", total=n, work="")

        def show(done: int, total: int, info: dict[str, int]) -> None:
            bar.update(
                task, completed=done, work=f"{info['prompts']} prompts, ~{info['words']} words"
            )

        written = generator.sample(n, conditions=table, mode=mode, progress=show)
    console.print(f"{n} note(s) written in {time.perf_counter() - start:.0f} s")
    row_dicts = None if table is None else table.to_dict("records")
    public = generator.candidate_instructions()  # every public instruction, each style's
    if row_dicts is not None:
        public += [i for r in row_dicts for i in generator.candidate_instructions(r)]
        public += [fact_header(r) for r in row_dicts]
    held = None if holdout is None else read_notes(holdout, text_column)["text"].tolist()
    spent = generator.privacy_spent_
    with step("Validating the notes"):
        result = notes_report(
            private["text"].tolist(),
            written,
            embedder=_embedder(),
            holdout=held,
            synthetic_rows=row_dicts,
            public=public,
            extra={
                "mode": mode,
                "notes": n,
                "epsilon_spent": None if spent is None else spent.epsilon,
                "delta": None if spent is None else delta,
                "override": override,
            },
        )
    folder = report or out.with_name(out.stem + "_report")
    page = write_report(result, folder)
    console.print(f"Report: [bold]{page.resolve()}[/] (privacy verdict: {result['verdict']})")
    if result["verdict"] not in ("pass", "warn") and not override:
        raise PrivacyGateError(
            f"the privacy gate holds the notes back (verdict {result['verdict']}: "
            f"{[f['name'] for f in result['flags'] if f['status'] == 'fail'] or 'no check'}); "
            f"read {page} and pass --override REASON to write them anyway"
        )
    frame = pd.DataFrame({"note_id": range(1, n + 1), "text": written})
    if table is not None:
        frame = pd.concat([table.reset_index(drop=True), frame[["text"]]], axis=1)
    frame.to_csv(out, index=False)
    console.print(f"{n} synthetic note(s) written to [bold]{out}[/]")


@notes_app.command("evaluate")
def evaluate(
    real: Annotated[Path, typer.Argument(help="Private notes (folder or CSV/Parquet).")],
    synthetic: Annotated[Path, typer.Argument(help="Synthetic notes (folder or CSV/Parquet).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path("notes_report"),
    holdout: Annotated[Path | None, typer.Option(help="Real notes never used.")] = None,
    text_column: Annotated[str, typer.Option(help="Column of the notes in a table.")] = "text",
) -> None:
    """Validate synthetic notes against real ones: fidelity, utility, privacy."""
    from fedsynth.text.report import notes_report, write_report

    private = read_notes(real, text_column)["text"].tolist()
    written = read_notes(synthetic, text_column)["text"].tolist()
    held = None if holdout is None else read_notes(holdout, text_column)["text"].tolist()
    with step("Validating the notes"):
        result = notes_report(private, written, embedder=_embedder(), holdout=held)
    page = write_report(result, out)
    console.print(f"Report: [bold]{page.resolve()}[/] (privacy verdict: {result['verdict']})")
