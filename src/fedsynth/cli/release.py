"""``fedsynth release``: make a key pair, create a signed release bundle, verify one.

Registered on the app by :mod:`fedsynth.cli.app` (``app.add_typer(release_app, ...)``).
"""

from __future__ import annotations

import getpass
import json
import re
import socket
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fedsynth.cli.progress import console

release_app = typer.Typer(
    help="Signed release bundles that a receiving site can verify.", no_args_is_help=True
)
_RUN_ID = re.compile(r"^[0-9a-f]{16}$")


def _default_signer() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


@release_app.command("keygen")
def keygen(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Private key file; the public key gets '.pub'.")
    ] = Path("release-key"),
) -> None:
    """Make an Ed25519 key pair: the private key (readable by its owner only) signs releases,
    the public key (.pub) is what receiving sites verify them with."""
    from fedsynth.release import fingerprint, generate_key_pair, load_public_key

    private, public = generate_key_pair(out)
    console.print(
        f"private key: [bold]{private}[/] (keep it; readable by you only)", soft_wrap=True
    )
    console.print(f"public key:  [bold]{public}[/] (give it to receiving sites)", soft_wrap=True)
    console.print(f"fingerprint: {fingerprint(load_public_key(public))}", soft_wrap=True)


@release_app.command("create")
def create(
    source: Annotated[
        str,
        typer.Argument(
            help="An output folder (demo, fit + sample + evaluate), or a web app run id.",
            metavar="RUN_OR_FOLDER",
        ),
    ],
    key: Annotated[Path, typer.Option("--key", "-k", help="The private key that signs.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The bundle: a .zip, or a folder.")],
    signer: Annotated[
        str | None,
        typer.Option(help="Who signs, as receiving sites read it [default: user@host]."),
    ] = None,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="The web app's data directory (for a run id).")
    ] = Path("fedsynth-data"),
    override: Annotated[
        str | None,
        typer.Option(
            help="Release although a privacy check failed: the reason, signed with the bundle."
        ),
    ] = None,
) -> None:
    """Bundle the synthetic data, the SAFE report, the metadata, the privacy ledger, the
    generator and the federation summary (never real rows or the model) with a manifest of
    their SHA-256, signed with KEY."""
    from fedsynth.release import create_release, load_private_key

    private = load_private_key(key)
    folder, metadata, federation, approval = _source(source, data_dir)
    if approval is None:
        approval = _privacy_override(folder, override)
    bundle = create_release(
        folder,
        out,
        key=private,
        signer=signer or _default_signer(),
        metadata=metadata,
        federation=federation,
        approval=approval,
    )
    console.print(f"release bundle: [bold]{bundle.path}[/]", soft_wrap=True)
    console.print(f"{len(bundle.files)} files; manifest SHA-256 {bundle.manifest_sha256}")
    console.print(f"signed by {bundle.statement['signer']} at {bundle.statement['signed_at']}")


def _source(
    source: str, data_dir: Path
) -> tuple[Path, dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
    """The folder of ``source`` and, for a web app run, its metadata, federation summary and
    privacy override (a run whose synthetic data the privacy gate holds back is refused)."""
    if Path(source).is_dir() or not _RUN_ID.match(source):
        return Path(source), None, None, None
    from fedsynth.release import ReleaseError
    from fedsynth.web.db import Database
    from fedsynth.web.release import federation_of, released
    from fedsynth.web.storage import Storage

    if not (data_dir / "fedsynth.sqlite3").is_file():
        raise ReleaseError(f"{source!r} is no folder, and {str(data_dir)!r} has no web app data")
    record = Database(Storage(data_dir).database).get_run(source)
    if record is None or record.status != "done":
        state = "no such run" if record is None else record.status
        raise ReleaseError(f"run {source} cannot be released ({state})")
    if not released(record.privacy, record.override):
        raise ReleaseError(
            f"run {source} did not pass SAFE's privacy check ({record.privacy}); a steward must "
            "record an override in the web app first"
        )
    override = None
    if record.override is not None:
        override = {"override": record.override["reason"], "override_by": record.override["actor"]}
    folder = Storage(data_dir).run_dir(source)
    return folder, record.config["metadata"], federation_of(record.config), override


def _privacy_override(folder: Path, reason: str | None) -> dict[str, Any] | None:
    """``None`` when the folder's report passes its privacy checks; the override to sign when
    they fail and a reason is given; else a :class:`ReleaseError`."""
    from fedsynth.release import ReleaseError
    from fedsynth.web.release import failed_checks

    report = folder / "report.json"
    failed = (
        failed_checks(json.loads(report.read_text()).get("flags", [])) if report.is_file() else []
    )
    if not failed:
        return None
    if reason is None or len(reason.strip()) < 10:
        raise ReleaseError(
            f"the privacy check(s) {', '.join(failed)} failed in {report}; read the report, and "
            "give --override with a reason (at least 10 characters) to release anyway"
        )
    return {"override": reason.strip(), "failed_checks": failed}


@release_app.command("verify")
def verify(
    bundle: Annotated[Path, typer.Argument(help="The bundle: a .zip, or a folder.")],
    public_key: Annotated[
        Path, typer.Option("--public-key", "-k", help="The releasing institution's public key.")
    ],
) -> None:
    """Check every file's SHA-256 against the manifest and the manifest's signature; print who
    signed what and when. Any changed, added or missing file fails, named."""
    from fedsynth.release import load_public_key, verify_bundle

    verified = verify_bundle(bundle, load_public_key(public_key))
    console.print(
        f"[bold green]verified[/]: {bundle} signed by [bold]{verified.signer}[/] at "
        f"{verified.signed_at}",
        soft_wrap=True,
    )
    console.print(f"key {verified.key_fingerprint}", soft_wrap=True)
    console.print(f"manifest SHA-256 {verified.manifest_sha256}", soft_wrap=True)
    if verified.approval:
        shown = ", ".join(f"{k}: {v}" for k, v in verified.approval.items())
        console.print(f"approval: {shown}", soft_wrap=True, markup=False)
    files = Table(title=f"{len(verified.files)} files, each as signed")
    files.add_column("file")
    files.add_column("bytes", justify="right")
    for name, size in sorted(verified.files.items()):
        files.add_row(name, f"{size:,}")
    console.print(files)
    provenance = verified.provenance or {}
    generator = provenance.get("generator") or {}
    if generator:
        console.print(
            f"generator: {generator.get('name')} (fedsynth {generator.get('fedsynth_version')})",
            markup=False,
        )
    privacy = provenance.get("privacy") or {}
    if privacy:
        parameters = privacy.get("parameters") or {}
        console.print(
            "privacy: "
            + (
                f"differential privacy {parameters}"
                if privacy.get("differential_privacy")
                else "no DP"
            ),
            markup=False,
        )
    federation = provenance.get("federation")
    if federation:
        console.print(
            f"federation: {len(federation['sites'])} sites, strategies {federation['strategies']}, "
            f"rounds {federation['rounds']}",
            markup=False,
        )
