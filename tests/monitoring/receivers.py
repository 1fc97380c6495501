"""A small HTTP server on 127.0.0.1 that records every request.

Stands in for a webhook, Slack, Discord, Telegram or Alertmanager endpoint.
Responses can be scripted (e.g. ``[500, 200]``: fail once, then succeed) and
requests can be held until released (a receiver that hangs). Waiting for
requests uses a condition variable, never sleeps; async tests use
:meth:`RecordingReceiver.await_requests`, which waits in a worker thread so the
event loop keeps running.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


Response = int | tuple[int, Any]


class RecordingReceiver:
    """Records requests; answers with the scripted responses, then ``default``.

    A response is a status code or ``(status, body)`` where body is bytes, str
    or JSON-able. With ``hold`` set, every request waits until :meth:`release`
    (or ``hold_timeout``) before it is answered.
    """

    def __init__(
        self,
        responses: Iterable[Response] = (),
        *,
        default: Response = (200, "ok"),
        hold: bool = False,
        hold_timeout: float = 30.0,
    ) -> None:
        self._responses: deque[Response] = deque(responses)
        self._default = default
        self._requests: list[RecordedRequest] = []
        self._cond = threading.Condition()
        self._released = threading.Event()
        if not hold:
            self._released.set()
        self._hold_timeout = hold_timeout
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> RecordingReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = RecordedRequest(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                status, payload = receiver._record(req)
                receiver._released.wait(receiver._hold_timeout)
                if isinstance(payload, bytes):
                    data, ctype = payload, "application/octet-stream"
                elif isinstance(payload, str):
                    data, ctype = payload.encode(), "text/plain"
                else:
                    data, ctype = json.dumps(payload).encode(), "application/json"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_POST = _handle
            do_PUT = _handle
            do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> RecordingReceiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def release(self) -> None:
        """Let held requests be answered (and answer later ones at once)."""
        self._released.set()

    # --- recording ----------------------------------------------------------------

    def _record(self, req: RecordedRequest) -> tuple[int, Any]:
        with self._cond:
            self._requests.append(req)
            resp = self._responses.popleft() if self._responses else self._default
            self._cond.notify_all()
        if isinstance(resp, int):
            return resp, ""
        return resp

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests arrived; ``TimeoutError`` otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(f"expected {count} requests, got {len(self._requests)} in {timeout}s")
            return list(self._requests)

    async def await_requests(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """:meth:`wait_for_requests` without blocking the event loop."""
        return await asyncio.to_thread(self.wait_for_requests, count, timeout)
