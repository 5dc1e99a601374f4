"""Fixtures of the release tests: an output folder as fedsynth writes it, and a key pair."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fedsynth.release import generate_key_pair

SAVED_MODELS = Path(__file__).parents[1] / "fixtures" / "saved_models"


def output_folder(root: Path, model: str = "gaussian_copula") -> Path:
    """A demo-like output folder: synthetic rows, report, model, federation record, and the
    simulated real rows that must never be released."""
    folder = root / "out"
    folder.mkdir()
    shutil.copytree(SAVED_MODELS / model, folder / "model")
    (folder / "model" / "sample_seed7.csv").rename(folder / "synthetic.csv")
    (folder / "real_train.csv").write_text("patient,age\nREAL-PATIENT-0001,61\n")
    (folder / "report.json").write_text(
        json.dumps({"status": "pass", "scores": {"csf": 0.9}, "flags": []})
    )
    (folder / "report.html").write_text("<html><body>SAFE report</body></html>")
    server = folder / "federation" / "server"
    server.mkdir(parents=True)
    sites = {"sites": {"north": 78, "south": 68}, "refused": {}, "no_reply": {}}
    (server / "sites.json").write_text(json.dumps(sites))
    rounds = [{"strategy": "fedavg", "round": r, "participants": list(sites)} for r in (1, 2)]
    (server / "rounds.jsonl").write_text("\n".join(json.dumps(r) for r in rounds) + "\n")
    return folder


@pytest.fixture
def folder(tmp_path) -> Path:
    """An output folder of a model trained without DP."""
    return output_folder(tmp_path)


@pytest.fixture
def keys(tmp_path) -> tuple[Path, Path]:
    """A fresh key pair: (private, public)."""
    return generate_key_pair(tmp_path / "keys" / "release-key")


@pytest.fixture(autouse=True)
def _key_folder(tmp_path):
    (tmp_path / "keys").mkdir()
