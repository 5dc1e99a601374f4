"""The synthetic-image arms of ``benchmarks/imaging.py``: how each arm gets its synthetic set.

Every arm is a function ``arm(study) -> Synthetic`` that trains on ``study.sites`` (the training
sites' real images) and returns a pooled synthetic set with its costs. All of them run in this
process, through the generators' public API and the federable protocol only; the same
arms over Flower (generator sharing and FedAvg of ``latent_diffusion`` as Flower strategies)
plug in as other functions with this signature, chosen by a flag of the benchmark.
"""

from __future__ import annotations

import math
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from _clock import Clock

from fedsynth.imaging import ImageSet

#: Label columns the generators condition on (and the classifiers predict).
LABELS = ("tumour_type", "idh_mutant")
#: Public facts of the simulated cohort under DP (its design, not its patients).
LABEL_VALUES = {
    "tumour_type": ["glioblastoma", "astrocytoma", "oligodendroglioma"],
    "idh_mutant": [0, 1],
}
INTENSITY_RANGE = (0.0, 1.5)
DELTA = 1e-5


@dataclass
class Study:
    """What every arm gets: the training sites and the settings from the command line."""

    sites: dict[str, ImageSet]
    holdouts: dict[str, ImageSet]
    n_synthetic: int
    seed: int
    ldm: dict[str, Any]
    gan: dict[str, Any]
    ldm_rounds: int
    ldm_local_epochs: int
    epsilon: float
    #: Release through the near-copy filter (:mod:`fedsynth.imaging.validation.copy_filter`).
    copy_filter: bool = True
    #: The study's feature extractor (fitted on the pooled training images), for the filter.
    extractor: Any = None
    #: A central ``latent_diffusion`` saved by an earlier run on the same images and seed, to
    #: sample instead of refitting (its fit is then not timed).
    central_model: str | None = None

    @property
    def pooled(self) -> ImageSet:
        return concat(list(self.sites.values()))

    @property
    def pooled_holdout(self) -> ImageSet:
        return concat(list(self.holdouts.values()))


@dataclass
class Synthetic:
    """An arm's synthetic images and what they cost (CPU seconds of this process)."""

    images: ImageSet
    fit_cpu_s: float | None
    sample_cpu_s: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def images_per_cpu_s(self) -> float:
        return len(self.images) / max(self.sample_cpu_s, 1e-9)


def concat(sets: list[ImageSet]) -> ImageSet:
    """One ImageSet of several with the same channels (labels stacked)."""
    first = sets[0]
    return ImageSet(
        np.concatenate([s.images for s in sets]),
        pd.concat([s.labels for s in sets], ignore_index=True),
        channels=first.channels,
        spacing=first.spacing,
        orientation=first.orientation,
        site_column=first.site_column if all(s.site_column for s in sets) else None,
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _make(name: str, params: dict[str, Any], seed: int):
    import fedsynth

    return fedsynth.make(
        name, **{"label_columns": list(LABELS), "device": "cpu", "seed": seed, **params}
    )


def _shares(sizes: list[int], n: int) -> list[int]:
    """``n`` split in proportion to ``sizes`` (largest remainders), as the server samples."""
    exact = np.asarray(sizes, float) / sum(sizes) * n
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact)[: n - counts.sum()]] += 1
    return counts.tolist()


def _release(
    gen, n: int, seed: int, study: Study, train: ImageSet, holdout: ImageSet, extractor
) -> tuple[ImageSet, dict[str, Any]]:
    """``n`` images of ``gen``; with ``study.copy_filter``, drawn through the near-copy filter
    against ``train`` with ``holdout``'s closest approach as the reference (redraws included
    in the sampling clock of the caller)."""
    if not study.copy_filter:
        return gen.sample(n, seed=seed), {}
    from fedsynth.imaging.validation.copy_filter import sample_without_near_copies

    found = sample_without_near_copies(gen, n, train, holdout, seed=seed, extractor=extractor)
    return found.images, {"dropped": found.dropped, "thresholds": found.thresholds}


def generator_sharing(study: Study) -> Synthetic:
    """CATphishing: each site fits its own ``latent_diffusion``; the pooled set samples each
    site's model in proportion to its number of images. With the copy filter, the release is
    checked across sites (:mod:`fedsynth.imaging.validation.cross_site`): every draw is checked
    at every site against that site's own training images (its holdout the reference, in
    pixels), and each flagged draw is redrawn with its labels by the generator that made it;
    only a boolean per draw leaves a site."""
    generators, fit = {}, 0.0
    shares = _shares([len(s) for s in study.sites.values()], study.n_synthetic)
    counts = dict(zip(study.sites, shares, strict=True))
    for k, (site, images) in enumerate(study.sites.items()):
        gen = _make("latent_diffusion", study.ldm, study.seed + k)
        with Clock() as clock:
            gen.fit(images)
        fit += clock.cpu
        gen.sample(4, seed=0)  # the first draw's set-up out of the clock
        generators[site] = gen
    details: dict[str, Any] = {"site_samples": list(counts.values())}
    with Clock() as clock:
        if study.copy_filter:
            pooled, details["copy_filter"] = _release_across_sites(generators, counts, study)
        else:
            parts = [
                generators[site].sample(n, seed=study.seed + 100 + k)
                for k, (site, n) in enumerate(counts.items())
            ]
            pooled = concat(parts)
    return Synthetic(pooled, fit, clock.cpu, details)


def _release_across_sites(
    generators: dict[str, Any], counts: dict[str, int], study: Study
) -> tuple[ImageSet, dict[str, Any]]:
    """The pooled draws, each checked at every site (the sites' checks run in this process,
    each on its own site's images only), in one intensity scale: the validation's (the pooled
    training images' percentiles), so that a site's distances are in the units of the pooled
    check that verifies them (with its own scale, a site_0 check passed one image at 6.19 over
    its reference 6.09 that lay at 5.58 under the pooled reference 5.68)."""
    from fedsynth.imaging.validation.cross_site import (
        SiteCopyCheck,
        sample_checked_across_sites,
    )
    from fedsynth.imaging.validation.features import intensity_scale

    scale = intensity_scale(study.pooled.images)
    checks = {
        site: SiteCopyCheck(study.sites[site], study.holdouts[site], scale=scale)
        for site in study.sites
    }
    found = sample_checked_across_sites(generators, counts, checks, seed=study.seed + 100)
    return found.images, {
        "cross_site": True,
        "dropped": found.dropped,
        "flagged_by_site": found.flagged_by,
        "dropped_from_site": found.dropped_from,
        "rounds": found.rounds,
        "thresholds": {site: check.thresholds for site, check in checks.items()},
    }


def _release_pooled(gen, study: Study) -> tuple[ImageSet, dict[str, Any]]:
    """A model trained on all training sites: its draws checked against them all (pixels and
    the study's features)."""
    images, filtered = _release(
        gen,
        study.n_synthetic,
        study.seed + 100,
        study,
        study.pooled,
        study.pooled_holdout,
        study.extractor,
    )
    return images, ({"copy_filter": filtered} if filtered else {})


def central_ldm(study: Study) -> Synthetic:
    """One ``latent_diffusion`` fitted on the training sites' images pooled (or loaded from
    ``study.central_model``: then its training settings must be the study's, its sampling
    settings become the study's, and the fit is not timed)."""
    gen = _make("latent_diffusion", study.ldm, study.seed)
    details: dict[str, Any] = {}
    if study.central_model:
        import fedsynth

        wanted = gen.get_params()
        gen = fedsynth.load(study.central_model)
        sampling = ("guidance", "sampling_steps", "sampling_eta", "verbose")
        found = {k: v for k, v in gen.get_params().items() if k not in sampling}
        differ = sorted(k for k, v in found.items() if _same(v) != _same(wanted[k]))
        if differ or gen.schema_.n_images != len(study.pooled):
            raise SystemExit(f"{study.central_model}: another model than this arm's ({differ})")
        gen.set_params(**{k: wanted[k] for k in sampling})
        fit_cpu, details["loaded_from"] = None, study.central_model
    else:
        with Clock() as fit:
            gen.fit(study.pooled)
        fit_cpu = fit.cpu
    gen.sample(4, seed=0)  # the first draw's set-up out of the clock
    with Clock() as sample:
        images, filtered = _release_pooled(gen, study)
    return Synthetic(images, fit_cpu, sample.cpu, details | filtered)


def _same(value: Any) -> Any:
    """Parameters compared across a JSON round trip (tuples come back as lists)."""
    return list(value) if isinstance(value, tuple) else value


def fedavg_ldm(study: Study) -> Synthetic:
    """``latent_diffusion`` trained by FedAvg through the federable protocol, in process: each
    round every site trains ``ldm_local_epochs`` UNet epochs from the global weights (the
    autoencoder as many first, until its ``ae_epochs`` are done:
    :mod:`fedsynth.imaging.generators._ldm_rounds`), the server averages them weighted by site
    size; then the latent scale is merged from the sites' (each site's is reported)."""
    from fedsynth.federated.task import weighted_average
    from fedsynth.imaging.generators import ImageSchema

    sites = list(study.sites.values())
    sizes = [len(s) for s in sites]
    schema = ImageSchema.merge(
        [ImageSchema.from_images(s, label_columns=list(LABELS)) for s in sites]
    )

    def site_model(n_fits: int):
        return _make("latent_diffusion", study.ldm, study.seed).init_from_schema(
            schema, n_fits=n_fits
        )

    with Clock() as fit:
        server = site_model(0)
        weights = server.get_weights()
        for round_no in range(1, study.ldm_rounds + 1):
            replies = []
            for images in sites:
                site = site_model(round_no - 1)
                site.train_local(
                    images, epochs=study.ldm_local_epochs, weights=weights, extra_state=False
                )
                replies.append(site.get_weights())
            weights = weighted_average(replies, sizes)
        states = []
        for images in sites:
            site = site_model(study.ldm_rounds)
            site.train_local(images, epochs=0, weights=weights, extra_state=True)
            states.append(site.export_extra_state())
        server.set_weights(weights)
        merged = type(server).merge_extra_states(states, sizes)
        server.load_extra_state(merged)
    server.sample(4, seed=0)
    with Clock() as sample:
        images, details = _release_pooled(server, study)
    details |= {
        "rounds": study.ldm_rounds,
        "local_epochs": study.ldm_local_epochs,
        "site_latent_variance": [s.config["latent_variance"] for s in states],
        "merged_latent_variance": merged.config["latent_variance"],
    }
    return Synthetic(images, fit.cpu, sample.cpu, details)


def independent_epsilon(ledger) -> dict[str, float]:
    """The ledger's DP-SGD spends recomputed with Opacus's accountants directly (RDP and PRV),
    from the recorded history (noise multiplier, sample rate, steps) alone."""
    import warnings

    from opacus.accountants import PRVAccountant, RDPAccountant

    found = {"ledger_epsilon": float(ledger.epsilon)}
    for name, cls in (("opacus_rdp_epsilon", RDPAccountant), ("opacus_prv_epsilon", PRVAccountant)):
        total = 0.0
        for spend in ledger.spends:
            accountant = cls()
            accountant.history = [tuple(step) for step in spend.details["history"]]
            with warnings.catch_warnings():  # log(0) inside PRV's grid: harmless, noisy
                warnings.simplefilter("ignore", RuntimeWarning)
                total += float(accountant.get_epsilon(delta=spend.delta))
        found[name] = total
    return found


#: The public images of the ``*_public`` arms: the simulated cohort drawn with this offset
#: added to the study's seed (other patients, and other scanners: the sites' gains, noise,
#: bias field and blur are drawn from the seed), all its sites, the study's image size.
PUBLIC_SEED_OFFSET = 1000
PUBLIC_N = 400


def public_cohort(study: Study) -> ImageSet:
    """The images declared public for the warm start (see :data:`PUBLIC_SEED_OFFSET`)."""
    from fedsynth.imaging import brain_mri_cohort

    size = int(study.pooled.shape[-1])
    return brain_mri_cohort(PUBLIC_N, sites=3, size=size, seed=study.seed + PUBLIC_SEED_OFFSET)


def dp_gan(private: bool, public: bool = False) -> Callable[[Study], Synthetic]:
    """``dp_gan`` on the pooled training images, private at ``study.epsilon`` or not; with
    ``public``, warm-started on :func:`public_cohort` (no privacy cost)."""

    def arm(study: Study) -> Synthetic:
        params = dict(study.gan)
        options = {"public_images": public_cohort(study)} if public else {}
        epsilon = study.epsilon if private else None
        if epsilon is not None:
            params |= {
                "dp": {"epsilon": float(epsilon), "delta": DELTA},
                "label_values": LABEL_VALUES,
                "intensity_range": INTENSITY_RANGE,
            }
        gen = _make("dp_gan", params, study.seed)
        with Clock() as fit:
            gen.fit(study.pooled, **options)
        gen.sample(4, seed=0)
        with Clock() as sample:
            images, details = _release_pooled(gen, study)
        if public:
            details["public_images"] = {
                "cohort": f"brain_mri_cohort({PUBLIC_N}, sites=3, seed={study.seed} + "
                f"{PUBLIC_SEED_OFFSET})",
                **gen.public_pretraining_,
            }
        if epsilon is not None:
            details |= independent_epsilon(gen.privacy_spent_)
            details["target_epsilon"] = float(epsilon)
            details["delta"] = DELTA
        return Synthetic(images, fit.cpu, sample.cpu, details)

    return arm


#: The synthetic arms, in report order (a function per arm; see the module docstring).
SYNTHETIC_ARMS: dict[str, Callable[[Study], Synthetic]] = {
    "ldm_generator_sharing": generator_sharing,
    "ldm_central": central_ldm,
    "ldm_fedavg": fedavg_ldm,
    "dp_gan_private": dp_gan(True),
    "dp_gan_nonprivate": dp_gan(False),
    "dp_gan_private_public": dp_gan(True, public=True),
    "dp_gan_nonprivate_public": dp_gan(False, public=True),
}


def default_epochs(name: str) -> dict[str, int]:
    """The generator's default epochs (the benchmark uses them unless a flag says otherwise)."""
    import fedsynth

    gen = fedsynth.make(name)
    found = {"epochs": int(gen.epochs)}
    if hasattr(gen, "ae_epochs"):
        found["ae_epochs"] = int(gen.ae_epochs)
    return found


def split_rounds(total_epochs: int, rounds: int) -> int:
    """Local epochs per round so that ``rounds`` rounds make at least ``total_epochs``."""
    return max(1, math.ceil(total_epochs / max(rounds, 1)))
