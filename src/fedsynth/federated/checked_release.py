"""Generator sharing's checked release: the pooled images, each checked at every site.

With ``checked_release = n`` (image sites, ``generator_sharing``), the server ends the run by
drawing ``n`` images from the sites' generators (each site's share multinomial in its size, as
:class:`~fedsynth.federated.task.GeneratorMixture` samples) and sending them to every site in a
``query.check`` message. Each site compares them with its own images
(:class:`~fedsynth.imaging.validation.cross_site.SiteCopyCheck`; all of a site's images trained
its generator, so its reference is the distance of its two closest images) and replies with one
boolean per image: closer to one of its images than that, or not. The server drops every image
flagged at some site, redraws it with the same labels from the generator that made it and sends
the redraws round again (:func:`~fedsynth.imaging.validation.cross_site.
sample_checked_across_sites`, at most :data:`MAX_ROUNDS` rounds).

**What leaves a site:** its name and one boolean per synthetic image it was sent. Its images,
its distances and its reference distance do not. The server writes the released images to
``out_dir/released/generator_sharing`` (``images.npz`` + ``labels.csv``, a ``site`` label naming
the generator of each) and ``release.json`` (images released, draws each site flagged, draws
dropped per generator, rounds); a site that does not answer fails the release (never the run):
``release.json`` then says why and no image is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fedsynth.exceptions import FedsynthError
from fedsynth.federated.errors import FederationError
from fedsynth.federated.messages import Content, Payload

if TYPE_CHECKING:
    from fedsynth.federated.settings import RunSettings
    from fedsynth.federated.strategy_base import Strategy

#: Rounds of redrawing at most; images still flagged then are dropped.
MAX_ROUNDS = 20
#: The message that asks a site to check synthetic images.
CHECK = "query.check"
#: Where the released images go, under the server's output folder.
RELEASED = "released/generator_sharing"


def check_reply(content: Mapping[str, Payload], name: str, data: Any) -> Content:
    """The site's side: one boolean per synthetic image sent (True: too close to one of the
    site's images), or ``{"error": ...}`` naming the problem."""
    from fedsynth.imaging.imageset import ImageSet
    from fedsynth.imaging.validation.cross_site import SiteCopyCheck

    try:
        if not isinstance(data, ImageSet):
            raise FederationError(f"site {name!r} holds a {type(data).__name__}, not images")
        sent = ImageSet(content["check"].arrays["images"], channels=data.channels)
        mask = SiteCopyCheck(data)(sent)
    except Exception as exc:  # reported to the server, which fails the release naming the site
        return {"site": Payload({"name": name}), "check": Payload({"error": f"{exc}"})}
    return {"site": Payload({"name": name}), "check": Payload(arrays={"too_close": mask})}


def release(
    transport: Any,
    settings: RunSettings,
    strategies: Sequence[Strategy],
    names: Mapping[int, str],
    out: Any,
) -> None:
    """The server's side: draw, have every site check, redraw; write the released images.

    ``transport`` and ``out`` are the server's (:mod:`~fedsynth.federated.server_app`).
    """
    from fedsynth.federated.image_sites import pool_images
    from fedsynth.imaging.npz import save_image_set
    from fedsynth.imaging.validation.cross_site import sample_checked_across_sites

    sharing = next((s for s in strategies if s.name == "generator_sharing"), None)
    mixture = getattr(sharing, "mixture_", None)
    if mixture is None:
        out.write_json("release.json", {"error": "generator_sharing made no pooled generator"})
        return
    out.event("release_started", images=settings.checked_release)
    rng = np.random.default_rng(settings.seed)
    sites = list(mixture.generators)
    weights = np.array([mixture.weights[s] for s in sites])
    counts = dict(
        zip(sites, rng.multinomial(settings.checked_release, weights / weights.sum()), strict=True)
    )
    connected = set(transport.node_ids())
    checks = {
        name: _remote_check(transport, node, name, settings, out)
        for node, name in names.items()
        if node in connected
    }
    try:
        missing = sorted(set(names.values()) - set(checks))
        if missing:
            raise FederationError(f"site(s) {missing} not connected: they cannot check the draws")
        found = sample_checked_across_sites(
            mixture.generators,
            counts,
            checks,
            seed=int(rng.integers(2**31)),
            max_rounds=MAX_ROUNDS,
        )
    except FedsynthError as exc:  # a site that failed, or answered other than booleans
        out.event("release_failed", error=str(exc))
        out.write_json("release.json", {"error": str(exc)})
        return
    released = pool_images(found.parts, rng)
    save_image_set(released, out.root / RELEASED)
    summary = {
        "images": len(released),
        "asked": settings.checked_release,
        "flagged_by": found.flagged_by,
        "dropped_from": found.dropped_from,
        "dropped": found.dropped,
        "rounds": found.rounds,
        "path": RELEASED,
    }
    out.write_json("release.json", summary)
    out.event("release_finished", **summary)


def _remote_check(transport: Any, node: int, name: str, settings: RunSettings, out: Any):
    """A site's check for the server: send the images, return the site's booleans."""
    calls = [0]

    def check(images) -> np.ndarray:
        calls[0] += 1
        content = {"check": Payload(arrays={"images": np.asarray(images.images, np.float32)})}
        replies, failed = transport.exchange(CHECK, {node: content}, settings.round_timeout)
        if node in failed or node not in replies:
            raise FederationError(f"site {name!r} did not check the draws: {failed.get(node)}")
        reply = replies[node]
        out.record("release", calls[0], name, reply)
        part = reply.get("check", Payload())
        if "error" in part.config:
            raise FederationError(
                f"site {name!r} could not check the draws: {part.config['error']}"
            )
        mask = part.arrays.get("too_close")
        if mask is None:
            raise FederationError(f"site {name!r} answered without its check")
        # Any other answer than one boolean per image is refused by the caller, naming the site.
        return np.asarray(mask)

    return check
