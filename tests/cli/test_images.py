"""``fedsynth images``: fit on the demo cohort, sample with a condition, evaluate with the
privacy gate, and bad input as exit code 2 naming the file."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fedsynth.cli import main
from fedsynth.imaging.datasets import brain_mri_cohort

TINY = ["--demo", "--demo-n", "12", "--demo-size", "16", "--epochs", "1"]
TINY_GAN = ["-p", "width=8", "-p", "noise_dim=8", "-p", "batch_size=4", "-p", "norm_groups=4"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("images") / "model"
    args = ["images", "fit", *TINY, "--model", "dp_gan", *TINY_GAN, "--epsilon", "5"]
    assert main([*args, "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    """The demo cohort's images as one 4-page float TIFF each with a labels CSV."""
    import skimage.io

    folder = tmp_path_factory.mktemp("real")
    cohort = brain_mri_cohort(12, size=16, seed=0)
    for i, image in enumerate(cohort.images):
        skimage.io.imsave(folder / f"img{i}.tif", image, check_contrast=False)
    labels = cohort.labels.assign(file=[f"img{i}.tif" for i in range(len(cohort))])
    labels.to_csv(folder.parent / "labels.csv", index=False)
    return folder, folder.parent / "labels.csv"


CHANNELS = ["--channels", "T1,T1c,T2,FLAIR"]


def test_fit_under_dp_spends_at_most_epsilon(model_dir):
    import fedsynth

    model = fedsynth.load(model_dir)
    assert model.dp == {"epsilon": 5.0, "delta": 1e-5}
    assert 0 < model.privacy_spent_.epsilon <= 5.0


def test_fit_sample_with_a_condition(tmp_path, model_dir, capsys):
    out = tmp_path / "synthetic"
    assert (
        main(["images", "sample", str(model_dir), "-n", "6", "-c", "idh_mutant=1", "-o", str(out)])
        == 0
    )
    arrays = np.load(out / "images.npz", allow_pickle=False)
    labels = pd.read_csv(out / "labels.csv")
    assert arrays["images"].shape == (6, 4, 16, 16) and arrays["images"].dtype == np.float32
    assert list(arrays["channels"]) == ["T1", "T1c", "T2", "FLAIR"]
    assert len(labels) == 6 and (labels["idh_mutant"] == 1).all()
    assert "6 synthetic images written" in capsys.readouterr().out


def test_evaluate_writes_grids_and_verdict(tmp_path, model_dir, real_folder, capsys):
    folder, labels = real_folder
    synthetic = tmp_path / "synthetic"
    assert (
        main(["images", "sample", str(model_dir), "-n", "8", "--seed", "1", "-o", str(synthetic)])
        == 0
    )
    page = tmp_path / "report.html"
    args = ["images", "evaluate", str(folder), str(synthetic), "--labels", str(labels), *CHANNELS]
    code = main([*args, "--epochs", "1", "-o", str(page)])
    report = json.loads(page.with_suffix(".json").read_text())
    failed = [
        f for f in report["flags"] if f["name"].startswith("privacy.") and f["status"] == "fail"
    ]
    assert code == (1 if failed else 0)
    text = page.read_text()
    assert '<img src="data:image/png;base64,' in text
    assert "Privacy verdict" in text and report["verdict"].upper() in text
    assert "idh_mutant = 1" in text and len(report["metrics"]) == 14
    assert f"privacy verdict: {report['verdict']}" in capsys.readouterr().out


def test_copies_are_held_back_unless_overridden(tmp_path, real_folder, capsys):
    folder, labels = real_folder
    copies = tmp_path / "copies"
    from fedsynth.cli.images import read_images, write_sample_folder

    write_sample_folder(read_images(folder, labels, channels=CHANNELS[1].split(",")), copies)
    page = tmp_path / "r.html"
    args = ["images", "evaluate", str(folder), str(copies), "--labels", str(labels), *CHANNELS]
    args += ["--epochs", "1", "-o", str(page)]
    assert main(args) == 1
    assert "privacy.near_copies" in capsys.readouterr().err
    assert main([*args, "--override", "checked by the DPO"]) == 0
    assert json.loads(page.with_suffix(".json").read_text())["override"] == "checked by the DPO"


def test_bad_input_exits_2_naming_the_file(tmp_path, model_dir, real_folder, capsys):
    missing = tmp_path / "nowhere"
    assert main(["images", "fit", str(missing), "-o", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {missing}: no such file or folder\n"  # one line, no traceback

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not a png")
    assert main(["images", "fit", str(broken), "-o", str(tmp_path / "m")]) == 2
    assert "a.png" in capsys.readouterr().err

    folder, labels = real_folder
    args = ["images", "fit", str(folder), "--labels", str(labels), "--channels", "T1,T2"]
    assert main([*args, "-o", str(tmp_path / "m")]) == 2
    assert "img0.tif" in (err := capsys.readouterr().err) and "4 channel" in err

    assert main(["images", "sample", str(missing), "-o", str(tmp_path / "s")]) == 2
    assert str(missing) in capsys.readouterr().err

    small = tmp_path / "small"
    from fedsynth.cli.images import write_sample_folder
    from fedsynth.imaging.imageset import ImageSet

    write_sample_folder(ImageSet(np.zeros((3, 1, 16, 16)), channels=["T1"]), small)
    args = ["images", "evaluate", str(folder), str(small), "--labels", str(labels)]
    assert main([*args, "-o", str(tmp_path / "x.html")]) == 2
    assert str(small) in capsys.readouterr().err


def test_fit_dp_gan_warm_started_on_public_images_without_dp(tmp_path):
    import fedsynth
    from fedsynth.imaging.npz import save_image_set

    public = save_image_set(brain_mri_cohort(8, size=16, seed=7), tmp_path / "public")
    args = ["images", "fit", *TINY, "--model", "dp_gan", *TINY_GAN, "-p", "public_epochs=1"]
    assert main([*args, "--public-images", str(public), "-o", str(tmp_path / "m")]) == 0
    model = fedsynth.load(tmp_path / "m")
    assert model.privacy_spent_ is None
    assert model.public_pretraining_ == {"images": 8, "epochs": 1}
