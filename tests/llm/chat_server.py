"""A local stand-in for an OpenAI-compatible server: ``POST /v1/chat/completions`` in a thread.

The answer is JSON built from the ``response_format`` schema the client sent, citing the first
``[page N]`` of the request, so it validates. Queued modes change the next answers:
``ok``, ``429`` (with ``Retry-After``), ``malformed`` (not JSON), ``slow`` (waits ``slow_s``).

``POST /v1/embeddings`` answers deterministic vectors derived from each text (``hashed_vector``:
hashed character 3- and 4-grams of its words, projected onto ``embedding_dims`` signed
dimensions, L2-normalised), so texts sharing word stems really are close and a search test can
fail. Its own queue, ``embedding_modes``, takes ``ok``, ``429`` and ``500``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PAGE_MARK = re.compile(r"\[page (\d+)\]")


def instance(schema: dict[str, Any], defs: dict[str, Any], page: int, counter: Iterator[int], name: str = "") -> Any:
    """A value that satisfies ``schema`` (the subset pagemill's schemas use)."""
    if "$ref" in schema:
        return instance(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, page, counter, name)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {key: instance(sub, defs, page, counter, key) for key, sub in schema["properties"].items()}
    if kind == "array":
        if name == "source_pages":
            return [page]
        return [instance(schema["items"], defs, page, counter, name) for _ in range(schema.get("minItems", 2))]
    if kind == "integer":
        return page if "page" in name else schema.get("minimum", 1)
    return f"{name or 'text'} {page}.{next(counter)}"


# Size of the stand-in's embeddings unless the request asks for ``dimensions``.
EMBEDDING_DIMS = 256
_WORDS = re.compile(r"\w+")


def hashed_vector(text: str, dims: int = EMBEDDING_DIMS) -> list[float]:
    """A unit vector of ``text``'s character 3- and 4-grams (per word, padded), hashed onto ``dims``."""
    vec = [0.0] * dims
    for word in _WORDS.findall(text.lower()):
        padded = f" {word} "
        for n in (3, 4):
            for i in range(len(padded) - n + 1):
                digest = hashlib.blake2b(padded[i : i + n].encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % dims
                vec[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


class ChatServer:
    """The server's state: queued modes, received requests, tokens it reported."""

    def __init__(self) -> None:
        self.modes: list[str] = []
        self.embedding_modes: list[str] = []
        self.embedding_requests: list[dict[str, Any]] = []
        self.embedding_times: list[float] = []  # time.monotonic() of each embeddings request
        self.embedding_dims = EMBEDDING_DIMS
        self.requests: list[dict[str, Any]] = []
        self.usage: list[dict[str, int]] = []
        self.slow_s = 3.0
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """The ``OPENAI_BASE_URL`` of this server."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> ChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next_mode(self) -> str:
        with self._lock:
            return self.modes.pop(0) if self.modes else "ok"

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        mode = self._next_mode()
        with self._lock:
            self.requests.append(body)
        if mode == "429":
            return 429, {"Retry-After": "1"}, {"error": {"message": "rate limited", "type": "rate_limit"}}
        if mode == "slow":
            time.sleep(self.slow_s)
        text = " ".join(m["content"] for m in body["messages"])
        pages = PAGE_MARK.findall(text)
        fmt = body["response_format"]["json_schema"]["schema"]
        value = instance(fmt, fmt.get("$defs", {}), int(pages[0]) if pages else 1, itertools.count(1))
        content = "{not json" if mode == "malformed" else json.dumps(value)
        usage = {"prompt_tokens": len(text) // 4 + 1, "completion_tokens": len(content) // 4 + 1}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        with self._lock:
            self.usage.append(usage)
        return 200, {}, {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
            ],
            "usage": usage,
        }

    def embed(self, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Answer ``/v1/embeddings``: one hashed vector per input, tokens as characters / 4."""
        with self._lock:
            mode = self.embedding_modes.pop(0) if self.embedding_modes else "ok"
            self.embedding_requests.append(body)
            self.embedding_times.append(time.monotonic())
        if mode == "429":
            return 429, {"Retry-After": "1"}, {"error": {"message": "rate limited", "type": "rate_limit"}}
        if mode == "500":
            return 500, {}, {"error": {"message": "server error", "type": "server_error"}}
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        dims = int(body.get("dimensions") or self.embedding_dims)
        tokens = sum(len(t) // 4 + 1 for t in texts)
        with self._lock:
            self.usage.append({"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens})
        return 200, {}, {
            "object": "list",
            "model": body["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": hashed_vector(t, dims)} for i, t in enumerate(texts)
            ],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    route = server.embed if self.path.rstrip("/").endswith("/embeddings") else server.answer
                    status, headers, payload = route(body)
                finally:
                    with server._lock:
                        server.active -= 1
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except BrokenPipeError:
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
