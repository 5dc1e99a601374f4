"""Image datasets in the web app: uploaded zips of images, and the runs that train on them.

An upload (:mod:`fedsynth.web.image_uploads`) is checked and stored as ``images.npz`` +
``labels.csv`` under ``data_dir/image_datasets/<id>/``, with a record of counts, shape, channels
and the label columns (their values when there are few): never a pixel. Runs on it are rows of
the app's ``runs`` table of kind ``imaging``, computed by the same worker processes as table
runs (:mod:`fedsynth.web.image_pipeline`), with the same progress, log, cancel, privacy gate,
override and steward approval.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedsynth.exceptions import FedsynthError
from fedsynth.web.db import Database, RunRecord, now
from fedsynth.web.errors import InvalidRequestError, NotFoundError, TooManyRunsError
from fedsynth.web.image_uploads import read_image_zip, read_images, write_images
from fedsynth.web.security import Principal
from fedsynth.web.settings import RETRY_AFTER_SECONDS
from fedsynth.web.storage import check_id, new_id
from fedsynth.web.uploads import display_name, save_upload

#: The image generators a run may use.
IMAGE_GENERATORS = ("latent_diffusion", "dp_gan")
#: Label columns with at most this many values may be conditioned on (and get grids).
MAX_LABEL_VALUES = 8
#: Most synthetic images of one run, and most epochs.
MAX_RUN_IMAGES = 5000
MAX_EPOCHS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS image_datasets (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, filename TEXT NOT NULL, created TEXT NOT NULL,
    size_bytes INTEGER NOT NULL, layout TEXT NOT NULL, n_images INTEGER NOT NULL,
    shape TEXT NOT NULL, channels TEXT NOT NULL, labels TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class ImageDataset:
    """A stored image upload: counts, shape, channels and label columns (no pixel)."""

    id: str
    name: str
    filename: str
    created: str
    size_bytes: int
    layout: str
    n_images: int
    shape: list[int]
    channels: list[str]
    labels: list[dict[str, Any]]

    @property
    def conditionable(self) -> list[str]:
        """Label columns with few enough values to condition a generator on."""
        return [c["name"] for c in self.labels if c["values"] is not None]


class ImageDatasets:
    """The image datasets of the app (database rows and a folder of the data directory).

    Parameters
    ----------
    db : Database
        The app's database.
    folder : Path
        Where the datasets' files go (``data_dir/image_datasets``).
    """

    def __init__(self, db: Database, folder: Path):
        self.db, self.folder = db, Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        with db.connect() as con:
            con.execute(_SCHEMA)

    def upload(
        self, filename: str | None, chunks: Iterable[bytes], name: str | None, *, max_bytes: int
    ) -> ImageDataset:
        """Check and store an uploaded zip of images.

        Raises
        ------
        ImageDataError, UploadTooLargeError, InvalidDataError
            Naming the file (and the member) at fault; nothing is stored then.
        """
        shown = display_name(filename)
        dataset_id = new_id()
        tmp = Path(tempfile.mkdtemp(prefix=".upload-", dir=self.folder))
        try:
            archive = tmp / "upload.zip"
            size = save_upload(chunks, archive, filename=shown, max_bytes=max_bytes)
            workdir = tmp / "unpacked"
            workdir.mkdir()
            loaded = read_image_zip(archive, filename=shown, workdir=workdir)
            stored = tmp / "stored"
            stored.mkdir()
            write_images(loaded.images, stored)
            stored.rename(self.folder / dataset_id)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        images = loaded.images
        record = ImageDataset(
            id=dataset_id,
            name=(name or "").strip()[:200] or Path(shown).stem or shown,
            filename=shown,
            created=now(),
            size_bytes=size,
            layout=loaded.layout,
            n_images=len(images),
            shape=list(images.shape[1:]),
            channels=list(images.channels),
            labels=_label_summary(images.labels),
        )
        with self.db.connect() as con:
            con.execute(
                "INSERT INTO image_datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.name,
                    record.filename,
                    record.created,
                    record.size_bytes,
                    record.layout,
                    record.n_images,
                    json.dumps(record.shape),
                    json.dumps(record.channels),
                    json.dumps(record.labels),
                ),
            )
        return record

    def get(self, dataset_id: str) -> ImageDataset:
        """The dataset with this id (``NotFoundError`` if none)."""
        with self.db.connect() as con:
            row = con.execute("SELECT * FROM image_datasets WHERE id = ?", (dataset_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no image dataset with id {dataset_id!r}")
        values = dict(row)
        for key in ("shape", "channels", "labels"):
            values[key] = json.loads(values[key])
        return ImageDataset(**values)

    def list(self) -> list[ImageDataset]:
        """Every image dataset, newest first."""
        with self.db.connect() as con:
            ids = [r["id"] for r in con.execute("SELECT id FROM image_datasets ORDER BY created")]
        return [self.get(i) for i in reversed(ids)]

    def files(self, dataset_id: str) -> Path:
        """The folder of a dataset's stored images (read on the server only)."""
        return self.folder / check_id(dataset_id)

    def load(self, dataset_id: str):
        """The stored :class:`~fedsynth.imaging.ImageSet` of a dataset."""
        return read_images(self.files(dataset_id))

    # ------------------------------------------------------------------ runs
    def create_run(
        self,
        who: Principal,
        dataset_id: str,
        settings: Mapping[str, Any],
        *,
        max_queued: int,
        rerun_of: str | None = None,
    ) -> RunRecord:
        """Check a run's settings against the dataset and queue it (kind ``imaging``).

        Raises
        ------
        InvalidRequestError
            Listing every setting that cannot be used.
        TooManyRunsError
            When the user already has ``max_queued`` runs waiting.
        """
        requester = who.user or who.actor
        queued = self.db.queued_runs_of(requester)
        if queued >= max_queued:
            raise TooManyRunsError(
                f"{requester} already has {queued} run(s) waiting in the queue, the most this "
                f"server allows (max_queued_runs={max_queued}); wait, or cancel some",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        dataset = self.get(dataset_id)
        config = image_run_config(dataset, settings)
        config["requested_by"] = requester
        run_id = new_id()
        while self.db.get_run(run_id) is not None:  # 64 random bits: practically never
            run_id = new_id()
        record = RunRecord(
            id=run_id,
            dataset_id=dataset.id,
            dataset_name=dataset.name,
            kind="imaging",
            config=config,
            status="queued",
            created=now(),
            stage="queued",
            rerun_of=rerun_of,
        )
        self.db.add_run(record)
        self.db.append_log(record.id, "queued" + (f" (rerun of {rerun_of})" if rerun_of else ""))
        return record


#: Settings of an image run a user chooses, with their defaults.
RUN_SETTINGS: dict[str, Any] = {
    "generator": "latent_diffusion",
    "epochs": None,
    "epsilon": None,
    "delta": 1e-5,
    "images": None,
    "label_columns": [],
    "holdout_fraction": 0.25,
    "seed": 0,
    "report_epochs": 10,
}


def image_run_config(dataset: ImageDataset, settings: Mapping[str, Any]) -> dict[str, Any]:
    """A run's stored settings from the user's (strings from a form, or JSON values).

    Raises
    ------
    InvalidRequestError
        Listing every problem, each with what was expected.
    """
    problems: list[str] = []
    unknown = sorted(set(settings) - set(RUN_SETTINGS))
    if unknown:
        problems.append(f"unknown setting(s) {unknown}; expected some of {list(RUN_SETTINGS)}")
    config: dict[str, Any] = {**RUN_SETTINGS}
    for key, value in settings.items():
        if key in RUN_SETTINGS and value not in (None, ""):
            config[key] = value
    if config["generator"] not in IMAGE_GENERATORS:
        problems.append(
            f"generator: expected one of {list(IMAGE_GENERATORS)}, got {config['generator']!r}"
        )
    checks = (
        ("epochs", int, 1, MAX_EPOCHS, True),
        ("images", int, 1, MAX_RUN_IMAGES, True),
        ("seed", int, 0, 2**31 - 1, False),
        ("report_epochs", int, 1, 200, False),
        ("epsilon", float, 1e-3, 1e3, True),
        ("delta", float, 1e-12, 0.1, False),
        ("holdout_fraction", float, 0.05, 0.5, False),
    )
    for key, kind, low, high, optional in checks:
        value = config[key]
        if value is None and optional:
            continue
        try:
            number = kind(value)
            if kind is int and float(value) != number:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"{key}: expected a {kind.__name__}, got {value!r}")
            continue
        if not low <= number <= high:
            problems.append(f"{key}: expected a value from {low:g} to {high:g}, got {number:g}")
        config[key] = number
    columns = config["label_columns"]
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",") if c.strip()]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        problems.append(f"label_columns: expected a list of column names, got {columns!r}")
        columns = []
    for column in columns:
        if column not in dataset.conditionable:
            problems.append(
                f"label column {column!r}: expected one with at most {MAX_LABEL_VALUES} values "
                f"({', '.join(dataset.conditionable) or 'this dataset has none'})"
            )
    config["label_columns"] = list(dict.fromkeys(columns))
    if config["epsilon"] is not None and config["generator"] == "latent_diffusion":
        problems.append(
            "epsilon: latent_diffusion under differential privacy trains its autoencoder on "
            "public images, which the web app does not take; choose dp_gan, or use "
            "`fedsynth images fit --epsilon ... --public-images ...`"
        )
    if problems:
        raise InvalidRequestError(
            f"{len(problems)} problem(s) with the run settings:\n  - " + "\n  - ".join(problems)
        )
    config.update(
        modality="imaging",
        image_dataset_id=dataset.id,
        title=f"{dataset.name}, {config['generator']}",
    )
    return config


def _label_summary(labels) -> list[dict[str, Any]]:
    """Each label column's name, distinct count and, for few values, the values with counts."""
    out = []
    for column in labels.columns:
        counts = labels[column].value_counts(dropna=True)
        few = 1 < len(counts) <= MAX_LABEL_VALUES
        values = {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))}
        shown = values if few else None
        out.append({"name": str(column), "distinct": len(counts), "values": shown})
    return out


def dataset_error(error: Exception) -> dict[str, Any]:
    """An upload error as the page shows it."""
    problems = getattr(error, "problems", None) or []
    message = str(error) if isinstance(error, FedsynthError) else f"{type(error).__name__}"
    return {"message": message, "problems": [str(p) for p in problems]}
