"""The near-copy check across sites, for generator sharing: every draw checked at every site.

Under generator sharing (each site trains its own generator, the server samples all of them) a
site's generator can draw an image close to *another* site's training image: the sites' patients
look alike, and a check of each generator against its own site's images misses it. Here the
server draws the pooled set and sends every draw to every site; each site checks them against
its own training images with its own reference (the closest approach of its holdout images to
its training images, or of its two closest training images without a holdout, as
:mod:`~fedsynth.imaging.validation.copy_filter` does) and answers with one boolean per draw. The
server drops each draw flagged at any site and redraws it with the same label values from the
generator that made it, and sends the redraws round again, until none is flagged or
``max_rounds`` are spent.

What leaves a site: one boolean per synthetic image it was sent (too close to one of its
training images, or not). Its images, distances and reference distance stay at the site; the
server function only ever holds the generators, the draws and the sites' masks.

The same :func:`sample_checked_across_sites` runs in one process (each site's check a
:class:`SiteCopyCheck` built on its images) and over Flower (each check a call that sends the
draws to the site's ClientApp and returns its reply).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fedsynth.exceptions import ImageDataError
from fedsynth.imaging.imageset import ImageSet
from fedsynth.imaging.validation.copy_filter import _check_like, _redraw, _Spaces

if TYPE_CHECKING:
    from fedsynth.imaging.validation.features import FeatureExtractor

#: A site's check: synthetic images in, one boolean per image out (True: too close).
SiteCheck = Callable[[ImageSet], np.ndarray]


class SiteCopyCheck:
    """A site's near-copy check of synthetic images against its own training images.

    Built at the site; calling it with synthetic images returns only a boolean per image
    (True: closer to one of the site's training images than the reference distance).

    Parameters
    ----------
    train : ImageSet
        The site's own training images.
    holdout : ImageSet, optional
        The site's real images that no generator saw: their closest approach to ``train`` is
        the reference. Default: the site's closest pair of training images.
    extractor : FeatureExtractor, optional
        Fitted on ``train`` normalised as the validation does: also check in its space.
    scale : (low, width), optional
        The intensity scale of the pixel distances, per channel (as
        :func:`~fedsynth.imaging.validation.features.intensity_scale` gives). Default: the
        site's own training images'. Sites whose scanners differ in gain measure distances in
        different units with their own scales, so an image can pass every site's check yet lie
        closer to a training image than the closest holdout image in the pooled validation's
        scale (session 15: one image in 1,992). Give every site the same scale (the
        validation's, or one declared) to check in one space.

    Attributes
    ----------
    thresholds : dict
        The site's reference distance per space (kept at the site, never sent).

    Examples
    --------
    >>> check = SiteCopyCheck(train, holdout)  # at the site  # doctest: +SKIP
    >>> check(synthetic)  # array([False, True, ...])  # doctest: +SKIP
    """

    def __init__(
        self,
        train: ImageSet,
        holdout: ImageSet | None = None,
        *,
        extractor: FeatureExtractor | None = None,
        scale: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self._spaces = _Spaces(train, holdout, extractor, scale)
        # An ImageSet of the training images' shape, for _check_like's comparison only.
        self._like = ImageSet(np.zeros((2, *train.shape[1:]), np.float32), channels=train.channels)
        self.thresholds = dict(self._spaces.thresholds)

    def __call__(self, synthetic: ImageSet) -> np.ndarray:
        _check_like(self._like, synthetic, "synthetic")
        return self._spaces.too_close(synthetic.images)


@dataclass(frozen=True)
class CrossSiteResult:
    """What :func:`sample_checked_across_sites` released and what each site flagged.

    Attributes
    ----------
    parts : dict of str to ImageSet
        The released images of each site's generator (as many as asked, unless
        ``max_rounds`` ran out), in the order of their first draw.
    flagged_by : dict of str to int
        Per checking site: draws it flagged, over all rounds (a draw flagged at two sites
        counts at both).
    dropped_from : dict of str to int
        Per generating site: its draws dropped, over all rounds.
    rounds : int
        Rounds of redrawing after the first draw.
    """

    parts: dict[str, ImageSet]
    flagged_by: dict[str, int]
    dropped_from: dict[str, int]
    rounds: int

    @property
    def dropped(self) -> int:
        """Draws dropped over all rounds (each once, however many sites flagged it)."""
        return sum(self.dropped_from.values())

    @property
    def images(self) -> ImageSet:
        """The released images of all sites in one set (sites in order, labels stacked)."""
        sets = list(self.parts.values())
        return ImageSet(
            np.concatenate([s.images for s in sets]),
            pd.concat([s.labels for s in sets], ignore_index=True),
            channels=sets[0].channels,
            spacing=sets[0].spacing,
            orientation=sets[0].orientation,
        )


def sample_checked_across_sites(
    generators: Mapping[str, Any],
    counts: Mapping[str, int],
    checks: Mapping[str, SiteCheck],
    *,
    conditions: Mapping[str, Any] | None = None,
    seed: int | None = None,
    max_rounds: int = 20,
) -> CrossSiteResult:
    """Draw each site generator's share, every draw checked at every site; redraw the flagged.

    The server's side of the cross-site check: it holds the generators and the sites' checks
    (calls that return one boolean per image sent), never a real image.

    Parameters
    ----------
    generators : mapping of str to fitted image generator
        Each site's generator: anything with ``sample(n, conditions=..., seed=...)`` returning
        an ImageSet.
    counts : mapping of str to int
        Images to release from each generator (e.g. in proportion to site size); a site with
        0 draws none (and has no part in the result), though it still checks.
    checks : mapping of str to callable
        Each checking site's check (a :class:`SiteCopyCheck` in process, a message to the site
        over Flower): called with the draws (images and channels only, no labels), returns a
        boolean array, True for each draw too close to that site's training images.
    conditions : dict, optional
        Label values every image must have.
    seed : int, optional
        Seed of the first draws and of the redraws.
    max_rounds : int
        Rounds of redrawing at most; draws still flagged then are dropped.

    Returns
    -------
    CrossSiteResult

    Raises
    ------
    ImageDataError
        Naming the site: a count without a generator, a draw of another size or channels than
        the others, a check whose answer is not one boolean per image.

    Examples
    --------
    >>> checks = {s: SiteCopyCheck(train[s], holdout[s]) for s in train}  # doctest: +SKIP
    >>> counts = {"a": 300, "b": 100}  # doctest: +SKIP
    >>> found = sample_checked_across_sites(gens, counts, checks, seed=0)  # doctest: +SKIP
    >>> found.flagged_by, found.images  # doctest: +SKIP
    """
    _check_inputs(generators, counts, checks, max_rounds)
    counts = {site: int(n) for site, n in counts.items() if n > 0}
    rng = np.random.default_rng(seed)
    images: dict[str, np.ndarray] = {}
    labels: dict[str, pd.DataFrame] = {}
    first: ImageSet | None = None
    for site, n in counts.items():
        draw = generators[site].sample(n, conditions=conditions, seed=int(rng.integers(2**31)))
        first = _check_draw(site, draw, n, first)
        images[site], labels[site] = draw.images.copy(), draw.labels.copy()
    assert first is not None  # _check_inputs: at least one count
    flagged_by = dict.fromkeys(checks, 0)
    dropped_from = dict.fromkeys(counts, 0)
    pending = {site: np.arange(len(images[site])) for site in counts}
    rounds = 0
    while True:
        flagged = _check_everywhere(checks, images, pending, first, flagged_by)
        for site, positions in flagged.items():
            dropped_from[site] += len(positions)
        pending = {site: p for site, p in flagged.items() if len(p)}
        if not pending or rounds >= max_rounds:
            break
        rounds += 1
        for site, positions in pending.items():
            _redraw(generators[site], positions, images[site], labels[site], conditions, rng)
    parts = {}
    for site in counts:
        keep = np.ones(len(images[site]), dtype=bool)
        keep[pending.get(site, [])] = False
        parts[site] = ImageSet(
            images[site][keep],
            labels[site][keep].reset_index(drop=True),
            channels=first.channels,
            spacing=first.spacing,
            orientation=first.orientation,
        )
    return CrossSiteResult(parts, flagged_by, dropped_from, rounds)


def _check_inputs(
    generators: Mapping[str, Any],
    counts: Mapping[str, int],
    checks: Mapping[str, SiteCheck],
    max_rounds: int,
) -> None:
    problems = [
        f"site {site!r}: a count but no generator" for site in counts if site not in generators
    ]
    problems += [
        f"site {site!r}: count {n!r} (expected an integer >= 0)"
        for site, n in counts.items()
        if not isinstance(n, int | np.integer) or n < 0
    ]
    problems += [
        f"site {site!r}: its check is not callable" for site, c in checks.items() if not callable(c)
    ]
    if not counts or not sum(int(n) for n in counts.values() if isinstance(n, int | np.integer)):
        problems.append("no images to draw: every count is 0, or none is given")
    if not checks:
        problems.append("no site's check: the draws need checking at every site")
    if max_rounds < 0:
        problems.append(f"max_rounds is {max_rounds}; expected >= 0")
    if problems:
        raise ImageDataError(problems)


def _check_draw(site: str, draw: Any, n: int, first: ImageSet | None) -> ImageSet:
    """The first draw (to compare the next with), after checking ``draw`` fits it."""
    if not isinstance(draw, ImageSet) or len(draw) != n:
        got = len(draw) if isinstance(draw, ImageSet) else type(draw).__name__
        raise ImageDataError([f"site {site!r}: its generator returned {got}, not {n} images"])
    if first is None:
        return draw
    try:
        _check_like(first, draw, "synthetic")
    except ImageDataError as exc:
        raise ImageDataError([f"site {site!r}'s generator: {p}" for p in exc.problems]) from exc
    if list(draw.channels) != list(first.channels):
        raise ImageDataError(
            [f"site {site!r}'s generator: channels {list(draw.channels)}, not {first.channels}"]
        )
    return first


def _check_everywhere(
    checks: Mapping[str, SiteCheck],
    images: Mapping[str, np.ndarray],
    pending: Mapping[str, np.ndarray],
    like: ImageSet,
    flagged_by: dict[str, int],
) -> dict[str, np.ndarray]:
    """The pending positions of each generator's draws that some site flags (every generator in
    ``pending`` has some)."""
    sent = ImageSet(
        np.concatenate([images[site][pending[site]] for site in pending]),
        channels=like.channels,
        spacing=like.spacing,
        orientation=like.orientation,
    )
    any_site = np.zeros(len(sent), dtype=bool)
    for name, check in checks.items():
        try:
            mask = check(sent)
        except ImageDataError as exc:
            raise ImageDataError([f"site {name!r}'s check: {p}" for p in exc.problems]) from exc
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (len(sent),):
            raise ImageDataError(
                [
                    f"site {name!r}'s check answered {mask.dtype} of shape {mask.shape}; "
                    f"expected one boolean per image sent ({len(sent)})"
                ]
            )
        flagged_by[name] += int(mask.sum())
        any_site |= mask
    found, start = {}, 0
    for site, positions in pending.items():
        found[site] = positions[any_site[start : start + len(positions)]]
        start += len(positions)
    return found
