"""Releases a receiving site can verify: a signed bundle of synthetic data and its evidence.

A release bundle (a folder or a zip archive) holds the synthetic data, the SAFE report (HTML +
JSON), the column metadata, and ``release.json``: the generator with its parameters and
fedsynth version, the privacy ledger (or "no DP") and the federation summary. Its manifest
lists the SHA-256 of every file, and an Ed25519 signature by the releasing institution's key
covers the manifest. Modules:

* :mod:`~fedsynth.release.signing`: key pairs, signing and checking a statement;
* :mod:`~fedsynth.release.bundle`: writing a bundle (members, manifest, signature);
* :mod:`~fedsynth.release.sources`: the members of a fedsynth output folder (never real rows);
* :mod:`~fedsynth.release.verify`: checking a bundle, naming every file that fails.

Examples
--------
>>> from fedsynth import release
>>> private, public = release.generate_key_pair("release-key")  # doctest: +SKIP
>>> bundle = release.create_release("fedsynth-demo", "release.zip",
...                                 key=release.load_private_key(private),
...                                 signer="Hospital A")  # doctest: +SKIP
>>> release.verify_bundle("release.zip", release.load_public_key(public))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedsynth.release.bundle import Bundle, write_bundle
from fedsynth.release.signing import (
    ReleaseError,
    VerificationError,
    fingerprint,
    generate_key_pair,
    load_private_key,
    load_public_key,
)
from fedsynth.release.sources import collect
from fedsynth.release.verify import Verification, verify_bundle

__all__ = [
    "Bundle",
    "ReleaseError",
    "Verification",
    "VerificationError",
    "create_release",
    "fingerprint",
    "generate_key_pair",
    "load_private_key",
    "load_public_key",
    "verify_bundle",
    "write_bundle",
]


def create_release(
    folder: str | os.PathLike,
    out: str | os.PathLike,
    *,
    key: Ed25519PrivateKey,
    signer: str,
    metadata: Mapping[str, Any] | None = None,
    federation: Mapping[str, Any] | None = None,
    approval: Mapping[str, Any] | None = None,
) -> Bundle:
    """Collect the release of an output folder and write it, signed, to ``out``.

    Parameters
    ----------
    folder : path
        A fedsynth output folder (see :func:`~fedsynth.release.sources.collect`).
    out : path
        The bundle: a ``.zip`` archive, or a new folder.
    key : Ed25519PrivateKey
        The releasing institution's private key.
    signer : str
        Who signs, as receiving sites will read it.
    metadata, federation : mapping, optional
        Passed to :func:`~fedsynth.release.sources.collect` for folders that lack them.
    approval : mapping, optional
        A data steward's approval, signed with the manifest.

    Returns
    -------
    Bundle
    """
    members = collect(folder, metadata=metadata, federation=federation)
    return write_bundle(members, out, key=key, signer=signer, approval=approval)
