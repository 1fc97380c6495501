"""A receiver for Herald's generic webhook, implemented the way docs/adapters.md asks
receivers to be: it checks the HMAC signature and the timestamp's freshness, and
de-duplicates by ``Idempotency-Key`` (replaying the original answer with
``Idempotent-Replayed: true``)."""

from __future__ import annotations

import hashlib
import hmac
import time

from ._server import FakePlatform, Request, Response

DEFAULT_SECRET = "fake-webhook-hmac-secret-7f3a"
MAX_SKEW_SECONDS = 300


class WebhookFake(FakePlatform):
    name = "webhook"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, hmac_secret: str = DEFAULT_SECRET, remaining: int = 99
    ):
        self.hmac_secret = hmac_secret
        self.remaining = remaining
        self._by_key: dict[str, Response] = {}
        super().__init__(host, port)

    def routes(self) -> None:
        self.route("POST", r"/hook", "hook", self.hook)

    @property
    def endpoint(self) -> str:
        return f"{self.url}/hook"

    def credentials(self) -> dict[str, str]:
        return {"hmacSecret": self.hmac_secret}

    def _rate_headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": "100", "RateLimit-Remaining": str(self.remaining), "RateLimit-Reset": "60"}

    def hook(self, request: Request) -> Response:
        timestamp = request.headers.get("x-herald-timestamp", "")
        signature = request.headers.get("x-herald-signature", "")
        expected = (
            "sha256="
            + hmac.new(self.hmac_secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
        )
        if not hmac.compare_digest(signature, expected):
            return Response(401, {"error": "bad signature"})
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW_SECONDS:
            return Response(401, {"error": "stale timestamp"})
        key = request.headers.get("idempotency-key")
        if not key:
            return Response(400, {"error": "Idempotency-Key header required"})
        with self._lock:
            if key in self._by_key:
                original = self._by_key[key]
                return Response(original.status, original.body, {**original.headers, "Idempotent-Replayed": "true"})
            document = request.json
            if not isinstance(document, dict) or "content" not in document:
                return Response(422, {"error": "body must be a Herald publication"})
            post_id = f"wh-{len(self.posts) + 1}"
            self.posts.append({"id": post_id, "idempotencyKey": key, "document": document})
            response = Response(200, {"id": post_id, "url": f"{self.url}/posts/{post_id}"}, self._rate_headers())
            self._by_key[key] = response
            return response
