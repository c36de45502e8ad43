"""A local webhook receiver in a thread: records each POST, answers with scripted status codes."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One POST as it arrived."""

    body: bytes
    headers: dict[str, str]
    answered: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def signature_ok(self, secret: str) -> bool:
        """Verify ``X-Pagemill-Signature`` the way a receiver would (constant-time compare)."""
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("x-pagemill-signature", ""))


class Receiver:
    """POST / records the request; ``answers`` are popped per request (200 when empty)."""

    def __init__(self) -> None:
        self.answers: list[int] = []
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/hooks/pagemill"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def wait_for(self, count: int, timeout: float = 60) -> list[Received]:
        """Block until ``count`` requests arrived (AssertionError after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the receiver got {len(self.received)} requests, expected {count}")
            time.sleep(0.05)
        return list(self.received)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    code = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.received.append(Received(body, {k.lower(): v for k, v in self.headers.items()}, code))
                reply = b'{"ok": true}' if code < 300 else b'{"error": "try later"}'
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
