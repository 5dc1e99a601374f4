"""A simulated myelodysplastic-syndromes (MDS) cohort whose true effects are known.

The patients are SIMULATED, not real: every row is drawn from the model documented in
:func:`mds_cohort`, with published MDS frequencies and prognostic weights as its parameters, so
that a synthetic-data generator can be checked against a ground truth (:class:`MDSGroundTruth`)
rather than against another sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr

from fedsynth.tabular.metadata import ColumnMetadata, Metadata

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


@dataclass(frozen=True)
class MDSGroundTruth:
    """What is true of a simulated cohort from :func:`mds_cohort` by construction.

    Attributes
    ----------
    n, seed : int
        The arguments the cohort was drawn with.
    sites : tuple of str
        Site names, ``"site_1"`` first (the referral centre).
    site_case_mix : dict of str to str
        A sentence per site: share of patients, how its case mix differs, its ANC missingness.
    site_parameters : dict of str to dict
        The same as numbers: ``share``, ``risk_shift`` (mean of the latent risk, in SD),
        ``age_shift`` (years added to the mean age), ``anc_missing`` (expected missing share).
    genomic_columns : tuple of str
        The mutation-flag columns (group ``"genomic"``).
    target_frequencies, realised_frequencies : dict of str to float
        Mutation frequency by gene: the model's target, and the share in the returned frame.
    conditional_odds_ratios : dict of str to dict of str to float
        Odds ratio of each mutation per unit of each parent it was generated from (splicing
        factors: relative to carrying no splicing mutation). Parents are genes,
        ``complex_karyotype``, ``male``, ``age10`` ((age - 72) / 10) and ``risk`` (a latent
        disease risk, not a column).
    exclusive_pairs : tuple of (str, str)
        Gene pairs never mutated together (the splicing factors).
    cooccurring_pairs : tuple of (str, str)
        ``(parent, gene)`` pairs of genes whose conditional odds ratio is above 1.
    hazard_ratios : dict of str to float
        True hazard ratios of overall survival, conditional on each other.
    covariate_definitions : dict of str to str
        How each covariate of :attr:`hazard_ratios` is computed from the frame.
    weibull_shape, weibull_scale_months : float
        Baseline hazard of a 72-year-old woman with ``ipssm_score`` 0.
    survival : tuple of str
        ``("os_months", "os_status")``.
    missing_rates : dict of str to float
        Expected share of missing values of each laboratory column.
    """

    n: int
    seed: int
    sites: tuple[str, ...]
    site_case_mix: dict[str, str]
    site_parameters: dict[str, dict[str, float]]
    genomic_columns: tuple[str, ...]
    target_frequencies: dict[str, float]
    realised_frequencies: dict[str, float]
    conditional_odds_ratios: dict[str, dict[str, float]]
    exclusive_pairs: tuple[tuple[str, str], ...]
    cooccurring_pairs: tuple[tuple[str, str], ...]
    hazard_ratios: dict[str, float]
    covariate_definitions: dict[str, str]
    weibull_shape: float
    weibull_scale_months: float
    survival: tuple[str, str]
    missing_rates: dict[str, float]

    def metadata(self) -> Metadata:
        """The correct :class:`~fedsynth.tabular.metadata.Metadata` of the cohort (a fresh copy).

        ``patient_id`` identifier, ``site`` site, mutation flags binary in group ``"genomic"``,
        ``os_months``/``os_status`` the survival pair; bounds are left to the data.

        Examples
        --------
        >>> from fedsynth.datasets import mds_ground_truth
        >>> mds_ground_truth(n=200).metadata().survival
        ('os_months', 'os_status')
        """
        binary = {"kind": "binary", "dtype": "int64", "categories": [0, 1]}
        columns: dict[str, ColumnMetadata | dict] = {
            "patient_id": {"kind": "identifier", "dtype": "object"},
            "site": {"kind": "site", "dtype": "category", "categories": list(self.sites)},
            "age": {"kind": "numeric", "dtype": "int64", "integer": True},
            "sex": {"kind": "categorical", "dtype": "category", "categories": ["F", "M"]},
            "hb": {"kind": "numeric", "dtype": "float64", "integer": False},
            "plt": {"kind": "numeric", "dtype": "float64", "integer": True},
            "anc": {"kind": "numeric", "dtype": "float64", "integer": False},
            "bm_blasts": {"kind": "numeric", "dtype": "float64", "integer": False},
            "cyto_ipssr": {
                "kind": "categorical",
                "dtype": "category",
                "categories": list(CYTO_CATEGORIES),
            },
            "complex_karyotype": binary,
            **{gene: {**binary, "group": "genomic"} for gene in self.genomic_columns},
            "ipssm_score": {"kind": "numeric", "dtype": "float64", "integer": False},
            "ipssm_risk": {
                "kind": "categorical",
                "dtype": "category",
                "categories": list(RISK_CATEGORIES),
            },
            "os_months": {"kind": "duration", "dtype": "float64", "integer": False},
            "os_status": {"kind": "event", "dtype": "int64", "categories": [0, 1]},
        }
        return Metadata(columns)

    def survival_covariates(self, df: pd.DataFrame) -> pd.DataFrame:
        """The covariates of :attr:`hazard_ratios` computed from a cohort (real or synthetic).

        A Cox model of ``os_months``/``os_status`` on these columns estimates the true hazard
        ratios.

        Examples
        --------
        >>> from fedsynth.datasets import mds_cohort
        >>> df, truth = mds_cohort(n=200, return_truth=True)
        >>> list(truth.survival_covariates(df).columns)
        ['ipssm_score', 'age_per_10y', 'male', 'os_months', 'os_status']
        """
        return pd.DataFrame(
            {
                "ipssm_score": df["ipssm_score"].astype(float),
                "age_per_10y": (df["age"].astype(float) - 72.0) / 10.0,
                "male": (df["sex"] == "M").astype(int),
                "os_months": df["os_months"],
                "os_status": df["os_status"],
            },
            index=df.index,
        )


def mds_cohort(
    n: int = 4427, sites: int = 3, seed: int = 0, *, return_truth: bool = False
) -> pd.DataFrame | tuple[pd.DataFrame, MDSGroundTruth]:
    """Simulate a cohort of patients with myelodysplastic syndromes (MDS), over several sites.

    The patients are simulated, not real. The default size mirrors the 4427-patient, 3-node MDS
    study of the Synthema project; the same ``seed`` always gives the same frame.

    Parameters
    ----------
    n : int, default 4427
        Number of patients (rows).
    sites : int, default 3
        Number of hospitals; at most ``n``, each gets at least one patient.
    seed : int, default 0
        Seed of the numpy random generator.
    return_truth : bool, default False
        Also return the :class:`MDSGroundTruth` of the cohort.

    Returns
    -------
    df : DataFrame
        One row per patient (46 columns):

        - ``patient_id`` ("MDS-00001", ...): an identifier, unique per row;
        - ``site`` ("site_1", ...; category);
        - ``age`` (years, int), ``sex`` ("F"/"M"; category);
        - ``hb`` (haemoglobin, g/dL, 1 decimal), ``plt`` (platelets, 10^9/L, whole numbers in
          a float column because some are missing), ``anc`` (neutrophils, 10^9/L,
          2 decimals), ``bm_blasts`` (bone-marrow blasts, %, 1 decimal, 0-19);
        - ``cyto_ipssr`` (IPSS-R cytogenetic category; ordered category),
          ``complex_karyotype`` (0/1);
        - 32 mutation flags named by gene symbol (0/1 int), see :data:`TARGET_FREQUENCIES`;
        - ``ipssm_score`` (2 decimals) and ``ipssm_risk`` (ordered category);
        - ``os_months`` (overall survival, months, 1 decimal, > 0) and ``os_status``
          (1 = death, 0 = censored).
    truth : MDSGroundTruth
        Only with ``return_truth=True``.

    Raises
    ------
    ValueError
        When ``n``, ``sites`` or ``seed`` is not a whole number in range.

    Notes
    -----
    The cohort is drawn in the order below; every number is a module constant.

    *Sites.* Site sizes are proportional to ``(j + 1) ** -0.7`` (48/30/22 % for three sites).
    Each site shifts the mean of a latent disease risk (standard normal within a site) and the
    mean age, linearly from ``site_1``, a referral centre (+0.5 SD risk, +3 years), to the last
    site (-0.25 SD, -2 years): sites are not identically distributed, and every variable that
    depends on the latent risk (cytogenetics, genes, labs, score, survival) differs with them.

    *Demography.* Age is 18 + 77 x Beta(a, 3.2) years (median about 72, skewed to the left as
    in MDS registries); 60 % are men.

    *Cytogenetics.* An ordered-probit latent (loading 0.6 on the latent risk) is cut so that
    the IPSS-R categories Very Good/Good/Intermediate/Poor/Very Poor have expected frequencies
    4/66/15/6/9 %. ``complex_karyotype`` is 1 for every Very Poor karyotype (> 3 abnormalities)
    and for 40 % of Poor ones (3 abnormalities), about 11 % in all.

    *Mutations.* Each flag is a logistic draw given "parents" drawn before it, with the
    intercept solved so that the expected frequency equals its target (:data:`TARGET_FREQUENCIES`,
    the order of magnitude of Bernard et al. 2022 and Papaemmanuil et al. 2013). TP53 comes
    first, with an odds ratio of exp(3.6), about 37, for a complex karyotype (more than half
    of complex karyotypes carry TP53, as in MDS series). The four splicing factors SF3B1, SRSF2,
    U2AF1 and ZRSR2 are one multinomial draw, so a patient carries at most one. The other genes
    follow the published co-mutation patterns: SRSF2 with TET2, ASXL1, RUNX1, STAG2 and IDH2;
    SF3B1 with DNMT3A and JAK2 and rarely with TP53; ASXL1 with EZH2 and SETBP1; NPM1 with FLT3.
    The odds ratios are in :attr:`MDSGroundTruth.conditional_odds_ratios`.

    *Laboratory values.* Each is a linear model of the latent risk, sex and genes plus normal
    noise on a transformed scale: SF3B1 lowers blasts and haemoglobin (ring-sideroblast
    anaemia) and raises platelets; TP53, RUNX1, ASXL1, STAG2 and NPM1 raise blasts; TP53,
    RUNX1 and ASXL1 lower platelets. Blasts are 19 x logistic(latent), so they stay in 0-19 %
    (20 % blasts is AML, not MDS).

    *Risk score.* ``ipssm_score`` applies the IPSS-M formula (Bernard et al. 2022): the sum of
    weight x (value - reference mean) over haemoglobin, min(platelets, 250) / 100,
    min(blasts, 20) / 5, the IPSS-R cytogenetic category (0-4), the main-effect genes and the
    number of mutated residual genes (at most 2), divided by log(2). Simplifications: every
    TP53 mutation counts as multi-hit, KMT2A stands for MLL-PTD, and del(5q) is not simulated
    (every SF3B1 mutation without a BCOR/BCORL1/RUNX1/NRAS/STAG2/SRSF2 co-mutation is
    "SF3B1 alpha"). It is computed from the complete laboratory values, before some are made
    missing. ``ipssm_risk`` cuts it at -1.5, -0.5, 0, 0.5 and 1.5 (right-closed).

    *Survival.* Overall survival follows a proportional-hazards model,
    h(t | x) = h0(t) exp(log(1.6) ipssm_score + log(1.45) (age - 72) / 10 + log(1.2) male),
    with a Weibull baseline (shape 1.05, scale 55 months): hazard ratio 1.6 per unit of
    IPSS-M score, 1.45 per 10 years of age, 1.2 for men (:data:`HAZARD_RATIOS`, conditional on
    each other; no direct site effect, so sites differ in survival only through their case
    mix). Follow-up ends at an administrative censoring time, uniform on 0-144 months
    (diagnoses spread over 12 years), or at a random loss to follow-up (exponential, about 5 %
    a year), both independent of the covariates. Median overall survival is about 3 years
    (from about 7 years for Very Low to under 1 year for Very High risk) and about 45 % of
    patients are censored.

    *Missing values.* hb 1 % and plt 2 % completely at random; anc 6 %, 3.5 times as likely at
    the last site as at the others (a laboratory that often omits the differential count: at
    random given the site); bm_blasts 3 %, three times as likely from age 80 (fewer marrow
    examinations in the oldest: at random given age). Rates are expected shares over the
    whole cohort. Genes, cytogenetics, the score and survival are never missing.

    References
    ----------
    Bernard E, et al. Molecular International Prognostic Scoring System for myelodysplastic
    syndromes. NEJM Evidence 2022;1(7).
    Papaemmanuil E, et al. Clinical and biological implications of driver mutations in
    myelodysplastic syndromes. Blood 2013;122:3616-27.
    Greenberg PL, et al. Revised International Prognostic Scoring System for myelodysplastic
    syndromes. Blood 2012;120:2454-65.
    Haferlach T, et al. Landscape of genetic lesions in 944 patients with myelodysplastic
    syndromes. Leukemia 2014;28:241-7.

    Examples
    --------
    >>> from fedsynth.datasets import mds_cohort
    >>> df = mds_cohort(n=500, sites=3, seed=1)
    >>> df.shape
    (500, 46)
    >>> df["site"].cat.categories.tolist()
    ['site_1', 'site_2', 'site_3']
    """
    _check_arguments(n, sites, seed)
    rng = np.random.default_rng(seed)
    site_names = tuple(f"site_{j + 1}" for j in range(sites))
    table = _site_table(n, sites)
    site = rng.permutation(np.repeat(np.arange(sites), table["size"]))
    risk = table["risk_shift"][site] + rng.standard_normal(n)
    # Beta(a, b) on [18, 95], with a set per site so that its mean is the site's mean age.
    span = _AGE_HIGH - _AGE_LOW
    mean01 = (_AGE_MEAN + table["age_shift"] - _AGE_LOW) / span
    age_a = _AGE_BETA_B * mean01 / (1 - mean01)
    age = np.rint(_AGE_LOW + span * rng.beta(age_a[site], _AGE_BETA_B)).astype(np.int64)
    male = (rng.random(n) < _MALE_SHARE).astype(np.int64)

    cyto = _draw_cytogenetics(rng, risk, table)
    complex_karyotype = (
        (cyto == 4) | ((cyto == 3) & (rng.random(n) < _POOR_COMPLEX_SHARE))
    ).astype(np.int64)
    parents: dict[str, np.ndarray] = {
        "risk": risk,
        "age10": (age - 72.0) / 10.0,
        "male": male,
        "complex_karyotype": complex_karyotype,
    }
    parents["TP53"] = _draw_mutation(rng, TARGET_FREQUENCIES["TP53"], _TP53_EFFECTS, parents)
    parents.update(_draw_splicing(rng, parents))
    for gene, effects in _CO_MUTATION_EFFECTS.items():
        parents[gene] = _draw_mutation(rng, TARGET_FREQUENCIES[gene], effects, parents)

    labs = _draw_labs(rng, parents)
    score = _ipssm_score(labs, cyto, parents)
    os_months, os_status = _draw_survival(rng, score, age, male)
    observed = _mask_labs(rng, labs, table["anc_weight"][site], age)

    width = max(5, len(str(n)))
    df = pd.DataFrame(
        {
            "patient_id": [f"MDS-{i:0{width}d}" for i in range(1, n + 1)],
            "site": pd.Categorical.from_codes(site, categories=list(site_names)),
            "age": age,
            "sex": pd.Categorical.from_codes(male, categories=["F", "M"]),
            **observed,
            "cyto_ipssr": pd.Categorical.from_codes(cyto, CYTO_CATEGORIES, ordered=True),
            "complex_karyotype": complex_karyotype,
            **{gene: parents[gene] for gene in GENES},
            "ipssm_score": score,
            "ipssm_risk": pd.Categorical.from_codes(
                np.searchsorted(RISK_CUTOFFS, score, side="left"), RISK_CATEGORIES, ordered=True
            ),
            "os_months": os_months,
            "os_status": os_status,
        }
    )
    if not return_truth:
        return df
    return df, _ground_truth(df, seed, site_names, table)


def mds_ground_truth(n: int = 4427, sites: int = 3, seed: int = 0) -> MDSGroundTruth:
    """The :class:`MDSGroundTruth` of ``mds_cohort(n, sites, seed)``.

    Examples
    --------
    >>> from fedsynth.datasets import mds_ground_truth
    >>> truth = mds_ground_truth()
    >>> truth.hazard_ratios["ipssm_score"]
    1.6
    """
    return mds_cohort(n, sites, seed, return_truth=True)[1]


def _check_arguments(n: object, sites: object, seed: object) -> None:
    problems = []
    for name, value, low in (("n", n, 1), ("sites", sites, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            problems.append(f"{name} must be a whole number, got {value!r}")
        elif value < low:
            problems.append(f"{name} must be >= {low}, got {value}")
    if not problems and sites > n:
        problems.append(f"sites ({sites}) must be at most n ({n}): every site needs a patient")
    if problems:
        raise ValueError("; ".join(problems))


def _site_table(n: int, sites: int) -> dict[str, np.ndarray]:
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


def _draw_cytogenetics(rng, risk: np.ndarray, table: dict[str, np.ndarray]) -> np.ndarray:
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


def _draw_mutation(rng, frequency: float, effects: dict[str, float], parents) -> np.ndarray:
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


def _draw_splicing(rng, parents) -> dict[str, np.ndarray]:
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


def _draw_labs(rng, parents) -> dict[str, np.ndarray]:
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


def _ipssm_score(labs, cyto, genes) -> np.ndarray:
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


def _draw_survival(rng, score, age, male) -> tuple[np.ndarray, np.ndarray]:
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


def _mask_labs(rng, labs, anc_weight: np.ndarray, age: np.ndarray) -> dict[str, np.ndarray]:
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


def _ground_truth(df, seed: int, site_names, table: dict[str, np.ndarray]) -> MDSGroundTruth:
    shares, anc_weight = table["share"], table["anc_weight"]
    anc_missing = MISSING_RATES["anc"] * anc_weight / (shares @ anc_weight)
    site_parameters = {
        name: {
            "share": float(shares[j]),
            "risk_shift": float(table["risk_shift"][j]),
            "age_shift": float(table["age_shift"][j]),
            "anc_missing": float(anc_missing[j]),
        }
        for j, name in enumerate(site_names)
    }
    site_case_mix = {}
    for j, (name, p) in enumerate(site_parameters.items()):
        if len(site_names) == 1:
            role = "single site"
        elif j == 0:
            role = "referral centre, older and higher-risk patients"
        else:
            role = "regional centre"
        site_case_mix[name] = (
            f"{role}: {p['share']:.0%} of patients, latent risk {p['risk_shift']:+.2f} SD, "
            f"mean age {p['age_shift']:+.1f} years, ANC missing {p['anc_missing']:.1%}"
        )
    odds_ratios = {"TP53": {p: math.exp(c) for p, c in _TP53_EFFECTS.items()}}
    for model in (_SPLICING_EFFECTS, _CO_MUTATION_EFFECTS):
        odds_ratios.update({g: {p: math.exp(c) for p, c in e.items()} for g, e in model.items()})
    return MDSGroundTruth(
        n=len(df),
        seed=seed,
        sites=site_names,
        site_case_mix=site_case_mix,
        site_parameters=site_parameters,
        genomic_columns=GENES,
        target_frequencies=dict(TARGET_FREQUENCIES),
        realised_frequencies={g: float(df[g].mean()) for g in GENES},
        conditional_odds_ratios={g: odds_ratios[g] for g in GENES},
        exclusive_pairs=tuple(combinations(SPLICING_FACTORS, 2)),
        cooccurring_pairs=tuple(
            (parent, gene)
            for gene, ors in odds_ratios.items()
            for parent, ratio in ors.items()
            if parent in TARGET_FREQUENCIES and ratio > 1
        ),
        hazard_ratios=dict(HAZARD_RATIOS),
        covariate_definitions=dict(COVARIATE_DEFINITIONS),
        weibull_shape=WEIBULL_SHAPE,
        weibull_scale_months=WEIBULL_SCALE_MONTHS,
        survival=("os_months", "os_status"),
        missing_rates=dict(MISSING_RATES),
    )
