"""Commands of the ``fedsynth`` command line (Typer)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from fedsynth.cli.evaluate import evaluate as _evaluate
from fedsynth.cli.federate import federate as _federate
from fedsynth.cli.images import images_app
from fedsynth.cli.images_federate import federate_images
from fedsynth.cli.notes import notes_app
from fedsynth.cli.progress import (
    console,
    error_console,
    fitting,
    make_generator,
    sample_blocks_with_progress,
    step,
)
from fedsynth.cli.release import release_app
from fedsynth.cli.serve import serve as _serve
from fedsynth.exceptions import (
    ConditionError,
    FedsynthError,
    FedsynthWarning,
    ImageDataError,
    ParameterError,
    UnknownGeneratorError,
)

app = typer.Typer(
    name="fedsynth",
    help="Privacy-preserving synthetic clinical data: fit generators, sample, check metadata.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
metadata_app = typer.Typer(help="Infer, inspect and save column metadata.", no_args_is_help=True)
app.add_typer(metadata_app, name="metadata")
app.add_typer(release_app, name="release")
app.add_typer(notes_app, name="notes")
app.add_typer(images_app, name="images")
images_app.command("federate")(federate_images)

# Bad image input (missing or unreadable file, wrong channels) is a usage error like a bad
# condition or a bad --param value: the user fixes the command, not the data pipeline.
USAGE_ERRORS = (ConditionError, UnknownGeneratorError, ImageDataError, ParameterError)


def run(argv: list[str]) -> int:
    """Run the app and map errors to exit codes: 1 failure, 2 bad usage."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", FedsynthWarning)
            warnings.showwarning = _show_warning
            app(args=argv, prog_name="fedsynth", standalone_mode=True)
    except SystemExit as exc:  # Typer's own ending: 0, or 2 for bad usage
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except USAGE_ERRORS as exc:
        _print_error(exc)
        return 2
    except TypeError as exc:  # an unknown generator parameter (make() says which)
        if "unknown parameter" not in str(exc):
            raise
        _print_error(exc)
        return 2
    except FedsynthError as exc:
        _print_error(exc)
        return 1
    return 0


def _print_error(exc: Exception) -> None:
    # Messages hold brackets ("one of ['F', 'M']") that rich would read as markup: print as text.
    error_console.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    error_console.print(Text("warning: ", style="yellow") + Text(str(message)), soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        from fedsynth import __version__

        console.print(f"fedsynth {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    """fedsynth: synthetic clinical data that is measured for fidelity and privacy."""


# ---------------------------------------------------------------------- helpers
def _parse_pairs(pairs: list[str], what: str) -> dict[str, Any]:
    """``["epochs=10", "sex=F"]`` -> ``{"epochs": 10, "sex": "F"}`` (JSON where it parses)."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint=what)
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def _read(path: Path):
    """Read a table with the reader the web app shares, and say how a text table was read."""
    from fedsynth.tabular.io import (
        PARQUET_SUFFIXES,
        check_table_file,
        detect_dialect,
        read_parquet_table,
        read_text_table,
    )

    with step(f"Reading {path}"):
        path = check_table_file(path)
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return read_parquet_table(path, name=path.name)
        dialect = detect_dialect(path)
        table = read_text_table(path, dialect, name=path.name)
    console.print(f"Read {path.name} as {dialect.describe()}")
    return table


# ---------------------------------------------------------------------- commands
@app.command()
def fit(
    data: Annotated[Path, typer.Argument(help="Training table (.csv, .tsv or .parquet).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to save the model in.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Generator name.")] = (
        "gaussian_copula"
    ),
    metadata: Annotated[
        Path | None,
        typer.Option(help="Metadata JSON/YAML (all or some columns; the rest are inferred)."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Generator parameter NAME=VALUE (repeatable)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Fit a generator on a table and save it."""

    if out.exists() and not out.is_dir():  # refused before the fit, not after it
        raise typer.BadParameter(
            f"{out} is a file; expected a folder for the model", param_hint="--out"
        )
    params = {"seed": seed, **_parse_pairs(param or [], "--param")}
    generator = make_generator(model, **params)
    table = _read(data)
    with fitting(generator, f"Fitting {model} on {len(table):,} rows x {table.shape[1]} columns"):
        generator.fit(table, metadata=metadata)
    generator.save(out)
    console.print(f"Model saved to [bold]{out}[/]")


@app.command()
def sample(
    model_dir: Annotated[Path, typer.Argument(help="Directory of a saved model.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.csv or .parquet).")],
    rows: Annotated[
        int, typer.Option("--rows", "-n", min=1, help="Number of rows (at least 1).")
    ] = 1000,
    condition: Annotated[
        list[str] | None,
        typer.Option("--condition", "-c", help="Condition COLUMN=VALUE (repeatable)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed of the draw.")] = None,
) -> None:
    """Sample synthetic rows from a saved model, written block by block (any number of rows in
    bounded memory; the file appears only once complete)."""
    import fedsynth
    from fedsynth.tabular.io import check_output_file, write_table_blocks

    check_output_file(out)  # before the draw, not after it
    conditions = {k: str(v) for k, v in _parse_pairs(condition or [], "--condition").items()}
    generator = fedsynth.load(model_dir)
    blocks = sample_blocks_with_progress(generator, rows, conditions=conditions, seed=seed)
    written = write_table_blocks(blocks, out)
    console.print(f"{written:,} synthetic rows written to [bold]{out}[/]")


app.command("evaluate")(_evaluate)
app.command("serve")(_serve)
app.command("federate")(_federate)


@app.command("generators")
def list_generators() -> None:
    """List the available generators."""
    import fedsynth

    for name in fedsynth.available_generators():
        console.print(name)


@metadata_app.command("infer")
def metadata_infer(
    data: Annotated[Path, typer.Argument(help="Table (.csv, .tsv or .parquet).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Save to this JSON/YAML file to edit it.")
    ] = None,
    duration: Annotated[str | None, typer.Option(help="Survival time column.")] = None,
    event: Annotated[str | None, typer.Option(help="Survival event column (1 = event).")] = None,
    site: Annotated[str | None, typer.Option(help="Site (hospital) column.")] = None,
    identifier: Annotated[
        list[str] | None, typer.Option(help="Column to exclude as identifier (repeatable).")
    ] = None,
    genomic: Annotated[
        list[str] | None, typer.Option(help="Binary column of the genomic group (repeatable).")
    ] = None,
) -> None:
    """Infer the column kinds of a table, check the table, and show or save the result."""
    from rich.table import Table

    from fedsynth.tabular.metadata import Metadata

    table = _read(data)
    md = Metadata.infer(
        table,
        duration=duration,
        event=event,
        site=site,
        identifiers=identifier,
        genomic=genomic,
    )
    shown = Table(title=f"{data.name}: {len(table):,} rows", show_lines=False)
    for header in ("column", "kind", "dtype", "group", "details"):
        shown.add_column(header)
    for name, col in md.columns.items():
        if col.bounds is not None:
            details = f"[{col.bounds[0]:g}, {col.bounds[1]:g}]" + (
                " integer" if col.integer else ""
            )
        elif col.categories is not None:
            details = f"{len(col.categories)} categories"
        else:
            details = ""
        missing = table[name].isna().mean()
        if missing:
            details += f", {missing:.1%} missing"
        shown.add_row(name, col.kind, col.dtype or "", col.group or "", details)
    console.print(shown)
    md.check(table)
    if out is not None:
        md.save(out)
        console.print(f"Metadata saved to [bold]{out}[/]; edit it and pass it with --metadata")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path(
        "fedsynth-demo"
    ),
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Generator name [default: vae_bgm federated, bayesian_network central].",
            show_default=False,
        ),
    ] = None,
    patients: Annotated[int, typer.Option(min=10, help="Size of the simulated MDS cohort.")] = 4427,
    sites: Annotated[int, typer.Option(min=1, help="Number of hospitals in the cohort.")] = 3,
    federated: Annotated[
        bool,
        typer.Option(
            "--federated/--central",
            help="Train over the sites with Flower (no row leaves a site), or on pooled rows.",
        ),
    ] = True,
    strategy: Annotated[str, typer.Option(help="Federated strategy.")] = "fedavg",
    rounds: Annotated[int, typer.Option(min=1, help="Federated rounds.")] = 3,
    local_epochs: Annotated[int, typer.Option(min=1, help="Epochs per site and round.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="End with the SAFE validation report.")
    ] = True,
    images: Annotated[
        bool,
        typer.Option(
            "--images",
            help="Run the imaging demo instead: simulated brain MRI slices, latent_diffusion "
            "(or --model dp_gan, at epsilon 5), the image report; writes OUT/images/.",
        ),
    ] = False,
    image_patients: Annotated[int, typer.Option(min=12, hidden=True)] = 300,
    image_size: Annotated[int, typer.Option(min=16, hidden=True)] = 32,
    image_epochs: Annotated[int | None, typer.Option(min=1, hidden=True)] = None,
    image_report_epochs: Annotated[int, typer.Option(min=1, hidden=True)] = 10,
) -> None:
    """Run the whole job on the built-in simulated MDS cohort: train (federated over its sites
    by default), sample, write the CSV, and validate it (HTML + JSON report). With --images,
    the same for images on the simulated brain MRI cohort."""
    if images:
        from fedsynth.cli.demo_images import DEMO_PARAMS, run_image_demo

        if model is not None and model not in DEMO_PARAMS:
            raise typer.BadParameter(
                f"the imaging demo runs {' or '.join(DEMO_PARAMS)}, not {model!r}",
                param_hint="--model",
            )
        run_image_demo(
            out=out / "images",
            model=model or "latent_diffusion",
            patients=image_patients,
            size=image_size,
            epochs=image_epochs,
            report_epochs=image_report_epochs,
            seed=seed,
        )
        return
    from fedsynth.cli.demo import run_demo

    run_demo(
        out=out,
        model=model,
        patients=patients,
        sites=sites,
        seed=seed,
        report=report,
        federated=federated,
        strategy=strategy,
        rounds=rounds,
        local_epochs=local_epochs,
    )
