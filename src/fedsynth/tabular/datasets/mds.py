"""A simulated myelodysplastic-syndromes (MDS) cohort whose true effects are known.

The patients are SIMULATED, not real: every row is drawn from the model documented in
:func:`mds_cohort`, with published MDS frequencies and prognostic weights as its parameters, so
that a synthetic-data generator can be checked against a ground truth (:class:`MDSGroundTruth`)
rather than against another sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from fedsynth.tabular.datasets._mds_model import (
    COVARIATE_DEFINITIONS,
    CYTO_CATEGORIES,
    CYTO_FREQUENCIES,
    GENES,
    HAZARD_RATIOS,
    MISSING_RATES,
    RISK_CATEGORIES,
    RISK_CUTOFFS,
    SPLICING_FACTORS,
    TARGET_FREQUENCIES,
    WEIBULL_SCALE_MONTHS,
    WEIBULL_SHAPE,
    conditional_odds_ratios,
    draw_age,
    draw_complex_karyotype,
    draw_cytogenetics,
    draw_genes,
    draw_labs,
    draw_male,
    draw_survival,
    ipssm_score,
    mask_labs,
    site_table,
)
from fedsynth.tabular.metadata import ColumnMetadata, Metadata

__all__ = [
    "COVARIATE_DEFINITIONS",
    "CYTO_CATEGORIES",
    "CYTO_FREQUENCIES",
    "GENES",
    "HAZARD_RATIOS",
    "MISSING_RATES",
    "RISK_CATEGORIES",
    "RISK_CUTOFFS",
    "SPLICING_FACTORS",
    "TARGET_FREQUENCIES",
    "WEIBULL_SCALE_MONTHS",
    "WEIBULL_SHAPE",
    "MDSGroundTruth",
    "mds_cohort",
    "mds_ground_truth",
]


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
                "dtype": "category[ordered]",
                "categories": list(CYTO_CATEGORIES),
            },
            "complex_karyotype": binary,
            **{gene: {**binary, "group": "genomic"} for gene in self.genomic_columns},
            "ipssm_score": {"kind": "numeric", "dtype": "float64", "integer": False},
            "ipssm_risk": {
                "kind": "categorical",
                "dtype": "category[ordered]",
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
    table = site_table(n, sites)
    site = rng.permutation(np.repeat(np.arange(sites), table["size"]))
    risk = table["risk_shift"][site] + rng.standard_normal(n)
    age = draw_age(rng, site, table)
    male = draw_male(rng, n)

    cyto = draw_cytogenetics(rng, risk, table)
    complex_karyotype = draw_complex_karyotype(rng, cyto)
    parents: dict[str, np.ndarray] = {
        "risk": risk,
        "age10": (age - 72.0) / 10.0,
        "male": male,
        "complex_karyotype": complex_karyotype,
    }
    draw_genes(rng, parents)

    labs = draw_labs(rng, parents)
    score = ipssm_score(labs, cyto, parents)
    os_months, os_status = draw_survival(rng, score, age, male)
    observed = mask_labs(rng, labs, table["anc_weight"][site], age)

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
    odds_ratios = conditional_odds_ratios()
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
