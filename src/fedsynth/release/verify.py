"""Verifying a release bundle: the signature, the manifest and every member's SHA-256.

A zip archive is read where it lies, never unpacked: member names are checked (no absolute
path, ``..``, backslash or link), so a bundle that verifies also unpacks safely. Every problem
is collected and reported in one error that names each file: a member changed, added or
missing, the manifest changed, the signature made with another key.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedsynth.release.bundle import CONTROL, MANIFEST, MANIFEST_FORMAT, SIGNATURE, name_problem
from fedsynth.release.bundle import sha256_of as _sha256_of
from fedsynth.release.signing import (
    ReleaseError,
    VerificationError,
    check_signature,
    fingerprint,
)

PROVENANCE = "release.json"
#: The largest manifest or signature file read (they are a few kilobytes).
_MAX_CONTROL_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Verification:
    """A bundle that verified: who signed what, and when.

    Attributes
    ----------
    signer : str
        The name the signer gave.
    signed_at : str
        When it was signed (UTC, ISO 8601).
    key_fingerprint : str
        Fingerprint of the public key that verified the signature.
    manifest_sha256 : str
        SHA-256 of the manifest.
    files : dict of str to int
        Every member (the manifest and the signature aside) and its size in bytes.
    approval : dict or None
        The data steward's approval, for a release approved in the web app.
    provenance : dict or None
        The member ``release.json`` (generator, privacy, federation), when present.
    """

    signer: str
    signed_at: str
    key_fingerprint: str
    manifest_sha256: str
    files: dict[str, int]
    approval: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = field(default=None, repr=False)


def verify_bundle(path: str | os.PathLike, public_key: Ed25519PublicKey) -> Verification:
    """Check a bundle (folder or zip archive) against the signer's public key.

    Parameters
    ----------
    path : path
        The bundle.
    public_key : Ed25519PublicKey
        The releasing institution's public key, as the receiving site obtained it.

    Returns
    -------
    Verification

    Raises
    ------
    VerificationError
        Naming every file that fails: changed, added, missing, unsafe name, bad signature.

    Examples
    --------
    >>> from fedsynth.release import load_public_key
    >>> verify_bundle("release.zip", load_public_key("release-key.pub")).signer  # doctest: +SKIP
    'Hospital A'
    """
    path = Path(path)
    with _members(path) as (names, open_member):
        problems: list[str] = []
        control = {}
        for name in (SIGNATURE, MANIFEST):
            if name not in names:
                problems.append(f"{name}: missing from the bundle")
                continue
            with open_member(name) as stream:
                control[name] = stream.read(_MAX_CONTROL_BYTES + 1)
            if len(control[name]) > _MAX_CONTROL_BYTES:
                problems.append(f"{name}: larger than a bundle's {name} can be")
        if problems:
            raise VerificationError(_message(path, problems))
        statement = _statement(control[SIGNATURE], public_key, problems)
        manifest_sha256 = hashlib.sha256(control[MANIFEST]).hexdigest()
        if statement is not None and statement.get("manifest_sha256") != manifest_sha256:
            problems.append(f"{MANIFEST}: changed after signing (not the SHA-256 that was signed)")
        listed = _listed(control[MANIFEST], problems)
        for name in sorted(listed):
            if name not in names:
                problems.append(f"{name}: listed in the manifest but missing from the bundle")
                continue
            with open_member(name) as stream:
                digest, _ = _sha256_of(stream)
            if digest != listed[name]:
                problems.append(
                    f"{name}: changed after signing (SHA-256 {digest[:16]}... is not "
                    f"the manifest's {listed[name][:16]}...)"
                )
        for name in sorted(names - set(listed) - CONTROL):
            problems.append(f"{name}: not in the manifest (added after signing)")
        if problems or statement is None:
            raise VerificationError(_message(path, problems))
        provenance = None
        if PROVENANCE in listed:
            with open_member(PROVENANCE) as stream:
                provenance = json.loads(stream.read())
        sizes = {}
        manifest = json.loads(control[MANIFEST])
        for name, entry in manifest["files"].items():
            sizes[name] = int(entry.get("bytes", 0))
    return Verification(
        signer=str(statement.get("signer", "")),
        signed_at=str(statement.get("signed_at", "")),
        key_fingerprint=fingerprint(public_key),
        manifest_sha256=manifest_sha256,
        files=sizes,
        approval=statement.get("approval"),
        provenance=provenance,
    )


def _message(path: Path, problems: list[str]) -> str:
    return f"the bundle {str(path)!r} does not verify:\n  - " + "\n  - ".join(problems)


def _statement(
    data: bytes, public_key: Ed25519PublicKey, problems: list[str]
) -> dict[str, Any] | None:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        problems.append(f"{SIGNATURE}: not valid JSON (changed after signing)")
        return None
    try:
        return check_signature(document, public_key, name=SIGNATURE)
    except VerificationError as exc:
        problems.append(str(exc))
        return None


def _listed(data: bytes, problems: list[str]) -> dict[str, str]:
    """Name -> SHA-256 of the members the manifest lists (empty, with a problem, if unreadable)."""
    try:
        manifest = json.loads(data)
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError("not a manifest")
        listed = {str(k): str(v["sha256"]) for k, v in manifest["files"].items()}
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        problems.append(f"{MANIFEST}: not a fedsynth release manifest (changed after signing?)")
        return {}
    for name in listed:
        if (why := name_problem(name)) or name in CONTROL:
            problems.append(f"{MANIFEST}: lists {why or f'the reserved name {name!r}'}")
    return {k: v for k, v in listed.items() if not name_problem(k) and k not in CONTROL}


Opener = Callable[[str], Any]


@contextmanager
def _members(path: Path) -> Iterator[tuple[set[str], Opener]]:
    """The member names of a bundle and a function that opens one for reading."""
    if path.is_dir():
        yield _folder_members(path), _file_opener(path)
    elif path.is_file():
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise VerificationError(f"{str(path)!r} is neither a folder nor a zip archive") from exc
        with archive:
            names = _zip_members(path, archive)
            yield names, lambda name: archive.open(name)
    else:
        raise ReleaseError(f"no bundle at {str(path)!r}")


def _file_opener(root: Path) -> Opener:
    def opener(name: str) -> Any:
        return (root / name).open("rb")

    return opener


def _folder_members(root: Path) -> set[str]:
    names, problems = set(), []
    for current, folders, files in os.walk(root, followlinks=False):
        for entry in [*folders, *files]:
            full = Path(current) / entry
            name = full.relative_to(root).as_posix()
            mode = full.lstat().st_mode
            if stat.S_ISLNK(mode):
                problems.append(f"{name}: a symbolic link (a bundle holds plain files only)")
            elif (why := name_problem(name)) is not None:
                problems.append(f"{name}: {why}")
            elif stat.S_ISREG(mode):
                names.add(name)
            elif not stat.S_ISDIR(mode):
                problems.append(f"{name}: not a plain file")
        folders[:] = [f for f in folders if not (Path(current) / f).is_symlink()]
    if problems:
        raise VerificationError(_message(root, problems))
    return names


def _zip_members(path: Path, archive: zipfile.ZipFile) -> set[str]:
    names, problems = set(), []
    for info in archive.infolist():
        name = info.filename
        if info.is_dir():
            if why := name_problem(name.rstrip("/")):
                problems.append(f"{name}: {why}")
            continue
        mode = info.external_attr >> 16
        if (why := name_problem(name)) is not None:
            problems.append(f"{name}: {why}")
        elif stat.S_ISLNK(mode):
            problems.append(f"{name}: a symbolic link (a bundle holds plain files only)")
        elif info.flag_bits & 0x1:
            problems.append(f"{name}: encrypted")
        elif name in names:
            problems.append(f"{name}: stored twice in the archive")
        else:
            names.add(name)
    if problems:
        raise VerificationError(_message(path, problems))
    return names
