"""The choice of the released note among public candidates: post-processing of the noisy sum.

Every candidate is written from a public instruction alone (zero-shot, with the row's facts);
with ``candidate_styles`` (:func:`fedsynth.text.prompts.candidate_bases`) the candidates of one
note come from several public instructions, so that the choice picks a style as well as a
wording. Neither the public row check (:func:`fedsynth.text.grounding.least_contradicting`) nor
the cosine choice reads a private note: they read public texts and the released noisy sum.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from fedsynth.text.embeddings import unit_rows
from fedsynth.text.esa import nearest_candidate, signal_to_noise
from fedsynth.text.grounding import least_contradicting


def choose_candidate(
    texts: Sequence[str],
    styles: Sequence[int],
    noisy: np.ndarray,
    embed: Callable[[Sequence[str]], np.ndarray],
    *,
    sigma: float,
    row: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The candidate nearest to the noisy sum, and the log of the choice.

    Parameters
    ----------
    texts : sequence of str
        The note's public candidates.
    styles : sequence of int
        The public instruction each candidate was written from (an index).
    noisy : ndarray, shape (dimension,)
        The released noisy sum.
    embed : callable
        Sentence embeddings of texts.
    sigma : float
        The noise of ``noisy`` per coordinate (for the log's signal-to-noise estimates).
    row : mapping, optional
        With a row, the candidates that contradict it least are kept first (a public check).

    Returns
    -------
    text : str
        The chosen candidate.
    log : dict
        ``sigma``, ``candidates`` (kept), ``chosen`` (index among the kept), ``scores`` (their
        cosines to the noisy sum), ``styles`` (of the kept), ``style`` (of the chosen) and the
        estimates of :func:`~fedsynth.text.esa.signal_to_noise`.
    """
    if len(texts) != len(styles):
        raise ValueError(f"{len(texts)} candidates but {len(styles)} styles")
    kept = list(range(len(texts))) if row is None else least_contradicting(texts, row)
    texts, styles = [texts[i] for i in kept], [int(styles[i]) for i in kept]
    embedded = np.asarray(embed(texts))
    chosen = nearest_candidate(noisy, embedded)
    scores = [float(x) for x in unit_rows(embedded) @ noisy]
    log = {"sigma": sigma, "candidates": len(texts), "chosen": chosen, "scores": scores}
    log |= {"styles": styles, "style": styles[chosen]}
    return texts[chosen], log | signal_to_noise(noisy, embedded, sigma=sigma)
