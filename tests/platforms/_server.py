"""The machinery shared by the fake platforms: routing, scripted failures and a media host, on
the tests' one recording HTTP server (tests/support/recording_server.py).

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
import dataclasses
import json
import random
import re
import struct
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from tests.support.recording_server import RecordedRequest, RecordingServer, Response

__all__ = ["PNG", "FakePlatform", "Request", "Response", "Script", "form_or_json", "multipart", "noise_png"]

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
class Request(RecordedRequest):
    """A request to a fake platform; ``match`` holds its route's name and path groups."""

    match: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else None


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
_INSPECTION = ("/_herald/posts", "/_herald/requests")


class FakePlatform(RecordingServer[Request]):
    """Subclasses set ``name`` and register routes in ``routes()``."""

    name = "fake"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port, request_type=Request)
        self._scripts: dict[str, deque[Script]] = {}
        self.posts: list[dict] = []
        self.static: dict[str, Response] = {}
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        self.routes()

    # --- routes ---------------------------------------------------------

    def routes(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def route(self, method: str, pattern: str, name: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), name, handler))

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
        return [r for r in self.requests if r.match.get("_route") == route]

    def record_post(self, post: dict) -> None:
        with self._lock:
            self.posts.append(post)

    def _next_script(self, route: str) -> Script | None:
        with self._lock:
            queue = self._scripts.get(route)
            return queue.popleft() if queue else None

    # --- dispatch -------------------------------------------------------

    def is_recorded(self, request: Request) -> bool:
        return not (request.method == "GET" and request.path in _INSPECTION)

    def respond(self, request: Request) -> Response:
        if request.method == "GET" and request.path == "/_herald/posts":
            with self._lock:
                return Response(200, list(self.posts))
        if request.method == "GET" and request.path == "/_herald/requests":
            return Response(200, [r.to_json() for r in self.requests if not r.path.startswith("/_herald/")])
        if request.method == "GET" and request.path.startswith("/_herald/media/"):
            return _media(request)
        if request.method == "GET" and request.path.startswith("/_herald/static/"):
            with self._lock:
                static = self.static.get(request.path[len("/_herald/static/") :])
            return static or Response(404, "not found")
        for method, pattern, name, handler in self._routes:
            found = pattern.match(request.path)
            if found and method == request.method:
                request.match = {**found.groupdict(), "_route": name}
                script = self._next_script(name)
                if script is None:
                    return handler(request)
                if script.response is not None and not script.process:
                    response = script.response
                else:
                    response = handler(request)
                return dataclasses.replace(response, delay=script.delay, drop=script.drop)
        return self.not_found(request)

    def not_found(self, request: Request) -> Response:
        return Response(404, {"error": "Not Found"})


def _media(request: Request) -> Response:
    redirects = int(request.param("redirects") or 0)
    if redirects > 0:
        query = {k: v[0] for k, v in request.query.items()}
        query["redirects"] = str(redirects - 1)
        location = request.path + "?" + "&".join(f"{k}={v}" for k, v in query.items())
        return Response(302, "", {"Location": location})
    if request.param("noise"):
        width, height = (int(n) for n in (request.param("noise") or "").split("x"))
        data = noise_png(width, height)
    else:
        size = int(request.param("size") or 0)  # ?size=N pads the PNG to N bytes
        data = PNG + b"\0" * max(0, size - len(PNG))
    return Response(200, data, content_type=request.param("type") or "image/png")


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
