"""Model files (``model.json`` + ``arrays.npz``, never pickle), as a folder or as bytes, and
atomic writes."""

from __future__ import annotations

import hashlib
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
    """Write ``model.json`` and ``arrays.npz`` (no pickle) into ``directory``.

    Raises
    ------
    ModelFileError
        When ``directory`` is an existing file.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ModelFileError(
            [
                Problem(
                    None,
                    f"{str(directory)!r} is a file; a model is saved as a folder (model.json + "
                    "arrays.npz): give a folder path",
                )
            ]
        )
    directory.mkdir(parents=True, exist_ok=True)
    config = with_checksums(config, arrays)
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
    where = repr(str(directory))
    try:
        config = json.loads(config_path.read_text())
    except (ValueError, OSError) as exc:  # ValueError: not JSON, or not UTF-8
        raise _unreadable(where, _CONFIG_FILE, exc) from exc
    try:
        arrays = _read_npz(arrays_path)
    except _NPZ_ERRORS as exc:
        raise _unreadable(where, _ARRAYS_FILE, exc) from exc
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
    config = with_checksums(config, arrays)
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
    where = "the model bytes"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            files = {name: zf.read(name) for name in (_CONFIG_FILE, _ARRAYS_FILE)}
    except (*_NPZ_ERRORS, TypeError) as exc:
        # KeyError: a member is missing (its message names it); TypeError: not bytes at all.
        raise ModelFileError([Problem(None, f"not a readable saved model: {exc}")]) from exc
    try:
        config = json.loads(files[_CONFIG_FILE])
    except ValueError as exc:
        raise _unreadable(where, _CONFIG_FILE, exc) from exc
    try:
        arrays = _read_npz(io.BytesIO(files[_ARRAYS_FILE]))
    except _NPZ_ERRORS as exc:
        raise _unreadable(where, _ARRAYS_FILE, exc) from exc
    return config, arrays


def check_config(config: Any, source: str) -> None:
    """Check that ``model.json``'s content has the entries every saved model has, typed right.

    Raises
    ------
    ModelFileError
        Naming ``model.json`` and every entry missing or of the wrong type.
    """
    where = f"{source}: {_CONFIG_FILE}"
    if not isinstance(config, dict):
        problem = f"{where} holds a {type(config).__name__}, not an object"
        raise ModelFileError([Problem(None, problem)])
    if config.get("format") != "fedsynth-model":
        raise ModelFileError([Problem(None, f"{where} does not hold a fedsynth model")])
    problems = []
    for key, kind in _CONFIG_ENTRIES.items():
        if key not in config:
            problems.append(f"{where}: entry {key!r} is missing")
        elif not isinstance(config[key], kind) or isinstance(config[key], bool):
            problems.append(
                f"{where}: entry {key!r} is a {type(config[key]).__name__}, not a {kind.__name__}"
            )
    if problems:
        raise ModelFileError(problems)


def array_checksum(array: np.ndarray) -> str:
    """SHA-256 (hex) of an array's dtype, shape and bytes: equal only for identical arrays."""
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}|{array.shape}|".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def with_checksums(config: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """``config`` with ``array_checksums``: the :func:`array_checksum` of each array, by name."""
    checksums = {name: array_checksum(np.asarray(arrays[name])) for name in sorted(arrays)}
    return {**config, CHECKSUMS_KEY: checksums}


def verify_checksums(config: dict[str, Any], arrays: dict[str, np.ndarray], source: str) -> None:
    """Check the arrays against ``config["array_checksums"]`` (files without it: fedsynth 0.1.0).

    Raises
    ------
    ModelFileError
        Naming ``arrays.npz`` and every array missing, unexpected or changed.
    """
    if CHECKSUMS_KEY not in config:
        return
    recorded = config[CHECKSUMS_KEY]
    where = f"{source}: {_ARRAYS_FILE}"
    if not isinstance(recorded, dict):
        problem = f"{source}: {_CONFIG_FILE}: {CHECKSUMS_KEY!r} is not an object"
        raise ModelFileError([Problem(None, problem)])
    problems = [
        f"{where}: array {name!r} is missing" for name in sorted(set(recorded) - set(arrays))
    ]
    problems += [
        f"{where}: array {name!r} is not recorded in {_CONFIG_FILE}"
        for name in sorted(set(arrays) - set(recorded))
    ]
    problems += [
        f"{where}: array {name!r} is damaged (its checksum does not match {_CONFIG_FILE})"
        for name in sorted(set(arrays) & set(recorded))
        if array_checksum(arrays[name]) != recorded[name]
    ]
    if problems:
        raise ModelFileError(problems)


_CONFIG_FILE = "model.json"
_ARRAYS_FILE = "arrays.npz"
#: Key of ``model.json`` that holds the SHA-256 of every array (absent in fedsynth 0.1.0 files).
CHECKSUMS_KEY = "array_checksums"
# The entries of model.json that every saved model has, and their JSON types.
_CONFIG_ENTRIES = {
    "format_version": int,
    "fedsynth_version": str,
    "generator": str,
    "params": dict,
    "fitted_at": str,
    "state": dict,
}
# What reading a truncated, garbled or non-ZIP file raises (zip members are read lazily, so a
# bad CRC shows up as BadZipFile, a cut file as EOFError).
_NPZ_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError)


def _read_npz(source: Any) -> dict[str, np.ndarray]:
    with np.load(source, allow_pickle=False) as npz:
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        return {key: npz[key] for key in npz.files}


def _unreadable(where: str, name: str, exc: BaseException) -> ModelFileError:
    reason = str(exc) or type(exc).__name__
    return ModelFileError([Problem(None, f"{where}: {name} is damaged or truncated: {reason}")])


def _config_text(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
