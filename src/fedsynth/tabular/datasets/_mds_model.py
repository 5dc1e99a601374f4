"""The model behind :func:`~fedsynth.tabular.datasets.mds.mds_cohort`: its parameters (published
MDS frequencies and prognostic weights) and the draws of each group of columns.

The public constants are re-exported by :mod:`fedsynth.tabular.datasets.mds`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit, ndtr

#: Mutation flags, in column order (most frequent first), with their target frequencies: the
#: order of magnitude reported by Bernard et al. (2022, IPSS-M cohort, n = 2957) and
#: Papaemmanuil et al. (2013, n = 738).
TARGET_FREQUENCIES: dict[str, float] = {
    "TET2": 0.25, "SF3B1": 0.22, "ASXL1": 0.20, "SRSF2": 0.12, "DNMT3A": 0.12, "RUNX1": 0.10,
    "TP53": 0.09, "U2AF1": 0.07, "STAG2": 0.07, "EZH2": 0.05, "ZRSR2": 0.05, "BCOR": 0.04,
    "IDH2": 0.04, "NRAS": 0.04, "CBL": 0.04, "PPM1D": 0.04, "IDH1": 0.03, "ETV6": 0.03,
    "CUX1": 0.03, "SETBP1": 0.025, "KRAS": 0.02, "PHF6": 0.02, "DDX41": 0.02, "KMT2A": 0.02,
    "BCORL1": 0.02, "NF1": 0.02, "JAK2": 0.02, "NPM1": 0.015, "FLT3": 0.015, "WT1": 0.015,
    "GATA2": 0.01, "ETNK1": 0.01,
}  # fmt: skip
GENES: tuple[str, ...] = tuple(TARGET_FREQUENCIES)
#: Splicing-factor genes: at most one of them is mutated in a patient.
SPLICING_FACTORS: tuple[str, ...] = ("SF3B1", "SRSF2", "U2AF1", "ZRSR2")
#: IPSS-R cytogenetic categories (Greenberg et al. 2012) and their target frequencies.
CYTO_CATEGORIES: tuple[str, ...] = ("Very Good", "Good", "Intermediate", "Poor", "Very Poor")
CYTO_FREQUENCIES: tuple[float, ...] = (0.04, 0.66, 0.15, 0.06, 0.09)
#: IPSS-M risk categories and the published cut-offs of the score between them.
RISK_CATEGORIES: tuple[str, ...] = (
    "Very Low", "Low", "Moderate Low", "Moderate High", "High", "Very High",
)  # fmt: skip
RISK_CUTOFFS: tuple[float, ...] = (-1.5, -0.5, 0.0, 0.5, 1.5)
#: True hazard ratios of overall survival, h(t | x) = h0(t) exp(sum of log(HR) * covariate).
HAZARD_RATIOS: dict[str, float] = {"ipssm_score": 1.6, "age_per_10y": 1.45, "male": 1.2}
COVARIATE_DEFINITIONS: dict[str, str] = {
    "ipssm_score": "the ipssm_score column, per unit (IPSS-M units: log2 of a hazard ratio)",
    "age_per_10y": "(age - 72) / 10: per 10 years of age at diagnosis",
    "male": "1 when sex == 'M', 0 when 'F'",
}
#: Weibull baseline hazard h0(t) = (k / s) (t / s)^(k - 1), t in months: a 72-year-old woman
#: with ipssm_score 0.
WEIBULL_SHAPE = 1.05
WEIBULL_SCALE_MONTHS = 55.0
#: Expected share of missing values of the laboratory columns (patterns in mds_cohort's Notes).
MISSING_RATES: dict[str, float] = {"hb": 0.01, "plt": 0.02, "anc": 0.06, "bm_blasts": 0.03}

# Conditional log-odds of a mutation given its "parents", which are generated before it:
# "risk" is the latent disease risk (standard normal within a site), "age10" is
# (age - 72) / 10, "male" and "complex_karyotype" are 0/1, and gene names are mutation flags.
# Each model's intercept is solved so that the expected frequency equals the target.
_TP53_EFFECTS: dict[str, float] = {"complex_karyotype": 3.6, "risk": 0.3}
# Splicing factors are one draw from a multinomial logit (no mutation is the reference), which
# makes them mutually exclusive as in Papaemmanuil 2013. ZRSR2 is X-linked and mostly mutated in
# men; SF3B1 marks lower-risk disease and is rare with TP53 or a complex karyotype.
_SPLICING_EFFECTS: dict[str, dict[str, float]] = {
    "SF3B1": {"risk": -0.5, "complex_karyotype": -1.5, "TP53": -1.2},
    "SRSF2": {"risk": 0.3, "male": 0.6, "age10": 0.3},
    "U2AF1": {"risk": 0.3, "male": 0.3},
    "ZRSR2": {"risk": 0.1, "male": 1.5},
}
# The remaining genes, in generation order. SRSF2 travels with TET2, ASXL1, RUNX1, STAG2 and
# IDH2 (the CMML-like "secondary-type" cluster), SF3B1 with DNMT3A and JAK2, ASXL1 with EZH2 and
# SETBP1, NPM1 with FLT3; TET2/DNMT3A/PPM1D rise with age (clonal haematopoiesis).
_CO_MUTATION_EFFECTS: dict[str, dict[str, float]] = {
    "TET2": {"SRSF2": 1.3, "ZRSR2": 0.6, "TP53": -0.8, "age10": 0.35},
    "DNMT3A": {"SF3B1": 0.8, "age10": 0.2},
    "ASXL1": {"SRSF2": 1.2, "U2AF1": 0.5, "SF3B1": -0.8, "TP53": -0.6, "male": 0.3, "risk": 0.5},
    "RUNX1": {"SRSF2": 1.0, "ASXL1": 0.7, "SF3B1": -0.8, "risk": 0.5},
    "STAG2": {"SRSF2": 1.1, "ASXL1": 0.6, "RUNX1": 0.6, "SF3B1": -1.0, "risk": 0.3},
    "EZH2": {"ASXL1": 1.2, "RUNX1": 0.6, "risk": 0.3},
    "IDH2": {"SRSF2": 1.6, "ASXL1": 0.3, "risk": 0.3},
    "IDH1": {"SRSF2": 0.4, "risk": 0.3},
    "BCOR": {"RUNX1": 1.0, "U2AF1": 0.6, "risk": 0.3},
    "BCORL1": {"RUNX1": 0.6, "risk": 0.3},
    "CBL": {"SRSF2": 0.7, "TET2": 0.5, "risk": 0.3},
    "NRAS": {"SRSF2": 0.6, "risk": 0.5},
    "KRAS": {"SRSF2": 0.4, "risk": 0.5},
    "ETV6": {"ASXL1": 0.4, "risk": 0.5},
    "NPM1": {"DNMT3A": 0.8, "risk": 0.9},
    "FLT3": {"NPM1": 2.0, "DNMT3A": 0.5, "risk": 0.5},
    "SETBP1": {"ASXL1": 1.4, "SRSF2": 0.5, "risk": 0.3},
    "PHF6": {"RUNX1": 0.9, "male": 0.8, "risk": 0.2},
    "CUX1": {"TET2": 0.5, "risk": 0.3},
    "PPM1D": {"TP53": 0.3, "age10": 0.4},
    "DDX41": {"male": 1.0, "risk": 0.2},
    "KMT2A": {"risk": 0.7},
    "NF1": {"risk": 0.4},
    "WT1": {"risk": 0.8},
    "GATA2": {"age10": -0.5, "risk": 0.3},
    "ETNK1": {"SRSF2": 0.6},
    "JAK2": {"SF3B1": 1.2, "risk": -0.3},
}

# Laboratory values: (intercept, noise standard deviation, effects) on the scale of each lab's
# latent value: g/dL for hb, log(10^9/L) for plt and anc, logit(blasts / 19) for bm_blasts.
_LAB_MODELS: dict[str, tuple[float, float, dict[str, float]]] = {
    # SF3B1 (ring sideroblasts) and U2AF1 deepen anaemia; JAK2 (MDS/MPN-RS-T) raises counts.
    "hb": (9.9, 1.7, {"risk": -0.35, "male": 0.5, "SF3B1": -0.5, "U2AF1": -0.3, "TP53": -0.3,
                       "JAK2": 0.8}),
    "plt": (math.log(150.0), 0.75, {"risk": -0.35, "SF3B1": 0.35, "JAK2": 0.8, "TP53": -0.45,
                                    "RUNX1": -0.35, "ASXL1": -0.15, "EZH2": -0.2, "U2AF1": -0.2}),
    "anc": (math.log(1.9), 0.8, {"risk": -0.3, "TP53": -0.2, "SRSF2": 0.2, "CBL": 0.3,
                                 "NRAS": 0.2, "BCOR": -0.2}),
    # SF3B1 lowers blasts; TP53, RUNX1, ASXL1, STAG2, NPM1, FLT3 and IDH2 raise them.
    "bm_blasts": (-1.8, 1.0, {"risk": 0.6, "complex_karyotype": 0.3, "SF3B1": -0.7, "TP53": 0.5,
                              "RUNX1": 0.5, "ASXL1": 0.25, "STAG2": 0.4, "NPM1": 0.9, "FLT3": 0.5,
                              "IDH2": 0.3, "EZH2": 0.2}),
}  # fmt: skip

# IPSS-M terms (Bernard et al. 2022; the `ipssm` R package): (weight, reference mean).
_IPSSM_TERMS: dict[str, tuple[float, float]] = {
    "HB1": (-0.171, 9.87), "TRANSF_PLT100": (-0.222, 1.41), "BLAST5": (0.352, 0.922),
    "CYTOVEC": (0.287, 1.39), "TP53multi": (1.18, 0.071), "FLT3": (0.798, 0.0108),
    "MLL_PTD": (0.798, 0.0247), "SF3B1_5q": (0.504, 0.0166), "NPM1": (0.43, 0.0112),
    "RUNX1": (0.423, 0.126), "NRAS": (0.417, 0.0362), "ETV6": (0.391, 0.0216),
    "IDH2": (0.379, 0.0429), "CBL": (0.295, 0.0473), "EZH2": (0.27, 0.0588),
    "U2AF1": (0.247, 0.0866), "SRSF2": (0.239, 0.158), "DNMT3A": (0.221, 0.161),
    "ASXL1": (0.213, 0.252), "KRAS": (0.202, 0.0271), "SF3B1_alpha": (-0.0794, 0.186),
    "nRes2": (0.231, 0.388),
}  # fmt: skip
_IPSSM_RESIDUAL_GENES = ("BCOR", "BCORL1", "ETNK1", "GATA2", "IDH1", "NF1", "PHF6", "PPM1D",
                         "SETBP1", "STAG2", "WT1")  # fmt: skip
# Co-mutations that take SF3B1 out of the favourable "SF3B1 alpha" group of IPSS-M.
_SF3B1_BETA_PARTNERS = ("BCOR", "BCORL1", "RUNX1", "NRAS", "STAG2", "SRSF2")

_MALE_SHARE = 0.60
_POOR_COMPLEX_SHARE = 0.40  # Poor-risk karyotypes with exactly 3 abnormalities
_CYTO_RISK_LOADING = 0.6  # correlation of the cytogenetic latent with the disease risk
_AGE_MEAN, _AGE_LOW, _AGE_HIGH, _AGE_BETA_B = 70.0, 18, 95, 3.2
_ANC_LAST_SITE_WEIGHT = 3.5  # the last site's laboratory often omits the differential count
_OLD_BLASTS_MISSING_WEIGHT = 3.0  # marrow examinations are less often done from age 80
_FOLLOW_UP_MONTHS = 144.0  # diagnoses spread evenly over 12 years before the data lock
_LOSS_RATE_PER_MONTH = 1 / 240  # random loss to follow-up, about 5 % a year


def site_table(n: int, sites: int) -> dict[str, np.ndarray]:
    """Per-site size, share, latent-risk and age shifts, and weight of ANC missingness."""
    weights = (np.arange(sites) + 1.0) ** -0.7
    expected = n * weights / weights.sum()
    sizes = np.floor(expected).astype(np.int64)
    sizes[np.argsort(sizes - expected, kind="stable")[: n - sizes.sum()]] += 1
    while (sizes == 0).any():  # only when n is close to sites: the largest site gives one up
        sizes[np.argmax(sizes)] -= 1
        sizes[np.argmin(sizes)] += 1
    # Shifts fall linearly from the referral centre (site_1) to the last site.
    position = np.arange(sites) / max(sites - 1, 1)
    several = sites > 1
    anc_weight = np.ones(sites)
    anc_weight[-1] = _ANC_LAST_SITE_WEIGHT if several else 1.0
    return {
        "size": sizes,
        "share": sizes / n,
        "risk_shift": (0.5 - 0.75 * position) * several,
        "age_shift": (3.0 - 5.0 * position) * several,
        "anc_weight": anc_weight,
    }


def draw_age(rng, site: np.ndarray, table: dict[str, np.ndarray]) -> np.ndarray:
    """Ages in years: Beta(a, b) on [18, 95], with a set per site so that its mean is the site's
    mean age."""
    span = _AGE_HIGH - _AGE_LOW
    mean01 = (_AGE_MEAN + table["age_shift"] - _AGE_LOW) / span
    age_a = _AGE_BETA_B * mean01 / (1 - mean01)
    return np.rint(_AGE_LOW + span * rng.beta(age_a[site], _AGE_BETA_B)).astype(np.int64)


def draw_male(rng, n: int) -> np.ndarray:
    """1 for a man, 0 for a woman."""
    return (rng.random(n) < _MALE_SHARE).astype(np.int64)


def draw_complex_karyotype(rng, cyto: np.ndarray) -> np.ndarray:
    """0/1: every Very Poor karyotype is complex, and a share of the Poor ones."""
    return ((cyto == 4) | ((cyto == 3) & (rng.random(len(cyto)) < _POOR_COMPLEX_SHARE))).astype(
        np.int64
    )


def draw_cytogenetics(rng, risk: np.ndarray, table: dict[str, np.ndarray]) -> np.ndarray:
    """IPSS-R category codes 0-4 from an ordered probit correlated with the latent risk."""
    from scipy.optimize import brentq  # here: at module level it doubles `import fedsynth`

    loading = _CYTO_RISK_LOADING
    latent = loading * risk + math.sqrt(1 - loading**2) * rng.standard_normal(len(risk))
    # Within a site the latent is N(loading * shift, 1): cut the mixture at its quantiles.
    means = loading * table["risk_shift"]
    cuts = [
        brentq(lambda x, q=q: float(table["share"] @ ndtr(x - means)) - q, -20, 20)
        for q in np.cumsum(CYTO_FREQUENCIES)[:-1]
    ]
    return np.searchsorted(cuts, latent).astype(np.int64)


def _linear(effects: dict[str, float], parents: dict[str, np.ndarray]) -> np.ndarray:
    """Sum of coefficient x parent over ``effects``."""
    total = np.zeros(len(parents["risk"]))
    for name, coef in effects.items():
        total += coef * parents[name]
    return total


def draw_mutation(rng, frequency: float, effects: dict[str, float], parents) -> np.ndarray:
    """0/1 draws with logit P = a + effects; ``a`` solved so that mean P is ``frequency``."""
    from scipy.optimize import brentq  # here: at module level it doubles `import fedsynth`

    offset = _linear(effects, parents)
    # mean P lies between expit(a + min offset) and expit(a + max offset): bracket the root.
    logit = math.log(frequency / (1 - frequency))
    intercept = brentq(
        lambda a: expit(a + offset).mean() - frequency,
        logit - offset.max() - 1,
        logit - offset.min() + 1,
        xtol=1e-8,
    )
    return (rng.random(len(offset)) < expit(intercept + offset)).astype(np.int64)


def draw_splicing(rng, parents) -> dict[str, np.ndarray]:
    """One multinomial draw among the splicing factors (or none), calibrated to the targets."""
    eta = np.column_stack([_linear(_SPLICING_EFFECTS[g], parents) for g in SPLICING_FACTORS])
    targets = np.array([TARGET_FREQUENCIES[g] for g in SPLICING_FACTORS])
    intercepts = np.log(targets / (1 - targets.sum()))
    # Fixed-point updates of the intercepts until the mean probabilities match the targets.
    for _ in range(500):
        odds = np.exp(eta + intercepts)
        probs = odds / (1 + odds.sum(axis=1, keepdims=True))
        mean = probs.mean(axis=0)
        step = np.log(targets / mean) - math.log((1 - targets.sum()) / (1 - mean.sum()))
        if np.abs(step).max() < 1e-10:
            break
        intercepts += step
    chosen = (rng.random(len(eta))[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    return {g: (chosen == j).astype(np.int64) for j, g in enumerate(SPLICING_FACTORS)}


def draw_genes(rng, parents: dict[str, np.ndarray]) -> None:
    """Every mutation flag, added to ``parents`` in generation order: TP53, the splicing factors,
    then the co-mutations (each drawn given those before it)."""
    parents["TP53"] = draw_mutation(rng, TARGET_FREQUENCIES["TP53"], _TP53_EFFECTS, parents)
    parents.update(draw_splicing(rng, parents))
    for gene, effects in _CO_MUTATION_EFFECTS.items():
        parents[gene] = draw_mutation(rng, TARGET_FREQUENCIES[gene], effects, parents)


def conditional_odds_ratios() -> dict[str, dict[str, float]]:
    """Each gene's odds ratio given each of its parents, from the models' coefficients."""
    odds_ratios = {"TP53": {p: math.exp(c) for p, c in _TP53_EFFECTS.items()}}
    for model in (_SPLICING_EFFECTS, _CO_MUTATION_EFFECTS):
        odds_ratios.update({g: {p: math.exp(c) for p, c in e.items()} for g, e in model.items()})
    return odds_ratios


def draw_labs(rng, parents) -> dict[str, np.ndarray]:
    """Complete laboratory values, rounded as a laboratory reports them."""
    n = len(parents["risk"])
    latent = {
        lab: intercept + _linear(effects, parents) + sd * rng.standard_normal(n)
        for lab, (intercept, sd, effects) in _LAB_MODELS.items()
    }
    return {
        "hb": np.round(np.clip(latent["hb"], 4.0, 16.5), 1),
        "plt": np.rint(np.clip(np.exp(latent["plt"]), 3.0, 1500.0)),
        "anc": np.round(np.clip(np.exp(latent["anc"]), 0.01, 40.0), 2),
        "bm_blasts": np.round(19.0 * expit(latent["bm_blasts"]), 1),
    }


def ipssm_score(labs, cyto, genes) -> np.ndarray:
    """The IPSS-M formula applied to the simulated values (simplifications in mds_cohort)."""
    sf3b1_beta = np.zeros(len(cyto), dtype=bool)
    for partner in _SF3B1_BETA_PARTNERS:
        sf3b1_beta |= genes[partner] == 1
    values = {
        "HB1": labs["hb"],
        "TRANSF_PLT100": np.minimum(labs["plt"], 250.0) / 100.0,
        "BLAST5": np.minimum(labs["bm_blasts"], 20.0) / 5.0,
        "CYTOVEC": cyto,
        "TP53multi": genes["TP53"],
        "MLL_PTD": genes["KMT2A"],
        "SF3B1_5q": np.zeros(len(cyto)),
        "SF3B1_alpha": (genes["SF3B1"] == 1) & ~sf3b1_beta,
        "nRes2": np.minimum(sum(genes[g] for g in _IPSSM_RESIDUAL_GENES), 2),
    }
    total = np.zeros(len(cyto))
    for term, (weight, mean) in _IPSSM_TERMS.items():
        total += weight * ((values[term] if term in values else genes[term]) - mean)
    return np.round(total / math.log(2.0), 2)


def draw_survival(rng, score, age, male) -> tuple[np.ndarray, np.ndarray]:
    """Weibull proportional-hazards times with administrative and random censoring."""
    n = len(score)
    log_hr = {name: math.log(hr) for name, hr in HAZARD_RATIOS.items()}
    eta = (
        log_hr["ipssm_score"] * score
        + log_hr["age_per_10y"] * (age - 72.0) / 10.0
        + log_hr["male"] * male
    )
    # Inverse of S(t | x) = exp(-(t / scale)^shape exp(eta)) at an exponential draw.
    death = WEIBULL_SCALE_MONTHS * (rng.exponential(size=n) * np.exp(-eta)) ** (1 / WEIBULL_SHAPE)
    censor = np.minimum(
        rng.uniform(0.0, _FOLLOW_UP_MONTHS, size=n),
        rng.exponential(1 / _LOSS_RATE_PER_MONTH, size=n),
    )
    status = (death <= censor).astype(np.int64)
    months = np.maximum(np.round(np.minimum(death, censor), 1), 0.1)
    return months, status


def mask_labs(rng, labs, anc_weight: np.ndarray, age: np.ndarray) -> dict[str, np.ndarray]:
    """Laboratory values with the missing ones set to NaN (patterns in mds_cohort's Notes)."""
    n = len(age)
    weights = {
        "hb": np.ones(n),
        "plt": np.ones(n),
        "anc": anc_weight,
        "bm_blasts": np.where(age >= 80, _OLD_BLASTS_MISSING_WEIGHT, 1.0),
    }
    observed = {}
    for lab, weight in weights.items():
        # Scaled so that the expected share over the cohort is the documented rate.
        p_missing = MISSING_RATES[lab] * weight / weight.mean()
        observed[lab] = np.where(rng.random(n) < p_missing, np.nan, labs[lab])
    return observed
