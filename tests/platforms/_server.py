"""The machinery shared by the fake platforms: a threaded loopback HTTP server with
routing, request recording, scripted failures and a media host.

Every fake also serves:

- ``GET /_herald/posts``: JSON list of the posts it accepted.
- ``GET /_herald/requests``: JSON list of the requests it received (method, path, headers, body).
- ``GET /_herald/media/<name>[?size=N][&noise=WxH][&redirects=K][&type=T]``: a small PNG (padded
  to N bytes), or a W x H PNG of random pixels (large and incompressible), served as
  content type T, after K redirects (302) to itself.
- ``GET /_herald/static/<path>``: what ``fake.serve_static(path, Response)`` registered (web pages,
  images) for link cards.
"""

from __future__ import annotations

import base64
import json
import random
import re
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def noise_png(width: int, height: int, seed: int = 7) -> bytes:
    """A valid RGB PNG of random pixels: about 3 bytes a pixel however it is compressed."""
    rng = random.Random(seed)
    raw = b"".join(b"\0" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    match: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else None

    def to_json(self) -> dict:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body.decode("utf-8", errors="replace"),
        }


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON; str/bytes -> as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        if self.body is None:
            return b"", self.content_type or "text/plain"
        return json.dumps(self.body).encode(), self.content_type or "application/json; charset=utf-8"


@dataclass
class Script:
    """One scripted reply for a route, used instead of (or after) the normal handling.

    - ``response``: reply with this and do nothing else (the request is not processed).
    - ``delay`` with ``process=True``: process the request normally (the post is
      created), then wait ``delay`` seconds before answering: a read timeout for a
      client with a shorter timeout, so its outcome is unknown.
    - ``drop=True``: process the request, then close the connection without answering.
    """

    response: Response | None = None
    delay: float = 0.0
    process: bool = False
    drop: bool = False


Handler = Callable[[Request], Response]


class FakePlatform:
    """Subclasses set ``name`` and register routes in ``routes()``."""

    name = "fake"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._lock = threading.RLock()
        self._scripts: dict[str, deque[Script]] = {}
        self._released = threading.Event()
        self.posts: list[dict] = []
        self.requests: list[Request] = []
        self.static: dict[str, Response] = {}
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        self.routes()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- routes ---------------------------------------------------------

    def routes(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def route(self, method: str, pattern: str, name: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), name, handler))

    # --- lifecycle ------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakePlatform:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name=f"fake-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._released.set()  # wake any deliberately delayed responses
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakePlatform:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- scripting and inspection --------------------------------------

    def script(self, route: str, *scripts: Script) -> None:
        with self._lock:
            self._scripts.setdefault(route, deque()).extend(scripts)

    def fail(
        self, route: str, status: int, body: Any = None, headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """The next ``times`` requests to ``route`` get this error reply."""
        self.script(route, *[Script(response=Response(status, body, dict(headers or {})))] * times)

    def serve_static(self, path: str, response: Response) -> str:
        """Serve `response` at GET /_herald/static/<path>; returns its URL."""
        with self._lock:
            self.static[path.lstrip("/")] = response
        return f"{self.url}/_herald/static/{path.lstrip('/')}"

    def requests_to(self, route: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.match.get("_route") == route]

    def record_post(self, post: dict) -> None:
        with self._lock:
            self.posts.append(post)

    def _next_script(self, route: str) -> Script | None:
        with self._lock:
            queue = self._scripts.get(route)
            return queue.popleft() if queue else None

    # --- dispatch -------------------------------------------------------

    def _dispatch(self, request: Request) -> tuple[Response | None, Script | None]:
        if request.method == "GET" and request.path == "/_herald/posts":
            with self._lock:
                return Response(200, list(self.posts)), None
        if request.method == "GET" and request.path == "/_herald/requests":
            with self._lock:
                return Response(200, [r.to_json() for r in self.requests if not r.path.startswith("/_herald/")]), None
        if request.method == "GET" and request.path.startswith("/_herald/media/"):
            with self._lock:
                self.requests.append(request)
            redirects = int(request.param("redirects") or 0)
            if redirects > 0:
                query = {k: v[0] for k, v in request.query.items()}
                query["redirects"] = str(redirects - 1)
                location = request.path + "?" + "&".join(f"{k}={v}" for k, v in query.items())
                return Response(302, "", {"Location": location}), None
            if request.param("noise"):
                width, height = (int(n) for n in (request.param("noise") or "").split("x"))
                data = noise_png(width, height)
            else:
                size = int(request.param("size") or 0)  # ?size=N pads the PNG to N bytes
                data = PNG + b"\0" * max(0, size - len(PNG))
            return Response(200, data, content_type=request.param("type") or "image/png"), None
        if request.method == "GET" and request.path.startswith("/_herald/static/"):
            with self._lock:
                self.requests.append(request)
                static = self.static.get(request.path[len("/_herald/static/") :])
            return (static or Response(404, "not found")), None
        for method, pattern, name, handler in self._routes:
            found = pattern.match(request.path)
            if found and method == request.method:
                request.match = {**found.groupdict(), "_route": name}
                with self._lock:
                    self.requests.append(request)
                script = self._next_script(name)
                if script is not None and script.response is not None and not script.process:
                    return script.response, script
                return handler(request), script
        with self._lock:
            self.requests.append(request)
        return self.not_found(request), None

    def not_found(self, request: Request) -> Response:
        return Response(404, {"error": "Not Found"})

    def _handler_class(self):
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per response (flushed by handle_one_request), no Nagle: no 40 ms stalls.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, format, *args):  # quiet
                pass

            def _handle(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                response, script = fake._dispatch(request)
                if script is not None and script.delay:
                    fake._released.wait(script.delay)
                if script is not None and script.drop:
                    self.close_connection = True
                    return
                data, content_type = response.encode()
                self.send_response(response.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        return _Handler


def form_or_json(request: Request) -> dict:
    """The request's parameters, whether sent as JSON, a form, or the query string."""
    content_type = request.headers.get("content-type", "")
    if "application/json" in content_type:
        data = request.json
        return data if isinstance(data, dict) else {}
    if "application/x-www-form-urlencoded" in content_type:
        return {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
    return {k: v[0] for k, v in request.query.items()}


def multipart(request: Request) -> dict[str, tuple[bytes, str | None, str | None]]:
    """multipart/form-data fields: name -> (data, filename, content type)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    header = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(header + request.body)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[name] = (part.get_payload(decode=True) or b"", part.get_filename(), part.get_content_type())
    return fields
