"""``fedsynth release keygen / create / verify`` on an output folder."""

from __future__ import annotations

import json
import stat
import zipfile

from fedsynth.cli import main
from tests.release.conftest import output_folder


def test_keygen_create_verify_and_a_changed_byte(tmp_path, capsys):
    key = tmp_path / "release-key"
    assert main(["release", "keygen", "--out", str(key)]) == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    folder = output_folder(tmp_path)
    bundle = tmp_path / "release.zip"
    args = ["release", "create", str(folder), "--key", str(key), "--out", str(bundle)]
    assert main([*args, "--signer", "Hospital A"]) == 0
    capsys.readouterr()
    assert main(["release", "verify", str(bundle), "--public-key", f"{key}.pub"]) == 0
    out = capsys.readouterr().out
    assert "verified" in out and "Hospital A" in out and "synthetic.csv" in out
    assert "generator: gaussian_copula" in out and "no DP" in out and "2 sites" in out

    with zipfile.ZipFile(bundle) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    report = contents["report.json"]
    contents["report.json"] = report.replace(b"pass", b"fail")
    with zipfile.ZipFile(bundle, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    assert main(["release", "verify", str(bundle), "--public-key", f"{key}.pub"]) == 1
    assert "report.json: changed after signing" in capsys.readouterr().err


def test_a_wrong_key_and_an_existing_key_fail(tmp_path, capsys):
    key, other = tmp_path / "key", tmp_path / "other"
    assert main(["release", "keygen", "--out", str(key)]) == 0
    assert main(["release", "keygen", "--out", str(other)]) == 0
    assert main(["release", "keygen", "--out", str(key)]) == 1
    assert "not overwriting" in capsys.readouterr().err
    bundle = tmp_path / "bundle"
    folder = output_folder(tmp_path)
    assert main(["release", "create", str(folder), "-k", str(key), "-o", str(bundle)]) == 0
    assert main(["release", "verify", str(bundle), "--public-key", f"{other}.pub"]) == 1
    assert "signed by another key" in capsys.readouterr().err


def test_a_failed_privacy_check_needs_a_written_override(tmp_path, capsys):
    key = tmp_path / "key"
    assert main(["release", "keygen", "--out", str(key)]) == 0
    folder = output_folder(tmp_path)
    flags = [{"name": "privacy.dcr_closer_probability", "status": "fail"}]
    (folder / "report.json").write_text(json.dumps({"status": "fail", "flags": flags}))
    args = ["release", "create", str(folder), "-k", str(key), "-o", str(tmp_path / "r.zip")]
    assert main(args) == 1
    assert "privacy.dcr_closer_probability failed" in capsys.readouterr().err
    assert main([*args, "--override", "reviewed: the closest rows are common profiles"]) == 0
    capsys.readouterr()
    assert main(["release", "verify", str(tmp_path / "r.zip"), "-k", f"{key}.pub"]) == 0
    assert "approval: override: reviewed" in capsys.readouterr().out
