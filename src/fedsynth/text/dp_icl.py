"""Clinical notes by differentially private in-context learning (embedding space aggregation).

:class:`DPICLGenerator` (``fedsynth.make("dp_icl", ...)``) writes synthetic notes with a language
model shown private notes as examples, and releases them under differential privacy with the
embedding space aggregation of :mod:`fedsynth.text.esa` (Wu et al., ICLR 2024). Nothing is
trained: ``fit`` checks the notes and keeps them in memory for the releases; the privacy budget
is spent by :meth:`DPICLGenerator.sample`, the only step that reads them.

Each released note is a *public* candidate, written from the public instruction alone
(zero-shot), chosen by its nearness to the noisy sum of the embeddings of the answers of
``n_prompts`` disjoint private prompts. A saved model holds the hyperparameters and the privacy
ledger, never a note: once loaded it writes zero-shot notes only, and must be fitted again to
release more notes from private ones.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from fedsynth.core.base import BaseEstimator
from fedsynth.core.privacy import PrivacyLedger
from fedsynth.core.privacy.config import DPSettings, PrivacyConfigError, resolve_dp
from fedsynth.core.registry import register
from fedsynth.exceptions import NoteDataError
from fedsynth.text.backends import FakeBackend, LLMBackend, OpenAICompatibleBackend
from fedsynth.text.esa import (
    aggregate,
    build_prompt,
    charge_esa,
    esa_sigma,
    nearest_candidate,
    partition_notes,
)
from fedsynth.text.grounding import grounded_note, least_contradicting
from fedsynth.text.prompts import DEFAULT_INSTRUCTION, row_instruction, shot_text

MODES = ("esa", "icl", "zero_shot")
BACKEND_NAMES = ("local", "fake")
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
        Disjoint private prompts aggregated per released note; more prompts lift the signal
        above the noise (the sum grows with them, the noise does not). ``fit`` needs at least
        this many notes.
    candidates : int
        Zero-shot candidates per released note, among which the noisy sum chooses.
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
        backend: str | Mapping[str, Any] | None = None,
        embedder: str | None = None,
        max_tokens: int = 200,
        temperature: float = 0.7,
        instruction: str = DEFAULT_INSTRUCTION,
        grounded: bool = True,
        verbose: bool = False,
        seed: int | None = None,
    ):
        self.dp = dp
        self.shots = shots
        self.n_prompts = n_prompts
        self.candidates = candidates
        self.backend = backend
        self.embedder = embedder
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.instruction = instruction
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
            spec = self.backend
            if spec is None or spec == "local":
                from fedsynth.text.llama import LocalLlamaBackend

                self._backend_object = LocalLlamaBackend()
            elif spec == "fake":
                self._backend_object = FakeBackend()
            else:
                self._backend_object = OpenAICompatibleBackend(
                    spec["url"],
                    model=spec.get("model", "default"),
                    allow_remote=bool(spec.get("allow_remote", False)),
                )
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
            if not _positive_int(getattr(self, name))
        ]
        spec = self.backend
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - {"url", "model", "allow_remote"})
            if "url" not in spec or unknown:
                problems.append(
                    "backend as a dict needs 'url' (and optionally 'model', 'allow_remote'), "
                    f"got keys {sorted(spec)}"
                )
        elif spec is not None and spec not in BACKEND_NAMES:
            problems.append(f"backend must be one of {BACKEND_NAMES}, a dict or None, got {spec!r}")
        if self.embedder is not None and not isinstance(self.embedder, str):
            problems.append(f"embedder must be a folder path or None, got {self.embedder!r}")
        if not (isinstance(self.temperature, int | float) and self.temperature >= 0):
            problems.append(f"temperature must be a number >= 0, got {self.temperature!r}")
        if not isinstance(self.grounded, bool):
            problems.append(f"grounded must be True or False, got {self.grounded!r}")
        if not (isinstance(self.instruction, str) and self.instruction.strip()):
            problems.append("instruction must be a non-blank string")
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
        notes, rows = _read_notes(data, text_column)
        if len(notes) < self.n_prompts:
            raise NoteDataError(
                f"fit got {len(notes)} note(s) but n_prompts={self.n_prompts}: every private "
                "prompt needs at least one note; give more notes or lower n_prompts"
            )
        self._run_fit_hook(settings, notes, rows)
        self._settings = settings
        self.n_released_ = 0
        self._rng = np.random.default_rng(self.seed)
        self._stamp()

    def _fit(self, notes: list[str], rows: list[dict[str, Any]] | None) -> None:
        # Kept in memory only: no state, file or repr ever holds them.
        paired = rows or [None] * len(notes)
        self._private = [shot_text(n, r) for n, r in zip(notes, paired, strict=True)]

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
            ``"esa"``: the DP release (noiseless without ``dp``); ``"icl"``: the answer of one
            prompt of ``shots`` private notes, released as is (non-private, only with
            ``dp=None``); ``"zero_shot"``: the public instruction alone (reads no private note,
            spends nothing).
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
            Not fitted, or loaded from files (which hold no private note) in a private mode.
        """
        self._check_is_fitted()
        if not _positive_int(n):
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        rows = self._condition_rows(n, conditions)
        instructions = [row_instruction(row, base=self.instruction) for row in rows]
        settings = self._settings
        if mode == "icl" and settings is not None:
            raise PrivacyConfigError(
                "mode='icl' releases text written from private notes as is: it is non-private "
                "and needs dp=None; use mode='esa' for the DP release"
            )
        if mode != "zero_shot" and not getattr(self, "_private", None):
            raise NoteDataError(
                f"mode={mode!r} needs the private notes, which a saved model does not hold; "
                "fit again to release notes from them (mode='zero_shot' needs none)"
            )
        sigma = 0.0
        if mode == "esa" and settings is not None:
            sigma = esa_sigma(settings.epsilon, settings.delta, n)
            # Charged before any generation, so a refusal costs nothing and releases nothing.
            charge_esa(
                self.privacy_spent_,
                epsilon=settings.epsilon,
                delta=settings.delta,
                n_releases=n,
                n_prompts=self.n_prompts,
                sigma=sigma,
            )
        counts = {"prompts": 0, "words": 0}
        notes = []
        for i, (instruction, row) in enumerate(zip(instructions, rows, strict=True)):
            if mode == "esa":
                note = self._release_esa(instruction, row, sigma, counts)
            elif mode == "icl":
                picked = self._rng.choice(len(self._private), self.shots, replace=False)
                shots = [self._private[j] for j in sorted(picked)]
                note = self._generate(build_prompt(instruction, shots), counts)
            else:
                note = self._generate(build_prompt(instruction, []), counts)
            if row is not None and self.grounded:
                note = grounded_note(note, row)
            notes.append(note)
            self.n_released_ += 1
            self._report(i + 1, n, counts, progress)
        return notes

    def _condition_rows(self, n: int, conditions: Any) -> list[dict[str, Any] | None]:
        if conditions is None:
            return [None] * n
        if isinstance(conditions, pd.DataFrame):
            if len(conditions) != n:
                raise ValueError(
                    f"conditions has {len(conditions)} row(s) for n={n} notes; give one row per "
                    "note, or a single row (dict or Series) for all of them"
                )
            rows = conditions.to_dict("records")
        elif isinstance(conditions, pd.Series | Mapping):
            rows = [dict(conditions)] * n
        else:
            raise TypeError(
                f"conditions must be a dict, a Series or a DataFrame, got "
                f"{type(conditions).__name__}"
            )
        return rows

    def _release_esa(
        self, instruction: str, row: dict[str, Any] | None, sigma: float, counts: dict[str, int]
    ) -> str:
        # A new public partition per release: the analysis holds for any data-independent one.
        key = int(self._rng.integers(2**31))
        groups = partition_notes(self._private, self.n_prompts, seed=key, max_shots=self.shots)
        answers = [
            self._generate(build_prompt(instruction, [self._private[j] for j in g]), counts)
            for g in groups
        ]
        zero_shot = build_prompt(instruction, [])
        texts = [self._generate(zero_shot, counts) for _ in range(self.candidates)]
        noisy = aggregate(self._embed(answers), sigma=sigma, rng=self._rng)
        if row is not None and self.grounded:
            # A public check of public texts: the candidates that contradict the row least.
            texts = [texts[i] for i in least_contradicting(texts, row)]
        return texts[nearest_candidate(noisy, self._embed(texts))]

    def _generate(self, messages: list[dict[str, str]], counts: dict[str, int]) -> str:
        text = (
            self._llm()
            .chat(
                messages,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                seed=int(self._rng.integers(2**31)),
            )
            .strip()
        )
        counts["prompts"] += 1
        counts["words"] += len(text.split())
        return text

    def _report(self, done: int, total: int, counts: dict[str, int], progress: Any) -> None:
        if progress is not None:
            progress(done, total, dict(counts))
        if self.verbose:
            print(
                f"[dp_icl] note {done}/{total}: {counts['prompts']} generations, "
                f"{counts['words']} words",
                file=sys.stderr,
                flush=True,
            )

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        # The private notes are never saved: only the count of released notes (public).
        return {"n_released": int(self.n_released_)}, {}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.n_released_ = int(state["n_released"])
        self._private = []
        self._settings = None if self.dp is None else resolve_dp(self.dp)
        self._rng = np.random.default_rng(self.seed)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1


def _read_notes(data: Any, text_column: str) -> tuple[list[str], list[dict[str, Any]] | None]:
    """The notes of ``data`` and, for a DataFrame with other columns, their rows."""
    if isinstance(data, pd.DataFrame):
        if text_column not in data.columns:
            raise NoteDataError(
                f"the notes table has no column {text_column!r}; its columns are "
                f"{list(data.columns)} (pass text_column=...)"
            )
        notes = data[text_column].tolist()
        others = [c for c in data.columns if c != text_column]
        rows = data[others].to_dict("records") if others else None
        where = f"column {text_column!r}"
    elif isinstance(data, str) or not isinstance(data, Sequence | np.ndarray | pd.Series):
        raise NoteDataError(
            f"notes must be a list of strings or a DataFrame with a {text_column!r} column, "
            f"got {type(data).__name__}"
        )
    else:
        notes, rows, where = list(data), None, "the list"
    if not notes:
        raise NoteDataError(f"no notes to learn from: {where} is empty")
    bad = [i for i, t in enumerate(notes) if not isinstance(t, str) or not t.strip()]
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        kinds = sorted({type(notes[i]).__name__ for i in bad})
        raise NoteDataError(
            f"{where} has {len(bad)} note(s) that are not non-blank strings (positions {shown}; "
            f"types {', '.join(kinds)})"
        )
    return notes, rows
