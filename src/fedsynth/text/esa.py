"""Embedding space aggregation (ESA): the DP in-context-learning mechanism of Wu, Panda, Wang and
Mittal (ICLR 2024), as pure functions.

For each note to release:

1. the private notes are split into ``n_prompts`` disjoint groups (:func:`partition_notes`),
   each note in exactly one; each group is the few-shot examples of one prompt
   (:func:`build_prompt`), which a language model answers;
2. the answers are embedded as unit vectors and summed, and Gaussian noise is added to the sum
   (:func:`aggregate`, noise from :func:`esa_sigma`);
3. the released text is the *zero-shot* candidate, written from the public instruction alone,
   nearest to the noisy sum in cosine similarity (:func:`nearest_candidate`). No text written
   from a private prompt is ever released: the choice among public texts is post-processing of
   the noisy sum.

Privacy
-------
Neighbouring corpora differ by the presence of one note (add/remove, as everywhere in fedsynth:
:mod:`fedsynth.core.privacy.config`). A note's group is decided by a keyed hash of the note
alone, so adding or removing it changes the content of its own prompt and of no other; every one
of the ``n_prompts`` prompts answers whether or not its group is empty. One answer's unit
embedding ``u`` becomes another unit vector ``u'``, and ``||u - u'|| <= 2``: the sum has L2
sensitivity :data:`SENSITIVITY` = 2. (One would suffice only if each note had a prompt of its
own, so that adding it added one unit vector.) The ``T`` releases of a run are ``T`` Gaussian
mechanisms with the same noise; their composition is exactly one Gaussian mechanism of
sensitivity ``2 sqrt(T)`` (Dong, Roth and Su 2019, Gaussian differential privacy), which
:func:`esa_sigma` calibrates with the analytic Gaussian mechanism; :func:`charge_esa` records it
as one spend in the model's :class:`~fedsynth.core.privacy.PrivacyLedger`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize

from fedsynth.core.privacy import PrivacyLedger, Spend
from fedsynth.core.privacy.mechanisms import gaussian_delta, gaussian_sigma
from fedsynth.text.embeddings import unit_rows

#: L2 sensitivity of the sum of unit embeddings when one note is added or removed.
SENSITIVITY = 2.0
NEIGHBOURS = "add/remove of one note; each note changes its own prompt's answer only"
DEFAULT_SYSTEM = "You are a haematologist writing clinical notes. Write only the note."


def assign_prompts(keys: Sequence[str], n_prompts: int, *, seed: int = 0) -> np.ndarray:
    """The prompt of each note, from a keyed hash of the note's own key.

    Parameters
    ----------
    keys : sequence of str
        One key per note: its text, or a stable identifier.
    n_prompts : int
        Number of prompts (public).
    seed : int
        Key of the hash: another seed gives another partition.

    Returns
    -------
    ndarray of int, shape (len(keys),)
        Prompt index of each note, in ``[0, n_prompts)``. It depends on the note alone, not on
        the others: the property the privacy analysis needs.
    """
    if n_prompts < 1:
        raise ValueError(f"n_prompts must be >= 1, got {n_prompts}")
    out = np.empty(len(keys), dtype=np.int64)
    for i, key in enumerate(keys):
        digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
        out[i] = int.from_bytes(digest[:8], "little") % n_prompts
    return out


def partition_notes(
    notes: Sequence[str],
    n_prompts: int,
    *,
    seed: int = 0,
    max_shots: int | None = None,
    keys: Sequence[str] | None = None,
) -> list[list[int]]:
    """Disjoint groups of notes, one per prompt (indices into ``notes``).

    Parameters
    ----------
    notes : sequence of str
        The private notes.
    n_prompts : int
        Number of groups; some may be empty.
    seed : int
        Key of the assignment (:func:`assign_prompts`).
    max_shots : int, optional
        Most notes kept in one prompt (a context-length limit): a larger group keeps the notes
        whose keyed hash comes first, a choice made within the group, so the analysis holds.
        Notes dropped this way are used by no prompt.
    keys : sequence of str, optional
        Stable keys of the notes (ids); default: the texts.

    Returns
    -------
    list of list of int
        ``n_prompts`` groups; each note is in at most one (exactly one without ``max_shots``).

    Examples
    --------
    >>> partition_notes(["a", "b", "c", "d"], 2, seed=0)
    [[1, 2, 3], [0]]
    """
    keys = list(notes) if keys is None else list(keys)
    if len(keys) != len(notes):
        raise ValueError(f"{len(keys)} keys for {len(notes)} notes")
    assignment = assign_prompts(keys, n_prompts, seed=seed)
    groups: list[list[int]] = [[] for _ in range(n_prompts)]
    for index, prompt in enumerate(assignment):
        groups[prompt].append(index)
    if max_shots is not None:
        # Order inside a group by a second keyed hash, so the kept notes do not depend on the
        # order in which the corpus lists them.
        rank = assign_prompts(keys, 2**62, seed=seed + 1)
        groups = [sorted(g, key=lambda i: rank[i])[:max_shots] for g in groups]
    return groups


def build_prompt(
    instruction: str, shots: Sequence[str], *, system: str = DEFAULT_SYSTEM
) -> list[dict[str, str]]:
    """The chat of one in-context prompt: the public instruction and its example notes.

    Parameters
    ----------
    instruction : str
        What to write (public), e.g. a description of the patient the note is about.
    shots : sequence of str
        Example notes (private ones, or none for the zero-shot prompt).
    system : str
        The system message (public).

    Returns
    -------
    list of dict
        Chat messages for :meth:`fedsynth.text.backends.LLMBackend.chat`.
    """
    parts = [f"Example note {i}:\n{shot.strip()}" for i, shot in enumerate(shots, start=1)]
    if parts:
        parts.append("Write a new note in the same style, about a different patient.")
    parts.append(instruction.strip())
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def esa_sigma(
    epsilon: float, delta: float, n_releases: int, *, sensitivity: float = SENSITIVITY
) -> float:
    """Noise standard deviation per coordinate so that ``n_releases`` ESA releases are
    (epsilon, delta)-DP together.

    Examples
    --------
    >>> round(esa_sigma(1.0, 1e-5, 1), 2)
    7.46
    """
    if n_releases < 1:
        raise ValueError(f"n_releases must be >= 1, got {n_releases}")
    return gaussian_sigma(sensitivity * math.sqrt(n_releases), epsilon, delta)


def esa_epsilon(
    sigma: float, delta: float, n_releases: int, *, sensitivity: float = SENSITIVITY
) -> float:
    """The epsilon of ``n_releases`` ESA releases with noise ``sigma`` at ``delta`` (the
    inverse of :func:`esa_sigma`)."""
    total = sensitivity * math.sqrt(n_releases)

    def excess(log_epsilon: float) -> float:
        return gaussian_delta(sigma, sensitivity=total, epsilon=math.exp(log_epsilon)) - delta

    if excess(math.log(1e-9)) <= 0:
        return 0.0
    return math.exp(optimize.brentq(excess, math.log(1e-9), math.log(1e4), xtol=1e-12))


def aggregate(
    answer_embeddings: np.ndarray, *, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Sum of the unit embeddings of the private prompts' answers, plus N(0, sigma^2 I).

    Parameters
    ----------
    answer_embeddings : ndarray, shape (n_prompts, dimension)
        One embedding per prompt; each row is scaled to unit norm here, whatever it was, since
        the sensitivity bound rests on it.
    sigma : float
        Noise standard deviation (:func:`esa_sigma`); 0 gives the noiseless sum.
    rng : numpy Generator

    Returns
    -------
    ndarray of float64, shape (dimension,)
    """
    vectors = np.asarray(answer_embeddings, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"answer_embeddings must be a non-empty 2-d array, got {vectors.shape}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    total = unit_rows(vectors).astype(np.float64).sum(axis=0)
    return total + rng.normal(0.0, sigma, size=total.shape)


def nearest_candidate(noisy_sum: np.ndarray, candidate_embeddings: np.ndarray) -> int:
    """Index of the candidate with the largest cosine similarity to the noisy sum.

    Parameters
    ----------
    noisy_sum : ndarray, shape (dimension,)
        From :func:`aggregate`.
    candidate_embeddings : ndarray, shape (n_candidates, dimension)
        Embeddings of the zero-shot (public) candidates.
    """
    candidates = unit_rows(np.asarray(candidate_embeddings, dtype=np.float64))
    if candidates.ndim != 2 or len(candidates) == 0:
        raise ValueError("candidate_embeddings must be a non-empty 2-d array")
    return int(np.argmax(candidates @ np.asarray(noisy_sum, dtype=np.float32)))


def charge_esa(
    ledger: PrivacyLedger,
    *,
    epsilon: float,
    delta: float,
    n_releases: int,
    n_prompts: int,
    sigma: float,
    site: str | None = None,
) -> Spend:
    """Record ``n_releases`` ESA releases as one spend, before any is released.

    Raises
    ------
    fedsynth.core.privacy.PrivacyBudgetError
        When the spend would exceed the ledger's cap.
    """
    return ledger.charge(
        f"ESA release of {n_releases} note(s)",
        "gaussian",
        epsilon,
        delta,
        site=site,
        sigma=sigma,
        sensitivity=SENSITIVITY,
        releases=n_releases,
        prompts=n_prompts,
        neighbours=NEIGHBOURS,
        composition="exact: T Gaussian releases = one of sensitivity 2 sqrt(T) (GDP)",
    )
