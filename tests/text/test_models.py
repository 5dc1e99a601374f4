"""The two models shipped in wheels: the embedder and the embedded SmolLM2, run for real."""

from __future__ import annotations

import numpy as np
import pytest

from fedsynth.text.backends import LLMError
from fedsynth.text.embeddings import EmbeddingModelError, SentenceEmbedder
from fedsynth.text.llama import LocalLlamaBackend, default_model_path


def test_embeddings_are_unit_norm_384_float32(embedder):
    vectors = embedder.embed(["Hb 9.1 g/dL, PLT 45.", "haemoglobin 91 g/L, platelets 45", "A cat."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Two wordings of the same counts sit closer than an unrelated sentence.
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert embedder.embed([]).shape == (0, 384)
    with pytest.raises(TypeError, match="sequence of texts"):
        embedder.embed("one text")


def test_missing_model_folders_are_named(tmp_path):
    with pytest.raises(EmbeddingModelError, match=r"no modules\.json"):
        SentenceEmbedder(tmp_path)
    with pytest.raises(LLMError, match="does not exist"):
        LocalLlamaBackend(tmp_path / "model.gguf")


def test_local_model_generates_and_a_seed_repeats_it():
    assert default_model_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    llm = LocalLlamaBackend(n_threads=1, n_ctx=512)
    messages = [
        {"role": "system", "content": "You are a haematologist."},
        {"role": "user", "content": "In one sentence, what does a low platelet count mean?"},
    ]
    first = llm.chat(messages, max_tokens=16, temperature=0.8, seed=1)
    again = llm.chat(messages, max_tokens=16, temperature=0.8, seed=1)
    assert first.strip() and first == again
    stopped = llm.complete("Count: one, two, three, four,", max_tokens=16, seed=0, stop=[","])
    assert "," not in stopped
    llm.close()


def test_local_model_answers_several_chats_in_parallel_slots():
    llm = LocalLlamaBackend(n_threads=1, n_ctx=256, n_parallel=2)
    chats = [[{"role": "user", "content": f"Name blood cell number {i}."}] for i in range(3)]
    answers = llm.chat_many(chats, seeds=[0, 1, 2], max_tokens=6)
    assert len(answers) == 3 and all(a.strip() for a in answers)
    with pytest.raises(ValueError, match="2 seeds for 3 chats"):
        llm.chat_many(chats, seeds=[0, 1])
    with pytest.raises(ValueError, match="n_parallel"):
        LocalLlamaBackend(n_parallel=0)
    llm.close()
