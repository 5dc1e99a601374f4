"""Clinical notes by differentially private in-context learning (embedding space aggregation).

:class:`DPICLGenerator` (``fedsynth.make("dp_icl", ...)``) writes synthetic notes with a language
model shown private notes as examples, and releases them under differential privacy with the
embedding space aggregation of :mod:`fedsynth.text.esa` (Wu et al., ICLR 2024). Nothing is
trained: ``fit`` checks the notes and keeps them in memory for the releases; the privacy budget
is spent by :meth:`DPICLGenerator.sample`, the only step that reads them.

Each released note is a *public* candidate, written from the public instruction alone
(zero-shot, with the conditioning row's facts), chosen by its cosine to a noisy sum of the unit
embeddings of the answers of ``n_prompts`` disjoint private prompts. ``aggregation="per_note"``
(as published): each note has its own row-conditioned private prompts and noisy sum, ``n`` sums
composed per call (noise growing with ``sqrt(n)``). ``aggregation="shared"``: ``n_prompts``
row-free private prompts are answered once and one noisy sum, *one* Gaussian mechanism, is kept
(``shared_aggregate_``); every note's candidates are chosen by cosine to it, post-processing, so
any number of notes, now or later, costs that one spend. It carries the corpus's style, not what
a private note says about a patient like the row (docs/text-generation.md).
``aggregation="note_centroid"`` (not published, not DP-ICL: :mod:`fedsynth.text.centroid`)
chooses the same way by one noisy sum of the private notes' own unit embeddings (sensitivity 1).

``candidate_styles`` (an extension: Wu et al.'s candidates are samples of one prompt) writes the
candidates from several public instructions (:data:`~fedsynth.text.prompts.CLINICAL_STYLES`),
so the noisy sum chooses a style too, at no epsilon (:mod:`fedsynth.text.candidates`).

A saved model holds the hyperparameters, the ledger and, once released under ``dp``, the noisy
shared aggregate (a DP output), never a note: loaded, it writes zero-shot notes, and shared-ESA
notes from an aggregate it already released; anything else needs a new fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from fedsynth.core.base import BaseEstimator
from fedsynth.core.privacy import PrivacyLedger
from fedsynth.core.privacy.config import DPSettings, PrivacyConfigError, resolve_dp
from fedsynth.core.registry import register
from fedsynth.exceptions import NoteDataError
from fedsynth.text._inputs import condition_rows, positive_int, read_notes, report_progress
from fedsynth.text.backends import LLMBackend, backend_from_spec, backend_spec_problems
from fedsynth.text.candidates import choose_candidate
from fedsynth.text.centroid import release_note_centroid
from fedsynth.text.esa import (
    aggregate,
    build_prompt,
    charge_esa,
    esa_sigma,
    partition_notes,
    shared_prompts,
)
from fedsynth.text.grounding import grounded_note
from fedsynth.text.prompts import (
    DEFAULT_INSTRUCTION,
    candidate_bases,
    row_instruction,
    shot_text,
    style_problems,
)

MODES = ("esa", "icl", "zero_shot")
AGGREGATIONS = ("per_note", "shared", "note_centroid")
#: Aggregations released once as one noisy vector (``shared_aggregate_``) that every note reuses.
ONE_VECTOR = ("shared", "note_centroid")
#: ``progress(done, total, info)`` after each released note; ``info`` counts the work.
Progress = Callable[[int, int, dict[str, int]], None]


@register("dp_icl", modality="text")
class DPICLGenerator(BaseEstimator):
    """Synthetic clinical notes by DP in-context learning with embedding space aggregation.

    Parameters
    ----------
    dp : dict, optional
        ``{"epsilon": ..., "delta": ...}`` (and ``max_epsilon``): each call of :meth:`sample`
        releases its notes with (epsilon, delta)-DP together, the noise growing with the
        square root of their number; ``max_epsilon`` caps the total of every call (the ledger,
        ``privacy_spent_``, sums them). ``None``: no privacy (baselines and tests).
    shots : int
        Most private notes in one prompt (a context-length limit).
    n_prompts : int
        Disjoint private prompts in one aggregate (per note, or the shared one); more prompts
        lift the signal above the noise (the sum grows with them, the noise does not). ``fit``
        needs at least this many notes.
    candidates : int
        Zero-shot candidates per released note, among which the noisy sum chooses.
    aggregation : {"per_note", "shared", "note_centroid"}
        One noisy sum per note, one shared by every note, or (not published) one noisy sum of
        the private notes' own embeddings (see the module's docstring).
    backend : {"local", "fake"} or dict, optional
        The language model: ``"local"`` (default, ``None``): SmolLM2-135M in-process
        (:class:`~fedsynth.text.llama.LocalLlamaBackend`); ``"fake"``: the deterministic
        :class:`~fedsynth.text.backends.FakeBackend`; ``{"url": ..., "model": ...,
        "allow_remote": ...}``: an OpenAI-compatible server. A backend *object* (a hospital's own
        client, a test double) is given with :meth:`set_backend` instead, so that the
        parameters stay JSON and the model files hold them.
    embedder : str, optional
        Folder of a sentence-transformers model; default all-MiniLM-L6-v2 from its wheel.
        An embedder object is given with :meth:`set_backend`.
    max_tokens : int
        Most tokens of one generated note.
    temperature : float
        Sampling temperature of every generation.
    instruction : str
        The public instruction: what to write (a row's facts are appended when conditioning).
        The private prompts' instruction, and the first candidate's.
    candidate_styles : {"clinical"} or list of str, optional
        Public instructions the candidates cycle through after ``instruction``
        (:meth:`candidate_instructions`), so the noisy sum chooses a style too. ``"clinical"``:
        consult letter, discharge summary, shorthand (:data:`~fedsynth.text.prompts.
        CLINICAL_STYLES`); ``None``: ``instruction`` alone, as published. Not in Wu et al.; no
        epsilon (public texts, the same private prompts, a post-processing choice). The
        zero-shot note (the first candidate) is ``instruction``'s either way.
    grounded : bool
        For notes conditioned on a row: start the note with a header of the row's facts
        (a template) and remove the narrative's sentences that contradict the row, after
        keeping, among the candidates, those that contradict it least
        (:mod:`fedsynth.text.grounding`; public checks, no privacy spent). ``False``: the
        model's text as written (the row's facts are only in the instruction).
    verbose : bool
        Print one line per released note (prompts and words generated so far).
    seed : int, optional
        Seed of the partitions, the generations and the noise.

    Attributes
    ----------
    privacy_spent_ : PrivacyLedger or None
        Every release's spend (``None`` without ``dp``).
    n_released_ : int
        Notes released so far by :meth:`sample` (all modes).
    shared_aggregate_ : ndarray or None
        The released noisy sum of ``aggregation="shared"`` (after the first ESA call).
    shared_sigma_ : float
        Its noise per coordinate (0 without ``dp``).
    release_log_ : list of dict
        Per ESA note of this session: :func:`~fedsynth.text.candidates.choose_candidate`'s log
        (the noise, scores, choice, styles, signal-to-noise; post-processing; not saved).

    Examples
    --------
    >>> gen = fedsynth.make("dp_icl", dp={"epsilon": 3, "delta": 1e-5}, seed=0)  # doctest: +SKIP
    >>> gen.fit(notes_frame).sample(5)  # doctest: +SKIP
    """

    privacy_parts: ClassVar[str] = "the released notes"

    def __init__(
        self,
        *,
        dp: Mapping[str, Any] | None = None,
        shots: int = 4,
        n_prompts: int = 8,
        candidates: int = 8,
        aggregation: str = "per_note",
        backend: str | Mapping[str, Any] | None = None,
        embedder: str | None = None,
        max_tokens: int = 200,
        temperature: float = 0.7,
        instruction: str = DEFAULT_INSTRUCTION,
        candidate_styles: str | Sequence[str] | None = None,
        grounded: bool = True,
        verbose: bool = False,
        seed: int | None = None,
    ):
        self.dp = dp
        self.shots = shots
        self.n_prompts = n_prompts
        self.candidates = candidates
        self.aggregation = aggregation
        self.backend = backend
        self.embedder = embedder
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.instruction = instruction
        self.candidate_styles = candidate_styles
        self.grounded = grounded
        self.verbose = verbose
        self.seed = seed
        self._backend_object: LLMBackend | None = None
        self._embedder_object: Any = None

    # ------------------------------------------------------------------ models
    def set_backend(self, backend: LLMBackend | None = None, *, embedder: Any = None) -> Self:
        """Use these objects instead of those the parameters name (they are not saved).

        Parameters
        ----------
        backend : LLMBackend, optional
            The language model; ``None`` keeps the current one.
        embedder : object with ``embed(texts) -> ndarray``, optional
            The sentence embedder; ``None`` keeps the current one.

        Returns
        -------
        self
        """
        if backend is not None:
            if not isinstance(backend, LLMBackend):
                raise TypeError(f"backend must be an LLMBackend, got {type(backend).__name__}")
            self._backend_object = backend
        if embedder is not None:
            if not callable(getattr(embedder, "embed", None)):
                raise TypeError(f"embedder needs an embed(texts) method: {embedder!r}")
            self._embedder_object = embedder
        return self

    def _llm(self) -> LLMBackend:
        if self._backend_object is None:
            self._backend_object = backend_from_spec(self.backend)
        return self._backend_object

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._embedder_object is None:
            from fedsynth.text.embeddings import SentenceEmbedder

            self._embedder_object = SentenceEmbedder(self.embedder)
        return np.asarray(self._embedder_object.embed(list(texts)))

    # ------------------------------------------------------------------ fitting
    def _check_params(self, settings: DPSettings | None) -> None:
        problems = [
            f"{name} must be an integer >= 1, got {getattr(self, name)!r}"
            for name in ("shots", "n_prompts", "candidates", "max_tokens")
            if not positive_int(getattr(self, name))
        ]
        problems += backend_spec_problems(self.backend)
        if self.embedder is not None and not isinstance(self.embedder, str):
            problems.append(f"embedder must be a folder path or None, got {self.embedder!r}")
        if not (isinstance(self.temperature, int | float) and self.temperature >= 0):
            problems.append(f"temperature must be a number >= 0, got {self.temperature!r}")
        if self.aggregation not in AGGREGATIONS:
            problems.append(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if not isinstance(self.grounded, bool):
            problems.append(f"grounded must be True or False, got {self.grounded!r}")
        if not (isinstance(self.instruction, str) and self.instruction.strip()):
            problems.append("instruction must be a non-blank string")
        problems += style_problems(self.candidate_styles)
        self._raise_invalid_params(problems)

    def fit(self, data: Any, *, text_column: str = "text") -> DPICLGenerator:
        """Check the private notes and keep them in memory for the releases of :meth:`sample`.

        Parameters
        ----------
        data : list of str or DataFrame
            The private notes; a DataFrame holds them in ``text_column``, and its other columns
            (the MDS cohort's ``age``, ``sex``, ``hb``, ... gene flags), when present, are the
            facts shown with each example note, so that the model sees rows and notes paired.
        text_column : str
            The column of the notes in a DataFrame.

        Returns
        -------
        self

        Raises
        ------
        NoteDataError
            No notes, a note that is not a non-blank string (positions named), a missing
            column, or fewer notes than ``n_prompts``.
        """
        return super().fit(data, text_column=text_column)

    def _fit_data(self, data: Any, settings: DPSettings | None, *, text_column: str) -> None:
        notes, rows = read_notes(data, text_column)
        if len(notes) < self.n_prompts:
            raise NoteDataError(
                f"fit got {len(notes)} note(s) but n_prompts={self.n_prompts}: every private "
                "prompt needs at least one note; give more notes or lower n_prompts"
            )
        self._run_fit_hook(settings, notes, rows)
        self._settings = settings
        self._start_streams()
        self._stamp()

    def _fit(self, notes: list[str], rows: list[dict[str, Any]] | None) -> None:
        # Kept in memory only: no state, file or repr ever holds them.
        paired = rows or [None] * len(notes)
        self._private = [shot_text(n, r) for n, r in zip(notes, paired, strict=True)]
        self._notes = list(notes)  # the notes' own texts, for aggregation="note_centroid"

    def _fit_private(
        self,
        notes: list[str],
        rows: list[dict[str, Any]] | None,
        settings: DPSettings,
        ledger: PrivacyLedger,
    ) -> None:
        # Reading the notes spends nothing: the releases of sample() are charged one call at a
        # time, before any generation.
        self._fit(notes, rows)

    def _fitted_summary(self) -> str:
        held = "private notes in memory" if getattr(self, "_private", None) else "no private note"
        return f"{held}, {self.n_released_} released"

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        n: int,
        conditions: Mapping[str, Any] | pd.Series | pd.DataFrame | None = None,
        *,
        mode: str = "esa",
        progress: Progress | None = None,
    ) -> list[str]:
        """Write ``n`` notes.

        Parameters
        ----------
        n : int
            Number of notes.
        conditions : dict, Series or DataFrame, optional
            A (synthetic) patient row whose facts go into the public instruction of every note,
            or a DataFrame of ``n`` rows, one per note: the notes of a multimodal synthetic
            patient agree with its row.
        mode : {"esa", "icl", "zero_shot"}
            ``"esa"``: the DP release (noiseless without ``dp``), per note or through the shared
            aggregate (``aggregation``); ``"icl"``: the answer of one prompt of ``shots``
            private notes, released as is (non-private, only with ``dp=None``);
            ``"zero_shot"``: the public instruction alone (reads no private note, spends
            nothing; the note is the first candidate ESA would have chosen among).
        progress : callable, optional
            ``progress(done, n, info)`` after each note; ``info`` has ``prompts`` (generations
            run) and ``words`` (words generated) so far.

        Returns
        -------
        list of str

        Raises
        ------
        PrivacyBudgetError
            Before any generation, when the release would take the ledger above ``max_epsilon``.
        PrivacyConfigError
            ``mode="icl"`` under ``dp``.
        NotFittedError, NoteDataError
            Not fitted, or loaded from files (which hold no private note) in a private mode
            that has no released shared aggregate to reuse.
        """
        self._check_is_fitted()
        if not positive_int(n):
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        rows = condition_rows(n, conditions)
        instructions = [row_instruction(row, base=self.instruction) for row in rows]
        settings = self._settings
        if mode == "icl" and settings is not None:
            raise PrivacyConfigError(
                "mode='icl' releases text written from private notes as is: it is non-private "
                "and needs dp=None; use mode='esa' for the DP release"
            )
        shared = mode == "esa" and self.aggregation in ONE_VECTOR
        reusable = shared and self.shared_aggregate_ is not None
        if mode != "zero_shot" and not reusable and not getattr(self, "_private", None):
            raise NoteDataError(
                f"mode={mode!r} needs the private notes, which a saved model does not hold; "
                "fit again to release notes from them (mode='zero_shot' needs none)"
            )
        counts = {"prompts": 0, "words": 0}
        sigma = 0.0
        if shared:
            self._shared_release(counts)
        elif mode == "esa" and settings is not None:
            # Charged before any generation, so a refusal costs nothing and releases nothing.
            sigma = self._charge_esa(n)
        notes = []
        for i, (instruction, row) in enumerate(zip(instructions, rows, strict=True)):
            if mode == "esa":
                if shared:
                    noisy, sigma = self.shared_aggregate_, self.shared_sigma_
                else:
                    noisy = self._per_note_aggregate(instruction, sigma, counts)
                note = self._choose(row, noisy, sigma, counts)
            elif mode == "icl":
                picked = self._rng.choice(len(self._private), self.shots, replace=False)
                shots = [self._private[j] for j in sorted(picked)]
                seed = int(self._rng.integers(2**31))
                note = self._generate([build_prompt(instruction, shots)], [seed], counts)[0]
            else:
                seed = self._candidate_seeds(1)[0]
                note = self._generate([build_prompt(instruction, [])], [seed], counts)[0]
            if row is not None and self.grounded:
                note = grounded_note(note, row)
            notes.append(note)
            self.n_released_ += 1
            report_progress(i + 1, n, counts, progress, verbose=self.verbose)
        return notes

    def _shared_release(self, counts: dict[str, int]) -> None:
        """Release the shared aggregate once (one Gaussian mechanism); later calls reuse it."""
        if self.shared_aggregate_ is not None:
            return
        settings = self._settings
        if self.aggregation == "note_centroid":
            self.shared_aggregate_, self.shared_sigma_ = release_note_centroid(
                self.privacy_spent_, settings, lambda: self._embed(self._notes), self._noise_rng
            )
            return
        sigma = 0.0 if settings is None else self._charge_esa(1, shared=True)
        key = int(self._rng.integers(2**31))
        chats = shared_prompts(
            self._private, self.instruction, self.n_prompts, seed=key, max_shots=self.shots
        )
        seeds = [int(s) for s in self._rng.integers(2**31, size=len(chats))]
        answers = self._generate(chats, seeds, counts)
        self.shared_aggregate_ = aggregate(self._embed(answers), sigma=sigma, rng=self._noise_rng)
        self.shared_sigma_ = sigma

    def _charge_esa(self, n_releases: int, *, shared: bool = False) -> float:
        """Record ``n_releases`` ESA releases in the ledger; their noise per coordinate."""
        eps, delta = self._settings.epsilon, self._settings.delta
        sigma = esa_sigma(eps, delta, n_releases)
        kwargs = {"n_releases": n_releases, "n_prompts": self.n_prompts, "shared": shared}
        charge_esa(self.privacy_spent_, epsilon=eps, delta=delta, sigma=sigma, **kwargs)
        return sigma

    def _per_note_aggregate(self, instruction: str, sigma: float, counts: dict[str, int]):
        # A new public partition per release: the analysis holds for any data-independent one.
        key = int(self._rng.integers(2**31))
        groups = partition_notes(self._private, self.n_prompts, seed=key, max_shots=self.shots)
        chats = [build_prompt(instruction, [self._private[j] for j in g]) for g in groups]
        seeds = [int(s) for s in self._rng.integers(2**31, size=len(chats))]
        answers = self._generate(chats, seeds, counts)
        return aggregate(self._embed(answers), sigma=sigma, rng=self._noise_rng)

    def candidate_instructions(self, row: Mapping[str, Any] | None = None) -> list[str]:
        """The public instructions of a note's ``candidates``, in order: candidate ``j`` from
        ``[instruction, *candidate_styles][j mod k]``, with the facts of ``row`` if given."""
        bases = candidate_bases(self.instruction, self.candidate_styles)
        return [row_instruction(row, base=bases[j % len(bases)]) for j in range(self.candidates)]

    def _choose(
        self, row: dict[str, Any] | None, noisy: np.ndarray, sigma: float, counts: dict[str, int]
    ) -> str:
        """The public candidate nearest to the noisy sum (post-processing of the sum)."""
        chats = [build_prompt(i, []) for i in self.candidate_instructions(row)]
        texts = self._generate(chats, self._candidate_seeds(self.candidates), counts)
        k = len(candidate_bases(self.instruction, self.candidate_styles))
        styles = [j % k for j in range(self.candidates)]
        check = row if self.grounded else None  # the public row check of the candidates
        note, log = choose_candidate(texts, styles, noisy, self._embed, sigma=sigma, row=check)
        self.release_log_.append(log)
        return note

    def _candidate_seeds(self, count: int) -> list[int]:
        # Seeds of the note's public candidates from the seed and the note's number alone, so
        # that the zero-shot mode and both aggregations write the same candidates for a note.
        number = self.n_released_
        return [
            int(np.random.default_rng([self._candidate_key, number, j]).integers(2**31))
            for j in range(count)
        ]

    def _generate(
        self, chats: list[list[dict[str, str]]], seeds: list[int], counts: dict[str, int]
    ) -> list[str]:
        answers = self._llm().chat_many(
            chats, seeds=seeds, max_tokens=self.max_tokens, temperature=self.temperature
        )
        texts = [a.strip() for a in answers]
        counts["prompts"] += len(texts)
        counts["words"] += sum(len(t.split()) for t in texts)
        return texts

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        # The private notes are never saved: the count of released notes (public) and, once
        # released under dp, the noisy shared aggregate (a DP output, reusable for free).
        arrays = {}
        if self.shared_aggregate_ is not None and self._settings is not None:
            arrays["shared_aggregate"] = np.asarray(self.shared_aggregate_, dtype=np.float64)
        state = {"n_released": int(self.n_released_), "shared_sigma": self.shared_sigma_}
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self._settings = None if self.dp is None else resolve_dp(self.dp)
        self._private, self._notes = [], []
        self._start_streams()
        self.n_released_ = int(state["n_released"])
        self.shared_aggregate_ = arrays.get("shared_aggregate")
        self.shared_sigma_ = float(state.get("shared_sigma", 0.0))

    def _start_streams(self) -> None:
        # Three independent streams: private prompts (partitions, seeds), the noise, and the
        # key of the candidates' seeds; the noise never shifts which texts are generated.
        streams = np.random.SeedSequence(self.seed).spawn(3)
        self._rng = np.random.default_rng(streams[0])
        self._noise_rng = np.random.default_rng(streams[1])
        self._candidate_key = int(streams[2].generate_state(1)[0])
        self.n_released_ = 0
        self.shared_aggregate_ = None
        self.shared_sigma_ = 0.0
        self.release_log_ = []
