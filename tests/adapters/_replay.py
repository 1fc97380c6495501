"""Replaying recorded platform responses through an adapter, in-process: an httpx
MockTransport answers each request with the next recorded response for its route, and
keeps what the adapter sent. Used by the fidelity tests (test_fidelity_*.py)."""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from herald_adapters import AdapterError, Mode, Payload, Redactor, Result, Settings
from herald_adapters._base import Context
from herald_adapters._credentials import Credentials
from herald_adapters._http import Http

from ._support import IDEMPOTENCY_KEY, payload

FIDELITY = Path(__file__).resolve().parent / "fidelity"
_KEEP_HEADERS = re.compile(r"^(x-ratelimit-.*|ratelimit-.*|retry-after|content-type|location)$", re.IGNORECASE)


@dataclass
class Recorded:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Recorded:
        return cls(status, json.dumps(data).encode(), {"content-type": "application/json", **(headers or {})})

    def to_httpx(self, request: httpx.Request) -> httpx.Response:
        headers = {k: v for k, v in self.headers.items() if _KEEP_HEADERS.match(k)}
        return httpx.Response(self.status, headers=headers, content=self.body, request=request)


def cassette(path: Path) -> list[dict]:
    """A vcrpy cassette's interactions: {method, uri, request_body, status, headers, body}."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for interaction in data["interactions"]:
        request, response = interaction["request"], interaction["response"]
        body = response["body"]["string"]
        out.append(
            {
                "method": request["method"],
                "uri": request["uri"],
                "request_body": request.get("body"),
                "status": response["status"]["code"],
                "headers": {k: v[0] for k, v in (response.get("headers") or {}).items()},
                "body": body.encode("utf-8") if isinstance(body, str) else body,
            }
        )
    return out


def recorded(interaction: dict) -> Recorded:
    return Recorded(interaction["status"], interaction["body"], interaction["headers"])


class Replay(httpx.BaseTransport):
    """Answers `METHOD /path` (a regex on the path) with its queued responses, in order."""

    def __init__(self, routes: dict[str, list[Recorded] | Recorded]):
        self.routes = [
            (key.split(" ", 1)[0], re.compile(key.split(" ", 1)[1]), deque(v if isinstance(v, list) else [v]))
            for key, v in routes.items()
        ]
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        for method, path, queue in self.routes:
            if method == request.method and path.fullmatch(request.url.path):
                if not queue:
                    raise AssertionError(f"no more recorded responses for {request.method} {request.url.path}")
                answer = queue.popleft() if len(queue) > 1 else queue[0]
                return answer.to_httpx(request)
        raise AssertionError(f"nothing recorded for {request.method} {request.url}")

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and re.fullmatch(path, r.url.path)]


def run(
    publish: Callable[[Context], Result],
    transport: httpx.BaseTransport,
    tmp_path: Path,
    *,
    platform: str,
    credentials: dict[str, str],
    document: dict | None = None,
    endpoint: str = "https://platform.test",
    mode: str = "publish",
    now: datetime | None = None,
) -> Result:
    """One attempt of `publish`, in-process, against the transport; the Result (failed ones too)."""
    creds = tmp_path / f"creds-{len(list(tmp_path.glob('creds-*')))}"
    creds.mkdir()
    for key, value in credentials.items():
        (creds / key).write_text(value, encoding="utf-8")
    redact = Redactor()
    settings = Settings(
        platform=platform,
        endpoint=endpoint,
        attempt=1,
        mode=Mode(mode),
        idempotency_key=IDEMPOTENCY_KEY,
        publication="news/launch",
        target="main",
        payload_file=tmp_path / "unused.json",
        credentials_dir=creds,
        result_file=tmp_path / "unused-result",
        timeout_seconds=5.0,
    )
    http = Http(5.0, redact, transport=transport, **({"clock": lambda: now} if now else {}))
    ctx = Context(
        settings=settings,
        payload=Payload.model_validate(document or payload()),
        credentials=Credentials(creds, redact),
        http=http,
        redact=redact,
    )
    try:
        return publish(ctx)
    except AdapterError as exc:
        return exc.result
    finally:
        http.close()
