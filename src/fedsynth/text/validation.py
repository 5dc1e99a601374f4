"""Text validation metrics on the project's metric base, for the notes' SAFE report.

:class:`TextValidationData` embeds the real, synthetic and held-out notes once; each metric of
:data:`TEXT_METRICS` reads it and returns a :class:`~fedsynth.core.metrics.MetricResult` with a
score in [0, 1] (1 best), or is skipped when its inputs are missing (labels, conditioning rows,
a holdout). The functions behind them are in :mod:`fedsynth.text.metrics` and
:mod:`fedsynth.text.leakage`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedsynth.core.metrics import Metric, MetricResult, Outcome, Skip
from fedsynth.text.leakage import longest_shared_span, membership_inference_auc, reproduced_ngrams
from fedsynth.text.metrics import (
    classifier_utility,
    frechet_distance,
    precision_recall,
    row_consistency_rate,
    text_statistics,
)


@dataclass
class TextValidationData:
    """Real (private), synthetic and held-out notes with their embeddings, prepared once.

    Build it with :meth:`prepare`. ``public`` holds the public prompt's texts (instruction,
    public examples), whose n-grams are not counted as copies.
    """

    real: list[str]
    synthetic: list[str]
    real_embeddings: np.ndarray
    synthetic_embeddings: np.ndarray
    holdout: list[str] | None = None
    holdout_embeddings: np.ndarray | None = None
    real_labels: list[Any] | None = None
    synthetic_labels: list[Any] | None = None
    holdout_labels: list[Any] | None = None
    synthetic_rows: list[Mapping[str, Any]] | None = None
    public: list[str] = field(default_factory=list)

    @classmethod
    def prepare(
        cls,
        real: Sequence[str],
        synthetic: Sequence[str],
        *,
        embedder: Any,
        holdout: Sequence[str] | None = None,
        real_labels: Sequence[Any] | None = None,
        synthetic_labels: Sequence[Any] | None = None,
        holdout_labels: Sequence[Any] | None = None,
        synthetic_rows: Sequence[Mapping[str, Any]] | None = None,
        public: Sequence[str] = (),
    ) -> TextValidationData:
        """Embed the notes with ``embedder`` (a :class:`~fedsynth.text.SentenceEmbedder`).

        Raises
        ------
        ValueError
            Labels or rows whose number differs from their notes'.
        """
        real, synthetic = list(real), list(synthetic)
        holdout = None if holdout is None else list(holdout)
        given = {
            "real_labels": (real_labels, real),
            "synthetic_labels": (synthetic_labels, synthetic),
            "holdout_labels": (holdout_labels, holdout),
            "synthetic_rows": (synthetic_rows, synthetic),
        }
        checked: dict[str, list[Any] | None] = {}
        for name, (values, texts) in given.items():
            checked[name] = None if values is None else list(values)
            if values is not None and (texts is None or len(values) != len(texts)):
                raise ValueError(f"{name}: {len(values)} values for {len(texts or [])} notes")
        return cls(
            real=real,
            synthetic=synthetic,
            real_embeddings=embedder.embed(real),
            synthetic_embeddings=embedder.embed(synthetic),
            holdout=holdout,
            holdout_embeddings=None if holdout is None else embedder.embed(holdout),
            public=list(public),
            **checked,
        )


class EmbeddingFrechet(Metric):
    """Fréchet distance of note embeddings (the FID of notes)."""

    name = "embedding_frechet"
    family = "fidelity"
    direction = "lower"
    description = (
        "Fréchet distance between Gaussian fits of real and synthetic note embeddings; "
        "score exp(-distance)."
    )

    def _compute(self, data: TextValidationData) -> Outcome:
        try:
            value = frechet_distance(data.real_embeddings, data.synthetic_embeddings)
        except ValueError as reason:  # too few notes for a Gaussian fit
            raise Skip(str(reason)) from reason
        return Outcome(value, float(np.exp(-value)))


class EmbeddingPrecisionRecall(Metric):
    """k-NN precision and recall of note embeddings."""

    name = "embedding_precision_recall"
    family = "fidelity"
    direction = "higher"
    description = (
        "k-NN precision (synthetic notes inside the real notes' manifold) and recall (real "
        "notes covered by the synthetic ones) of note embeddings; value and score their mean."
    )

    def _compute(self, data: TextValidationData) -> Outcome:
        try:
            result = precision_recall(data.real_embeddings, data.synthetic_embeddings)
        except ValueError as reason:
            raise Skip(str(reason)) from reason
        value = (result["precision"] + result["recall"]) / 2
        return Outcome(value, value, details=result)


class TextSurface(Metric):
    """Length and vocabulary of synthetic notes against real ones."""

    name = "text_surface"
    family = "diversity"
    direction = "higher"
    description = (
        "Length and vocabulary of synthetic notes against real ones; score the mean of "
        "1 - relative gap in mean length and min(1, synthetic distinct bigrams / real)."
    )

    def _compute(self, data: TextValidationData) -> Outcome:
        real, synthetic = text_statistics(data.real), text_statistics(data.synthetic)
        length = 1 - abs(synthetic["mean_words"] - real["mean_words"]) / max(real["mean_words"], 1)
        variety = (
            min(1.0, synthetic["distinct_2"] / real["distinct_2"]) if real["distinct_2"] else 0
        )
        value = (max(length, 0.0) + variety) / 2
        return Outcome(value, value, details={"real": real, "synthetic": synthetic})


class NoteUtility(Metric):
    """Train on synthetic notes, test on real: a TF-IDF classifier of a label."""

    name = "note_utility"
    family = "utility"
    direction = "higher"
    description = (
        "Accuracy on real notes of a TF-IDF + logistic-regression classifier of the label "
        "trained on synthetic notes; score its ratio to the same classifier trained on real "
        "notes and tested on the holdout (the accuracy itself without a holdout)."
    )

    def _compute(self, data: TextValidationData) -> Outcome:
        if data.synthetic_labels is None or data.real_labels is None:
            raise Skip("no labels given for the real and synthetic notes")
        test, labels = (
            (data.holdout, data.holdout_labels)
            if data.holdout_labels
            else (data.real, data.real_labels)
        )
        try:
            synthetic = classifier_utility(data.synthetic, data.synthetic_labels, test, labels)
        except ValueError as reason:
            raise Skip(str(reason)) from reason
        details: dict[str, Any] = {"train_synthetic": synthetic}
        score = synthetic["accuracy"]
        if data.holdout_labels:
            reference = classifier_utility(data.real, data.real_labels, test, labels)
            details["train_real"] = reference
            score = synthetic["accuracy"] / max(reference["accuracy"], 1e-9)
        return Outcome(synthetic["accuracy"], score, details=details)


class RowConsistency(Metric):
    """Agreement of synthetic notes with their conditioning rows."""

    name = "row_consistency"
    family = "fidelity"
    direction = "higher"
    description = (
        "Share of the facts synthetic notes state (read by regex) that agree with the rows "
        "they were conditioned on."
    )

    def _compute(self, data: TextValidationData) -> Outcome:
        if data.synthetic_rows is None:
            raise Skip("the synthetic notes were not conditioned on rows")
        result = row_consistency_rate(data.synthetic, data.synthetic_rows)
        if not result["facts_per_note"]:
            raise Skip("the synthetic notes state no fact that their rows can check")
        return Outcome(result["agreement"], result["agreement"], details=result)


class VerbatimCopies(Metric):
    """Private word 8-grams copied into synthetic notes."""

    name = "verbatim_copies"
    family = "privacy"
    direction = "lower"
    description = (
        "Share of synthetic notes reproducing a word 8-gram of a private note that the public "
        "prompt does not hold; score 1 - share."
    )

    def _compute(self, data: TextValidationData) -> Outcome:
        copies = reproduced_ngrams(data.synthetic, data.real, public=data.public)
        spans = longest_shared_span(data.synthetic, data.real)
        details = {
            "private_8grams_reproduced": copies["count"],
            "longest_shared_span_max": int(spans.max(initial=0)),
            "longest_shared_span_median": float(np.median(spans)) if len(spans) else 0.0,
        }
        return Outcome(copies["notes_with_copy"], 1 - copies["notes_with_copy"], details=details)


class NoteMembershipInference(Metric):
    """Distance attack telling private notes from held-out ones."""

    name = "note_membership_inference"
    family = "privacy"
    direction = "lower"
    description = (
        "AUC of telling private notes from held-out ones by their similarity to the nearest "
        "synthetic note; score 1 - 2 |AUC - 0.5|."
    )

    def _compute(self, data: TextValidationData) -> Outcome:
        if data.holdout_embeddings is None or len(data.holdout_embeddings) == 0:
            raise Skip("no held-out notes")
        auc = membership_inference_auc(
            data.real_embeddings, data.holdout_embeddings, data.synthetic_embeddings
        )
        return Outcome(auc, 1 - 2 * abs(auc - 0.5))


TEXT_METRICS: tuple[type[Metric], ...] = (
    EmbeddingFrechet, EmbeddingPrecisionRecall, TextSurface, NoteUtility, RowConsistency,
    VerbatimCopies, NoteMembershipInference,
)  # fmt: skip


def evaluate_notes(data: TextValidationData) -> list[MetricResult]:
    """Every text metric on prepared notes, in :data:`TEXT_METRICS` order.

    Examples
    --------
    >>> data = TextValidationData.prepare(real, synthetic, embedder=SentenceEmbedder())
    ... # doctest: +SKIP
    >>> [r.score for r in evaluate_notes(data)]  # doctest: +SKIP
    """
    return [metric().compute(data) for metric in TEXT_METRICS]
