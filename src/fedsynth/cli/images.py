"""``fedsynth images``: fit an image generator, sample synthetic images, write the image report.

Inputs (``DATA``, ``REAL``, ``SYNTHETIC``) are read by :func:`read_images`: a folder of PNG/TIFF
files with a labels CSV (``--labels``), a NIfTI file or folder of them (axial slices), a DICOM
folder (one series, axial slices), or a folder written by ``images sample``.

``images sample`` writes a folder holding ``images.npz`` (``images``: float32
``N x C x H x W`` in the training intensities, ``channels``, ``spacing``; read with
``numpy.load``, no pickle) and ``labels.csv`` (one row per image, in the same order): PNG would
round intensities to 8 or 16 bits and scatter the channels of one image over several files.

Registered on the app by :mod:`fedsynth.cli.app` (``app.add_typer(images_app, name="images")``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer

from fedsynth.cli.progress import console, fitting, make_generator, step
from fedsynth.exceptions import FedsynthError, ImageDataError
from fedsynth.imaging.imageset import ImageSet
from fedsynth.imaging.npz import ARRAYS, LABELS
from fedsynth.imaging.validation.api import IMAGE_METRICS

images_app = typer.Typer(
    help="Synthetic medical images (latent diffusion, DP-GAN): fit, sample, evaluate, federate.",
    no_args_is_help=True,
)

IMAGE_MODELS = ("latent_diffusion", "dp_gan")
NIFTI = (".nii", ".nii.gz")
#: Images drawn per call of ``sample`` (one step of the progress bar).
BLOCK = 64


class ImageInputError(ImageDataError):
    """Bad image input, printed on one line when there is one problem (the usual case on the
    command line: a missing folder, an unreadable file)."""

    def __str__(self) -> str:
        return str(self.problems[0]) if len(self.problems) == 1 else super().__str__()


class ImageGateError(FedsynthError):
    """Synthetic images that the privacy checks of the image report hold back."""


def read_images(
    path: Path,
    labels: Path | None = None,
    *,
    channels: list[str] | None = None,
    site_column: str | None = None,
) -> ImageSet:
    """Read images from any input the command line takes (see the module docstring).

    Raises
    ------
    ImageInputError
        Naming the path and what was expected.
    """
    if not path.exists():
        raise ImageInputError([f"{path}: no such file or folder"])
    if labels is not None and not labels.is_file():
        raise ImageInputError([f"{labels}: no such labels file (expected a CSV)"])
    try:
        found = _load(path, labels, channels, site_column)
    except ImageInputError:
        raise
    except ImageDataError as error:  # the loaders' problems, each naming its file
        raise ImageInputError(error.problems) from None
    if found.is_volume:
        raise ImageInputError([f"{path}: 3-D volumes given; the generators take 2-D slices"])
    if channels is not None and list(found.channels) != list(channels):
        raise ImageInputError(
            [f"{path}: channels {list(found.channels)}, expected --channels {channels}"]
        )
    console.print(f"Read {len(found)} images of {'x'.join(map(str, found.shape[1:]))} (CxHxW)")
    return found


def _load(
    path: Path, labels: Path | None, channels: list[str] | None, site_column: str | None
) -> ImageSet:
    from fedsynth.imaging.loaders import load_dicom_series, load_image_folder, load_nifti

    with step(f"Reading images from {path}"):
        if path.is_dir() and (path / ARRAYS).is_file():
            return _read_sample_folder(path)
        elif path.name.lower().endswith(NIFTI) or (
            path.is_dir() and any(p.name.lower().endswith(NIFTI) for p in path.iterdir())
        ):
            return load_nifti(path, labels=labels, channels=channels, site_column=site_column)
        elif path.is_dir() and any(path.glob("*.dcm")):
            return load_dicom_series(path, slices="axial")
        elif path.is_dir():
            return load_image_folder(path, labels, channels=channels, site_column=site_column)
        else:
            raise ImageInputError(
                [
                    f"{path}: expected a folder of PNG/TIFF images, a NIfTI file or folder, a "
                    f"DICOM folder or a folder written by 'fedsynth images sample'"
                ]
            )


def write_sample_folder(images: ImageSet, folder: Path) -> None:
    """Write ``images.npz`` and ``labels.csv`` in ``folder`` (atomically each)."""
    from fedsynth.imaging.npz import save_image_set

    save_image_set(images, folder)


def _read_sample_folder(folder: Path) -> ImageSet:
    from fedsynth.imaging.npz import load_image_set

    try:
        return load_image_set(folder)
    except ImageDataError as error:
        raise ImageInputError(error.problems) from error


def _split_names(text: str | None) -> list[str] | None:
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


@images_app.command("fit")
def fit(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to save the model in.")],
    data: Annotated[
        Path | None,
        typer.Argument(help="PNG/TIFF folder, NIfTI file or folder, or DICOM folder."),
    ] = None,
    model: Annotated[
        str, typer.Option("--model", "-m", help="latent_diffusion or dp_gan.")
    ] = "latent_diffusion",
    labels: Annotated[
        Path | None, typer.Option(help="Labels CSV (one row per image; column 'file').")
    ] = None,
    label_column: Annotated[
        list[str] | None,
        typer.Option("--label-column", "-l", help="Label to condition on (repeatable)."),
    ] = None,
    channels: Annotated[
        str | None, typer.Option(help="Channel names, comma-separated (checked).")
    ] = None,
    site_column: Annotated[str | None, typer.Option(help="Labels column of the site.")] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Use the simulated brain MRI cohort (no DATA).")
    ] = False,
    demo_n: Annotated[int, typer.Option(min=4, help="Patients of the demo cohort.")] = 200,
    demo_size: Annotated[int, typer.Option(min=16, help="Pixels per side (demo).")] = 32,
    epsilon: Annotated[
        float | None, typer.Option(min=0.0, help="Train under DP with this budget.")
    ] = None,
    delta: Annotated[float, typer.Option(help="Delta of the DP guarantee.")] = 1e-5,
    public_images: Annotated[
        Path | None,
        typer.Option(
            help="Images that are not private (they cost no epsilon): latent_diffusion's "
            "autoencoder trains on them, dp_gan starts from a warm start on them."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Training epochs.")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Generator parameter NAME=VALUE, JSON (repeatable)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Fit an image generator on real images and save it."""
    from fedsynth.cli.app import _parse_pairs

    if model not in IMAGE_MODELS:
        raise typer.BadParameter(
            f"expected one of {list(IMAGE_MODELS)}, got {model!r}", param_hint="--model"
        )
    if demo == (data is not None):
        raise typer.BadParameter("give DATA or --demo (one of them)", param_hint="DATA")
    if demo:
        from fedsynth.imaging.datasets import brain_mri_cohort

        with step(f"Simulating {demo_n} brain MRI slices"):
            images = brain_mri_cohort(demo_n, size=demo_size, seed=seed)
        label_column = label_column or ["idh_mutant"]
    else:
        images = read_images(data, labels, channels=_split_names(channels), site_column=site_column)
    params: dict[str, Any] = {"seed": seed, **_parse_pairs(param or [], "--param")}
    if label_column:
        params["label_columns"] = label_column
    if epochs is not None:
        params["epochs"] = epochs
    options: dict[str, Any] = {}
    if epsilon is not None:
        params["dp"] = {"epsilon": epsilon, "delta": delta}
        if demo:  # simulated patients, nothing private: their values and scale are public
            params.setdefault(
                "label_values",
                {c: sorted(images.labels[c].unique().tolist()) for c in label_column},
            )
            params.setdefault("intensity_range", [0.0, 1.5])
    if public_images is not None:
        options["public_images"] = read_images(public_images)
    generator = make_generator(model, **params)
    described = f"Fitting {model} on {len(images)} images of {'x'.join(map(str, images.shape[1:]))}"
    with fitting(generator, described):
        generator.fit(images, **options)
    generator.save(out)
    spent = getattr(generator, "privacy_spent_", None)
    if spent is not None:
        console.print(f"Privacy spent: epsilon {spent.epsilon:.3g} (delta {delta:g})")
    console.print(f"Model saved to [bold]{out}[/]")


@images_app.command("sample")
def sample(
    model_dir: Annotated[Path, typer.Argument(help="Directory of a saved image model.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for images.npz + labels.csv.")],
    n: Annotated[int, typer.Option("--images", "-n", min=1, help="Number of images.")] = 16,
    condition: Annotated[
        list[str] | None,
        typer.Option("--condition", "-c", help="Condition LABEL=VALUE (repeatable)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed of the draw.")] = None,
) -> None:
    """Sample synthetic images (and their labels) from a saved image model."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    import fedsynth
    from fedsynth.cli.app import _parse_pairs
    from fedsynth.federated.task import GeneratorMixture, load_model

    if not model_dir.is_dir():
        raise ImageInputError([f"{model_dir}: no such model directory"])
    # A generator-sharing model of 'images federate' is a folder of site generators.
    generator = load_model(model_dir) if (model_dir / "mixture.json").is_file() else None
    if generator is None:
        generator = fedsynth.load(model_dir)
    if isinstance(generator, GeneratorMixture):
        if any(getattr(g, "modality", None) != "imaging" for g in generator.generators.values()):
            raise ImageInputError([f"{model_dir}: holds table models, not image models"])
    elif getattr(generator, "modality", None) != "imaging":
        raise ImageInputError(
            [f"{model_dir}: holds a {type(generator).__name__} model, not an image model"]
        )
    conditions = _parse_pairs(condition or [], "--condition")
    # Blocks under one bar; each block's seed follows from the draw's seed.
    rng = np.random.default_rng(seed)
    parts = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("Sampling images", total=n)
        for start in range(0, n, BLOCK):
            size = min(BLOCK, n - start)
            parts.append(
                generator.sample(size, conditions=conditions or None, seed=int(rng.integers(2**31)))
            )
            bar.advance(task, size)
    images = ImageSet(
        np.concatenate([p.images for p in parts]),
        pd.concat([p.labels for p in parts], ignore_index=True),
        channels=parts[0].channels,
        spacing=parts[0].spacing,
    )
    write_sample_folder(images, out)
    console.print(f"{n} synthetic images written to [bold]{out}[/] ({ARRAYS} + {LABELS})")


@images_app.command("evaluate")
def evaluate(
    real: Annotated[Path, typer.Argument(help="Real training images (any input of 'fit').")],
    synthetic: Annotated[Path, typer.Argument(help="Synthetic images (a 'sample' folder).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML report (JSON beside it).")] = (
        Path("image_report.html")
    ),
    labels: Annotated[Path | None, typer.Option(help="Labels CSV of the real images.")] = None,
    channels: Annotated[
        str | None, typer.Option(help="Channel names of the real images, comma-separated.")
    ] = None,
    holdout: Annotated[
        Path | None, typer.Option(help="Real images the generator never saw (a folder).")
    ] = None,
    holdout_labels: Annotated[Path | None, typer.Option(help="Labels CSV of --holdout.")] = None,
    epochs: Annotated[
        int, typer.Option(min=1, help="Epochs of the feature autoencoder of the metrics.")
    ] = 10,
    max_images: Annotated[int, typer.Option(min=2, help="Most images used from each set.")] = 1000,
    per_label: Annotated[int, typer.Option(min=1, help="Images shown per label value.")] = 4,
    override: Annotated[
        str | None,
        typer.Option(help="Exit 0 although the privacy checks fail; the reason is kept."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Score synthetic images against real ones and write the HTML report.

    Exits 1 when a privacy check fails, unless --override REASON."""
    from fedsynth.imaging.report import image_report, write_image_report

    if out.suffix.lower() not in (".html", ".htm"):
        raise typer.BadParameter(f"expected an .html file, got {out}", param_hint="--out")
    names = _split_names(channels)
    train = read_images(real, labels, channels=names)
    generated = read_images(synthetic)
    held = None if holdout is None else read_images(holdout, holdout_labels, channels=names)
    for path, other in ((synthetic, generated), (holdout, held)):
        if other is not None and other.shape[1:] != train.shape[1:]:
            raise ImageInputError(
                [
                    f"{path}: images of {'x'.join(map(str, other.shape[1:]))} (CxHxW), but the "
                    f"real images {real} are {'x'.join(map(str, train.shape[1:]))}"
                ]
            )
    with step(f"Scoring the images ({len(IMAGE_METRICS)} metrics)"):
        result = image_report(
            train,
            generated,
            held,
            epochs=epochs,
            seed=seed,
            max_images=max_images,
            extra={"override": override, "real": str(real), "synthetic": str(synthetic)},
        )
    page = write_image_report(result, train, generated, out, per_group=per_label, seed=seed)
    console.print(f"Report: [bold]{page.resolve()}[/] (privacy verdict: {result['verdict']})")
    failed = [
        f["name"] for f in result["flags"] if f["status"] == "fail" and "privacy." in f["name"]
    ]
    if failed and not override:
        raise ImageGateError(
            f"the privacy checks fail ({', '.join(failed)}): these synthetic images must not be "
            f"released; read {page} and pass --override REASON to accept them anyway"
        )
