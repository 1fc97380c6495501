"""One recording HTTP server for every fake in the tests.

A threaded HTTP/1.1 server on a loopback (or given) address. It records each request (method,
path, query, lower-case headers, body) and answers with what ``respond`` returns. The fakes are
subclasses that override ``respond``:

- ``tests/platforms``: ``FakePlatform``, the fake social platforms (routes, scripted failures);
- ``tests/monitoring/receivers.py``: ``RecordingReceiver``, webhook, chat and Alertmanager
  endpoints with scripted statuses;
- ``tests/e2e/conftest.py``: ``host_server``, a server on this host that the real node's pods reach.

A ``Response`` may wait before it is sent (``delay``: until then or until ``release()``) or never
be sent (``drop``: the connection is closed). Waiting for requests uses a condition variable,
never a sleep; async tests use ``await_requests``, which waits in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar
from urllib.parse import parse_qs, urlsplit


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.text,
        }


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON; str/bytes -> as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0  # seconds to wait before answering; release() ends the wait
    drop: bool = False  # close the connection without answering

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        if self.body is None:
            return b"", self.content_type or "text/plain"
        return json.dumps(self.body).encode(), self.content_type or "application/json; charset=utf-8"


R = TypeVar("R", bound=RecordedRequest)


class RecordingServer(Generic[R]):
    """Records requests and answers each with ``respond(request)`` (by default 200, empty).

    ``request_type`` is the class requests are recorded as (a fake may add helpers to it);
    ``is_recorded(request)`` may keep a request out of ``requests`` (a fake's own inspection URLs).
    """

    name = "recording-server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, request_type: Callable[..., R]) -> None:
        self._make_request = request_type
        self._lock = threading.RLock()  # also for subclasses' own state
        self._recorded = threading.Condition(self._lock)
        self._requests: list[R] = []
        self._released = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- what a subclass overrides ------------------------------------------------

    def respond(self, request: R) -> Response:
        return Response()

    def is_recorded(self, request: R) -> bool:
        return True

    # --- lifecycle ----------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """In the calling thread, until the process ends (``python -m tests.platforms``)."""
        self._server.serve_forever()

    def stop(self) -> None:
        self._released.set()  # wake any delayed answers
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def release(self) -> None:
        """Answer the delayed requests now, and later ones without delay."""
        self._released.set()

    # --- recording ----------------------------------------------------------------

    @property
    def requests(self) -> list[R]:
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[R]:
        """Block until at least ``count`` requests arrived; ``TimeoutError`` otherwise."""
        with self._recorded:
            if not self._recorded.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(f"expected {count} requests, got {len(self._requests)} in {timeout}s")
            return list(self._requests)

    async def await_requests(self, count: int, timeout: float = 10.0) -> list[R]:
        """:meth:`wait_for_requests` without blocking the event loop."""
        return await asyncio.to_thread(self.wait_for_requests, count, timeout)

    def _answer(self, request: R) -> Response:
        if self.is_recorded(request):
            with self._recorded:
                self._requests.append(request)
                self._recorded.notify_all()
        response = self.respond(request)
        if response.delay:
            self._released.wait(response.delay)
        return response


def _handler(server: RecordingServer[Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One write per response (flushed by handle_one_request), no Nagle: no 40 ms stalls.
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = server._make_request(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            response = server._answer(request)
            if response.drop:
                self.close_connection = True
                return
            data, content_type = response.encode()
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    return Handler
