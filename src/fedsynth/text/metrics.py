"""Fidelity, utility and consistency of synthetic notes, as functions on texts and embeddings.

* embedding fidelity: Fréchet distance between the Gaussian fits of real and synthetic note
  embeddings, and the k-nearest-neighbour precision and recall of Kynkäänniemi et al. (2019);
* surface statistics: length and vocabulary (:func:`text_statistics`);
* utility: a TF-IDF + logistic-regression classifier trained on synthetic notes and tested on
  real ones, for a label such as the IPSS-M risk group (:func:`classifier_utility`);
* consistency of each note with the row it was conditioned on (:func:`row_consistency_rate`).

Privacy checks (verbatim copies, membership inference) are in :mod:`fedsynth.text.leakage`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import linalg

from fedsynth.text.embeddings import unit_rows
from fedsynth.text.facts import row_consistency

_WORD = re.compile(r"[A-Za-z0-9]+(?:[-'/.][A-Za-z0-9]+)*")


def words(text: str) -> list[str]:
    """Lower-case word tokens of a note (numbers and hyphenated terms kept whole)."""
    return [w.lower() for w in _WORD.findall(text)]


def frechet_distance(real: np.ndarray, synthetic: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings (as FID, on notes).

    Parameters
    ----------
    real, synthetic : ndarray, shape (n, dimension)
        Note embeddings; at least two rows each.

    Returns
    -------
    float
        ``||mu_r - mu_s||^2 + tr(C_r + C_s - 2 (C_r C_s)^(1/2))``, 0 for identical fits.
    """
    real, synthetic = np.asarray(real, float), np.asarray(synthetic, float)
    if len(real) < 2 or len(synthetic) < 2:
        raise ValueError("the Fréchet distance needs at least two notes on each side")
    mean_gap = real.mean(0) - synthetic.mean(0)
    cov_r, cov_s = np.cov(real, rowvar=False), np.cov(synthetic, rowvar=False)
    root = linalg.sqrtm(cov_r @ cov_s)
    # sqrtm of a product of covariances is real in theory; rounding leaves tiny imaginary parts.
    root = np.real(root)
    value = mean_gap @ mean_gap + np.trace(cov_r) + np.trace(cov_s) - 2 * np.trace(root)
    return float(max(value, 0.0))


def frechet_bootstrap(
    real: np.ndarray,
    synthetic: Mapping[str, np.ndarray],
    *,
    reps: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Paired bootstrap of the Fréchet distance of several synthetic sets to one real set.

    The real set is held fixed; each replicate draws one set of row indices with replacement
    and applies it to every synthetic set, which must have the same number of rows (notes
    conditioned on the same rows): differences between methods are then paired.
    ``tr (C_r C_s)^(1/2)`` is computed from the eigenvalues of the ``m x m`` matrix
    ``(X A)(X A)^T / (m - 1)`` (``A = C_r^(1/2)``, ``X`` the centred synthetic rows), equal to
    :func:`frechet_distance` to rounding and fast enough for thousands of replicates.

    Parameters
    ----------
    real : ndarray, shape (n, dimension)
    synthetic : mapping of name to ndarray, shape (m, dimension)
    reps : int
        Bootstrap replicates.
    level : float
        Coverage of the percentile intervals.
    seed : int

    Returns
    -------
    dict
        Per name: ``value`` (on all rows), ``low``, ``high`` and ``draws`` (ndarray of the
        replicates, for paired differences).
    """
    real = np.asarray(real, float)
    sets = {name: np.asarray(x, float) for name, x in synthetic.items()}
    sizes = {len(x) for x in sets.values()}
    if len(sizes) != 1 or min(sizes) < 2:
        raise ValueError(f"the synthetic sets need the same number (>= 2) of rows, got {sizes}")
    m = sizes.pop()
    mu_r, cov_r = real.mean(0), np.cov(real, rowvar=False)
    values, vectors = np.linalg.eigh(cov_r)
    root_r = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    tr_r = float(np.trace(cov_r))

    def distance(x: np.ndarray) -> float:
        mean = x.mean(0)
        centred = (x - mean) @ root_r
        small = centred @ centred.T / (m - 1)
        tr_root = np.sqrt(np.clip(np.linalg.eigvalsh(small), 0, None)).sum()
        tr_s = float(((x - mean) ** 2).sum() / (m - 1))
        gap = mu_r - mean
        return float(max(gap @ gap + tr_r + tr_s - 2 * tr_root, 0.0))

    rng = np.random.default_rng(seed)
    draws = rng.integers(m, size=(reps, m))
    tail = (1 - level) / 2
    out = {}
    for name, x in sets.items():
        boot = np.array([distance(x[idx]) for idx in draws])
        low, high = np.quantile(boot, [tail, 1 - tail])
        out[name] = {"value": distance(x), "low": float(low), "high": float(high), "draws": boot}
    return out


def precision_recall(real: np.ndarray, synthetic: np.ndarray, *, k: int = 5) -> dict[str, float]:
    """k-NN precision and recall of synthetic note embeddings (Kynkäänniemi et al. 2019).

    Precision: share of synthetic notes inside the real notes' manifold (within the distance
    of some real note to its ``k``-th real neighbour); recall: share of real notes inside the
    synthetic manifold. Embeddings are compared as unit vectors.

    Returns
    -------
    dict
        ``{"precision": ..., "recall": ...}``, each in [0, 1].
    """
    real, synthetic = unit_rows(real), unit_rows(synthetic)
    if len(real) <= k or len(synthetic) <= k:
        raise ValueError(f"precision and recall with k={k} need more than {k} notes on each side")

    def radii(points: np.ndarray) -> np.ndarray:
        distances = np.sqrt(np.maximum(2 - 2 * points @ points.T, 0))
        return np.sort(distances, axis=1)[:, k]  # column 0 is the point itself

    def covered(manifold: np.ndarray, radius: np.ndarray, queries: np.ndarray) -> float:
        distances = np.sqrt(np.maximum(2 - 2 * queries @ manifold.T, 0))
        return float(np.mean((distances <= radius[None, :]).any(axis=1)))

    return {
        "precision": covered(real, radii(real), synthetic),
        "recall": covered(synthetic, radii(synthetic), real),
    }


def text_statistics(texts: Sequence[str]) -> dict[str, float]:
    """Length and vocabulary statistics of a set of notes.

    Returns
    -------
    dict
        ``mean_words``, ``sd_words``, ``vocabulary`` (distinct words), ``type_token_ratio``
        (distinct over all words) and ``distinct_2`` (distinct over all word bigrams: low values
        mean repeated phrasing).
    """
    tokens = [words(t) for t in texts]
    lengths = np.array([len(t) for t in tokens], dtype=float)
    flat = [w for t in tokens for w in t]
    bigrams = [tuple(t[i : i + 2]) for t in tokens for i in range(len(t) - 1)]
    return {
        "mean_words": float(lengths.mean()) if len(lengths) else 0.0,
        "sd_words": float(lengths.std()) if len(lengths) else 0.0,
        "vocabulary": float(len(set(flat))),
        "type_token_ratio": len(set(flat)) / len(flat) if flat else 0.0,
        "distinct_2": len(set(bigrams)) / len(bigrams) if bigrams else 0.0,
    }


def classifier_utility(
    train_texts: Sequence[str],
    train_labels: Sequence[Any],
    test_texts: Sequence[str],
    test_labels: Sequence[Any],
    *,
    seed: int = 0,
) -> dict[str, float]:
    """Accuracy and macro-F1 on ``test`` of a TF-IDF + logistic-regression classifier.

    Train on synthetic notes and test on real ones to measure utility; train on real ones for
    the reference it is compared with.

    Raises
    ------
    ValueError
        Fewer than two classes in the training labels.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    if len(set(train_labels)) < 2:
        raise ValueError("the training notes carry fewer than two distinct labels")
    model = make_pipeline(
        # Numbers and abbreviations carry the clinical content: keep tokens such as "9.1", "hb".
        TfidfVectorizer(token_pattern=r"[A-Za-z0-9][A-Za-z0-9.\-]*", ngram_range=(1, 2)),
        LogisticRegression(max_iter=2000, random_state=seed),
    )
    model.fit(list(train_texts), list(train_labels))
    predicted = model.predict(list(test_texts))
    return {
        "accuracy": float(accuracy_score(list(test_labels), predicted)),
        "macro_f1": float(f1_score(list(test_labels), predicted, average="macro")),
    }


def row_consistency_rate(
    texts: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """How well notes agree with the rows they were conditioned on (facts read by regex).

    Returns
    -------
    dict
        ``agreement``: agreeing facts over facts stated (NaN when none), ``facts_per_note``:
        facts stated that the row can check, on average.
    """
    if len(texts) != len(rows):
        raise ValueError(f"{len(texts)} notes for {len(rows)} rows")
    agreeing = stated = 0
    for text, row in zip(texts, rows, strict=True):
        a, s = row_consistency(text, row)
        agreeing, stated = agreeing + a, stated + s
    return {
        "agreement": agreeing / stated if stated else float("nan"),
        "facts_per_note": stated / len(texts) if len(texts) else 0.0,
    }
