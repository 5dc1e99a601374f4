"""Release bundles: what goes in, and that any change, addition or removal fails verification."""

from __future__ import annotations

import json
import os
import stat
import zipfile

import pytest

from fedsynth.release import (
    ReleaseError,
    VerificationError,
    create_release,
    generate_key_pair,
    load_private_key,
    load_public_key,
    verify_bundle,
    write_bundle,
)

from .conftest import output_folder

MEMBERS = ["metadata.json", "release.json", "report.html", "report.json", "synthetic.csv"]


@pytest.fixture(params=["zip", "folder"])
def bundle(request, folder, keys, tmp_path):
    """A signed bundle of ``folder``, as an archive and as a folder."""
    out = tmp_path / ("release.zip" if request.param == "zip" else "release")
    create_release(folder, out, key=load_private_key(keys[0]), signer="Hospital A")
    return out


def members_of(bundle) -> dict[str, bytes]:
    if bundle.is_dir():
        return {p.relative_to(bundle).as_posix(): p.read_bytes() for p in bundle.rglob("*")}
    with zipfile.ZipFile(bundle) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rewrite(bundle, changes: dict[str, bytes | None]) -> None:
    """Replace (bytes) or remove (None) members of a bundle, or add new ones."""
    contents = {**members_of(bundle), **changes}
    if bundle.is_dir():
        for name, data in changes.items():
            path = bundle / name
            if data is None:
                path.unlink()
            else:
                path.write_bytes(data)
        return
    with zipfile.ZipFile(bundle, "w") as archive:
        for name, data in contents.items():
            if data is not None:
                archive.writestr(name, data)


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_a_bundle_verifies_and_says_who_signed_what(bundle, keys):
    verified = verify_bundle(bundle, load_public_key(keys[1]))
    assert verified.signer == "Hospital A" and verified.signed_at
    assert sorted(verified.files) == MEMBERS
    assert sorted(members_of(bundle)) == sorted([*MEMBERS, "manifest.json", "signature.json"])
    provenance = verified.provenance
    assert provenance["generator"]["name"] == "gaussian_copula"
    # The model in the folder is a fixture saved by fedsynth 0.1.0.
    assert provenance["generator"]["fedsynth_version"] == "0.1.0"
    assert provenance["privacy"] == {
        "differential_privacy": False,
        "statement": "no DP: trained without it",
    }
    assert provenance["federation"] == {
        "sites": ["north", "south"],
        "refused_sites": [],
        "strategies": ["fedavg"],
        "rounds": {"fedavg": 2},
    }
    assert provenance["report"]["status"] == "pass"


def test_real_rows_and_the_model_stay_out(bundle):
    names = set(members_of(bundle))
    assert not any(name.startswith(("real_", "model", "federation")) for name in names)
    assert b"REAL-PATIENT-0001" not in b"".join(members_of(bundle).values())


def test_the_privacy_ledger_of_a_dp_model_is_released(tmp_path, keys):
    folder = output_folder(tmp_path, "gaussian_copula_dp")
    out = create_release(folder, tmp_path / "dp.zip", key=load_private_key(keys[0]), signer="A")
    provenance = verify_bundle(out.path, load_public_key(keys[1])).provenance
    privacy = provenance["privacy"]
    assert privacy["differential_privacy"] is True
    assert privacy["parameters"]["epsilon"] > 0
    assert privacy["spent"]["model"]["epsilon"] <= privacy["parameters"]["epsilon"] + 1e-9


@pytest.mark.parametrize("name", [*MEMBERS, "manifest.json", "signature.json"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_one_flipped_byte_anywhere_fails_naming_the_file(bundle, keys, name, where):
    data = members_of(bundle)[name]
    at = {"first": 0, "middle": len(data) // 2, "last": len(data) - 2}[where]
    rewrite(bundle, {name: flip(data, at)})
    with pytest.raises(VerificationError) as caught:
        verify_bundle(bundle, load_public_key(keys[1]))
    assert f"{name}:" in str(caught.value)


def test_a_wrong_key_fails(bundle, tmp_path):
    _, other = generate_key_pair(tmp_path / "keys" / "other")
    with pytest.raises(VerificationError, match=r"signature\.json: .*signed by another key"):
        verify_bundle(bundle, load_public_key(other))


def test_an_added_or_missing_file_fails_naming_it(bundle, keys):
    rewrite(bundle, {"extra.csv": b"age\n1\n", "synthetic.csv": None})
    with pytest.raises(VerificationError) as caught:
        verify_bundle(bundle, load_public_key(keys[1]))
    message = str(caught.value)
    assert "extra.csv: not in the manifest" in message
    assert "synthetic.csv: listed in the manifest but missing" in message


@pytest.mark.parametrize("name", ["../evil.csv", "/etc/evil", "a/../../evil", "a\\..\\evil"])
def test_archive_paths_that_escape_are_refused(folder, keys, tmp_path, name):
    bundle = tmp_path / "release.zip"
    create_release(folder, bundle, key=load_private_key(keys[0]), signer="A")
    with zipfile.ZipFile(bundle, "a") as archive:
        archive.writestr(name, b"x")
    with pytest.raises(VerificationError, match="unsafe path"):
        verify_bundle(bundle, load_public_key(keys[1]))
    assert not (tmp_path / "evil.csv").exists()


def test_a_symbolic_link_in_a_folder_is_refused(tmp_path, folder, keys):
    out = tmp_path / "release"
    create_release(folder, out, key=load_private_key(keys[0]), signer="A")
    (out / "synthetic.csv").rename(tmp_path / "elsewhere.csv")
    (out / "synthetic.csv").symlink_to(tmp_path / "elsewhere.csv")
    with pytest.raises(VerificationError, match=r"synthetic\.csv: a symbolic link"):
        verify_bundle(out, load_public_key(keys[1]))


def test_keys_are_private_and_never_overwritten(keys, tmp_path):
    private, public = keys
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.name == "release-key.pub" and b"PUBLIC KEY" in public.read_bytes()
    with pytest.raises(ReleaseError, match="not overwriting"):
        generate_key_pair(private)
    os.chmod(private, 0o644)
    with pytest.raises(ReleaseError, match="readable by others"):
        load_private_key(private)
    with pytest.raises(ReleaseError, match=r"give the \.pub file"):
        load_public_key(private)


def test_a_folder_without_report_or_model_is_refused(folder, keys, tmp_path):
    (folder / "report.json").unlink()
    (folder / "model" / "model.json").unlink()
    with pytest.raises(ReleaseError) as caught:
        create_release(folder, tmp_path / "r.zip", key=load_private_key(keys[0]), signer="A")
    assert "no report.json" in str(caught.value) and "no model" in str(caught.value)
    assert not (tmp_path / "r.zip").exists()


def test_unsafe_member_names_are_refused_on_writing(keys, tmp_path):
    key = load_private_key(keys[0])
    with pytest.raises(ReleaseError, match=r"\.\./x\.csv: unsafe path"):
        write_bundle({"../x.csv": b"1"}, tmp_path / "r.zip", key=key, signer="A")
    with pytest.raises(ReleaseError, match=r"manifest\.json: reserved"):
        write_bundle({"manifest.json": b"{}"}, tmp_path / "r.zip", key=key, signer="A")


def test_an_approval_is_signed_with_the_manifest(folder, keys, tmp_path):
    approval = {"name": "Dr Steward", "time": "2026-01-01T00:00:00+00:00", "comment": "ok"}
    out = create_release(
        folder, tmp_path / "r.zip", key=load_private_key(keys[0]), signer="A", approval=approval
    )
    verified = verify_bundle(out.path, load_public_key(keys[1]))
    assert verified.approval == approval
    assert verified.manifest_sha256 == out.manifest_sha256
    signature = json.loads(members_of(out.path)["signature.json"])
    signature["statement"]["approval"]["comment"] = "changed"
    rewrite(out.path, {"signature.json": json.dumps(signature).encode()})
    with pytest.raises(VerificationError, match=r"signature\.json: the signature does not verify"):
        verify_bundle(out.path, load_public_key(keys[1]))
