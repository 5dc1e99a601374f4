"""The LLM backends' shared interface, the OpenAI-compatible client (against a tiny server on
127.0.0.1) and the fake backend."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fedsynth.text.backends import (
    FakeBackend,
    LLMError,
    OpenAICompatibleBackend,
    is_loopback_url,
)


class _Server:
    """A loopback HTTP server answering each POST with the next scripted (status, body)."""

    def __init__(self, script: list[tuple[int, str]]):
        self.script = list(script)
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append({"path": self.path, **json.loads(body)})
                outer.headers.append(dict(self.headers))
                status, text = outer.script.pop(0) if outer.script else (500, "script ended")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _answer(text: str) -> tuple[int, str]:
    return 200, json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]})


@pytest.fixture
def server() -> Iterator:
    def start(*script):
        return _Server(list(script))

    return start


def test_chat_sends_the_settings_and_returns_the_text(server, monkeypatch):
    # A proxy in the environment must not carry loopback traffic elsewhere.
    monkeypatch.setenv("HTTP_PROXY", "http://10.255.255.1:3128")
    monkeypatch.setenv("http_proxy", "http://10.255.255.1:3128")
    with server(_answer("Hb 9.1 g/dL.")) as s:
        llm = OpenAICompatibleBackend(s.url, model="tiny", api_key="k", timeout=5)
        text = llm.chat(
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Note?"}],
            max_tokens=12, temperature=0.2, seed=7, stop=["\n\n"],
        )  # fmt: skip
    assert text == "Hb 9.1 g/dL."
    request = s.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["model"] == "tiny" and request["max_tokens"] == 12 and request["seed"] == 7
    assert request["temperature"] == 0.2 and request["stop"] == ["\n\n"]
    assert request["messages"][1] == {"role": "user", "content": "Note?"}
    assert s.headers[0]["Authorization"] == "Bearer k"


def test_busy_server_is_retried_with_backoff(server):
    with server((503, "busy"), (429, "slow down"), _answer("ok")) as s:
        llm = OpenAICompatibleBackend(s.url, max_retries=2, backoff=0.01, timeout=5)
        assert llm.complete("hi") == "ok"
    assert len(s.requests) == 3


def test_final_errors_say_what_happened(server):
    with server((400, '{"error": "bad request: n_ctx exceeded"}')) as s:
        llm = OpenAICompatibleBackend(s.url, max_retries=3, backoff=0.01, timeout=5)
        with pytest.raises(LLMError, match=r"HTTP 400: .*n_ctx exceeded.* after 1 attempt"):
            llm.complete("hi")
    with server((503, "busy"), (503, "busy")) as s:
        llm = OpenAICompatibleBackend(s.url, max_retries=1, backoff=0.01, timeout=5)
        with pytest.raises(LLMError, match="HTTP 503: busy after 2 attempt"):
            llm.complete("hi")
    with server((200, "not json")) as s, pytest.raises(LLMError, match="not JSON"):
        OpenAICompatibleBackend(s.url, timeout=5).complete("hi")
    with (
        server((200, '{"choices": []}')) as s,
        pytest.raises(LLMError, match=r"no choices\[0\]\.message\.content"),
    ):
        OpenAICompatibleBackend(s.url, timeout=5).complete("hi")


def test_no_server_is_an_error_after_the_retries():
    with socket.socket() as sock:  # a free port, closed again: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = OpenAICompatibleBackend(f"http://127.0.0.1:{port}/v1", max_retries=1, backoff=0.01)
    with pytest.raises(LLMError, match=r"no answer .* after 2 attempt"):
        llm.complete("hi")


def test_remote_servers_need_explicit_permission():
    assert is_loopback_url("http://localhost:8000/v1") and is_loopback_url("http://[::1]:80/v1")
    assert not is_loopback_url("http://10.0.0.5:8000/v1")
    with pytest.raises(ValueError, match="allow_remote=True"):
        OpenAICompatibleBackend("https://llm.example.org/v1")
    with pytest.raises(ValueError, match="http"):
        OpenAICompatibleBackend("ftp://127.0.0.1/v1")
    # Allowed on request; constructing it connects to nothing.
    assert OpenAICompatibleBackend("https://llm.example.org/v1", allow_remote=True).allow_remote


def test_messages_are_checked():
    llm = FakeBackend()
    with pytest.raises(ValueError, match="at least one message"):
        llm.chat([])
    with pytest.raises(ValueError, match="message 0: needs a role"):
        llm.chat([{"role": "doctor", "content": "x"}])


def test_fake_backend_is_deterministic_and_copies_its_prompt():
    llm = FakeBackend()
    prompt = "Example note: a 70-year-old man, Hb 9.1 g/dL, PLT 45, IPSS-M Low. Write one."
    first = llm.complete(prompt, max_tokens=6, seed=1)
    assert first == llm.complete(prompt, max_tokens=6, seed=1)
    assert len(first.split()) == 6 and first in prompt
    assert {llm.complete(prompt, max_tokens=6, seed=s) for s in range(10)} != {first}
    assert len(llm.calls) == 12
    scripted = FakeBackend(respond=lambda messages, seed: f"{seed}:{messages[-1]['content']}")
    assert scripted.complete("x", seed=3) == "3:x"
