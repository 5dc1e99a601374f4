"""Ed25519 keys of a releasing institution, and signed statements about a bundle's manifest.

A key pair is two PEM files: the private key (PKCS #8, readable by its owner only) and the
public key (SubjectPublicKeyInfo, ``<private>.pub``) that receiving sites are given. What is
signed is a *statement*: a small JSON object that names the SHA-256 of the manifest, the
signer, the time and, for a release approved in the web app, the approval. It is signed in a
canonical form (sorted keys, no spaces, UTF-8), so that the same statement always gives the
same bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fedsynth.exceptions import FedsynthError

ALGORITHM = "Ed25519"
SIGNATURE_FORMAT = "fedsynth-release-signature"


class ReleaseError(FedsynthError):
    """A release bundle or key that cannot be made or read (the message names the file)."""


class VerificationError(ReleaseError):
    """A bundle that does not verify; the message names every file that fails and why."""


def generate_key_pair(private_path: str | os.PathLike) -> tuple[Path, Path]:
    """Make an Ed25519 key pair: ``private_path`` (owner-only) and ``private_path.pub``.

    Parameters
    ----------
    private_path : path
        Where the private key goes. Neither file may exist already: a key is never overwritten.

    Returns
    -------
    (Path, Path)
        The private and the public key files.

    Examples
    --------
    >>> private, public = generate_key_pair("release-key")  # doctest: +SKIP
    >>> public.name  # doctest: +SKIP
    'release-key.pub'
    """
    private_path = Path(private_path)
    public_path = private_path.with_name(private_path.name + ".pub")
    existing = [str(p) for p in (private_path, public_path) if p.exists()]
    if existing:
        raise ReleaseError(f"not overwriting the existing key file(s) {', '.join(existing)}")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Created with owner-only permissions: never readable by others, not even for an instant.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_pem(key.public_key()))
    return private_path, public_path


def public_pem(key: Ed25519PublicKey) -> bytes:
    """The public key as PEM (what receiving sites are given)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file.

    Raises
    ------
    ReleaseError
        When the file is missing, readable by others than its owner, or not an Ed25519 key.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise ReleaseError(f"cannot read the private key {str(path)!r}: {exc.strerror}") from exc
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ReleaseError(
            f"the private key {str(path)!r} is readable by others (mode "
            f"{stat.S_IMODE(mode):o}); run `chmod 600 {path}` first"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ReleaseError(f"{str(path)!r} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseError(f"{str(path)!r} is not an Ed25519 key ({type(key).__name__})")
    return key


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    """The Ed25519 public key in a PEM file.

    Raises
    ------
    ReleaseError
        When the file is missing or not an Ed25519 public key.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReleaseError(f"cannot read the public key {str(path)!r}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ReleaseError(
            f"{str(path)!r} is not a PEM public key (give the .pub file, not the private key)"
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ReleaseError(f"{str(path)!r} is not an Ed25519 key ({type(key).__name__})")
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    """``SHA256:`` and the hexadecimal SHA-256 of the raw public key, to compare by eye.

    Examples
    --------
    >>> fingerprint(Ed25519PrivateKey.generate().public_key())[:7]
    'SHA256:'
    """
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + hashlib.sha256(raw).hexdigest()


def canonical(value: Any) -> bytes:
    """The canonical JSON bytes of ``value`` (sorted keys, no spaces, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_statement(statement: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signature document of ``statement``: the statement, the key's fingerprint and the
    base64 Ed25519 signature of its canonical bytes."""
    return {
        "format": SIGNATURE_FORMAT,
        "format_version": 1,
        "algorithm": ALGORITHM,
        "key_fingerprint": fingerprint(key.public_key()),
        "statement": statement,
        "signature": base64.b64encode(key.sign(canonical(statement))).decode("ascii"),
    }


def check_signature(document: Any, key: Ed25519PublicKey, *, name: str) -> dict[str, Any]:
    """The statement of a signature document, after checking its signature with ``key``.

    Parameters
    ----------
    document : dict
        What :func:`sign_statement` returned (read back from JSON).
    key : Ed25519PublicKey
        The signer's public key, as the receiving site obtained it.
    name : str
        The file the document came from, named in errors.

    Raises
    ------
    VerificationError
        When the document is malformed, or was not signed by ``key``, or was changed since.
    """
    if (
        not isinstance(document, dict)
        or document.get("format") != SIGNATURE_FORMAT
        or document.get("algorithm") != ALGORITHM
        or not isinstance(document.get("statement"), dict)
        or not isinstance(document.get("signature"), str)
    ):
        raise VerificationError(f"{name}: not a fedsynth {ALGORITHM} signature document")
    try:
        signature = base64.b64decode(document["signature"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError(f"{name}: the signature is not valid base64") from exc
    try:
        key.verify(signature, canonical(document["statement"]))
    except InvalidSignature as exc:
        expected = fingerprint(key)
        claimed = document.get("key_fingerprint")
        why = (
            f"it was signed by another key ({claimed}, not {expected})"
            if claimed != expected
            else "the signed statement or the signature was changed"
        )
        raise VerificationError(f"{name}: the signature does not verify: {why}") from exc
    return document["statement"]
