"""The cross-site near-copy check of generator sharing: every draw checked at every site, only
booleans back from a site, redraws by the generator that made the draw, with its labels."""

from __future__ import annotations

import numpy as np
import pytest

from fedsynth.exceptions import ImageDataError
from fedsynth.imaging import ImageSet, brain_mri_cohort
from fedsynth.imaging.validation.copy_filter import near_copy_mask
from fedsynth.imaging.validation.cross_site import SiteCopyCheck, sample_checked_across_sites

LABELS = ["tumour_type", "idh_mutant"]


@pytest.fixture(scope="module")
def world():
    """Sites A and B (training and holdout images each) and a pool of other images that
    neither site's check flags, for the stand-in generators to draw from."""
    cohort = brain_mri_cohort(120, sites=3, size=32, seed=3)
    site = cohort.labels["site"].to_numpy()
    sites = {}
    for name, value in (("A", "site_0"), ("B", "site_2")):
        sites[name] = cohort.take(np.flatnonzero(site == value)).split(0.3, seed=0)
    checks = {name: SiteCopyCheck(train, holdout) for name, (train, holdout) in sites.items()}
    other = cohort.take(np.flatnonzero(site == "site_1"))
    flagged = np.zeros(len(other), dtype=bool)
    for check in checks.values():
        flagged |= check(other)
    pool = other.take(np.flatnonzero(~flagged))
    assert len(pool) >= 10  # enough unflagged images for the stand-ins
    return sites, checks, pool


class _StandIn:
    """Draws images of the pool with the asked labels; puts ``copies`` at the first positions
    of its first draw (or of every draw with ``forever``); records every call."""

    def __init__(self, pool: ImageSet, copies: ImageSet | None = None, forever: bool = False):
        self.pool, self.copies, self.forever = pool, copies, forever
        self.calls: list[tuple[int, dict]] = []
        self.drawn: list[np.ndarray] = []

    def sample(self, n, conditions=None, seed=None):
        rng = np.random.default_rng(seed)
        self.calls.append((n, dict(conditions or {})))
        labels = self.pool.labels[LABELS]
        allowed = np.ones(len(labels), dtype=bool)
        for column, value in (conditions or {}).items():
            allowed &= (labels[column] == value).to_numpy()
        picks = rng.choice(np.flatnonzero(allowed), n)
        images = self.pool.images[picks].copy()
        if self.copies is not None and (len(self.calls) == 1 or self.forever):
            k = min(n, len(self.copies))
            images[:k] = self.copies.images[:k]
        self.drawn.append(images)
        return ImageSet(
            images, labels.iloc[picks].reset_index(drop=True), channels=self.pool.channels
        )


def test_a_copy_of_site_b_drawn_by_site_a_is_dropped(world):
    sites, checks, pool = world
    b_train = sites["B"][0]
    copy = b_train.take([0])
    # Site A's own check passes it: a check of each generator at its own site misses it.
    assert not checks["A"](copy).any() and checks["B"](copy).all()
    gens = {"A": _StandIn(pool, copies=copy), "B": _StandIn(pool)}
    found = sample_checked_across_sites(gens, {"A": 6, "B": 4}, checks, seed=0)
    assert found.flagged_by == {"A": 0, "B": 1}
    assert found.dropped_from == {"A": 1, "B": 0} and found.dropped == 1
    assert found.rounds == 1 and {k: len(v) for k, v in found.parts.items()} == {"A": 6, "B": 4}
    released = found.images
    assert len(released) == 10
    assert not near_copy_mask(released, b_train, sites["B"][1])[0].any()
    # The redraw came from A's generator (B's drew once).
    assert len(gens["A"].calls) == 2 and len(gens["B"].calls) == 1


def test_sites_see_only_draws_and_the_server_only_booleans(world):
    sites, checks, pool = world
    gens = {"A": _StandIn(pool, copies=sites["B"][0].take([0, 1])), "B": _StandIn(pool)}
    sent, answered = {s: [] for s in checks}, {s: [] for s in checks}

    def recording(name):
        def check(images):
            sent[name].append(images)
            answered[name].append(checks[name](images))
            return answered[name][-1]

        return check

    found = sample_checked_across_sites(
        gens, {"A": 5, "B": 5}, {s: recording(s) for s in checks}, seed=1
    )
    drawn = np.concatenate([d for g in gens.values() for d in g.drawn])
    for name in checks:
        for images, mask in zip(sent[name], answered[name], strict=True):
            # What a site gets: synthetic draws without their labels ...
            assert images.labels.shape[1] == 0
            assert all(
                (images.images[i] == drawn).all(axis=(1, 2, 3)).any() for i in range(len(images))
            )
            # ... and what it sends back: one boolean per draw.
            assert mask.dtype == bool and mask.shape == (len(images),)
    # Both sites checked every draw of every generator in the first round, then the redraws.
    assert [len(x) for x in sent["A"]] == [len(x) for x in sent["B"]] == [10, 2]
    # A check answering anything but booleans (e.g. distances) is refused, naming the site.
    leaky = {"A": checks["A"], "B": lambda images: np.full(len(images), 5.58)}
    with pytest.raises(ImageDataError, match=r"site 'B'.s check answered float64"):
        sample_checked_across_sites(gens, {"A": 5, "B": 5}, leaky, seed=1)
    assert len(found.images) == 10


def test_redraws_keep_each_draws_labels_in_order(world):
    sites, checks, pool = world
    copies = sites["B"][0].take([0, 1, 2])
    gen = _StandIn(pool, copies=copies)
    found = sample_checked_across_sites({"A": gen}, {"A": 8}, checks, seed=2)
    assert found.dropped == 3 and found.rounds == 1
    first = ImageSet(gen.drawn[0], channels=pool.channels)
    first_labels = _StandIn(pool).sample(8, seed=_first_seed(2)).labels
    np.testing.assert_array_equal(found.parts["A"].labels.to_numpy(), first_labels.to_numpy())
    # Each redraw asked for the labels of the images it replaced.
    asked = [(n, c) for n, c in gen.calls[1:]]
    assert sum(n for n, _ in asked) == 3 and all(set(c) == set(LABELS) for _, c in asked)
    # The unflagged draws are released unchanged.
    np.testing.assert_array_equal(found.parts["A"].images[3:], first.images[3:])


def _first_seed(seed: int) -> int:
    return int(np.random.default_rng(seed).integers(2**31))


def test_max_rounds_bounds_the_redraws(world):
    sites, checks, pool = world
    gens = {
        "A": _StandIn(pool, copies=sites["B"][0].take(range(4)), forever=True),
        "B": _StandIn(pool),
    }
    found = sample_checked_across_sites(gens, {"A": 4, "B": 3}, checks, seed=3, max_rounds=2)
    # The first draw and two rounds of redraws of all 4 (one call per label group).
    assert found.rounds == 2 and sum(n for n, _ in gens["A"].calls) == 4 * 3
    assert len(found.parts["A"]) == 0 and len(found.parts["B"]) == 3
    assert found.dropped_from == {"A": 4 * 3, "B": 0} and found.flagged_by["B"] == 12
    none = sample_checked_across_sites(gens, {"A": 2, "B": 0}, checks, seed=3, max_rounds=0)
    assert none.rounds == 0 and len(none.parts["A"]) == 0 and set(none.parts) == {"A"}


def test_mismatched_inputs_are_refused_naming_the_site(world):
    _, checks, pool = world
    gens = {"A": _StandIn(pool), "B": _StandIn(pool)}
    with pytest.raises(ImageDataError, match="site 'C': a count but no generator"):
        sample_checked_across_sites(gens, {"A": 2, "C": 2}, checks)
    with pytest.raises(ImageDataError, match="no site's check"):
        sample_checked_across_sites(gens, {"A": 2}, {})
    short = {"A": checks["A"], "B": lambda images: np.zeros(len(images) - 1, dtype=bool)}
    with pytest.raises(ImageDataError, match=r"site 'B'.s check answered bool of shape \(3,\)"):
        sample_checked_across_sites(gens, {"A": 2, "B": 2}, short)
    small = ImageSet(np.zeros((8, 4, 16, 16), np.float32), pool.labels[LABELS].iloc[:8])
    with pytest.raises(ImageDataError, match=r"site 'B'.s generator: synthetic images are"):
        sample_checked_across_sites(
            {"A": gens["A"], "B": _StandIn(small)}, {"A": 2, "B": 2}, checks
        )
    with pytest.raises(ImageDataError, match=r"site 'A'.s check: synthetic images are"):
        sample_checked_across_sites({"A": _StandIn(small)}, {"A": 2}, checks)


def test_with_one_shared_scale_a_site_flags_what_the_pooled_check_flags():
    # Scanners differ in gain per sequence, so each site's own intensity scale weighs the
    # channels differently: here site A's second sequence spans 0.1, site B's 10. An image that
    # copies a training image of A except for a faint second sequence is far from it in A's
    # own scale (that sequence magnified 10 x) yet closer than any holdout image in the pooled
    # scale. With the pooled scale given to every site, A flags it, as the pooled check does.
    from fedsynth.imaging.validation.features import intensity_scale

    rng = np.random.default_rng(0)

    def images(n, second):
        first = rng.uniform(0, 1, (n, 1, 8, 8))
        return np.concatenate([first, rng.uniform(0, second, (n, 1, 8, 8))], axis=1)

    def image_set(array):
        return ImageSet(array.astype(np.float32), channels=("t1", "t2"))

    a_train, a_holdout = image_set(images(12, 0.1)), image_set(images(6, 0.1))
    b_train, b_holdout = image_set(images(12, 10.0)), image_set(images(6, 10.0))
    copy = a_train.images[:1].copy()
    copy[:, 1] = rng.uniform(0, 0.3, (1, 8, 8))
    candidate = image_set(copy)
    pooled = image_set(np.concatenate([a_train.images, b_train.images]))
    pooled_holdout = image_set(np.concatenate([a_holdout.images, b_holdout.images]))
    assert near_copy_mask(candidate, pooled, pooled_holdout)[0].all()
    own = SiteCopyCheck(a_train, a_holdout)(candidate) | SiteCopyCheck(b_train, b_holdout)(
        candidate
    )
    assert not own.any()  # each site's own scale passes it
    scale = intensity_scale(pooled.images)
    shared = SiteCopyCheck(a_train, a_holdout, scale=scale)(candidate)
    assert shared.all()


def test_a_scale_that_does_not_fit_the_channels_is_refused(world):
    sites, _, _ = world
    train, holdout = sites["A"]
    with pytest.raises(ImageDataError, match="4 lows and 4 positive widths"):
        SiteCopyCheck(train, holdout, scale=(np.zeros(3), np.ones(3)))
    with pytest.raises(ImageDataError, match="positive widths"):
        SiteCopyCheck(train, holdout, scale=(np.zeros(4), np.zeros(4)))
