"""Bluesky PDS (atproto XRPC): ``com.atproto.server.createSession``,
``com.atproto.repo.createRecord``, ``getRecord``, ``listRecords``, ``uploadBlob`` and
``com.atproto.identity.resolveHandle``.

The session carries the account's DID document, whose ``#atproto_pds`` service is where
the repository lives: this fake, or another one (``BlueskyFake(pds=other)``: this one is
then only the entryway that logs in, as bsky.social is for accounts on other PDSes).

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

import regex

from ._server import FakePlatform, Request, Response

DEFAULT_IDENTIFIER = "herald.fake.test"
DEFAULT_APP_PASSWORD = "fake-bsky-app-pass-2k9q"
DID = "did:plc:fakeheraldaccount0001"
TEXT_LIMIT = 300
BLOB_LIMIT = 1_000_000
COLLECTION = "app.bsky.feed.post"


def _graphemes(text: str) -> int:
    """Extended grapheme clusters (UAX #29), as the PDS counts them."""
    return len(regex.findall(r"\X", text))


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
        pds: BlueskyFake | None = None,
        handles: dict[str, str] | None = None,
    ):
        self.identifier = identifier
        self.app_password = app_password
        self.remaining = remaining
        self.pds = pds
        self.handles = dict(handles or {})  # handle -> DID, for resolveHandle
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
        self.route("GET", r"/xrpc/com\.atproto\.identity\.resolveHandle", "resolveHandle", self.resolve_handle)

    def resolve_handle(self, request: Request) -> Response:
        did = self.handles.get((request.param("handle") or "").lower())
        if did is None:
            return error(400, "InvalidRequest", "Unable to resolve handle")
        return Response(200, {"did": did}, self.rate_headers())

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
        home = self.pds or self
        with home._lock:
            home.sessions.add(token)
        did_doc = {
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": DID,
            "alsoKnownAs": [f"at://{self.identifier}"],
            "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": home.url}],
        }
        return Response(
            200,
            {
                "did": DID,
                "didDoc": did_doc,
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
        reply = record.get("reply")
        if reply is not None:
            for which in ("root", "parent"):
                ref = reply.get(which) or {}
                target = self.records.get(str(ref.get("uri", "")).rsplit("/", 1)[-1])
                if target is None or target["uri"] != ref.get("uri") or target["cid"] != ref.get("cid"):
                    return error(400, "InvalidRequest", f"Invalid app.bsky.feed.post record: reply {which} not found")
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
                "langs": record.get("langs"),
                "reply": record.get("reply"),
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
