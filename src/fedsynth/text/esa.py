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

Signal and noise
----------------
The sum of ``P`` unit vectors has norm at most ``P``, the noise ``sigma sqrt(d)`` in ``d``
dimensions (384 for all-MiniLM-L6-v2). What decides the release is smaller: the candidates'
scores ``c . (S + Z)`` differ by ``(c1 - c2) . S``, at most ``P ||c1 - c2||``, while the noise on
that difference has standard deviation ``sigma ||c1 - c2||``. :func:`span_projection` (the noisy
sum projected onto the candidates' span, post-processing that leaves the choice unchanged) and
:func:`signal_to_noise` estimate, from the released vector alone, how much of it is signal. The
per-note release needs ``P`` well above ``sigma`` for the private notes to decide anything (Wu et
al. use about 100 prompts); the *shared* aggregate of :func:`shared_prompts` spends one Gaussian
mechanism on one sum of many prompts, reused by every note (:mod:`fedsynth.text.dp_icl`).
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


def span_projection(noisy_sum: np.ndarray, candidate_embeddings: np.ndarray) -> np.ndarray:
    """The noisy sum projected orthogonally onto the span of the candidates' unit embeddings.

    Post-processing of the released sum and public candidates: it costs no privacy. Since every
    unit candidate ``c`` lies in the span, ``c . P v = c . v``: the cosine choice of
    :func:`nearest_candidate` is the same on the projection. What the projection changes is the
    noise one has to compare the signal with: ``sigma sqrt(k)`` for ``k`` candidates instead of
    ``sigma sqrt(d)`` (:func:`signal_to_noise`).

    Parameters
    ----------
    noisy_sum : ndarray, shape (dimension,)
    candidate_embeddings : ndarray, shape (n_candidates, dimension)

    Returns
    -------
    ndarray of float64, shape (dimension,)
    """
    basis = _span_basis(candidate_embeddings)
    vector = np.asarray(noisy_sum, dtype=np.float64)
    return basis.T @ (basis @ vector)


def _span_basis(candidate_embeddings: np.ndarray) -> np.ndarray:
    """Orthonormal rows spanning the candidates' unit embeddings (rank-revealing SVD)."""
    units = unit_rows(np.asarray(candidate_embeddings, dtype=np.float64))
    if units.ndim != 2 or len(units) == 0:
        raise ValueError("candidate_embeddings must be a non-empty 2-d array")
    _, values, rows = np.linalg.svd(units, full_matrices=False)
    return rows[values > 1e-10 * values[0]]


def signal_to_noise(
    noisy_sum: np.ndarray, candidate_embeddings: np.ndarray, *, sigma: float
) -> dict[str, float]:
    """Estimates, from the released sum alone, of its signal and noise (post-processing).

    ``E ||v||^2 = ||S||^2 + d sigma^2`` for ``v = S + Z`` in ``d`` dimensions, so
    ``sqrt(max(||v||^2 - d sigma^2, 0))`` estimates the norm of the noiseless sum ``S``; the same
    holds in the ``k``-dimensional span of the candidates (:func:`span_projection`), where the
    noise is ``sigma sqrt(k)``. The spread of the candidates' scores is compared with the noise
    on one score (``sigma``, each candidate being a unit vector).

    Parameters
    ----------
    noisy_sum : ndarray, shape (dimension,)
    candidate_embeddings : ndarray, shape (n_candidates, dimension)
    sigma : float
        The noise's standard deviation per coordinate (0: a noiseless sum, reported as is).

    Returns
    -------
    dict
        ``signal`` and ``noise`` (norms in the full space), ``snr``; ``span_signal``,
        ``span_noise``, ``span_snr`` (in the candidates' span, ``span_dim`` dimensions);
        ``score_spread`` (max - min of the candidates' scores) and ``score_snr`` = spread /
        ``sigma`` (``inf`` when ``sigma`` is 0).
    """
    vector = np.asarray(noisy_sum, dtype=np.float64)
    basis = _span_basis(candidate_embeddings)
    inside = basis @ vector
    dim, span_dim = vector.size, len(basis)
    signal = math.sqrt(max(float(vector @ vector) - dim * sigma**2, 0.0))
    span_signal = math.sqrt(max(float(inside @ inside) - span_dim * sigma**2, 0.0))
    scores = unit_rows(np.asarray(candidate_embeddings, dtype=np.float64)) @ vector
    spread = float(scores.max() - scores.min())
    noise, span_noise = sigma * math.sqrt(dim), sigma * math.sqrt(span_dim)
    return {
        "signal": signal,
        "noise": noise,
        "snr": signal / noise if noise else math.inf,
        "span_dim": float(span_dim),
        "span_signal": span_signal,
        "span_noise": span_noise,
        "span_snr": span_signal / span_noise if span_noise else math.inf,
        "score_spread": spread,
        "score_snr": spread / sigma if sigma else math.inf,
    }


def shared_prompts(
    notes: Sequence[str],
    instruction: str,
    n_prompts: int,
    *,
    seed: int,
    max_shots: int,
) -> list[list[dict[str, str]]]:
    """The private prompts of a shared aggregate: row-free, one disjoint group of notes each.

    The instruction is the generator's public one without any row ("write a note in the style of
    these examples"): the answers stand for the private corpus as a whole, and one noisy sum of
    their unit embeddings serves every released note.

    Parameters
    ----------
    notes : sequence of str
        The private example texts.
    instruction : str
        The public, row-free instruction.
    n_prompts : int
        Number of prompts (disjoint groups, :func:`partition_notes`).
    seed : int
        Key of the partition.
    max_shots : int
        Most notes per prompt.

    Returns
    -------
    list of chat messages, one per prompt (an empty group gives the zero-shot prompt)
    """
    groups = partition_notes(notes, n_prompts, seed=seed, max_shots=max_shots)
    return [build_prompt(instruction, [notes[j] for j in g]) for g in groups]


def charge_esa(
    ledger: PrivacyLedger,
    *,
    epsilon: float,
    delta: float,
    n_releases: int,
    n_prompts: int,
    sigma: float,
    site: str | None = None,
    shared: bool = False,
) -> Spend:
    """Record ``n_releases`` ESA releases as one spend, before any is released.

    ``shared=True`` records the one noisy sum of a shared aggregate (``n_releases`` must be 1):
    every note chosen with it afterwards is post-processing.

    Raises
    ------
    fedsynth.core.privacy.PrivacyBudgetError
        When the spend would exceed the ledger's cap.
    """
    if shared and n_releases != 1:
        raise ValueError(f"a shared aggregate is one release, got n_releases={n_releases}")
    what = (
        "ESA shared aggregate (one noisy sum for every note)"
        if shared
        else f"ESA release of {n_releases} note(s)"
    )
    composition = (
        "one Gaussian mechanism; the notes chosen with it are post-processing"
        if shared
        else "exact: T Gaussian releases = one of sensitivity 2 sqrt(T) (GDP)"
    )
    return ledger.charge(
        what,
        "gaussian",
        epsilon,
        delta,
        site=site,
        sigma=sigma,
        sensitivity=SENSITIVITY,
        releases=n_releases,
        prompts=n_prompts,
        neighbours=NEIGHBOURS,
        composition=composition,
    )
