"""Survival: Kaplan–Meier curves, log-rank test, median survival, Cox models (lifelines), and
cumulative incidence (Aalen–Johansen) for competing risks.

lifelines is imported where it is used: it is slow to import, and ``import fedsynth`` stays fast.

Survival metrics need a duration/event pair in the metadata. Cox models use every column but
the survival pair and the site as covariates: numbers with missing values set to the real
median, two-level labels as 0/1, other labels one-hot with the first real category as reference.
A small ridge penalty (:data:`COX_PENALIZER`) keeps fits stable when a rare mutation has few
events; it shrinks the real and synthetic coefficients alike.

Competing risks: an event column with more than two categories holds 0 = censored and one code
per cause. Its curves are the per-cause cumulative incidences (:class:`CumulativeIncidenceGap`,
which then replaces the Kaplan–Meier gap in the survival score: a KM curve of one cause treats
the others as censoring and overstates it). Log-rank, median survival, the Cox models and the
group gaps use the all-cause event (any cause against censored), which is well defined.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fedsynth.core.metrics import Metric, Outcome, Skip, clip01
from fedsynth.tabular.validation.data import ValidationData

if TYPE_CHECKING:
    from lifelines import CoxPHFitter

#: Points of the time grid on which curves are compared.
GRID_POINTS = 100
#: Curves are compared up to this quantile of the real durations (the tail has few at risk).
GRID_QUANTILE = 0.95
#: Ridge penalty of the Cox models.
COX_PENALIZER = 0.01
#: Most levels of the grouping column that get their own curves (the most frequent).
MAX_GROUPS = 8
#: Fewest real rows a group needs to get its own curve.
MIN_GROUP_ROWS = 20


def _require_survival(data: ValidationData) -> tuple[str, str]:
    if data.survival is None:
        raise Skip("no survival columns (duration and event) in the metadata")
    return data.survival


def _events(data: ValidationData, frame: pd.DataFrame, event: str) -> np.ndarray:
    """Event indicator as 0/1: any category after the first (censored) one is an event."""
    categories = data.categories(event)
    positive = categories[1:] if categories else ["1"]
    return frame[event].isin(positive).to_numpy(dtype=int)


def competing_causes(data: ValidationData) -> list[str]:
    """Labels of the causes when the event column codes competing risks (empty otherwise)."""
    if data.survival is None:
        return []
    categories = data.categories(data.survival[1])
    return categories[1:] if len(categories) > 2 else []


def _survival_frame(data: ValidationData, frame: pd.DataFrame) -> pd.DataFrame:
    duration, event = _require_survival(data)
    out = pd.DataFrame({"T": frame[duration].to_numpy(), "E": _events(data, frame, event)})
    return out[out["T"].notna() & (out["T"] >= 0)]


def time_grid(data: ValidationData) -> np.ndarray:
    """Times at which curves are compared: 0 to the 95th percentile of real durations."""
    durations = _survival_frame(data, data.real)["T"]
    end = float(np.quantile(durations, GRID_QUANTILE)) if len(durations) else 1.0
    return np.linspace(0.0, end if end > 0 else 1.0, GRID_POINTS)


def km_curve(frame: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """Kaplan–Meier survival of a ``T``/``E`` frame at the grid times."""
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter().fit(frame["T"], frame["E"])
    return kmf.survival_function_at_times(grid).to_numpy()


class KaplanMeierGap(Metric):
    """Absolute gap between the real and synthetic Kaplan–Meier curves."""

    name = "km_gap"
    family = "survival"
    direction = "lower"
    description = (
        f"Mean |S_real(t) − S_synthetic(t)| of Kaplan–Meier curves on {GRID_POINTS} times up to "
        f"the real {GRID_QUANTILE:.0%} duration quantile (max gap in the details); score 1 − mean."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        real, synthetic = _survival_frame(data, data.real), _survival_frame(data, data.synthetic)
        if len(synthetic) == 0:
            raise Skip("no synthetic row with a duration")
        if competing_causes(data):
            raise Skip("competing risks: the cumulative incidence gap (cif_gap) replaces it")
        grid = time_grid(data)
        s_real, s_syn = km_curve(real, grid), km_curve(synthetic, grid)
        gap = np.abs(s_real - s_syn)
        details = {
            "max_gap": float(gap.max()),
            "curves": {"time": grid, "real": s_real, "synthetic": s_syn},
        }
        return Outcome(float(gap.mean()), 1.0 - float(gap.mean()), details=details)


def cif_curve(frame: pd.DataFrame, cause: int, grid: np.ndarray) -> np.ndarray:
    """Aalen–Johansen cumulative incidence of ``cause`` in a ``T``/``C`` frame at the grid times.

    ``C`` holds 0 for censored rows and the cause number (1..K) otherwise. Tied times are
    broken by lifelines' jitter with a fixed seed, so the curve is reproducible.
    """
    from lifelines import AalenJohansenFitter

    if not (frame["C"] == cause).any():
        return np.zeros(len(grid))  # no row of this cause: its incidence is 0 throughout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the jitter note on tied times
        ajf = AalenJohansenFitter(seed=0, calculate_variance=False)
        ajf.fit(frame["T"], frame["C"], event_of_interest=cause)
    curve = ajf.cumulative_density_.iloc[:, 0]
    # A step function: the value at t is the last one at or before t (0 before the first).
    where = np.searchsorted(curve.index.to_numpy(), grid, side="right") - 1
    return np.where(where >= 0, curve.to_numpy()[np.clip(where, 0, None)], 0.0)


def _cause_frame(data: ValidationData, frame: pd.DataFrame, causes: list[str]) -> pd.DataFrame:
    duration, event = _require_survival(data)
    codes = {label: i + 1 for i, label in enumerate(causes)}
    out = pd.DataFrame(
        {
            "T": frame[duration].to_numpy(),
            "C": frame[event].map(codes).fillna(0).to_numpy(dtype=int),
        }
    )
    return out[out["T"].notna() & (out["T"] >= 0)]


class CumulativeIncidenceGap(Metric):
    """Per-cause gaps between real and synthetic cumulative incidence (competing risks)."""

    name = "cif_gap"
    family = "survival"
    direction = "lower"
    description = (
        "Competing risks only: for each cause, mean |F_real(t) − F_synthetic(t)| of "
        f"Aalen–Johansen cumulative incidences on {GRID_POINTS} times up to the real "
        f"{GRID_QUANTILE:.0%} duration quantile; the value is the mean over causes (each in "
        "the columns), score 1 − value."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        causes = competing_causes(data)
        if not causes:
            raise Skip("not competing risks (the event column has one cause)")
        real = _cause_frame(data, data.real, causes)
        synthetic = _cause_frame(data, data.synthetic, causes)
        if len(synthetic) == 0:
            raise Skip("no synthetic row with a duration")
        grid = time_grid(data)
        gaps, curves = {}, {}
        for number, cause in enumerate(causes, start=1):
            f_real, f_syn = cif_curve(real, number, grid), cif_curve(synthetic, number, grid)
            gaps[cause] = float(np.abs(f_real - f_syn).mean())
            curves[cause] = {"real": f_real, "synthetic": f_syn}
        value = float(np.mean(list(gaps.values())))
        details = {"time": grid, "curves": curves}
        return Outcome(value, clip01(1.0 - value), columns=gaps, details=details)


class LogRank(Metric):
    """Log-rank test of equal survival, real against synthetic."""

    name = "logrank_test"
    family = "survival"
    direction = "higher"
    description = (
        "p-value of the log-rank test that real and synthetic survival are equal; "
        "informative (it shrinks as tables grow), not in a score."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        real, synthetic = _survival_frame(data, data.real), _survival_frame(data, data.synthetic)
        if len(synthetic) == 0:
            raise Skip("no synthetic row with a duration")
        from lifelines.statistics import logrank_test

        test = logrank_test(real["T"], synthetic["T"], real["E"], synthetic["E"])
        details = {"test_statistic": float(test.test_statistic)}
        return Outcome(float(test.p_value), None, details=details)


class MedianSurvival(Metric):
    """Median survival time of each table, from its Kaplan–Meier curve."""

    name = "median_survival"
    family = "survival"
    direction = "lower"
    description = (
        "Relative difference |median synthetic − median real| / median real of Kaplan–Meier "
        "median survival; informative, not in a score (the curve gap is)."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        from lifelines import KaplanMeierFitter

        medians = {}
        for name in ("real", "synthetic"):
            frame = _survival_frame(data, data.table(name))
            if len(frame) == 0:
                raise Skip(f"no {name} row with a duration")
            medians[name] = float(
                KaplanMeierFitter().fit(frame["T"], frame["E"]).median_survival_time_
            )
        if not np.isfinite(medians["real"]) or medians["real"] == 0:
            raise Skip("real median survival not reached")
        diff = abs(medians["synthetic"] - medians["real"]) / medians["real"]
        return Outcome(diff, None, columns=medians)


# ---------------------------------------------------------------------- Cox models
def cox_design(data: ValidationData, frame: pd.DataFrame) -> pd.DataFrame:
    """Covariates (as documented in the module) plus ``T`` and ``E`` of ``frame``."""
    duration, event = _require_survival(data)
    skip = {duration, event, data.metadata.site}
    out = {}
    for column in data.columns:
        if column in skip:
            continue
        if column in data.numeric:
            median = data.cached(f"median:{column}", lambda c=column: data.real[c].median())
            out[column] = frame[column].fillna(median if np.isfinite(median) else 0.0)
            continue
        categories = data.categories(column)
        if len(categories) == 2:
            out[column] = (frame[column] == categories[1]).astype(float)
        else:
            for category in categories[1:]:
                out[f"{column}={category}"] = (frame[column] == category).astype(float)
    design = pd.DataFrame(out, index=frame.index)
    design["T"] = frame[duration].to_numpy()
    design["E"] = _events(data, frame, event)
    return design[design["T"].notna() & (design["T"] >= 0)]


def fit_cox(
    frame: pd.DataFrame, duration: str, event: str, *, penalizer: float = COX_PENALIZER
) -> tuple[CoxPHFitter, int]:
    """A Cox model of ``duration``/``event`` on every other column of ``frame``.

    Returns the fitted model and the number of warnings lifelines raised while fitting.

    Examples
    --------
    >>> from fedsynth.datasets import mds_cohort
    >>> df, truth = mds_cohort(n=1000, return_truth=True)
    >>> cph, _ = fit_cox(truth.survival_covariates(df), "os_months", "os_status")
    >>> sorted(cph.hazard_ratios_.index)
    ['age_per_10y', 'ipssm_score', 'male']
    """
    from lifelines import CoxPHFitter

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cph = CoxPHFitter(penalizer=penalizer).fit(frame, duration_col=duration, event_col=event)
    return cph, len(caught)


def cox_models(data: ValidationData) -> dict:
    """Cox models fitted on real and on synthetic rows, on shared covariates (computed once)."""

    def compute() -> dict:
        real = cox_design(data, data.subsample("real", "Cox models"))
        synthetic = cox_design(data, data.subsample("synthetic", "Cox models"))
        covariates = [
            c
            for c in real.columns
            if c not in ("T", "E") and real[c].std() > 0 and synthetic[c].std() > 0
        ]
        if not covariates:
            raise Skip("no covariate varies in both tables")
        if real["E"].sum() == 0 or synthetic["E"].sum() == 0:
            raise Skip("no event in one of the tables: a Cox model cannot be fitted")
        columns = [*covariates, "T", "E"]
        fitted = {}
        warned = 0
        for name, design in (("real", real), ("synthetic", synthetic)):
            try:
                cph, n_warnings = fit_cox(design[columns], "T", "E")
            except Exception as exc:  # lifelines raises several types on a degenerate fit
                raise Skip(f"the Cox model on {name} data did not converge: {exc}") from exc
            fitted[name] = cph
            warned += n_warnings
        return {"models": fitted, "covariates": covariates, "warnings": warned}

    return data.cached("cox", compute)


class HazardRatioAgreement(Metric):
    """Agreement of Cox hazard ratios fitted on real and on synthetic data."""

    name = "hazard_ratio_agreement"
    family = "survival"
    direction = "higher"
    description = (
        "Mean of (a) the share of covariates significant in the real Cox model (p < 0.05; all "
        "covariates when none is) whose synthetic coefficient has the same sign and (b) the "
        "share of covariates whose 95 % confidence intervals overlap; the score is the value."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        cox = cox_models(data)
        real, synthetic = cox["models"]["real"].summary, cox["models"]["synthetic"].summary
        covariates = cox["covariates"]
        n_significant = int((real.loc[covariates, "p"] < 0.05).sum())
        significant = [c for c in covariates if real.loc[c, "p"] < 0.05] or covariates
        same_sign = np.mean(
            [np.sign(real.loc[c, "coef"]) == np.sign(synthetic.loc[c, "coef"]) for c in significant]
        )
        low, high = "coef lower 95%", "coef upper 95%"
        overlap = np.mean(
            [
                real.loc[c, low] <= synthetic.loc[c, high]
                and synthetic.loc[c, low] <= real.loc[c, high]
                for c in covariates
            ]
        )
        value = float((same_sign + overlap) / 2)
        table = {
            c: {
                "hr_real": float(np.exp(real.loc[c, "coef"])),
                "hr_real_ci": [float(np.exp(real.loc[c, low])), float(np.exp(real.loc[c, high]))],
                "p_real": float(real.loc[c, "p"]),
                "hr_synthetic": float(np.exp(synthetic.loc[c, "coef"])),
                "hr_synthetic_ci": [
                    float(np.exp(synthetic.loc[c, low])),
                    float(np.exp(synthetic.loc[c, high])),
                ],
            }
            for c in covariates
        }
        details = {
            "sign_agreement": float(same_sign),
            "ci_overlap": float(overlap),
            "significant_in_real": n_significant,
            "penalizer": COX_PENALIZER,
            "fit_warnings": cox["warnings"],
            "hazard_ratios": table,
        }
        return Outcome(value, value, details=details)


class Concordance(Metric):
    """Concordance index on real rows of a Cox model trained on synthetic rows."""

    name = "concordance_tstr"
    family = "survival"
    direction = "higher"
    description = (
        "Harrell's C on the real holdout (the real training rows when there is no holdout) of "
        "the Cox model trained on synthetic rows, with the model trained on real rows as "
        "reference; score (C_syn − 0.5) / (C_real − 0.5) clipped to [0, 1]."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        cox = cox_models(data)
        if data.holdout is not None:
            test, on = data.subsample("holdout", "concordance"), "holdout"
        else:
            test, on = data.subsample("real", "concordance"), "real training rows"
            data.note("concordance: no holdout, the Cox models are tested on real training rows")
        design = cox_design(data, test)[[*cox["covariates"], "T", "E"]]
        if design["E"].sum() == 0:
            raise Skip(f"no event in the {on}: concordance is undefined")
        c_real = float(cox["models"]["real"].score(design, scoring_method="concordance_index"))
        c_syn = float(cox["models"]["synthetic"].score(design, scoring_method="concordance_index"))
        score = clip01((c_syn - 0.5) / (c_real - 0.5)) if c_real > 0.5 else None
        details = {"c_index_real_trained": c_real, "tested_on": on}
        return Outcome(c_syn, score, details=details)


class GroupKaplanMeierGap(Metric):
    """Kaplan–Meier gaps within each level of the grouping column."""

    name = "group_km_gap"
    family = "survival"
    direction = "lower"
    description = (
        f"Mean over the levels of the grouping column (at most {MAX_GROUPS}, each with at least "
        f"{MIN_GROUP_ROWS} real rows) of the mean Kaplan–Meier gap within the level; "
        "informative, not in a score (it depends on the chosen group)."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        _require_survival(data)
        if data.group is None:
            raise Skip("no grouping column (group=...) and no site column")
        grid = time_grid(data)
        counts = data.real[data.group].value_counts()
        levels = [g for g, n in counts.items() if n >= MIN_GROUP_ROWS][:MAX_GROUPS]
        gaps, curves = {}, {}
        for level in levels:
            real = _survival_frame(data, data.real[data.real[data.group] == level])
            synthetic = _survival_frame(data, data.synthetic[data.synthetic[data.group] == level])
            if len(real) == 0 or len(synthetic) == 0:
                continue
            s_real, s_syn = km_curve(real, grid), km_curve(synthetic, grid)
            gaps[str(level)] = float(np.abs(s_real - s_syn).mean())
            curves[str(level)] = {"real": s_real, "synthetic": s_syn}
        if not gaps:
            raise Skip(f"no level of {data.group!r} has rows in both tables")
        details = {"group": data.group, "time": grid, "curves": curves}
        return Outcome(float(np.mean(list(gaps.values()))), None, columns=gaps, details=details)


METRICS: tuple[Metric, ...] = (
    KaplanMeierGap(),
    CumulativeIncidenceGap(),
    LogRank(),
    MedianSurvival(),
    HazardRatioAgreement(),
    Concordance(),
    GroupKaplanMeierGap(),
)
