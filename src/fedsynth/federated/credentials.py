"""Credentials of a local federation: a throw-away certificate authority and server
certificate for TLS on loopback, and the SuperNodes' authentication keys."""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TLSFiles:
    """A CA certificate and the SuperLink's certificate and key signed by it (PEM files)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def generate(cls, directory: str | os.PathLike, *, days: int = 2) -> TLSFiles:
        """Make a throw-away CA and a server certificate for 127.0.0.1, ::1 and localhost."""
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        now = _dt.datetime.now(_dt.UTC)

        def certificate(subject, issuer, key, signing_key, *, ca: bool, san=None):
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(issuer)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - _dt.timedelta(minutes=5))
                .not_valid_after(now + _dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            )
            if san is not None:
                builder = builder.add_extension(san, critical=False)
            return builder.sign(signing_key, hashes.SHA256())

        ca_key = ec.generate_private_key(ec.SECP384R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedsynth test CA")])
        ca = certificate(ca_name, ca_name, ca_key, ca_key, ca=True)
        server_key = ec.generate_private_key(ec.SECP384R1())
        san = x509.SubjectAlternativeName(
            [
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
                x509.DNSName("localhost"),
            ]
        )
        server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        server = certificate(server_name, ca_name, server_key, ca_key, ca=False, san=san)
        files = cls(directory / "ca.crt", directory / "server.pem", directory / "server.key")
        files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        files.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        files.server_key.write_bytes(
            server_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        files.server_key.chmod(0o600)
        return files


def generate_node_key(path: str | os.PathLike) -> bytes:
    """Write a SuperNode's ECDSA (P-384) private key in OpenSSH format to ``path``; return its
    public key as PEM (what the SuperLink registers)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    path = Path(path)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
