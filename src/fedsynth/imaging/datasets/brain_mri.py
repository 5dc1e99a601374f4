"""A simulated multi-sequence brain MRI cohort of glioma patients, with known ground truth.

Each image is one axial slice through a head, anterior at the top and the patient's left on the
right (radiological view), in four channels: T1, contrast-enhanced T1 (T1c), T2 and FLAIR. It
shows a scalp, a skull ring, grey and white matter with a wavy boundary, two lateral ventricles
(wider with age) and a glioma with peritumoural oedema. Tissue intensities per sequence follow
the usual contrasts (fat bright on T1, fluid bright on T2 and dark on FLAIR, white matter
brighter than grey on T1 and darker on T2).

Labels: age, sex, tumour type (glioblastoma, astrocytoma, oligodendroglioma) and IDH mutation.
Type depends on age and IDH on type and age roughly as in the WHO 2016 era series: glioblastomas
in older patients and mostly IDH-wildtype, astrocytomas younger and mostly IDH-mutant,
oligodendrogliomas IDH-mutant by definition. The tumour's appearance follows its labels through
the rules in :class:`BrainMRITruth` (size, irregularity, ring enhancement and necrosis, oedema
extent, calcification, a frontal location, and the T2-FLAIR mismatch sign of IDH-mutant
astrocytomas), each drawn with patient-level spread so that the labels are learnable from the
images but not perfectly.

Sites differ as scanners do: a gain per sequence, Rician noise, a smooth multiplicative bias
field and a blur (lower resolution), and a different case mix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage

from fedsynth.exceptions import InvalidDataError
from fedsynth.imaging.imageset import ImageSet

SEQUENCES: tuple[str, ...] = ("T1", "T1c", "T2", "FLAIR")
TUMOUR_TYPES: tuple[str, ...] = ("glioblastoma", "astrocytoma", "oligodendroglioma")

#: Intensity of each tissue in each sequence (T1, T1c, T2, FLAIR), before scanner effects.
TISSUES: dict[str, tuple[float, float, float, float]] = {
    "scalp": (0.85, 0.85, 0.60, 0.55),
    "skull": (0.08, 0.08, 0.06, 0.06),
    "csf": (0.15, 0.15, 1.00, 0.10),
    "grey": (0.50, 0.52, 0.58, 0.55),
    "white": (0.72, 0.74, 0.42, 0.42),
    "oedema": (0.40, 0.40, 0.82, 0.85),
    "tumour": (0.35, 0.38, 0.78, 0.74),
    "necrosis": (0.20, 0.20, 0.92, 0.35),
    "calcification": (0.10, 0.10, 0.08, 0.08),
}


@dataclass(frozen=True)
class TumourRule:
    """How one tumour type looks, before the IDH modifiers and per-patient spread.

    Attributes
    ----------
    radius : float
        Mean tumour radius as a share of the brain's half-width.
    irregularity : float
        Amplitude of the lobulation of the tumour's outline (0: a circle).
    enhancement : float
        Strength of the T1c enhancement of the tumour's rim (0: none).
    necrosis : float
        Radius of the necrotic core as a share of the tumour radius (0: none).
    oedema : float
        How far the oedema reaches beyond the tumour, as a share of the tumour radius.
    calcification : float
        Probability of calcifications (dark specks in every sequence).
    frontal : float
        Probability that the tumour sits in a frontal lobe (else anywhere in the brain).
    """

    radius: float
    irregularity: float
    enhancement: float
    necrosis: float
    oedema: float
    calcification: float
    frontal: float


@dataclass(frozen=True)
class BrainMRITruth:
    """The rules that made a simulated cohort: labels -> appearance, and the scanners.

    Attributes
    ----------
    type_age : dict
        Mean and standard deviation of age at diagnosis per tumour type.
    type_share : dict
        Share of each tumour type over the cohort (each site shifts it).
    idh_logit : dict
        Per type, ``(intercept, slope per year above 45)`` of the log-odds of an IDH mutation;
        ``None`` for oligodendroglioma (IDH-mutant by definition).
    tumours : dict of str to TumourRule
    idh_mutant_modifiers : dict
        Factors applied to an IDH-mutant tumour's rule (``enhancement``, ``necrosis``,
        ``oedema``, ``irregularity``) and ``mismatch``, the share by which FLAIR suppresses the
        tumour's signal (the T2-FLAIR mismatch sign).
    spread : float
        Standard deviation of the log-normal per-patient factor on each appearance feature.
    tissues : dict
        Intensity of each tissue per sequence (see :data:`TISSUES`).
    sites : DataFrame
        Per site: share of patients, gain per sequence, noise, bias-field amplitude, blur (in
        pixels at 64 x 64) and the shift of its glioblastoma share.
    """

    type_age: dict[str, tuple[float, float]]
    type_share: dict[str, float]
    idh_logit: dict[str, tuple[float, float] | None]
    tumours: dict[str, TumourRule]
    idh_mutant_modifiers: dict[str, float]
    spread: float
    tissues: dict[str, tuple[float, float, float, float]]
    sites: pd.DataFrame = field(repr=False)


def _default_rules(sites: pd.DataFrame) -> BrainMRITruth:
    return BrainMRITruth(
        type_age={
            "glioblastoma": (62.0, 11.0),
            "astrocytoma": (41.0, 13.0),
            "oligodendroglioma": (46.0, 12.0),
        },
        type_share={"glioblastoma": 0.55, "astrocytoma": 0.30, "oligodendroglioma": 0.15},
        idh_logit={
            "glioblastoma": (-2.3, -0.06),
            "astrocytoma": (1.3, -0.07),
            "oligodendroglioma": None,
        },
        tumours={
            "glioblastoma": TumourRule(0.26, 0.22, 0.8, 0.45, 0.9, 0.02, 0.25),
            "astrocytoma": TumourRule(0.22, 0.12, 0.35, 0.1, 0.55, 0.05, 0.35),
            "oligodendroglioma": TumourRule(0.20, 0.14, 0.35, 0.0, 0.4, 0.5, 0.75),
        },
        idh_mutant_modifiers={
            "enhancement": 0.6,
            "necrosis": 0.3,
            "oedema": 0.65,
            "irregularity": 0.7,
            "mismatch": 0.45,
        },
        spread=0.5,
        tissues=dict(TISSUES),
        sites=sites,
    )


def _site_table(sites: int, rng: np.random.Generator) -> pd.DataFrame:
    share = rng.dirichlet(np.full(sites, 6.0))
    return pd.DataFrame(
        {
            "site": [f"site_{k}" for k in range(sites)],
            "share": share,
            **{f"gain_{s}": rng.uniform(0.8, 1.25, sites) for s in SEQUENCES},
            "noise": rng.uniform(0.015, 0.06, sites),
            "bias": rng.uniform(0.0, 0.3, sites),
            "blur": rng.uniform(0.0, 1.0, sites),
            "glioblastoma_shift": rng.uniform(-0.15, 0.15, sites),
        }
    )


def _labels(n: int, truth: BrainMRITruth, rng: np.random.Generator) -> pd.DataFrame:
    sites = truth.sites
    site = rng.choice(len(sites), size=n, p=sites["share"].to_numpy())
    base = np.array([truth.type_share[t] for t in TUMOUR_TYPES])
    shares = np.tile(base, (n, 1))
    shift = sites["glioblastoma_shift"].to_numpy()[site]
    shares[:, 0] += shift
    shares[:, 1:] -= shift[:, None] * base[1:] / base[1:].sum()
    cumulative = np.cumsum(shares / shares.sum(axis=1, keepdims=True), axis=1)
    kind = (rng.random(n)[:, None] > cumulative).sum(axis=1)
    mean_age = np.array([truth.type_age[t][0] for t in TUMOUR_TYPES])[kind]
    sd_age = np.array([truth.type_age[t][1] for t in TUMOUR_TYPES])[kind]
    age = np.clip(np.round(rng.normal(mean_age, sd_age)), 18, 90).astype(int)
    idh_p = np.ones(n)
    for k, name in enumerate(TUMOUR_TYPES):
        rule = truth.idh_logit[name]
        if rule is not None:
            mask = kind == k
            idh_p[mask] = 1 / (1 + np.exp(-(rule[0] + rule[1] * (age[mask] - 45))))
    return pd.DataFrame(
        {
            "patient_id": [f"MRI{i:05d}" for i in range(n)],
            "site": sites["site"].to_numpy()[site],
            "age": age,
            # Gliomas are about 1.5 times as common in men.
            "sex": np.where(rng.random(n) < 0.6, "M", "F"),
            "tumour_type": np.asarray(TUMOUR_TYPES)[kind],
            "idh_mutant": (rng.random(n) < idh_p).astype(int),
        }
    )


def _soft(signed: np.ndarray, size: int) -> np.ndarray:
    """Soft inside-mask from a signed distance (negative inside), about one pixel wide."""
    return 1 / (1 + np.exp(np.clip(signed * size / 1.6, -30, 30)))


def _paint(image: np.ndarray, mask: np.ndarray, values: np.ndarray) -> None:
    """Composite ``values`` (C, or N x C) over ``image`` (N x C x H x W) where ``mask`` is 1."""
    values = np.asarray(values, np.float32)
    keep = 1 - mask
    # One channel at a time, in place: the temporaries stay the size of one channel.
    for c in range(image.shape[1]):
        value = values[c] if values.ndim == 1 else values[:, c, None, None]
        image[:, c] *= keep
        image[:, c] += mask * value


def _tumour_features(
    labels: pd.DataFrame, truth: BrainMRITruth, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    n = len(labels)
    rules = [truth.tumours[t] for t in labels["tumour_type"]]
    mutant = labels["idh_mutant"].to_numpy() == 1
    mods = truth.idh_mutant_modifiers

    def feature(name: str) -> np.ndarray:
        value = np.array([getattr(r, name) for r in rules])
        if name in mods:
            value = np.where(mutant, value * mods[name], value)
        return value * rng.lognormal(0.0, truth.spread, n)

    radius = np.clip(feature("radius"), 0.08, 0.4)
    return {
        "radius": radius,
        "irregularity": np.clip(feature("irregularity"), 0.0, 0.4),
        "enhancement": np.clip(feature("enhancement"), 0.0, 1.5),
        "necrosis": np.clip(feature("necrosis"), 0.0, 0.75),
        "oedema": np.clip(feature("oedema"), 0.05, 1.6),
        "calcified": rng.random(n) < np.array([r.calcification for r in rules]),
        "frontal": rng.random(n) < np.array([r.frontal for r in rules]),
        "mismatch": np.where(
            mutant & (labels["tumour_type"] == "astrocytoma").to_numpy(),
            mods["mismatch"] * rng.uniform(0.5, 1.5, n),
            0.0,
        ),
    }


def _render(
    labels: pd.DataFrame, truth: BrainMRITruth, size: int, rng: np.random.Generator
) -> np.ndarray:
    n = len(labels)
    tissue = {k: np.asarray(v, np.float32) for k, v in truth.tissues.items()}
    axis = np.linspace(-1, 1, size, dtype=np.float32)
    y, x = axis[None, :, None], axis[None, None, :]

    def column(values):
        return np.asarray(values, np.float32)[:, None, None]

    # Head: an ellipse of random size and tilt; brain, skull and scalp are shells inside it.
    half_w, half_h = column(rng.uniform(0.72, 0.8, n)), column(rng.uniform(0.86, 0.94, n))
    tilt = column(rng.normal(0, 0.08, n))
    xr, yr = x * np.cos(tilt) + y * np.sin(tilt), -x * np.sin(tilt) + y * np.cos(tilt)
    rho = np.sqrt((xr / half_w) ** 2 + (yr / half_h) ** 2)
    theta = np.arctan2(yr / half_h, xr / half_w)
    image = np.zeros((n, len(SEQUENCES), size, size), np.float32)
    _paint(image, _soft((rho - 1.0) * half_w, size), tissue["scalp"])
    _paint(image, _soft((rho - 0.94) * half_w, size), tissue["skull"])
    brain = _soft((rho - 0.86) * half_w, size)
    _paint(image, brain, tissue["grey"])
    gyri = 0.04 * np.sin(column(rng.integers(9, 14, n)) * theta + column(rng.uniform(0, 6.3, n)))
    _paint(image, _soft((rho - 0.68 - gyri) * half_w, size), tissue["white"])
    # Lateral ventricles widen with age (atrophy).
    width = column(0.07 + 0.0012 * (labels["age"].to_numpy() - 18) + rng.normal(0, 0.01, n))
    for side in (-1, 1):
        d = np.sqrt(((xr - side * 0.11 * half_w) / width) ** 2 + ((yr + 0.05) / 0.3) ** 2)
        _paint(image, _soft((d - 1.0) * width, size), tissue["csf"])

    f = _tumour_features(labels, truth, rng)
    radius = f["radius"] * half_w[:, 0, 0]
    reach = radius * (1 + f["oedema"])
    angle = np.where(f["frontal"], rng.uniform(-2.6, -0.5, n), rng.uniform(-np.pi, np.pi, n))
    distance = rng.uniform(0.15, 1.0, n) * np.clip(0.8 * half_w[:, 0, 0] - radius, 0.05, None)
    cx, cy = column(distance * np.cos(angle)), column(distance * np.sin(angle) * 1.1)
    # Image rows point posterior, so a frontal (anterior) tumour has a negative row coordinate.
    tr = np.sqrt((xr - cx) ** 2 + (yr - cy) ** 2)
    tt = np.arctan2(yr - cy, xr - cx)
    lobes = sum(
        column(rng.uniform(0.2, 0.6, n)) * np.cos(k * tt + column(rng.uniform(0, 6.3, n)))
        for k in (2, 3, 5)
    )
    outline = column(radius) * (1 + column(f["irregularity"]) * lobes)
    fingers = 1 + 0.1 * np.cos(6 * tt + column(rng.uniform(0, 6.3, n)))
    oedema = _soft(tr - column(reach) * fingers, size) * brain
    _paint(image, oedema, tissue["oedema"])
    solid = _soft(tr - outline, size)
    core = tissue["tumour"][None].repeat(n, 0)
    core[:, 3] *= 1 - f["mismatch"]
    _paint(image, solid, core)
    necrosis = _soft(tr - outline * column(f["necrosis"]), size) * (column(f["necrosis"]) > 0.05)
    _paint(image, necrosis, tissue["necrosis"])
    rim = np.clip(solid - necrosis, 0, 1) * column(f["enhancement"])
    image[:, 1] += rim * 0.55
    for _ in range(3):
        spot = rng.normal(0, 0.5, (n, 2)) * radius[:, None]
        d = np.sqrt((xr - cx - column(spot[:, 0])) ** 2 + (yr - cy - column(spot[:, 1])) ** 2)
        _paint(
            image, _soft(d - 0.035, size) * column(f["calcified"]) * solid, tissue["calcification"]
        )
    return image


def _scanner(
    image: np.ndarray,
    labels: pd.DataFrame,
    truth: BrainMRITruth,
    size: int,
    rng: np.random.Generator,
) -> np.ndarray:
    table = truth.sites.set_index("site")
    sites = table.loc[labels["site"]]
    n = len(image)
    out = np.empty_like(image)
    for site in truth.sites["site"]:
        rows = np.flatnonzero(labels["site"].to_numpy() == site)
        # Blur is given in pixels at 64 x 64: the same physical blur at any size.
        blur = float(table.at[site, "blur"]) * size / 64
        out[rows] = (
            ndimage.gaussian_filter(image[rows], (0, 0, blur, blur)) if blur else image[rows]
        )
    axis = np.linspace(-1, 1, size, dtype=np.float32)
    direction = rng.normal(size=(n, 3)).astype(np.float32)
    field_ = (
        direction[:, 0, None, None] * axis[None, :, None]
        + direction[:, 1, None, None] * axis[None, None, :]
        + direction[:, 2, None, None] * (axis[None, :, None] * axis[None, None, :])
    )
    bias = np.exp(sites["bias"].to_numpy(np.float32)[:, None, None] * field_ / 2)
    gain = sites[[f"gain_{s}" for s in SEQUENCES]].to_numpy(np.float32)
    sigma = sites["noise"].to_numpy(np.float32)[:, None, None]
    for c in range(out.shape[1]):
        channel = out[:, c]
        channel *= bias * gain[:, c, None, None]
        # Magnitude images: Rician noise, the modulus of a complex Gaussian signal.
        channel += sigma * rng.standard_normal(channel.shape, dtype=np.float32)
        np.hypot(channel, sigma * rng.standard_normal(channel.shape, dtype=np.float32), out=channel)
    return out


def brain_mri_cohort(
    n: int = 1000,
    *,
    sites: int = 3,
    size: int = 64,
    seed: int = 0,
    return_truth: bool = False,
) -> ImageSet | tuple[ImageSet, BrainMRITruth]:
    """Simulate axial brain MRI slices (T1, T1c, T2, FLAIR) of glioma patients at several sites.

    Parameters
    ----------
    n : int
        Number of patients (one slice each).
    sites : int
        Number of sites (scanners); the labels column ``site`` names them.
    size : int
        Height and width in pixels (at least 16; 32 for tests, 64 by default, 128 for detail).
    seed : int
        Seed of every random draw: the same seed gives the same images.
    return_truth : bool
        Also return the :class:`BrainMRITruth` that made the cohort.

    Returns
    -------
    ImageSet or (ImageSet, BrainMRITruth)
        Images ``n x 4 x size x size`` (float32, tissue intensities roughly in [0, 1.5]),
        labels ``patient_id, site, age, sex, tumour_type, idh_mutant``, spacing
        ``240 / size`` mm (a 24 cm field of view), orientation ``("P", "L")``.

    Examples
    --------
    >>> cohort = brain_mri_cohort(20, size=32, seed=1)
    >>> cohort.shape
    (20, 4, 32, 32)
    """
    problems = []
    if int(n) < 1:
        problems.append(f"n must be at least 1; got {n}")
    if int(sites) < 1:
        problems.append(f"sites must be at least 1; got {sites}")
    if int(size) < 16:
        problems.append(f"size must be at least 16 pixels; got {size}")
    if problems:
        raise InvalidDataError(problems)
    rng = np.random.default_rng(seed)
    truth = _default_rules(_site_table(int(sites), np.random.default_rng([seed, 1])))
    labels = _labels(int(n), truth, rng)
    image = _render(labels, truth, int(size), rng)
    image = _scanner(image, labels, truth, int(size), rng)
    cohort = ImageSet(
        image,
        labels,
        channels=SEQUENCES,
        spacing=(240 / size, 240 / size),
        orientation=("P", "L"),
        site_column="site",
        sources=labels["patient_id"].tolist(),
    )
    return (cohort, truth) if return_truth else cohort
