"""What a worker computes for an image run, called in process: a private dp_gan run spends its
epsilon and says what it declared public; the download holds arrays, labels and PNGs."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from fedsynth.web.db import Database
from fedsynth.web.image_datasets import ImageDatasets, image_run_config
from fedsynth.web.image_pipeline import execute_images
from fedsynth.web.storage import Storage
from tests.web.test_image_uploads import image_zip


class Recorder:
    """A reporter that keeps the log lines and progress fractions."""

    def __init__(self):
        self.lines, self.fractions = [], []

    def log(self, message: str) -> None:
        self.lines.append(message)

    def progress(self, fraction: float, stage: str) -> None:
        self.fractions.append(fraction)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_private_dp_gan_run_spends_its_epsilon_and_writes_the_files(tmp_path):
    storage = Storage(tmp_path / "data")
    images = ImageDatasets(Database(storage.database), storage.root / "image_datasets")
    dataset = images.upload("scans.zip", [image_zip(12)], "scans", max_bytes=10**7)
    settings = {"generator": "dp_gan", "epochs": "2", "epsilon": "3", "images": "6"}
    config = image_run_config(dataset, {**settings, "report_epochs": "2"})
    out = tmp_path / "out"
    out.mkdir()
    say = Recorder()
    outcome = execute_images(config, storage, out, say)
    report = json.loads((out / "report.json").read_text())
    assert report["epsilon_spent"] == pytest.approx(3.0, rel=0.01)
    assert outcome.privacy == report["verdict"] and set(outcome.scores) >= {"fid", "recall"}
    assert any(line.startswith("declared public:") for line in say.lines)
    assert say.fractions == sorted(say.fractions) and say.fractions[-1] < 1.0
    with zipfile.ZipFile(out / "synthetic_images.zip") as archive:
        with np.load(io.BytesIO(archive.read("images.npz"))) as arrays:
            assert arrays["images"].shape == (6, 1, 32, 32)
        labels = archive.read("labels.csv").decode().splitlines()
        assert len(labels) == 7 and all(
            line.split(",")[0] in archive.namelist() for line in labels[1:]
        )
    public = (out / "image_report.html").read_text()
    assert public.count("0 real (left)") == public.count("real (left)") > 0  # no real image
