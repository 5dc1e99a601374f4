"""Text validation: embedding fidelity, surface statistics, utility, consistency, leakage."""

from __future__ import annotations

import numpy as np
import pytest

import fedsynth
from fedsynth.text.corpus import simulate_notes
from fedsynth.text.leakage import (
    longest_shared_span,
    membership_inference_auc,
    reproduced_ngrams,
)
from fedsynth.text.metrics import (
    classifier_utility,
    frechet_distance,
    precision_recall,
    row_consistency_rate,
    text_statistics,
)


def test_frechet_distance_and_precision_recall_rank_a_shifted_set_lower():
    rng = np.random.default_rng(0)
    # Embeddings are compared as directions: clusters around two different axes.
    axis_1, axis_2 = np.eye(8)[0] * 3, np.eye(8)[1] * 3
    real = rng.normal(size=(200, 8)) + axis_1
    same = rng.normal(size=(200, 8)) + axis_1
    shifted = rng.normal(size=(200, 8)) + axis_2
    assert frechet_distance(real, same) < 0.5 < 5 < frechet_distance(real, shifted)
    assert frechet_distance(real, real) == pytest.approx(0, abs=1e-6)
    close, far = precision_recall(real, same), precision_recall(real, shifted)
    assert close["precision"] > 0.8 and close["recall"] > 0.8
    assert far["precision"] < close["precision"] and far["recall"] < close["recall"]
    with pytest.raises(ValueError, match="k=5"):
        precision_recall(real[:5], same)


@pytest.mark.slow
def test_note_embeddings_of_two_corpora_from_the_same_cohort_are_close(notes, embedder):
    other = simulate_notes(fedsynth.datasets.mds_cohort(n=40, seed=1), seed=1)
    real = embedder.embed(notes["text"].tolist()[:40])
    synthetic = embedder.embed(other["text"].tolist())
    unrelated = embedder.embed([f"Invoice {i}: {i % 7} chairs delivered" for i in range(40)])
    assert frechet_distance(real, synthetic) < frechet_distance(real, unrelated)
    assert precision_recall(real, synthetic)["precision"] > 0.5
    assert precision_recall(real, unrelated)["precision"] < 0.1


def test_text_statistics():
    stats = text_statistics(["Hb 9.1 g/dL today", "Hb 9.1 g/dL again today"])
    assert stats["mean_words"] == 4.5 and stats["sd_words"] == 0.5
    assert stats["vocabulary"] == 5 and stats["type_token_ratio"] == pytest.approx(5 / 9)
    assert 0 < stats["distinct_2"] < 1


def test_utility_of_notes_for_the_risk_group(notes):
    train = simulate_notes(fedsynth.datasets.mds_cohort(n=300, seed=2), seed=2)
    labels = [f["ipssm_risk"] for f in train["facts"]]
    result = classifier_utility(
        train["text"], labels, notes["text"], [f["ipssm_risk"] for f in notes["facts"]]
    )
    assert result["accuracy"] > 0.6 and 0 < result["macro_f1"] <= 1
    with pytest.raises(ValueError, match="two distinct labels"):
        classifier_utility(["a", "b"], ["x", "x"], ["c"], ["x"])


def test_consistency_with_the_conditioning_rows(cohort, notes):
    rows = cohort.to_dict("records")
    matched = row_consistency_rate(notes["text"], rows)
    shuffled = row_consistency_rate(notes["text"], rows[1:] + rows[:1])
    assert matched["agreement"] > 0.95 and matched["facts_per_note"] > 6
    assert shuffled["agreement"] < 0.5


def test_verbatim_leakage():
    private = ["the patient a 70 year old man with hb 9.1 and plt 45 was seen in clinic today"]
    public = ["was seen in clinic today by the team"]
    copy = "summary: a 70 year old man with hb 9.1 and plt 45 was seen"
    fresh = "an 80 year old woman attended clinic with fatigue"
    assert longest_shared_span([copy, fresh], private).tolist() == [13, 2]
    leaked = reproduced_ngrams([copy, fresh], private, public=public, n=8)
    assert leaked == {"count": 6.0, "notes_with_copy": 0.5}
    only_public = reproduced_ngrams(
        ["it was seen in clinic today by the team"], public, public=public
    )
    assert only_public["count"] == 0


def test_membership_inference_auc():
    rng = np.random.default_rng(0)
    members, others = rng.normal(size=(100, 16)), rng.normal(size=(100, 16))
    copies = members + rng.normal(scale=0.05, size=members.shape)
    independent = rng.normal(size=(100, 16))
    assert membership_inference_auc(members, others, copies) > 0.95
    assert membership_inference_auc(members, others, independent) == pytest.approx(0.5, abs=0.1)


class _BagOfWords:
    """A fast stand-in for the sentence embedder: hashed word counts, unit norm."""

    def embed(self, texts):
        from fedsynth.text.embeddings import unit_rows
        from fedsynth.text.metrics import words

        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in words(text):
                out[i, sum(map(ord, word)) % 64] += 1
        return unit_rows(out)


def test_text_metrics_on_the_metric_base(cohort, notes):
    from fedsynth.text.validation import TEXT_METRICS, TextValidationData, evaluate_notes

    real, holdout = notes.iloc[:60], notes.iloc[60:]
    synthetic = simulate_notes(cohort.iloc[60:], seed=5)  # fresh wording of the holdout rows
    risk = [f["ipssm_risk"] for f in notes["facts"]]
    data = TextValidationData.prepare(
        real["text"], synthetic["text"], embedder=_BagOfWords(), holdout=holdout["text"],
        real_labels=risk[:60], synthetic_labels=risk[60:], holdout_labels=risk[60:],
        synthetic_rows=cohort.iloc[60:].to_dict("records"),
    )  # fmt: skip
    results = {r.name: r for r in evaluate_notes(data)}
    assert len(results) == len(TEXT_METRICS)
    for result in results.values():
        assert result.skipped is None, result.name
        assert 0 <= result.score <= 1 and result.to_dict()["family"] == result.family
    assert results["row_consistency"].score > 0.95
    # Template phrases recur across notes (8-grams such as "no treatment needed at present ...").
    assert results["verbatim_copies"].details["private_8grams_reproduced"] > 0
    bare = TextValidationData.prepare(real["text"], synthetic["text"], embedder=_BagOfWords())
    skipped = {r.name for r in evaluate_notes(bare) if r.skipped}
    assert skipped == {"note_utility", "row_consistency", "note_membership_inference"}
    with pytest.raises(ValueError, match="real_labels: 2 values for 60 notes"):
        TextValidationData.prepare(real["text"], synthetic["text"], embedder=_BagOfWords(),
                                   real_labels=["Low", "High"])  # fmt: skip
