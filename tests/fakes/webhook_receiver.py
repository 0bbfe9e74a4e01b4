"""A webhook receiver on 127.0.0.1, in a thread: records every request, answers what a test chooses.

    with WebhookReceiver() as hook:
        hook.respond(503, times=2, body="busy", headers={"Retry-After": "5"})
        hook.hang_next(3.0)                  # answer only after 3 s (past the sender's timeout)
        ...
        assert hook.wait_for(1)
        request = hook.requests[0]           # .method .path .headers (lower-case keys) .body (bytes)
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0


class WebhookReceiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.default = Answer()
        self._answers: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the receiver first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks/formwright"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(_Handler):
            owner = receiver

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="webhook-receiver",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def respond(self, status: int, times: int = 1, *, body: str = "", headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self._answers.extend(Answer(status, body, dict(headers or {})) for _ in range(times))

    def hang_next(self, seconds: float, times: int = 1) -> None:
        with self._lock:
            self._answers.extend(Answer(hang=seconds) for _ in range(times))

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.requests) >= count, timeout=timeout)

    def _next_answer(self, received: Received) -> Answer:
        with self._changed:
            self.requests.append(received)
            self._changed.notify_all()
            return self._answers.popleft() if self._answers else self.default


class _Handler(BaseHTTPRequestHandler):
    owner: WebhookReceiver
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        received = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        answer = self.owner._next_answer(received)
        if answer.hang:
            self.owner._closing.wait(answer.hang)
        raw = answer.body.encode()
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(raw)))
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_POST = _serve
    do_GET = _serve
    do_PUT = _serve
