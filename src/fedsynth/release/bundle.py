"""Writing a release bundle: its members, the manifest of their SHA-256, and the signature.

A bundle is a folder, or a zip archive of the same files (flat or in sub-folders)::

    synthetic.csv ...     the members: synthetic data, report, metadata, provenance
    manifest.json         every member's SHA-256 and size
    signature.json        the signed statement naming the manifest's SHA-256 (see signing)

Member names are relative POSIX paths of plain characters, checked on writing and again on
verifying, so that no name can point outside the bundle when it is unpacked.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedsynth.release.signing import ReleaseError, sign_statement

MANIFEST = "manifest.json"
SIGNATURE = "signature.json"
#: The two files that describe the others; neither is listed in the manifest.
CONTROL = frozenset({MANIFEST, SIGNATURE})
MANIFEST_FORMAT = "fedsynth-release-manifest"
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_CHUNK = 1024 * 1024


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a member's name (``None`` when it can).

    Only relative POSIX paths whose parts are letters, digits, ``.``, ``_`` and ``-`` (not
    starting with a dot) pass: no absolute path, drive, backslash, ``..`` or hidden file.

    Examples
    --------
    >>> name_problem("report.json") is None
    True
    >>> name_problem("../etc/passwd")
    "unsafe path '../etc/passwd' (a part is empty, hidden, '..' or has other characters)"
    """
    parts = name.split("/")
    if len(parts) > 8 or not all(_SEGMENT.match(part) for part in parts):
        return f"unsafe path {name!r} (a part is empty, hidden, '..' or has other characters)"
    return None


def sha256_of(stream: BinaryIO) -> tuple[str, int]:
    """The SHA-256 (hexadecimal) and size of what ``stream`` holds, read in chunks."""
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: stream.read(_CHUNK), b""):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def now() -> str:
    """The current UTC time as ISO 8601 text (seconds)."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Bundle:
    """A written bundle.

    Attributes
    ----------
    path : Path
        The folder or zip archive.
    manifest_sha256 : str
        SHA-256 of ``manifest.json``: the value the signature (and an approval) names.
    files : dict of str to dict
        Each member's ``sha256`` and ``bytes``, as in the manifest.
    statement : dict
        What was signed.
    """

    path: Path
    manifest_sha256: str
    files: dict[str, dict[str, Any]]
    statement: dict[str, Any]


def write_bundle(
    members: Mapping[str, Path | bytes],
    out: str | os.PathLike,
    *,
    key: Ed25519PrivateKey,
    signer: str,
    approval: Mapping[str, Any] | None = None,
) -> Bundle:
    """Write ``members``, their manifest and its signature to a folder, or a ``.zip`` archive.

    Parameters
    ----------
    members : mapping of str to Path or bytes
        Name in the bundle -> the file to copy, or its content.
    out : path
        A ``.zip`` file, or a folder; it must not exist yet (or be an empty folder).
    key : Ed25519PrivateKey
        The releasing institution's key.
    signer : str
        Who signs, as receiving sites will read it (an institution, a person).
    approval : mapping, optional
        A data steward's approval (name, time, comment...), signed with the rest.

    Returns
    -------
    Bundle

    Examples
    --------
    >>> from fedsynth.release import load_private_key
    >>> write_bundle({"synthetic.csv": Path("synthetic.csv")}, "release.zip",
    ...              key=load_private_key("release-key"), signer="Hospital A")  # doctest: +SKIP
    """
    out = Path(out)
    problems = [f"{name}: {why}" for name in members if (why := name_problem(name))]
    problems += [f"{name}: reserved for the bundle's own files" for name in CONTROL & set(members)]
    if not members:
        problems.append("a bundle needs at least one member")
    if not signer.strip():
        problems.append("the signer's name is empty")
    if problems:
        raise ReleaseError("cannot write the bundle:\n  - " + "\n  - ".join(problems))
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise ReleaseError(f"{str(out)!r} already exists; choose a new path for the bundle")
    files = {}
    for name in sorted(members):
        with _open(members[name]) as stream:
            digest, size = sha256_of(stream)
        files[name] = {"sha256": digest, "bytes": size}
    from fedsynth import __version__

    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": 1,
        "fedsynth_version": __version__,
        "created": now(),
        "files": files,
    }
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    statement: dict[str, Any] = {
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "signer": signer.strip(),
        "signed_at": now(),
    }
    if approval is not None:
        statement["approval"] = dict(approval)
    signature = (json.dumps(sign_statement(statement, key), indent=2) + "\n").encode()
    control = {MANIFEST: manifest_bytes, SIGNATURE: signature}
    if out.suffix.lower() == ".zip":
        _write_zip(members, control, out)
    else:
        _write_folder(members, control, out)
    return Bundle(out, statement["manifest_sha256"], files, statement)


def _open(source: Path | bytes) -> BinaryIO:
    return io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")


def _write_zip(members: Mapping[str, Path | bytes], control: Mapping[str, bytes], out: Path):
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, source in _ordered(members, control):
                if isinstance(source, bytes):
                    archive.writestr(name, source)
                else:
                    archive.write(source, name)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_folder(members: Mapping[str, Path | bytes], control: Mapping[str, bytes], out: Path):
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, source in _ordered(members, control):
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(source, bytes):
                target.write_bytes(source)
            else:
                shutil.copyfile(source, target)
        if out.exists():
            out.rmdir()  # the empty folder the caller named
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _ordered(
    members: Mapping[str, Path | bytes], control: Mapping[str, bytes]
) -> Iterable[tuple[str, Path | bytes]]:
    # The manifest and the signature first: a reader of the archive sees them at the top.
    yield from control.items()
    yield from sorted(members.items())
