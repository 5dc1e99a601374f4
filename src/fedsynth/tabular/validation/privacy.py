"""Privacy: copies, distances to real patients, membership inference and Anonymeter's attacks.

Distances are Gower distances (:mod:`fedsynth.tabular.validation.distances`). A synthetic row is
judged against a baseline of real rows the generator never saw: the holdout's distances to the
training rows, or, without a holdout, each training row's distance to its nearest *other*
training row.
Membership inference and Anonymeter need the holdout (as non-members and as control).

Attack settings: the distance attack scores a record by minus its distance to the nearest
synthetic row; the density-ratio attack (after DOMIAS, van Breugel et al. 2023) by
log d(record, reference) − log d(record, synthetic), with nearest-neighbour distances standing
in for densities and half of the holdout as the reference population; it is evaluated on the
other half against as many training rows. Anonymeter's linkability and inference attacks target
``n_attacks`` training and control rows drawn with the seed; its singling-out attack runs in
multivariate mode (3 columns per query). Missing numbers are set to the real median and missing
labels to a label of their own before Anonymeter sees them.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from fedsynth.core.metrics import Metric, Outcome, Skip, clip01
from fedsynth.tabular.privacy.guards import COMMON_PROFILE_COUNT, row_fingerprints
from fedsynth.tabular.validation.data import ValidationData
from fedsynth.tabular.validation.distances import nearest, scan

#: Bins of the distance histograms in the report.
DCR_BINS = 30
#: Added to distances before taking logarithms (exact matches have distance 0).
_LOG_FLOOR = 1e-6
_FINGERPRINT_KEY = "fedsynth.valid.1"  # hash_pandas_object takes a 16-byte key
_HOLDOUT_NEEDED = "needs a real holdout table (rows the generator never saw)"


def _attack_score(auc: float) -> float:
    """1 at chance (AUC ≤ 0.5), 0 at a perfect attack (AUC 1)."""
    return clip01(1.0 - 2.0 * (auc - 0.5))


class ExactCopies(Metric):
    """Synthetic rows equal to a training row on every compared column."""

    name = "exact_copies"
    family = "privacy"
    direction = "lower"
    description = (
        "Share of synthetic rows equal to a training row. Rows shared by at least "
        f"{COMMON_PROFILE_COUNT} training patients (common profiles, as in k-anonymity) are "
        "counted apart; score 1 − share of synthetic rows that copy a rarer training row."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        columns = data.columns

        def prints(frame: pd.DataFrame) -> np.ndarray:
            return row_fingerprints(frame, columns, data.numeric, _FINGERPRINT_KEY)

        train, counts = np.unique(prints(data.real), return_counts=True)
        synthetic = prints(data.synthetic)
        copied = np.isin(synthetic, train)
        rare = np.isin(synthetic, train[counts < COMMON_PROFILE_COUNT])
        details = {
            "copies": int(copied.sum()),
            "copies_of_rare_rows": int(rare.sum()),
            "distinct_training_rows_copied": len(np.intersect1d(synthetic, train)),
        }
        if data.holdout is not None:
            details["holdout_copy_share"] = float(np.isin(synthetic, prints(data.holdout)).mean())
        return Outcome(float(copied.mean()), 1.0 - float(rare.mean()), details=details)


def distance_results(data: ValidationData) -> dict:
    """Nearest-neighbour distances shared by the distance-based metrics (computed once)."""

    def compute() -> dict:
        embedding = data.embedding()
        p = embedding.n_columns
        purpose = "distance-based privacy metrics"
        x_train = embedding.transform(data.subsample("real", purpose))
        x_syn = embedding.transform(data.subsample("synthetic", purpose))
        if data.holdout is None:
            # Column 0 of the training rows' own neighbours is the row itself.
            return {
                "syn_train": nearest(x_syn, x_train, 2, p),
                "baseline": nearest(x_train, x_train, 3, p)[:, 1:],
                "baseline_name": "training rows to their nearest other training row",
            }
        x_hold = embedding.transform(data.subsample("holdout", purpose))
        # Equal numbers of training and holdout rows for "closer to training than holdout".
        m = min(len(x_hold), len(x_train))
        syn_train = scan(x_syn, x_train, p, k=2, first=m)
        syn_hold = scan(x_syn, x_hold, p, k=1, first=m)
        to_train, to_hold = syn_train["nearest_first"], syn_hold["nearest_first"]
        out = {
            "syn_train": syn_train["nearest"],
            "baseline": nearest(x_hold, x_train, 2, p),
            "baseline_name": "holdout rows to the training rows",
            "closer_to_train": float(
                np.mean(to_train < to_hold) + 0.5 * np.mean(to_train == to_hold)
            ),
            "members_to_syn": syn_train["column_min"],
            "non_members_to_syn": syn_hold["column_min"],
        }
        half = len(x_hold) // 2
        if half >= 10:
            reference = x_hold[half : 2 * half]
            to_reference = {
                "members": nearest(x_train[:half], reference, 1, p)[:, 0],
                "non_members": nearest(x_hold[:half], reference, 1, p)[:, 0],
            }
            to_synthetic = {
                "members": syn_train["column_min"][:half],
                "non_members": syn_hold["column_min"][:half],
            }
            out["density_scores"] = {
                name: np.log(to_reference[name] + _LOG_FLOOR)
                - np.log(to_synthetic[name] + _LOG_FLOOR)
                for name in to_reference
            }
        return out

    return data.cached("distances", compute)


def _nndr(distances: np.ndarray) -> np.ndarray:
    """d1 / d2; 0 / 0 (a row among identical real rows) is 1: it singles nobody out."""
    d1, d2 = distances[:, 0], distances[:, 1]
    return np.divide(d1, d2, out=np.ones_like(d1), where=d2 > 0)


class DistanceToClosestRecord(Metric):
    """Distance from each synthetic row to its closest training row, against a baseline."""

    name = "dcr"
    family = "privacy"
    direction = "lower"
    description = (
        "Probability that a synthetic row lies closer (Gower) to its nearest training row than "
        "a baseline real row does (holdout rows; without a holdout, training rows to their "
        "nearest other training row); 0.5 is ideal. Score 1 − 2 × (value − 0.5), clipped."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        results = distance_results(data)
        syn, base = results["syn_train"][:, 0], results["baseline"][:, 0]
        u = stats.mannwhitneyu(base, syn, alternative="two-sided").statistic
        closer = float(u / (len(syn) * len(base)))
        edges = np.linspace(
            0.0, max(float(np.quantile(np.concatenate([syn, base]), 0.99)), 1e-9), DCR_BINS + 1
        )
        details = {
            "baseline": results["baseline_name"],
            "median_synthetic": float(np.median(syn)),
            "median_baseline": float(np.median(base)),
            "p05_synthetic": float(np.quantile(syn, 0.05)),
            "p05_baseline": float(np.quantile(base, 0.05)),
            "share_zero_distance": float(np.mean(syn == 0)),
            "histogram": {
                "edges": edges,
                "synthetic": np.histogram(np.clip(syn, 0, edges[-1]), edges)[0] / len(syn),
                "baseline": np.histogram(np.clip(base, 0, edges[-1]), edges)[0] / len(base),
            },
        }
        if "closer_to_train" in results:
            details["share_closer_to_train_than_holdout"] = results["closer_to_train"]
        return Outcome(closer, 1.0 - 2.0 * (closer - 0.5), details=details)


class NearestNeighbourDistanceRatio(Metric):
    """NNDR of synthetic rows (d1 / d2 to training rows) against the baseline's NNDR."""

    name = "nndr"
    family = "privacy"
    direction = "higher"
    description = (
        "5th percentile of the synthetic rows' nearest-neighbour distance ratio d1 / d2 to "
        "training rows (near 0: close to one patient in particular). Score: that percentile "
        "over the baseline's 5th percentile, clipped to [0, 1]."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        results = distance_results(data)
        syn, base = _nndr(results["syn_train"]), _nndr(results["baseline"])
        q_syn, q_base = float(np.quantile(syn, 0.05)), float(np.quantile(base, 0.05))
        score = 1.0 if q_base == 0 else q_syn / q_base
        details = {
            "baseline": results["baseline_name"],
            "median_synthetic": float(np.median(syn)),
            "median_baseline": float(np.median(base)),
            "p05_baseline": q_base,
        }
        return Outcome(q_syn, score, details=details)


class DistanceMembershipInference(Metric):
    """Membership inference by distance to the nearest synthetic row."""

    name = "membership_inference_distance"
    family = "privacy"
    direction = "lower"
    description = (
        "AUC of telling training rows (members) from holdout rows (non-members) by their "
        "distance to the nearest synthetic row; 0.5 is chance. Score 1 − 2 × (AUC − 0.5)."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        if data.holdout is None:
            raise Skip(_HOLDOUT_NEEDED)
        results = distance_results(data)
        members, others = results["members_to_syn"], results["non_members_to_syn"]
        labels = np.r_[np.ones(len(members)), np.zeros(len(others))]
        auc = float(roc_auc_score(labels, -np.r_[members, others]))
        return Outcome(auc, _attack_score(auc), details={"records": len(labels)})


class DensityMembershipInference(Metric):
    """Membership inference by a density ratio, synthetic against a real reference."""

    name = "membership_inference_density"
    family = "privacy"
    direction = "lower"
    description = (
        "AUC of a DOMIAS-style density-ratio attack (nearest-neighbour density estimates; half "
        "of the holdout as reference, the other half as non-members); 0.5 is chance. Score "
        "1 − 2 × (AUC − 0.5)."
    )

    def _compute(self, data: ValidationData) -> Outcome:
        if data.holdout is None:
            raise Skip(_HOLDOUT_NEEDED)
        results = distance_results(data)
        if "density_scores" not in results:
            raise Skip("the holdout is too small to split into reference and non-members")
        scores = results["density_scores"]
        labels = np.r_[np.ones(len(scores["members"])), np.zeros(len(scores["non_members"]))]
        auc = float(roc_auc_score(labels, np.r_[scores["members"], scores["non_members"]]))
        return Outcome(auc, _attack_score(auc), details={"records": len(labels)})


# ---------------------------------------------------------------------- Anonymeter
def _anonymeter_frame(data: ValidationData, frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in data.numeric:
        median = data.real[column].median()
        out[column] = out[column].fillna(median if np.isfinite(median) else 0.0)
    for column in data.discrete:
        out[column] = out[column].fillna("<missing>").astype(str)
    return out


class _AnonymeterRisk(Metric):
    family = "privacy"
    direction = "lower"

    def _compute(self, data: ValidationData) -> Outcome:
        if data.holdout is None:
            raise Skip(_HOLDOUT_NEEDED + " as Anonymeter's control set")
        try:
            import anonymeter.evaluators  # noqa: F401 - checks the optional dependency
        except ImportError as exc:
            raise Skip(
                "anonymeter is not installed (pip install --no-deps anonymeter==1.1.0 numba polars)"
            ) from exc
        # Anonymeter tells through warnings and its logger when an attack is weak or could not
        # generate every query: keep those lines in the result instead of printing them.
        logger, handler = logging.getLogger("anonymeter"), _Collect()
        logger.addHandler(handler)
        propagate, logger.propagate = logger.propagate, False
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                risks, details = self._attack(data)
        except (ValueError, RuntimeError) as exc:
            raise Skip(f"Anonymeter could not run: {exc}") from exc
        finally:
            logger.removeHandler(handler)
            logger.propagate = propagate
        lines = [str(w.message) for w in caught if w.category is UserWarning] + handler.lines
        notes = list(dict.fromkeys(line.split(". ")[0] for line in lines))
        if notes:
            details["warnings"] = notes
        value = max(r["risk"] for r in risks.values())
        columns = {name: r["risk"] for name, r in risks.items()} if len(risks) > 1 else {}
        details["risks"] = risks
        return Outcome(value, 1.0 - value, columns=columns, details=details)

    def _attack(self, data: ValidationData) -> tuple[dict[str, dict], dict]:
        raise NotImplementedError

    @staticmethod
    def _targets(data: ValidationData) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
        """Training and control targets (``n_attacks`` rows each) and the synthetic rows.

        Anonymeter draws its targets with an unseeded ``sample``; handing it exactly as many
        rows as attacks, drawn here with the seed, makes the result reproducible.
        """
        n = min(data.n_attacks, len(data.real), len(data.table("holdout")))
        ori = _anonymeter_frame(data, data.subsample("real", "Anonymeter targets", n))
        control = _anonymeter_frame(data, data.subsample("holdout", "Anonymeter targets", n))
        syn = _anonymeter_frame(data, data.subsample("synthetic", "Anonymeter"))
        return ori, control, syn, n


class _Collect(logging.Handler):
    """A logging handler that keeps the messages."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _risk(evaluator) -> dict:
    risk = evaluator.risk(confidence_level=0.95)
    results = evaluator.results(confidence_level=0.95)
    return {
        "risk": float(risk.value),
        "ci": [float(risk.ci[0]), float(risk.ci[1])],
        "attack_rate": float(results.attack_rate.value),
        "baseline_rate": float(results.baseline_rate.value),
        "control_rate": None if results.control_rate is None else float(results.control_rate.value),
    }


class SinglingOutRisk(_AnonymeterRisk):
    """Anonymeter's singling-out risk (multivariate queries)."""

    name = "singling_out_risk"
    description = (
        "Anonymeter singling-out risk (multivariate, 3 columns per query) with its 95 % "
        "confidence interval in the details; score 1 − risk."
    )

    def _attack(self, data: ValidationData) -> tuple[dict[str, dict], dict]:
        from anonymeter.evaluators import SinglingOutEvaluator

        purpose = "Anonymeter singling out"
        ori = _anonymeter_frame(data, data.subsample("real", purpose))
        control = _anonymeter_frame(data, data.subsample("holdout", purpose))
        syn = _anonymeter_frame(data, data.subsample("synthetic", purpose))
        n = min(data.n_attacks, len(control))
        evaluator = SinglingOutEvaluator(
            ori=ori, syn=syn, control=control, n_attacks=n, max_attempts=20 * n, seed=data.seed
        ).evaluate(mode="multivariate")
        return {"singling_out": _risk(evaluator)}, {"n_attacks": n}


class LinkabilityRisk(_AnonymeterRisk):
    """Anonymeter's linkability risk: linking two halves of a patient's columns."""

    name = "linkability_risk"
    description = (
        "Anonymeter linkability risk: an attacker holding two disjoint halves of a patient's "
        "columns (alternate columns) links them through the 10 nearest synthetic rows; 95 % "
        "confidence interval in the details; score 1 − risk."
    )

    def _attack(self, data: ValidationData) -> tuple[dict[str, dict], dict]:
        from anonymeter.evaluators import LinkabilityEvaluator

        if len(data.columns) < 2:
            raise Skip("needs at least two columns")
        ori, control, syn, n = self._targets(data)
        aux = (data.columns[0::2], data.columns[1::2])
        evaluator = LinkabilityEvaluator(
            ori=ori, syn=syn, control=control, aux_cols=aux, n_attacks=n, n_neighbors=10
        ).evaluate(n_jobs=1)
        return {"linkability": _risk(evaluator)}, {"n_attacks": n, "aux_columns": list(aux)}


class AttributeInferenceRisk(_AnonymeterRisk):
    """Anonymeter's attribute-inference risk, for a few secret columns."""

    name = "attribute_inference_risk"
    description = (
        "Anonymeter attribute-inference risk, the largest over up to 3 secret columns (the "
        "target, then the two discrete columns with the most even distribution, whose risk "
        "estimates are the most stable), the attacker knowing every other column; "
        "per-secret risks and 95 % confidence intervals in the details; score 1 − risk."
    )

    def _attack(self, data: ValidationData) -> tuple[dict[str, dict], dict]:
        from anonymeter.evaluators import InferenceEvaluator

        if len(data.columns) < 2:
            raise Skip("needs at least two columns")
        ori, control, syn, n = self._targets(data)
        secrets = ([data.target] if data.target else []) + _even_columns(data, exclude=data.target)
        secrets = secrets[:3]
        risks = {}
        for secret in secrets:
            evaluator = InferenceEvaluator(
                ori=ori,
                syn=syn,
                control=control,
                aux_cols=[c for c in data.columns if c != secret],
                secret=secret,
                regression=secret in data.numeric,
                n_attacks=n,
            ).evaluate(n_jobs=1)
            risks[secret] = _risk(evaluator)
        return risks, {"n_attacks": n, "secrets": secrets}


def _even_columns(data: ValidationData, exclude: str | None) -> list[str]:
    """Discrete columns by decreasing normalised entropy of their real distribution."""
    evenness = {}
    for column in data.discrete:
        shares = data.real[column].value_counts(normalize=True).to_numpy()
        if column != exclude and len(shares) > 1:
            evenness[column] = float(stats.entropy(shares) / np.log(len(shares)))
    return sorted(evenness, key=lambda c: -evenness[c])


METRICS: tuple[Metric, ...] = (
    ExactCopies(),
    DistanceToClosestRecord(),
    NearestNeighbourDistanceRatio(),
    DistanceMembershipInference(),
    DensityMembershipInference(),
    SinglingOutRisk(),
    LinkabilityRisk(),
    AttributeInferenceRisk(),
)
