"""Synthetic clinical notes: the building blocks of DP in-context learning.

* :mod:`~fedsynth.text.corpus`: a simulated corpus of haematology notes written from the rows
  of the simulated MDS cohort, with the facts each note states;
* :mod:`~fedsynth.text.facts`: those facts read back from free text (regular expressions), and
  the consistency of a note with a row;
* :mod:`~fedsynth.text.loaders`: notes from a folder of ``.txt`` files or a CSV/Parquet column;
* :mod:`~fedsynth.text.backends` and :mod:`~fedsynth.text.llama`: language models behind one
  interface (an OpenAI-compatible HTTP client, loopback by default; SmolLM2-135M run
  in-process by llama.cpp, the offline default; a deterministic fake for tests);
* :mod:`~fedsynth.text.embeddings`: unit-norm sentence embeddings (all-MiniLM-L6-v2, shipped
  in a wheel, loaded offline);
* :mod:`~fedsynth.text.esa`: embedding space aggregation (Wu et al., ICLR 2024): disjoint
  private prompts, a noisy sum of their answers' embeddings, release of the nearest public
  candidate, and its accounting;
* :mod:`~fedsynth.text.centroid`: a non-published alternative (not DP-ICL): one noisy sum of
  the private notes' own embeddings, sensitivity 1, ``dp_icl(aggregation="note_centroid")``;
* :mod:`~fedsynth.text.dp_icl`: the generator of notes built on it,
  ``fedsynth.make("dp_icl", dp=...)``, with its public instructions in
  :mod:`~fedsynth.text.prompts` (a patient row's facts, for notes that agree with the row);
* :mod:`~fedsynth.text.metrics` and :mod:`~fedsynth.text.leakage`: text validation (embedding
  fidelity, surface statistics, utility, consistency; verbatim copies, membership inference).

The heavy parts (sentence-transformers, llama.cpp) are imported only when a model is loaded.
"""

from fedsynth.text.backends import FakeBackend, LLMBackend, LLMError, OpenAICompatibleBackend
from fedsynth.text.corpus import simulate_notes
from fedsynth.text.embeddings import SentenceEmbedder
from fedsynth.text.facts import extract_facts
from fedsynth.text.llama import LocalLlamaBackend
from fedsynth.text.loaders import notes_from_frame, read_notes_folder, read_notes_table

__all__ = [
    "FakeBackend",
    "LLMBackend",
    "LLMError",
    "LocalLlamaBackend",
    "OpenAICompatibleBackend",
    "SentenceEmbedder",
    "extract_facts",
    "notes_from_frame",
    "read_notes_folder",
    "read_notes_table",
    "simulate_notes",
]
