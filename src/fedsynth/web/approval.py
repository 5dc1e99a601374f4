"""A data steward's approval of a run's release, and the signed bundle it produces.

Approving a finished run (whose synthetic data passed the privacy gate, or was released by a
steward's override) builds its release bundle (see :mod:`fedsynth.release`: synthetic data,
SAFE report, metadata, privacy ledger, generator, federation summary, manifest) and signs it
with the server's Ed25519 key, the approval (steward, time, comment) inside the signed
statement. An image run's bundle holds its synthetic images, the report without real images
and ``release.json`` (see :func:`~fedsynth.web.image_pipeline.image_release_members`).
The audit log records the approval with the manifest's SHA-256. Only an approved run's bundle
can be downloaded as a release; receiving sites verify it with the server's public key
(``GET /api/release-key``) and ``fedsynth release verify``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedsynth.web.db import now
from fedsynth.web.errors import ConflictError, InvalidRequestError, NotFoundError
from fedsynth.web.release import federation_of, released
from fedsynth.web.security import Principal, require_steward
from fedsynth.web.services import Services
from fedsynth.web.storage import check_id

MIN_COMMENT = 10


@dataclass(frozen=True)
class Approval:
    """A run's approved release: who approved it, when, why, and the manifest's SHA-256."""

    run_id: str
    manifest_sha256: str
    approved_by: str
    approved_at: str
    comment: str


class Releases:
    """Approvals and release bundles of the runs.

    Parameters
    ----------
    services : Services
        The app's operations (database, storage, audit log).
    """

    def __init__(self, services: Services):
        self.services = services
        self.folder = services.storage.root / "releases"
        self.key_path = services.storage.root / "release-key"

    # ------------------------------------------------------------------ the server's key
    def _private_key(self):
        from fedsynth.release import ReleaseError, generate_key_pair, load_private_key

        if not self.key_path.exists():
            try:
                generate_key_pair(self.key_path)
            except ReleaseError:  # another process made it meanwhile
                if not self.key_path.exists():
                    raise
        return load_private_key(self.key_path)

    def public_key_pem(self) -> bytes:
        """The server's public key (PEM), which receiving sites verify releases with."""
        from fedsynth.release.signing import public_pem

        return public_pem(self._private_key().public_key())

    def fingerprint(self) -> str:
        """Fingerprint of the server's public key."""
        from fedsynth.release import fingerprint

        return fingerprint(self._private_key().public_key())

    # ------------------------------------------------------------------ approvals
    def approval(self, run_id: str) -> Approval | None:
        """The approval of a run, or ``None``."""
        with self.services.db.connect() as con:
            row = con.execute("SELECT * FROM releases WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else Approval(**dict(row))

    def approve(self, who: Principal, run_id: str, comment: str) -> Approval:
        """Approve a run's release as a steward: build, sign and record its bundle.

        Raises
        ------
        AuthError
            For a user without the steward role (403).
        ConflictError
            When the run is not done, is held back by the privacy gate, or was approved.
        InvalidRequestError
            For a comment shorter than ``MIN_COMMENT`` characters.
        """
        from fedsynth.release import create_release

        require_steward(who, "approve a release")
        record = self.services.run(run_id)
        comment = comment.strip()
        if len(comment) < MIN_COMMENT:
            raise InvalidRequestError(
                f"write a comment of at least {MIN_COMMENT} characters; the audit log keeps it"
            )
        if record.status != "done":
            raise ConflictError(f"run {run_id} is {record.status}; only finished runs are released")
        if not released(record.privacy, record.override):
            raise ConflictError(
                f"run {run_id} did not pass SAFE's privacy check ({record.privacy}); a steward "
                "must record an override with a reason before approving its release"
            )
        if self.approval(run_id) is not None:
            raise ConflictError(f"the release of run {run_id} is approved already")
        approval: dict[str, Any] = {
            "name": who.user,
            "role": who.role,
            "time": now(),
            "comment": comment,
            "run": run_id,
            "privacy_verdict": record.privacy,
        }
        if record.override is not None:
            approval["privacy_override"] = record.override["reason"]
        signer = f"fedsynth web app on {socket.gethostname()}"
        if record.kind == "imaging":
            from fedsynth.release import write_bundle
            from fedsynth.web.image_pipeline import image_release_members

            members = image_release_members(self.services.storage.run_dir(run_id))
            bundle = write_bundle(
                members,
                self._bundle_path(run_id),
                key=self._private_key(),
                signer=signer,
                approval=approval,
            )
        else:
            bundle = create_release(
                self.services.storage.run_dir(run_id),
                self._bundle_path(run_id),
                key=self._private_key(),
                signer=signer,
                metadata=record.config["metadata"],
                federation=federation_of(record.config),
                approval=approval,
            )
        result = Approval(run_id, bundle.manifest_sha256, str(who.user), approval["time"], comment)
        with self.services.db.connect() as con:
            con.execute(
                "INSERT INTO releases (run_id, manifest_sha256, approved_by, approved_at, "
                "comment) VALUES (?, ?, ?, ?, ?)",
                (run_id, result.manifest_sha256, result.approved_by, result.approved_at, comment),
            )
        self.services.audit(
            who,
            "release approved",
            run_id,
            name=who.user,
            comment=comment,
            manifest_sha256=bundle.manifest_sha256,
            key_fingerprint=self.fingerprint(),
            files=sorted(bundle.files),
        )
        return result

    def download(self, who: Principal, run_id: str) -> Path:
        """The signed bundle of an approved run; audited.

        Raises
        ------
        NotFoundError
            When the run's release has not been approved (or its bundle is missing).
        """
        approval = self.approval(run_id)
        path = self._bundle_path(run_id)
        if approval is None or not path.is_file():
            self.services.audit(who, "release download refused", run_id)
            raise NotFoundError(
                f"run {run_id} has no approved release; a data steward approves it on the "
                "report page"
            )
        self.services.audit(
            who, "release download", run_id, manifest_sha256=approval.manifest_sha256
        )
        return path

    def _bundle_path(self, run_id: str) -> Path:
        return self.folder / f"fedsynth-release-{check_id(run_id)}.zip"
