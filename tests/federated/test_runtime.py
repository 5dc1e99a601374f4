"""The Flower app, its settings, TLS material and process clean-up (no federation run)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest

from fedsynth.federated import processes, runtime
from fedsynth.federated.settings import RunSettings


def test_settings_round_trip_through_the_run_config():
    settings = RunSettings(
        metadata_path="/m.json",
        out_dir="/out",
        model="ctgan",
        params={"epochs": 3, "hidden_dims": [8]},
        strategies=["fedavg", "synthetic_sharing"],
        rounds=2,
        round_timeout=30,
        audit=True,
    )
    config = settings.to_run_config()
    assert config["strategies"] == "fedavg,synthetic_sharing" and config["round-timeout"] == 30
    assert all(isinstance(v, str | int | float | bool) for v in config.values())
    assert RunSettings.from_run_config({**config, "unknown-key": 1}) == settings


def test_settings_are_checked():
    with pytest.raises(ValueError) as caught:
        RunSettings(metadata_path="m", out_dir="o", strategies=["fedsgd"], rounds=0)
    assert "fedsgd" in str(caught.value) and "rounds" in str(caught.value)
    dp = {"dp": {"epsilon": 1.0, "delta": 1e-5}}
    with pytest.raises(ValueError, match="fedprox cannot be combined with dp"):
        RunSettings(metadata_path="m", out_dir="o", strategies=["fedavg", "fedprox"], params=dp)
    assert RunSettings(metadata_path="m", out_dir="o", strategies=["fedavg"], params=dp).params


# Flower 1.41's bundle builder uses a pattern style that the installed pathspec deprecates.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_app_is_a_valid_flower_app(tmp_path):
    from flwr.cli.build import build_fab_from_disk
    from flwr.common.config import validate_config

    settings = RunSettings(metadata_path="/m.json", out_dir="/out", rounds=3)
    folder = runtime.write_app(tmp_path / "app", settings)
    config = tomllib.loads((folder / "pyproject.toml").read_text())
    valid, errors, _ = validate_config(config, check_module=True)
    assert valid, errors
    flwr = config["tool"]["flwr"]["app"]
    assert flwr["components"]["clientapp"] == "fedsynth.federated.client_app:app"
    assert flwr["config"]["rounds"] == 3
    assert len(build_fab_from_disk(folder)) > 0


def test_tls_files_form_a_chain_for_loopback(tmp_path):
    from cryptography import x509

    files = runtime.TLSFiles.generate(tmp_path)
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert oct(files.server_key.stat().st_mode)[-3:] == "600"
    public = runtime.generate_node_key(tmp_path / "node")
    assert public.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert (tmp_path / "node").read_bytes().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")


def test_marked_processes_are_ended_and_nothing_else(tmp_path):
    env = {**os.environ, "FEDSYNTH_TEST_MARK": "abc"}
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    marked = subprocess.Popen(sleeper, env=env, start_new_session=True)
    other = subprocess.Popen(sleeper)
    try:
        processes.end_processes("FEDSYNTH_TEST_MARK", "abc", grace=5)
        assert marked.wait(timeout=10) != 0
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_flower_version_is_the_pinned_one():
    runtime.check_flower_version()
