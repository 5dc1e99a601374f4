"""What a worker computes for an image run, into the run's (partial) output folder.

The stored images are split into training images and a real holdout (stratified on the first
label column), the generator is fitted (its epochs move the progress bar), the synthetic images
are drawn, and the image report of :mod:`fedsynth.imaging.report` scores them and gives the
privacy verdict that gates their download.

Files written (the names offered):

* ``synthetic_images.zip`` (gated): ``images.npz`` (float32 ``N x C x H x W`` in the training
  intensities, channel names, spacing; read with ``numpy.load``, no pickle), ``labels.csv``
  (one row per image, its PNG file(s) named) and ``png/``: one 8-bit PNG per image (1 or 3
  channels) or per image and channel, each channel mapped from its training range to 0-255;
* ``model.zip`` (gated): the fitted generator (``model.json`` + ``arrays.npz``);
* ``image_report.html`` (gated): metrics, flags and grids of synthetic images only;
* ``image_report_private.html`` (stewards only, never released): the same with real images
  beside the synthetic ones;
* ``report.json``: the metrics, flags and verdict (aggregates only).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fedsynth.core.io import atomic_path
from fedsynth.core.progress import EpochDone
from fedsynth.web.pipeline import Outcome, Reporter, zip_folder
from fedsynth.web.storage import Storage

#: The files of a finished image run.
SYNTHETIC, MODEL, REPORT, PRIVATE_REPORT, NUMBERS = (
    "synthetic_images.zip",
    "model.zip",
    "image_report.html",
    "image_report_private.html",
    "report.json",
)
#: Headline metrics kept with the run (their values).
HEADLINE = ("fid", "precision", "recall", "near_copies", "membership_inference")
# Progress milestones (fractions of the whole).
_FIT, _SAMPLE, _VALIDATE, _WRITE = 0.05, 0.75, 0.82, 0.97
#: Images drawn per call of ``sample``.
_BLOCK = 64


def execute_images(
    config: Mapping[str, Any], storage: Storage, out: Path, say: Reporter
) -> Outcome:
    """Compute an image run described by ``config`` (see
    :func:`~fedsynth.web.image_datasets.image_run_config`) into ``out``.

    Raises
    ------
    FedsynthError, ValueError
        For images or settings that cannot be used; the message is shown to the user.
    """
    import torch

    import fedsynth
    from fedsynth.imaging.report import image_report, render_image_report
    from fedsynth.imaging.validation import IMAGE_METRICS
    from fedsynth.web.image_uploads import read_images

    # One thread: a server's cores are shared with the other runs and the web app itself.
    torch.set_num_threads(1)
    say.progress(0.01, "reading the images")
    images = read_images(storage.root / "image_datasets" / config["image_dataset_id"])
    columns = list(config["label_columns"]) or None
    stratify = columns[0] if columns else None
    train, holdout = images.split(
        config["holdout_fraction"], seed=config["seed"], stratify=stratify
    )
    say.log(
        f"read {len(images)} images of {'x'.join(map(str, images.shape[1:]))} (CxHxW); split: "
        f"{len(train)} training images, {len(holdout)} holdout images (never trained on)"
    )
    params: dict[str, Any] = {"seed": config["seed"], "label_columns": columns}
    if config.get("epochs") is not None:
        params["epochs"] = config["epochs"]
    if config.get("epsilon") is not None:
        params.update(_public_facts(train, columns, say))
        params["dp"] = {"epsilon": config["epsilon"], "delta": config["delta"]}
    generator = fedsynth.make(config["generator"], **params)
    say.log(f"generator: {generator!r}")
    say.progress(_FIT, f"fitting {config['generator']}")
    generator.fit(train, progress=_EpochReport(say, _FIT, _SAMPLE))
    spent = getattr(generator, "privacy_spent_", None)
    if spent:
        say.log(f"differential privacy spent: {spent}")
    n = int(config.get("images") or len(train))
    synthetic = _draw(generator, n, config["seed"], say)
    say.log(f"sampled {len(synthetic)} synthetic images")
    write_synthetic_zip(synthetic, train, out / SYNTHETIC)
    generator.save(out / "model")
    zip_folder(out / "model", out / MODEL)
    say.progress(_VALIDATE, f"scoring the images ({len(IMAGE_METRICS)} metrics)")
    extra = {
        "generator": config["generator"],
        "epsilon_spent": None if not spent else spent.epsilon,
        "delta": None if not spent else config["delta"],
    }
    report = image_report(
        train,
        synthetic,
        holdout,
        epochs=config["report_epochs"],
        seed=config["seed"],
        extra=extra,
    )
    say.progress(_WRITE, "writing the report")
    title = f"fedsynth image report: {config['title']}"
    for name, show_real in ((REPORT, False), (PRIVATE_REPORT, True)):
        page = render_image_report(report, train, synthetic, title=title, show_real=show_real)
        with atomic_path(out / name) as tmp:
            tmp.write_text(page, encoding="utf-8")
    with atomic_path(out / NUMBERS) as tmp:
        tmp.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    failed = [f["name"] for f in report["flags"] if f["status"] == "fail"]
    say.log(
        f"image report: privacy verdict {report['verdict'].upper()}"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    values = {m["name"]: m["value"] for m in report["metrics"] if not m.get("skipped")}
    return Outcome(
        artifacts=[SYNTHETIC, MODEL, REPORT, PRIVATE_REPORT, NUMBERS],
        scores={name: values.get(name) for name in HEADLINE},
        privacy=report["verdict"],
    )


def _public_facts(train, columns: list[str] | None, say: Reporter) -> dict[str, Any]:
    """Label values and intensity range declared public, as a DP fit needs them: taken from
    the upload, which the user vouches for (as the ranges of a table's ``public_domain``);
    differential privacy does not cover them."""
    from fedsynth.imaging.generators import ImageSchema

    # The library's own choice of label columns when none is given.
    chosen = columns or ImageSchema.from_images(train).label_columns
    values = {c: sorted(train.labels[c].dropna().unique().tolist()) for c in chosen}
    flat = np.moveaxis(train.images, 1, 0).reshape(train.images.shape[1], -1)
    ranges = [[float(low), float(high)] for low, high in zip(flat.min(1), flat.max(1), strict=True)]
    say.log(
        f"declared public: the values of {len(values)} label column(s) and each channel's "
        "intensity range, from the upload; differential privacy does not cover them"
    )
    return {"label_values": values, "intensity_range": ranges}


def _draw(generator: Any, n: int, seed: int, say: Reporter):
    """``n`` images in blocks (the bar moves per block); each block's seed follows ``seed``."""
    from fedsynth.imaging.imageset import ImageSet

    rng = np.random.default_rng(seed)
    parts = []
    for start in range(0, n, _BLOCK):
        size = min(_BLOCK, n - start)
        parts.append(generator.sample(size, seed=int(rng.integers(2**31))))
        say.progress(_SAMPLE + (_VALIDATE - _SAMPLE) * (start + size) / n, "sampling")
    import pandas as pd

    return ImageSet(
        np.concatenate([p.images for p in parts]),
        pd.concat([p.labels for p in parts], ignore_index=True),
        channels=parts[0].channels,
        spacing=parts[0].spacing,
    )


def write_synthetic_zip(synthetic, train, path: Path) -> Path:
    """The download of the synthetic images (see the module's docstring)."""
    from PIL import Image

    flat = np.moveaxis(train.images, 1, 0).reshape(train.images.shape[1], -1)
    low, high = flat.min(1), flat.max(1)
    span = np.where(high > low, high - low, 1.0)
    channels = list(synthetic.channels)
    together = len(channels) in (1, 3)
    labels = synthetic.labels.copy()
    files: list[list[str]] = []
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, image in enumerate(synthetic.images):
            pixels = np.clip((image - low[:, None, None]) / span[:, None, None], 0, 1)
            pixels = np.round(pixels * 255).astype(np.uint8)
            if together:
                shown = pixels[0] if len(channels) == 1 else np.moveaxis(pixels, 0, -1)
                names = [(f"png/{i:05d}.png", shown)]
            else:
                names = [(f"png/{i:05d}_{_safe(c)}.png", pixels[k]) for k, c in enumerate(channels)]
            for name, array in names:
                buffer = io.BytesIO()
                Image.fromarray(array).save(buffer, format="PNG")
                archive.writestr(name, buffer.getvalue())
            files.append([name for name, _ in names])
        if together:
            labels.insert(0, "file", [f[0] for f in files])
        else:
            for k, c in enumerate(channels):
                labels.insert(k, f"file_{_safe(c)}", [f[k] for f in files])
        arrays = io.BytesIO()
        np.savez_compressed(
            arrays,
            images=synthetic.images,
            channels=np.asarray(channels, dtype=str),
            spacing=np.asarray(synthetic.spacing, dtype=np.float64),
        )
        archive.writestr("images.npz", arrays.getvalue())
        archive.writestr("labels.csv", labels.to_csv(index=False))
    return path


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(name)) or "channel"


class _EpochReport:
    """Follows a fit's epochs: the bar moves from ``start`` to ``end``; about twenty epochs
    per fit are logged."""

    def __init__(self, say: Reporter, start: float, end: float):
        self.say, self.start, self.end, self.logged = say, start, end, 0

    def __call__(self, event: Any) -> None:
        if not isinstance(event, EpochDone):
            return
        share = min(event.epoch / event.epochs, 1.0)
        self.say.progress(self.start + (self.end - self.start) * share, event.label)
        if event.epoch - self.logged >= max(1, event.epochs // 20) or event.epoch < self.logged:
            self.say.log(event.message)
            self.logged = event.epoch


def image_release_members(run_dir: Path) -> dict[str, Path | bytes]:
    """The members of an image run's release bundle: the synthetic images, the report without
    real images, its numbers and ``release.json`` (generator, parameters, privacy ledger,
    verdict). The private report and the model stay out, as the real rows do for tables."""
    from fedsynth import __version__
    from fedsynth.release.sources import generator_section, privacy_section

    with zipfile.ZipFile(run_dir / MODEL) as archive:
        model = json.loads(archive.read("model.json"))
    report = json.loads((run_dir / NUMBERS).read_text())
    provenance = {
        "format": "fedsynth-release",
        "format_version": 1,
        "fedsynth_version": __version__,
        "modality": "imaging",
        "generator": generator_section([(None, model)]),
        "privacy": privacy_section([(None, model)]),
        "federation": None,
        "report": {
            "verdict": report["verdict"],
            "images": report.get("images"),
            "failed": [f["name"] for f in report["flags"] if f["status"] == "fail"],
        },
    }
    text = json.dumps(provenance, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    return {
        SYNTHETIC: run_dir / SYNTHETIC,
        REPORT: run_dir / REPORT,
        NUMBERS: run_dir / NUMBERS,
        "release.json": text.encode(),
    }
