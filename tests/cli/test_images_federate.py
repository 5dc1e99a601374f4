"""``fedsynth images federate``: two sites' image folders trained over Flower's deployment
runtime on loopback (the one real Flower run of the image federation; the strategies' details
are tested in process in ``tests/federated/test_image_sites.py``), and bad input named before
any process starts."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fedsynth
from fedsynth.cli import main
from fedsynth.imaging import ImageSet, brain_mri_cohort
from fedsynth.imaging.generators import ImageSchema
from fedsynth.imaging.npz import load_image_set, save_image_set

TINY_GAN = ["-p", "width=8", "-p", "noise_dim=8", "-p", "batch_size=12", "-p", "norm_groups=4"]
TINY_GAN += ["-p", 'device="cpu"', "-l", "tumour_type", "-l", "idh_mutant"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def site_folders(tmp_path_factory):
    """Two hospitals' image folders (images.npz + labels.csv) of 14 and 22 slices."""
    root = tmp_path_factory.mktemp("hospitals")
    cohort = brain_mri_cohort(50, sites=2, size=32, seed=4)
    names = cohort.labels["site"]
    first, second = (np.flatnonzero(names == n) for n in sorted(set(names)))
    return [
        save_image_set(cohort.take(first[:14]), root / "alpha"),
        save_image_set(cohort.take(second[:22]), root / "beta"),
    ]


@pytest.mark.slow
def test_federate_two_site_folders_over_flower(site_folders, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["images", "federate", *map(str, site_folders), "--model", "dp_gan", *TINY_GAN]
    args += ["--rounds", "1", "--local-epochs", "1", "-n", "12", "--seed", "2", "-o", str(out)]
    assert main([*args, "--checked-release"]) == 0
    shown = capsys.readouterr().out
    assert "fedavg: round 1 of 1 done" in shown and "peak memory per site: alpha" in shown
    server = out / "federation" / "server"
    # Generator sharing's samples were checked at both sites over Flower (query.check), which
    # answered one boolean per image.
    released = json.loads((server / "release.json").read_text())
    assert released["images"] == 12 and set(released["flagged_by"]) == {"alpha", "beta"}
    assert "Checked release: 12 images" in shown
    checks = [json.loads(line) for line in (server / "audit.jsonl").read_text().splitlines()]
    for entry in (e for e in checks if e["phase"] == "release"):
        assert entry["parts"]["check"]["arrays"]["too_close"]["dtype"] == "bool"
    assert json.loads((server / "sites.json").read_text())["sites"] == {"alpha": 14, "beta": 22}
    # FedAvg over Flower moved the shared model away from the initial weights every site built.
    schema = ImageSchema.from_dict(json.loads((server / "schema" / "schema.json").read_text()))
    trained = fedsynth.load(out / "models" / "fedavg")
    params = {k: v for k, v in trained.get_params().items() if k != "verbose"}
    initial = fedsynth.make("dp_gan", **params).init_from_schema(schema).get_weights()
    moved = [not np.array_equal(a, b) for a, b in zip(initial, trained.get_weights(), strict=True)]
    assert sum(moved) > len(moved) // 2
    fedavg = load_image_set(out / "samples" / "fedavg")
    assert fedavg.shape == (12, 4, 32, 32) and set(fedavg.labels) == {"tumour_type", "idh_mutant"}
    pooled = load_image_set(out / "samples" / "generator_sharing")
    assert pooled.shape == (12, 4, 32, 32) and set(pooled.labels["site"]) <= {"alpha", "beta"}
    # The pooled model samples again from the command line, with a condition.
    again = tmp_path / "again"
    model = str(out / "models" / "generator_sharing")
    assert main(["images", "sample", model, "-n", "5", "-c", "idh_mutant=1", "-o", str(again)]) == 0
    drawn = load_image_set(again)
    assert len(drawn) == 5 and (drawn.labels["idh_mutant"] == 1).all()


def test_bad_sites_exit_2_naming_the_site(site_folders, tmp_path, capsys):
    small = load_image_set(site_folders[1])
    save_image_set(
        ImageSet(small.images[:, :, :16, :16], small.labels, channels=small.channels),
        tmp_path / "gamma",
    )
    args = [
        "images",
        "federate",
        str(site_folders[0]),
        str(site_folders[1]),
        str(tmp_path / "gamma"),
    ]
    assert main([*args, "--model", "dp_gan", *TINY_GAN, "-o", str(tmp_path / "x")]) == 2
    assert "site 'gamma''s size [16, 16] differ" in capsys.readouterr().err
    one = ["images", "federate", str(site_folders[0]), "--split-by", "hospital"]
    assert main([*one, "-o", str(tmp_path / "y")]) == 2
    assert "no label column 'hospital' to split by" in capsys.readouterr().err
    assert main(["images", "federate", str(site_folders[0]), "-o", str(tmp_path / "z")]) == 2
    assert main(["images", "federate", "--demo", "-m", "tvae", "-o", str(tmp_path / "t")]) == 2
