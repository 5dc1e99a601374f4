"""Privacy checks of synthetic notes: verbatim copies of private notes, membership inference.

* :func:`longest_shared_span`: for each synthetic note, the longest run of words it shares with
  any private note;
* :func:`reproduced_ngrams`: private word 8-grams that synthetic notes reproduce although the
  public prompt (instruction, public examples) does not contain them;
* :func:`membership_inference_auc`: how well the similarity of a note to its nearest synthetic
  note tells the notes the generator saw (members) from held-out ones (0.5: not at all).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import mannwhitneyu

from fedsynth.text.embeddings import unit_rows
from fedsynth.text.metrics import words


def _longest_common_run(a: list[str], b: list[str]) -> int:
    # Dynamic programming over word positions, one row at a time (notes are short).
    best, previous = 0, [0] * (len(b) + 1)
    for word in a:
        current = [0] * (len(b) + 1)
        for j, other in enumerate(b, start=1):
            if word == other:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def longest_shared_span(synthetic: Sequence[str], private: Sequence[str]) -> np.ndarray:
    """For each synthetic note, the length in words of its longest run shared with a private
    note.

    Returns
    -------
    ndarray of int, shape (len(synthetic),)
    """
    private_words = [words(p) for p in private]
    return np.array(
        [
            max((_longest_common_run(words(s), p) for p in private_words), default=0)
            for s in synthetic
        ],
        dtype=int,
    )


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    tokens = words(text)
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def reproduced_ngrams(
    synthetic: Sequence[str],
    private: Sequence[str],
    *,
    public: Sequence[str] = (),
    n: int = 8,
) -> dict[str, float]:
    """Private word n-grams that the synthetic notes reproduce and the public texts do not hold.

    Parameters
    ----------
    synthetic, private : sequences of str
    public : sequence of str
        The public prompt's texts (instruction, public examples): n-grams found there are not
        counted, since the generator could write them without seeing a private note.
    n : int
        Words per n-gram.

    Returns
    -------
    dict
        ``count``: distinct such n-grams; ``notes_with_copy``: share of synthetic notes holding
        at least one.
    """
    private_grams = set().union(*(_ngrams(p, n) for p in private)) if private else set()
    public_grams = set().union(*(_ngrams(p, n) for p in public)) if public else set()
    leaked = private_grams - public_grams
    found: set[tuple[str, ...]] = set()
    with_copy = 0
    for text in synthetic:
        copied = _ngrams(text, n) & leaked
        found |= copied
        with_copy += bool(copied)
    return {
        "count": float(len(found)),
        "notes_with_copy": with_copy / len(synthetic) if len(synthetic) else 0.0,
    }


def membership_inference_auc(
    members: np.ndarray, non_members: np.ndarray, synthetic: np.ndarray
) -> float:
    """AUC of a distance attack telling private notes (members) from held-out ones.

    Each real note is scored by its cosine similarity to the nearest synthetic note; the AUC is
    the probability that a member scores above a non-member (ties count one half).

    Parameters
    ----------
    members, non_members, synthetic : ndarray, shape (n, dimension)
        Embeddings of the private notes, of held-out real notes and of the synthetic notes.

    Returns
    -------
    float
        0.5 when the synthetic notes are as close to held-out notes as to private ones; values
        well above 0.5 mean that they give away which notes were used.
    """
    synthetic = unit_rows(synthetic)
    if len(members) == 0 or len(non_members) == 0 or len(synthetic) == 0:
        raise ValueError("membership inference needs members, non-members and synthetic notes")

    def score(points: np.ndarray) -> np.ndarray:
        return (unit_rows(points) @ synthetic.T).max(axis=1)

    member_scores, other_scores = score(members), score(non_members)
    statistic = mannwhitneyu(member_scores, other_scores, alternative="two-sided").statistic
    return float(statistic / (len(member_scores) * len(other_scores)))
