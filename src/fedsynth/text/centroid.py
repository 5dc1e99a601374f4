"""A noisy sum of the private notes' own embeddings: a non-published alternative to the private
prompts of ESA (``dp_icl(aggregation="note_centroid")``).

**Not DP-ICL.** No language model reads a private note. The unit embeddings of the private notes
themselves are summed, Gaussian noise is added once (:func:`note_centroid`), and every released
note is the public (zero-shot) candidate with the largest cosine to that noisy sum: the same
release step as ESA's shared aggregate (:mod:`fedsynth.text.esa`), with another vector to
choose by. It is a Gaussian mechanism on a sum of bounded vectors (a DP mean embedding), not a
mechanism of Wu et al.; its closest published relatives are the nearest-neighbour votes of
Private Evolution (Lin et al., ICLR 2024; Xie et al., ICML 2024), which this is not either.

Privacy
-------
Neighbouring corpora differ by the presence of one note (add/remove, as everywhere in fedsynth).
A note's embedding depends on that note alone, and each row is scaled to norm at most 1 before
the sum, so adding or removing a note adds or removes one vector of norm <= 1: L2 sensitivity
:data:`SENSITIVITY` = 1 (the private prompts of ESA have 2: one answer is *replaced*). One
Gaussian mechanism, charged once (:func:`charge_centroid`); the choices of any number of notes
are post-processing. The sum's norm grows with the number of notes, so it also reveals that
number up to the noise; nothing else is released.

What it steers
--------------
The noisy sum points at the mean embedding of the real notes, so the release prefers, among a
row's candidates, the one that reads most like the corpus on average. It does not tailor
anything to the row, and it pulls every note toward the same direction, which can narrow the
spread of the released notes (the covariance term of the Fréchet distance); the candidates
still come from the public instruction alone, so a model that cannot write like the corpus
gives it nothing close to choose.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fedsynth.core.privacy import PrivacyLedger, Spend
from fedsynth.core.privacy.config import DPSettings
from fedsynth.core.privacy.mechanisms import gaussian_sigma
from fedsynth.text.esa import aggregate

#: L2 sensitivity of the sum of the notes' unit embeddings when one note is added or removed.
SENSITIVITY = 1.0
NEIGHBOURS = "add/remove of one note: the sum gains or loses one vector of norm <= 1"


def centroid_sigma(epsilon: float, delta: float) -> float:
    """Noise standard deviation per coordinate of an (epsilon, delta)-DP noisy note sum.

    Examples
    --------
    >>> round(centroid_sigma(1.0, 1e-5), 2)
    3.73
    """
    return gaussian_sigma(SENSITIVITY, epsilon, delta)


def note_centroid(
    note_embeddings: np.ndarray, *, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Sum of the private notes' unit embeddings, plus N(0, sigma^2 I).

    Parameters
    ----------
    note_embeddings : ndarray, shape (n_notes, dimension)
        One embedding per private note, of the note's own text; each row is scaled to unit
        norm (a zero row stays zero), which the sensitivity bound rests on.
    sigma : float
        Noise standard deviation (:func:`centroid_sigma`); 0 gives the noiseless sum.
    rng : numpy Generator

    Returns
    -------
    ndarray of float64, shape (dimension,)
    """
    return aggregate(note_embeddings, sigma=sigma, rng=rng)


def charge_centroid(
    ledger: PrivacyLedger,
    *,
    epsilon: float,
    delta: float,
    sigma: float,
    site: str | None = None,
) -> Spend:
    """Record the one noisy note sum before it is computed.

    Raises
    ------
    fedsynth.core.privacy.PrivacyBudgetError
        When the spend would exceed the ledger's cap.
    """
    return ledger.charge(
        "noisy sum of the private notes' unit embeddings (note_centroid; not DP-ICL)",
        "gaussian",
        epsilon,
        delta,
        site=site,
        sigma=sigma,
        sensitivity=SENSITIVITY,
        releases=1,
        neighbours=NEIGHBOURS,
        composition="one Gaussian mechanism; the notes chosen with it are post-processing",
    )


def release_note_centroid(
    ledger: PrivacyLedger | None,
    settings: DPSettings | None,
    embed_notes: Callable[[], np.ndarray],
    rng: np.random.Generator,
) -> tuple[np.ndarray, float]:
    """Charge (under ``settings``), then compute the noisy note sum.

    Parameters
    ----------
    ledger : PrivacyLedger or None
        The generator's ledger (``None`` without DP).
    settings : DPSettings or None
        ``None``: the noiseless sum (a non-private baseline).
    embed_notes : callable
        Returns the private notes' embeddings; called after the charge, so that a refused
        spend costs no work.
    rng : numpy Generator
        The noise stream.

    Returns
    -------
    (ndarray, float)
        The released vector and its noise standard deviation per coordinate.
    """
    sigma = 0.0
    if settings is not None:
        if ledger is None:
            raise ValueError("a DP release needs the generator's privacy ledger")
        sigma = centroid_sigma(settings.epsilon, settings.delta)
        charge_centroid(ledger, epsilon=settings.epsilon, delta=settings.delta, sigma=sigma)
    return note_centroid(embed_notes(), sigma=sigma, rng=rng), sigma
