"""Language-model backends behind one small interface: chat messages in, text out.

* :class:`OpenAICompatibleBackend`: an HTTP client of ``/v1/chat/completions`` (vLLM, the
  llama.cpp server, Ollama), on loopback unless remote hosts are explicitly allowed;
* :class:`~fedsynth.text.llama.LocalLlamaBackend`: the embedded offline default (SmolLM2-135M
  run in-process by llama.cpp);
* :class:`FakeBackend`: deterministic text made from the prompt's words, for tests of the
  mechanism only.

Every backend takes the same generation settings (``max_tokens``, ``temperature``, ``seed``,
``stop``) and raises :class:`LLMError` with the cause when a generation fails.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from fedsynth.exceptions import FedsynthError

Messages = Sequence[Mapping[str, str]]
_ROLES = ("system", "user", "assistant")
# Statuses worth retrying: the server is busy, restarting or rate-limiting; others are final.
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class LLMError(FedsynthError, RuntimeError):
    """A language model could not be reached or did not return a usable answer."""


def check_messages(messages: Messages) -> list[dict[str, str]]:
    """Chat messages as plain dicts, after checking their roles and contents.

    Raises
    ------
    ValueError
        No message, an unknown role or a content that is not a string.
    """
    if not messages:
        raise ValueError("a chat needs at least one message")
    checked = []
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES or not isinstance(content, str):
            raise ValueError(
                f"message {i}: needs a role in {list(_ROLES)} and a string content, got "
                f"role={role!r}, content of type {type(content).__name__}"
            )
        checked.append({"role": role, "content": content})
    return checked


class LLMBackend(ABC):
    """What every language-model backend offers: :meth:`chat`, and :meth:`complete` on top."""

    @abstractmethod
    def chat(
        self,
        messages: Messages,
        *,
        max_tokens: int = 256,
        temperature: float = 0.7,
        seed: int = 0,
        stop: Sequence[str] = (),
    ) -> str:
        """The model's answer to a chat.

        Parameters
        ----------
        messages : sequence of {"role": ..., "content": ...}
            The conversation; roles ``system``, ``user`` or ``assistant``.
        max_tokens : int
            Most tokens generated.
        temperature : float
            Sampling temperature (0: greedy).
        seed : int
            Sampling seed: the same chat, settings and seed give the same answer on backends
            that support it (all of fedsynth's do).
        stop : sequence of str
            Strings that end the generation (not included in the answer).

        Returns
        -------
        str
            The answer's text.
        """

    def chat_many(
        self,
        chats: Sequence[Messages],
        *,
        seeds: Sequence[int],
        max_tokens: int = 256,
        temperature: float = 0.7,
        stop: Sequence[str] = (),
    ) -> list[str]:
        """The answers to several chats, in order (one seed each); a backend that can run them
        together (:class:`~fedsynth.text.llama.LocalLlamaBackend` with ``n_parallel > 1``)
        overrides this one-at-a-time default."""
        if len(seeds) != len(chats):
            raise ValueError(f"{len(seeds)} seeds for {len(chats)} chats")
        return [
            self.chat(m, max_tokens=max_tokens, temperature=temperature, seed=s, stop=stop)
            for m, s in zip(chats, seeds, strict=True)
        ]

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.7,
        seed: int = 0,
        stop: Sequence[str] = (),
    ) -> str:
        """The model's answer to one user message (see :meth:`chat`)."""
        return self.chat(
            [{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            stop=stop,
        )


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this machine (``localhost`` or a loopback IP address)."""
    host = urllib.parse.urlsplit(url).hostname
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OpenAICompatibleBackend(LLMBackend):
    """A client of an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Parameters
    ----------
    base_url : str
        The API root, ending in ``/v1``. The default is a llama.cpp server on this machine.
    model : str
        The model name sent with each request (servers hosting one model ignore it).
    api_key : str, optional
        Sent as a bearer token when given.
    timeout : float
        Seconds to wait for one answer.
    max_retries : int
        Further attempts after a connection failure or a busy server (429, 5xx); other HTTP
        errors are final.
    backoff : float
        Seconds before the first retry, doubled at each further one.
    allow_remote : bool
        Allow a ``base_url`` outside this machine. Off by default: notes are private and nothing
        in fedsynth connects anywhere but loopback unless told to.

    Raises
    ------
    ValueError
        A ``base_url`` that is not http(s), or not loopback without ``allow_remote``.

    Examples
    --------
    >>> llm = OpenAICompatibleBackend(base_url="http://127.0.0.1:8080/v1")
    >>> llm.complete("Write one sentence.", max_tokens=20)  # doctest: +SKIP
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080/v1",
        *,
        model: str = "default",
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        allow_remote: bool = False,
    ):
        if urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError(f"base_url {base_url!r} must start with http:// or https://")
        if not allow_remote and not is_loopback_url(base_url):
            raise ValueError(
                f"base_url {base_url!r} is not on this machine; private notes would leave it. "
                "Pass allow_remote=True to use a server elsewhere."
            )
        if max_retries < 0 or timeout <= 0 or backoff < 0:
            raise ValueError("timeout must be > 0, max_retries and backoff >= 0")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.allow_remote = allow_remote
        # No proxy from the environment: a proxy would carry loopback traffic off the machine.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def chat(
        self,
        messages: Messages,
        *,
        max_tokens: int = 256,
        temperature: float = 0.7,
        seed: int = 0,
        stop: Sequence[str] = (),
    ) -> str:
        """The server's answer to a chat (see :meth:`LLMBackend.chat`)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": check_messages(messages),
            "max_tokens": int(max_tokens),
            "temperature": float(temperature),
            "seed": int(seed),
        }
        if stop:
            body["stop"] = list(stop)
        return answer_text(self._post("/chat/completions", body), self.base_url)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        url = self.base_url + path
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode()
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode())
            except urllib.error.HTTPError as error:
                detail = error.read().decode(errors="replace")[:300]
                last = f"HTTP {error.code}: {detail}"
                if error.code not in _RETRY_STATUSES:
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                last = f"no answer ({getattr(error, 'reason', error)})"
            except json.JSONDecodeError as error:
                raise LLMError(f"{url}: the answer is not JSON ({error})") from error
        raise LLMError(f"{url}: {last} after {attempt + 1} attempt(s)")


def answer_text(response: Any, where: str) -> str:
    try:
        content = response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as error:
        raise LLMError(
            f"{where}: the answer has no choices[0].message.content: {str(response)[:300]}"
        ) from error
    if not isinstance(content, str):
        raise LLMError(f"{where}: the answer's content is not text: {content!r}")
    return content


class FakeBackend(LLMBackend):
    """Deterministic text from the words of the prompt, for tests of the mechanism only.

    The answer is a run of ``max_tokens`` consecutive words (at most 40) of the chat, starting
    where a generator seeded with the chat, the temperature and the seed puts it: a prompt
    holding private notes gives answers copied from them, as a small model that copies its
    examples would.

    Parameters
    ----------
    respond : callable, optional
        ``respond(messages, seed) -> str`` replacing the default answer.

    Attributes
    ----------
    calls : list of list of dict
        The messages of every call, in order.
    """

    def __init__(self, respond: Callable[[list[dict[str, str]], int], str] | None = None):
        self.respond = respond
        self.calls: list[list[dict[str, str]]] = []

    def chat(
        self,
        messages: Messages,
        *,
        max_tokens: int = 256,
        temperature: float = 0.7,
        seed: int = 0,
        stop: Sequence[str] = (),
    ) -> str:
        """A deterministic answer (see the class)."""
        checked = check_messages(messages)
        self.calls.append(checked)
        if self.respond is not None:
            return self.respond(checked, seed)
        words = re.findall(r"\S+", " ".join(m["content"] for m in checked))
        digest = hashlib.sha256(f"{checked}|{temperature}|{seed}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        length = min(max_tokens, 40, len(words))
        start = int(rng.integers(len(words) - length + 1))
        text = " ".join(words[start : start + length])
        for marker in stop:
            text = text.split(marker)[0]
        return text


#: Backends named by a string in a generator's parameters.
BACKEND_NAMES = ("local", "fake")


def backend_spec_problems(spec: Any) -> list[str]:
    """What is wrong with a backend given as a parameter (empty when it is usable).

    ``None`` or ``"local"``: the offline model; ``"fake"``: :class:`FakeBackend`; a dict with
    ``url`` (and optionally ``model``, ``allow_remote``): an OpenAI-compatible server.
    """
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"url", "model", "allow_remote"})
        if "url" not in spec or unknown:
            return [
                "backend as a dict needs 'url' (and optionally 'model', 'allow_remote'), "
                f"got keys {sorted(spec)}"
            ]
    elif spec is not None and spec not in BACKEND_NAMES:
        return [f"backend must be one of {BACKEND_NAMES}, a dict or None, got {spec!r}"]
    return []


def backend_from_spec(spec: str | Mapping[str, Any] | None) -> LLMBackend:
    """The backend a generator's ``backend`` parameter names (see
    :func:`backend_spec_problems`)."""
    if spec is None or spec == "local":
        from fedsynth.text.llama import LocalLlamaBackend

        return LocalLlamaBackend()
    if spec == "fake":
        return FakeBackend()
    return OpenAICompatibleBackend(
        spec["url"],
        model=spec.get("model", "default"),
        allow_remote=bool(spec.get("allow_remote", False)),
    )
