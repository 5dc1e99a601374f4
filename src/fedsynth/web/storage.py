"""The files under the data directory, and how they are written so that none is ever half there.

Layout::

    data_dir/
      fedsynth.sqlite3          datasets, runs, logs, sessions, audit log (see fedsynth.web.db)
      access-token, secret-key  created on the first start, readable by the owner only
      datasets/<id>/            source.csv or source.parquet (the upload, under a fixed name)
      image_datasets/<id>/      images.npz + labels.csv of an uploaded zip of images
      runs/<id>/                the artifacts of a finished run
      runs/<id>.partial/        a run being computed; renamed to runs/<id>/ when complete
      logs/<id>.worker.txt      what a worker process printed (for crashes)

Uploaded file names are never used as paths: every path is built from a random hexadecimal id
checked by :func:`check_id`.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

#: Ids of datasets and runs: 16 lower-case hexadecimal digits.
ID_PATTERN = r"^[0-9a-f]{16}$"
_ID = re.compile(ID_PATTERN)
_PARTIAL = ".partial"


def new_id() -> str:
    """A fresh random id (64 bits, hexadecimal)."""
    return secrets.token_hex(8)


def check_id(value: str) -> str:
    """``value`` if it is a well-formed id, else ``ValueError`` (never a path fragment)."""
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(f"not a valid id: {value!r}")
    return value


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


class Storage:
    """Paths under the data directory.

    Parameters
    ----------
    data_dir : Path
        The web app's data directory (created when missing).
    """

    def __init__(self, data_dir: Path):
        self.root = Path(data_dir)
        for folder in ("datasets", "runs", "logs"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    @property
    def database(self) -> Path:
        """The SQLite file."""
        return self.root / "fedsynth.sqlite3"

    def dataset_dir(self, dataset_id: str) -> Path:
        """Folder of a stored dataset."""
        return self.root / "datasets" / check_id(dataset_id)

    def dataset_file(self, dataset_id: str, file_format: str) -> Path:
        """The stored upload of a dataset (``csv``, ``tsv`` or ``parquet``)."""
        if file_format not in ("csv", "tsv", "parquet"):
            raise ValueError(f"unknown stored format {file_format!r}")
        return self.dataset_dir(dataset_id) / f"source.{file_format}"

    def run_dir(self, run_id: str) -> Path:
        """Folder of a finished run's artifacts."""
        return self.root / "runs" / check_id(run_id)

    def partial_run_dir(self, run_id: str) -> Path:
        """Folder a worker fills while it computes a run."""
        return self.root / "runs" / f"{check_id(run_id)}{_PARTIAL}"

    def worker_output(self, run_id: str) -> Path:
        """What the worker process of a run printed."""
        return self.root / "logs" / f"{check_id(run_id)}.worker.txt"

    def new_dataset_dir(self) -> tuple[str, Path]:
        """A fresh id and a temporary folder to fill, published by :meth:`publish`."""
        dataset_id = new_id()
        return dataset_id, Path(tempfile.mkdtemp(prefix=".upload-", dir=self.root / "datasets"))

    @staticmethod
    def publish(tmp: Path, final: Path) -> Path:
        """Rename a completely written folder into place (one atomic rename)."""
        if final.exists():
            raise FileExistsError(f"{final} already exists")
        os.replace(tmp, final)
        return final

    def remove_dataset(self, dataset_id: str) -> None:
        """Delete a dataset's files."""
        shutil.rmtree(self.dataset_dir(dataset_id), ignore_errors=True)

    def discard_artifacts(self, run_id: str) -> None:
        """Delete what a run that did not finish (cancelled, interrupted) left, partial or not."""
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)
        shutil.rmtree(self.partial_run_dir(run_id), ignore_errors=True)

    def remove_leftovers(self, active_runs: set[str]) -> None:
        """Remove half-made uploads and the partial folders of runs no worker computes."""
        for folder in ("datasets", "image_datasets"):
            for path in (self.root / folder).glob(".upload-*"):
                shutil.rmtree(path, ignore_errors=True)
        for path in (self.root / "runs").glob(f"*{_PARTIAL}"):
            if path.name.removesuffix(_PARTIAL) not in active_runs:
                shutil.rmtree(path, ignore_errors=True)
