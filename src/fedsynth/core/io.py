"""Model files (``model.json`` + ``arrays.npz``, never pickle), as a folder or as bytes, and
atomic writes."""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fedsynth.exceptions import ModelFileError, Problem


class atomic_path:
    """Context manager giving a temporary path renamed onto ``path`` on success."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> Path:
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def save_model_files(
    directory: str | os.PathLike, config: dict[str, Any], arrays: dict[str, np.ndarray]
) -> Path:
    """Write ``model.json`` and ``arrays.npz`` (no pickle) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / "arrays.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    with atomic_path(directory / "model.json") as tmp:
        tmp.write_text(_config_text(config))
    return directory


def load_model_files(directory: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read what :func:`save_model_files` wrote; arrays are loaded with ``allow_pickle=False``."""
    directory = Path(directory)
    config_path, arrays_path = directory / "model.json", directory / "arrays.npz"
    missing = [p.name for p in (config_path, arrays_path) if not p.is_file()]
    if missing:
        raise ModelFileError(
            [
                Problem(
                    None, f"{str(directory)!r} is not a saved model: missing {', '.join(missing)}"
                )
            ]
        )
    try:
        config = json.loads(config_path.read_text())
        with np.load(arrays_path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (ValueError, OSError) as exc:
        problem = Problem(None, f"cannot read model in {str(directory)!r}: {exc}")
        raise ModelFileError([problem]) from exc
    return config, arrays


def model_files_to_bytes(config: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """The files of :func:`save_model_files` as one ZIP archive in memory (no pickle).

    The archive holds ``model.json`` and ``arrays.npz``: unpacked into a folder, it is a saved
    model that :func:`load_model_files` reads.

    Examples
    --------
    >>> blob = model_files_to_bytes({"format": "x"}, {"a": np.arange(3)})
    >>> model_files_from_bytes(blob)[1]["a"]
    array([0, 1, 2])
    """
    npz = io.BytesIO()
    np.savez(npz, **arrays)
    archive = io.BytesIO()
    # Stored, not compressed: weights barely compress, and the archive is made every round.
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(_CONFIG_FILE, _config_text(config))
        zf.writestr(_ARRAYS_FILE, npz.getvalue())
    return archive.getvalue()


def model_files_from_bytes(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read what :func:`model_files_to_bytes` wrote; arrays are loaded with
    ``allow_pickle=False``.

    Raises
    ------
    ModelFileError
        When ``data`` is not such an archive.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            files = {name: zf.read(name) for name in (_CONFIG_FILE, _ARRAYS_FILE)}
        config = json.loads(files[_CONFIG_FILE])
        with np.load(io.BytesIO(files[_ARRAYS_FILE]), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        # KeyError: a member is missing (its message names it).
        raise ModelFileError([Problem(None, f"not a readable saved model: {exc}")]) from exc
    return config, arrays


_CONFIG_FILE = "model.json"
_ARRAYS_FILE = "arrays.npz"


def _config_text(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
