"""Generator sharing's checked release: the server's draws checked at every site through the
protocol's messages (in process, ``conftest.InProcessTransport``); a site sends back one boolean
per image, and a draw copying one site's image is dropped whichever generator made it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedsynth.federated import FederationError
from fedsynth.federated.checked_release import release
from fedsynth.federated.federation import FederationResult
from fedsynth.federated.server_app import _Output, run_server
from fedsynth.federated.settings import RunSettings
from fedsynth.federated.task import GeneratorMixture
from fedsynth.imaging import ImageSet, brain_mri_cohort
from fedsynth.imaging.validation.cross_site import SiteCopyCheck

from .conftest import IMAGE_COLUMNS, TINY_IMAGE_GAN, InProcessTransport, read_jsonl

COLUMNS = IMAGE_COLUMNS
TINY_GAN = TINY_IMAGE_GAN


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cohort():
    """Sites north and south (13 and 26 slices) and, for stand-in generators, other slices
    that neither site flags (the check a site runs: all its images, no holdout)."""
    images = brain_mri_cohort(90, sites=3, size=32, seed=0)
    names = images.labels["site"].to_numpy()
    north, south, other = (np.flatnonzero(names == n) for n in sorted(set(names)))
    sites = {"north": images.take(north[:13]), "south": images.take(south[:26])}
    other = images.take(other)
    flagged = SiteCopyCheck(sites["north"])(other) | SiteCopyCheck(sites["south"])(other)
    assert (~flagged).sum() >= 10
    return sites, other.take(np.flatnonzero(~flagged))


def _settings(out, **extra) -> RunSettings:
    return RunSettings(
        metadata_path="",
        out_dir=str(out),
        modality="imaging",
        model="dp_gan",
        params=TINY_GAN,
        rounds=1,
        local_epochs=1,
        **extra,
    )


def test_a_run_releases_images_checked_at_every_site(cohort, tmp_path):
    sites, _ = cohort
    transport = InProcessTransport(sites)
    settings = _settings(tmp_path / "server", strategies=["generator_sharing"], checked_release=12)
    run_server(transport, settings)
    result = FederationResult(tmp_path / "server")
    released = result.released()
    assert result.release["images"] == len(released) == 12
    assert set(result.release["flagged_by"]) == {"north", "south"}
    assert set(released.labels["site"]) <= set(sites)  # the generator of each image
    checks = [(site, reply) for kind, site, reply in transport.replies if kind == "query.check"]
    assert sorted({site for site, _ in checks}) == ["north", "south"]
    for _, reply in checks:
        # What left a site: its name and one boolean per image sent; nothing else.
        assert set(reply) == {"site", "check"} and set(reply["site"].config) == {"name"}
        assert not reply["check"].config and not reply["check"].metrics
        (mask,) = reply["check"].arrays.values()
        assert mask.dtype == bool and mask.ndim == 1
    first = [r["check"].arrays["too_close"] for _, r in checks[:2]]
    assert [len(m) for m in first] == [12, 12]
    logged = [e for e in read_jsonl(tmp_path / "server" / "audit.jsonl") if e["phase"] == "release"]
    assert {e["site"] for e in logged} == {"north", "south"}


class _StandIn:
    """Draws the pool's images with the asked labels; the first draw starts with ``copy``."""

    def __init__(self, pool: ImageSet, copy: ImageSet | None = None):
        self.pool, self.copy, self.calls = pool, copy, 0

    def sample(self, n, conditions=None, seed=None):
        rng = np.random.default_rng(seed)
        self.calls += 1
        labels = self.pool.labels[COLUMNS]
        allowed = np.ones(len(labels), dtype=bool)
        for column, value in (conditions or {}).items():
            allowed &= (labels[column] == value).to_numpy()
        picks = rng.choice(np.flatnonzero(allowed), n)
        images = self.pool.images[picks].copy()
        if self.copy is not None and self.calls == 1:
            images[: len(self.copy)] = self.copy.images
        picked = labels.iloc[picks].reset_index(drop=True)
        return ImageSet(images, picked, channels=self.pool.channels)


class _Sharing:
    name = "generator_sharing"

    def __init__(self, mixture):
        self.mixture_ = mixture


def _release(sites, generators, out, fail=None) -> FederationResult:
    transport = InProcessTransport(sites, fail=fail)
    settings = _settings(out, strategies=["generator_sharing"], checked_release=8, audit=False)
    mixture = GeneratorMixture(generators, {k: len(sites[k]) for k in generators})
    (out / "sites.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "sites.json").write_text(json.dumps({"sites": {}, "refused": {}}))
    release(transport, settings, [_Sharing(mixture)], {1: "north", 2: "south"}, _Output(out, False))
    return FederationResult(out)


def test_a_copy_of_south_drawn_by_norths_generator_is_dropped(cohort, tmp_path):
    sites, other = cohort
    copy = sites["south"].take([0])
    generators = {"north": _StandIn(other, copy), "south": _StandIn(other)}
    result = _release(sites, generators, tmp_path / "server")
    # Flagged by south's check alone, dropped from north's draws, redrawn once by north.
    assert result.release["flagged_by"] == {"north": 0, "south": 1}
    assert result.release["dropped_from"] == {"north": 1, "south": 0}
    assert result.release["rounds"] == 1 and result.release["images"] == 8
    released = result.released()
    south = sites["south"].images.reshape(26, -1)
    flat = released.images.reshape(len(released), -1)
    assert not (flat[:, None, :] == south[None]).all(axis=2).any()


def test_a_site_that_does_not_check_fails_the_release_naming_it(cohort, tmp_path):
    sites, other = cohort
    generators = {"north": _StandIn(other), "south": _StandIn(other)}
    result = _release(sites, generators, tmp_path / "server", fail={"south": "no reply"})
    assert "site 'south' did not check the draws" in result.release["error"]
    assert not (tmp_path / "server" / "released").exists()
    with pytest.raises(FederationError, match="the checked release failed: site 'south'"):
        result.released()


def test_checked_release_needs_image_sites_with_generator_sharing(tmp_path):
    with pytest.raises(ValueError, match="checked_release applies to image sites"):
        _settings(tmp_path, strategies=["fedavg"], checked_release=4)
    with pytest.raises(ValueError, match="checked_release must be an integer >= 0"):
        _settings(tmp_path, strategies=["generator_sharing"], checked_release=-1)
