"""Bluesky PDS (atproto XRPC): ``com.atproto.server.createSession``,
``com.atproto.repo.createRecord``, ``getRecord``, ``listRecords`` and ``uploadBlob``.

Errors are ``{"error": "<Name>", "message": "..."}``: 401 ``AuthenticationRequired``
for a wrong password, 401 ``InvalidToken`` for a bad access token, 400
``InvalidRequest`` for an invalid record (text over 300 graphemes, facets outside
the text), 400 ``RecordNotFound`` from getRecord, 413 ``PayloadTooLarge`` for a blob
over 1,000,000 bytes, 429 ``RateLimitExceeded``. Responses carry ``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset`` (Unix time) and ``RateLimit-Policy``.

Assumption: creating a record whose rkey already exists is refused with 400
``InvalidRequest``. A PDS refuses such a create, but the exact error is not
documented; the adapter does not rely on it (it asks getRecord).
"""

from __future__ import annotations

import hashlib
import time
import unicodedata

from ._server import FakePlatform, Request, Response

DEFAULT_IDENTIFIER = "herald.fake.test"
DEFAULT_APP_PASSWORD = "fake-bsky-app-pass-2k9q"
DID = "did:plc:fakeheraldaccount0001"
TEXT_LIMIT = 300
BLOB_LIMIT = 1_000_000
COLLECTION = "app.bsky.feed.post"


def _graphemes(text: str) -> int:
    """Rough: combining marks, ZWJ, variation selectors, skin tones and what follows a ZWJ don't count."""
    count, after_zwj = 0, False
    for ch in text:
        if (
            unicodedata.category(ch) in ("Mn", "Me", "Mc")
            or ch == "\u200d"
            or "\ufe00" <= ch <= "\ufe0f"
            or "\U0001f3fb" <= ch <= "\U0001f3ff"
            or after_zwj
        ):
            after_zwj = ch == "\u200d"
            continue
        count += 1
    return count


def error(status: int, name: str, message: str, headers: dict | None = None) -> Response:
    return Response(status, {"error": name, "message": message}, headers or {})


class BlueskyFake(FakePlatform):
    name = "bluesky"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        identifier: str = DEFAULT_IDENTIFIER,
        app_password: str = DEFAULT_APP_PASSWORD,
        remaining: int = 4999,
    ):
        self.identifier = identifier
        self.app_password = app_password
        self.remaining = remaining
        self.records: dict[str, dict] = {}  # rkey -> record
        self.blobs: dict[str, bytes] = {}
        self.sessions: set[str] = set()
        super().__init__(host, port)

    def routes(self) -> None:
        self.route("POST", r"/xrpc/com\.atproto\.server\.createSession", "createSession", self.create_session)
        self.route("POST", r"/xrpc/com\.atproto\.repo\.createRecord", "createRecord", self.create_record)
        self.route("GET", r"/xrpc/com\.atproto\.repo\.getRecord", "getRecord", self.get_record)
        self.route("GET", r"/xrpc/com\.atproto\.repo\.listRecords", "listRecords", self.list_records)
        self.route("POST", r"/xrpc/com\.atproto\.repo\.uploadBlob", "uploadBlob", self.upload_blob)

    def credentials(self) -> dict[str, str]:
        return {"identifier": self.identifier, "appPassword": self.app_password}

    def rate_headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": "5000",
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(int(time.time()) + 3600),
            "RateLimit-Policy": "5000;w=3600",
        }

    def _auth(self, request: Request) -> Response | None:
        if request.bearer() not in self.sessions:
            return error(401, "InvalidToken", "Malformed token", self.rate_headers())
        return None

    def create_session(self, request: Request) -> Response:
        data = request.json or {}
        if data.get("identifier") not in (self.identifier, DID) or data.get("password") != self.app_password:
            return error(401, "AuthenticationRequired", "Invalid identifier or password", self.rate_headers())
        token = "fake-access-jwt-" + hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:24]
        with self._lock:
            self.sessions.add(token)
        return Response(
            200,
            {
                "did": DID,
                "handle": self.identifier,
                "accessJwt": token,
                "refreshJwt": "fake-refresh-jwt-" + token[-12:],
                "active": True,
            },
            self.rate_headers(),
        )

    def add_record(self, rkey: str, record: dict) -> dict:
        cid = "bafyrei" + hashlib.sha256(rkey.encode()).hexdigest()[:40]
        entry = {"uri": f"at://{DID}/{COLLECTION}/{rkey}", "cid": cid, "value": record}
        with self._lock:
            self.records[rkey] = entry
        return entry

    def create_record(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        data = request.json or {}
        if data.get("repo") not in (DID, self.identifier):
            return error(400, "InvalidRequest", f"Could not find repo: {data.get('repo')}")
        if data.get("collection") != COLLECTION:
            return error(400, "InvalidRequest", "unsupported collection in this fake")
        record = data.get("record") or {}
        text = record.get("text", "")
        if record.get("$type") != COLLECTION or not record.get("createdAt"):
            return error(
                400, "InvalidRequest", 'Invalid app.bsky.feed.post record: Record must have the property "createdAt"'
            )
        if _graphemes(text) > TEXT_LIMIT:
            return error(
                400,
                "InvalidRequest",
                "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes",
            )
        size = len(text.encode())
        for facet in record.get("facets") or []:
            index = facet.get("index") or {}
            if not 0 <= index.get("byteStart", -1) < index.get("byteEnd", -1) <= size:
                return error(400, "InvalidRequest", "Invalid app.bsky.feed.post record: facet index out of range")
        rkey = data.get("rkey") or f"3k{int(time.time() * 1e6):011d}"[:13]
        with self._lock:
            if rkey in self.records:
                return error(400, "InvalidRequest", f"Record already exists: at://{DID}/{COLLECTION}/{rkey}")
            entry = self.add_record(rkey, record)
        self.record_post(
            {
                "uri": entry["uri"],
                "rkey": rkey,
                "text": text,
                "facets": record.get("facets"),
                "embed": record.get("embed"),
            }
        )
        return Response(
            200, {"uri": entry["uri"], "cid": entry["cid"], "validationStatus": "valid"}, self.rate_headers()
        )

    def get_record(self, request: Request) -> Response:
        rkey = request.param("rkey") or ""
        with self._lock:
            entry = self.records.get(rkey)
        if entry is None or request.param("collection") != COLLECTION:
            return error(
                400,
                "RecordNotFound",
                f"Could not locate record: at://{request.param('repo')}/{request.param('collection')}/{rkey}",
            )
        return Response(200, entry, self.rate_headers())

    def list_records(self, request: Request) -> Response:
        limit = int(request.param("limit") or 50)
        with self._lock:
            entries = sorted(self.records.items(), reverse=True)[:limit]
        return Response(200, {"records": [e for _, e in entries]}, self.rate_headers())

    def upload_blob(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        if len(request.body) > BLOB_LIMIT:
            return error(413, "PayloadTooLarge", "request entity too large")
        link = "bafkrei" + hashlib.sha256(request.body).hexdigest()[:40]
        with self._lock:
            self.blobs[link] = request.body
        return Response(
            200,
            {
                "blob": {
                    "$type": "blob",
                    "ref": {"$link": link},
                    "mimeType": request.headers.get("content-type", "application/octet-stream"),
                    "size": len(request.body),
                }
            },
            self.rate_headers(),
        )
