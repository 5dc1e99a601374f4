"""``fedsynth demo --images`` in a tiny configuration: simulated slices in, synthetic slices, the
image report and a verdict out; a table generator is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedsynth.cli import main
from fedsynth.imaging.validation import IMAGE_METRICS

TINY = ["--image-patients", "24", "--image-epochs", "2", "--image-report-epochs", "2"]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("model", ["latent_diffusion", "dp_gan"])
def test_imaging_demo_writes_slices_report_and_verdict(tmp_path, capsys, model):
    assert main(["demo", "--images", "--model", model, "--out", str(tmp_path), *TINY]) == 0
    out = tmp_path / "images"
    report = json.loads((out / "image_report.json").read_text())
    assert report["verdict"] in ("pass", "warn", "fail")
    assert report["images"] == {"real": 17, "synthetic": 17, "holdout": 7}
    assert [m["name"] for m in report["metrics"]] == [m.name for m in IMAGE_METRICS]
    with np.load(out / "synthetic" / "images.npz") as arrays:
        assert arrays["images"].shape == (17, 4, 32, 32)
    page = (out / "image_report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2  # a grid per idh_mutant value
    assert (out / "model" / "model.json").is_file()
    printed = capsys.readouterr().out
    assert "Privacy verdict" in printed and "FID to the training slices" in printed
    if model == "dp_gan":
        assert report["epsilon_spent"] == pytest.approx(5.0, rel=0.01)


def test_imaging_demo_refuses_a_table_generator(tmp_path, capsys):
    assert main(["demo", "--images", "--model", "ctgan", "--out", str(tmp_path)]) == 2
    assert "imaging demo runs latent_diffusion or dp_gan" in capsys.readouterr().err
