"""The HTML report of synthetic images: flags, verdict, grids, the private-file notice."""

from __future__ import annotations

import base64
import json
import re

import pytest

from fedsynth.core.metrics import MetricResult
from fedsynth.imaging.datasets import brain_mri_cohort
from fedsynth.imaging.report import (
    grid_groups,
    image_flags,
    image_report,
    privacy_verdict,
    write_image_report,
)


@pytest.fixture(scope="module")
def cohort():
    return brain_mri_cohort(24, size=16, sites=2, seed=3)


def test_flags_follow_the_documented_thresholds():
    results = [
        MetricResult("near_copies", "privacy", "lower", 0.0, 1.0, ""),
        MetricResult("closest_training_distance", "privacy", "lower", 0.15, 0.9, ""),
        MetricResult("membership_inference", "privacy", "lower", 0.75, 0.5, ""),
        MetricResult("precision", "fidelity", "higher", 0.7, 0.7, ""),
        MetricResult("fid", "fidelity", "lower", None, None, "", skipped="no images"),
    ]
    flags = {f.name: f.status for f in image_flags(results)}
    assert flags == {
        "privacy.near_copies": "pass",
        "privacy.closest_training_distance": "warn",
        "privacy.membership_inference": "fail",
        "fidelity.precision": "warn",
    }
    assert privacy_verdict(image_flags(results)) == "fail"
    # A fidelity fail does not hold images back: the verdict is the privacy gate's.
    assert privacy_verdict(image_flags(results[:1] + results[3:4])) == "pass"
    assert privacy_verdict([]) == "unchecked"


def test_copies_of_the_training_images_fail_and_the_page_shows_grids(tmp_path, cohort):
    train, holdout = cohort.split(0.5, seed=0)
    report = image_report(train, train, holdout, epochs=1, max_images=12)
    assert len(report["metrics"]) == 14 and report["images"]["synthetic"] == len(train)
    flags = {f["name"]: f["status"] for f in report["flags"]}
    assert flags["privacy.near_copies"] == "fail" and report["verdict"] == "fail"

    page = write_image_report(report, train, holdout, tmp_path / "r" / "report.html", per_group=2)
    text = page.read_text()
    saved = json.loads(page.with_suffix(".json").read_text())
    assert saved["verdict"] == "fail" and "FAIL" in text
    assert "real images are shown next to the synthetic ones" in text
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    # One grid per value of sex, tumour_type, idh_mutant and site (2 sites); 24 patients.
    assert len(images) == len(grid_groups(train, holdout)) >= 2 + 2 + 2
    assert all(base64.b64decode(png).startswith(b"\x89PNG") for png in images)
    assert "site = " in text and "idh_mutant = 1" in text
    assert "one row per channel: T1, T1c, T2, FLAIR" in text
    # Train on synthetic, test on the holdout: per label, beside the real-trained reference.
    assert "Utility per label" in text and "<td>tumour_type</td><td>real (reference)</td>" in text
    assert "utility.classifier_utility" in flags and "fidelity.piqe" in flags
    assert not list(page.parent.glob(".report*"))  # no temporary file left


def test_grids_skip_columns_with_many_values(cohort):
    groups = grid_groups(cohort, cohort)
    columns = {c for c, _ in groups}
    assert "patient_id" not in columns and "age" not in columns  # too many values
    assert {"site", "idh_mutant"} <= columns
