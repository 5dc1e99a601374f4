"""Model files (``model.json`` + ``arrays.npz``, never pickle) and atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
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
        tmp.write_text(json.dumps(config, indent=2, default=_json_default) + "\n")
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


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
