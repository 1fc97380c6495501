"""Bluesky PDS (atproto XRPC): ``com.atproto.server.createSession``, ``refreshSession``,
``com.atproto.repo.createRecord``, ``getRecord``, ``listRecords``, ``uploadBlob`` and
``com.atproto.identity.resolveHandle``.

Sessions follow the PDS (packages/pds: ``account-manager``, ``auth-verifier``,
``api/com/atproto/server/{createSession,refreshSession}.ts``):

- tokens are JWTs (HS256 here): the access JWT (``typ`` ``at+jwt``, scope
  ``com.atproto.appPass``) lives 2 hours, the refresh JWT (``refresh+jwt``, scope
  ``com.atproto.refresh``, a ``jti``) 90 days;
- ``refreshSession`` rotates: it answers a new access and refresh JWT, and the old refresh
  token then lives at most ``refresh_grace_seconds`` more (2 hours on the PDS; a reuse within
  it gets a token with the same next id); after that, or once revoked, it is refused with
  400 ``ExpiredToken`` "Token has been revoked";
- an expired JWT is 400 ``ExpiredToken`` "Token has expired", a bad one 400 ``InvalidToken``,
  none 401 ``AuthMissing``;
- ``createSession`` is rate limited per identifier (and IP): 30 per 5 minutes and 300 a day,
  failed logins included, answered with 429 ``RateLimitExceeded`` and the tightest limit's
  ``RateLimit-*`` headers.

The fake's clock is ``time.time()`` plus ``advance(seconds)``, so tests expire tokens and
rate-limit windows without waiting.

The session carries the account's DID document, whose ``#atproto_pds`` service is where
the repository lives: this fake, or another one (``BlueskyFake(pds=other)``: this one is
then only the entryway that logs in, as bsky.social is for accounts on other PDSes).

Errors are ``{"error": "<Name>", "message": "..."}``: 401 ``AuthenticationRequired``
for a wrong password, 400 ``InvalidToken`` for a bad access token, 400
``InvalidRequest`` for an invalid record (text over 300 graphemes, facets outside
the text), 400 ``RecordNotFound`` from getRecord, 413 ``PayloadTooLarge`` for a blob
over 1,000,000 bytes, 429 ``RateLimitExceeded``. Responses carry ``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset`` (Unix time) and ``RateLimit-Policy``.

Assumption: creating a record whose rkey already exists is refused with 400
``InvalidRequest``. A PDS refuses such a create, but the exact error is not
documented; the adapter does not rely on it (it asks getRecord).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass

import regex

from ._server import FakePlatform, Request, Response

DEFAULT_IDENTIFIER = "herald.fake.test"
DEFAULT_APP_PASSWORD = "fake-bsky-app-pass-2k9q"
DID = "did:plc:fakeheraldaccount0001"
TEXT_LIMIT = 300
BLOB_LIMIT = 1_000_000
COLLECTION = "app.bsky.feed.post"
SERVICE_DID = "did:web:pds.fake.test"
ACCESS_SCOPE = "com.atproto.appPass"  # a session created with an app password
REFRESH_SCOPE = "com.atproto.refresh"
ACCESS_TTL = 2 * 3600  # createAccessToken: '120mins'
REFRESH_TTL = 90 * 86400  # createRefreshToken: '90days'
REFRESH_GRACE = 2 * 3600  # rotateRefreshToken: REFRESH_GRACE_MS
# createSession's rate limits, per identifier and IP: (window in seconds, points), the day first.
LOGIN_LIMITS = ((86400, 300), (300, 30))


def _graphemes(text: str) -> int:
    """Extended grapheme clusters (UAX #29), as the PDS counts them."""
    return len(regex.findall(r"\X", text))


def error(status: int, name: str, message: str, headers: dict | None = None) -> Response:
    return Response(status, {"error": name, "message": message}, headers or {})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class RefreshToken:
    """A row of the PDS's refresh_token table."""

    did: str
    expires_at: float
    next_id: str | None = None


@dataclass
class _Window:
    """A fixed rate-limit window (rate-limiter-flexible): starts at its first request."""

    started: float
    used: int = 0


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
        access_ttl: float = ACCESS_TTL,
        refresh_grace_seconds: float = REFRESH_GRACE,
    ):
        self.identifier = identifier
        self.app_password = app_password
        self.remaining = remaining
        self.pds = pds
        self.handles = dict(handles or {})  # handle -> DID, for resolveHandle
        self.repo: dict[str, dict] = {}  # rkey -> record (the repository)
        self.blobs: dict[str, bytes] = {}
        self.access_ttl = access_ttl
        self.refresh_grace_seconds = refresh_grace_seconds
        self.clock_offset = 0.0
        self.refresh_tokens: dict[str, RefreshToken] = {}  # jti -> row
        self.refresh_uses: list[str] = []  # the refresh JWTs presented to refreshSession, in order
        self.login_windows: dict[tuple[str, int], _Window] = {}
        # Tests: createSession waits for this event before answering (to hold attempts in a race).
        self.login_gate: threading.Event | None = None
        self._jwt_key = secrets.token_bytes(32)
        self._state = threading.RLock()
        super().__init__(host, port)

    def routes(self) -> None:
        self.route("POST", r"/xrpc/com\.atproto\.server\.createSession", "createSession", self.create_session)
        self.route("POST", r"/xrpc/com\.atproto\.server\.refreshSession", "refreshSession", self.refresh_session)
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

    # --- time, tokens and sessions ---------------------------------------

    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock (and its PDS's) forward: tokens and rate-limit windows expire."""
        for fake in {id(self): self, id(self.home): self.home}.values():
            with fake._state:
                fake.clock_offset += seconds

    @property
    def home(self) -> BlueskyFake:
        """The PDS holding the account: it issues and checks the tokens."""
        return self.pds or self

    def _mint(self, typ: str, claims: dict) -> str:
        header = _b64(json.dumps({"typ": typ, "alg": "HS256"}, separators=(",", ":")).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._jwt_key, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{_b64(signature)}"

    def _verify(self, token: str | None, scopes: tuple[str, ...]) -> dict | Response:
        """The token's claims, or the PDS's error for it (auth-verifier)."""
        if not token:
            return error(401, "AuthMissing", "Authentication Required", self.rate_headers())
        try:
            header, body, signature = token.split(".")
            expected = hmac.new(self._jwt_key, f"{header}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(_b64(expected), signature):
                raise ValueError("signature")
            claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            if not isinstance(claims, dict):
                raise ValueError("claims")
        except ValueError:
            return error(400, "InvalidToken", "Token could not be verified", self.rate_headers())
        if claims.get("exp", 0) <= self.now():
            return error(400, "ExpiredToken", "Token has expired", self.rate_headers())
        if claims.get("scope") not in scopes:
            return error(400, "InvalidToken", "Bad token scope", self.rate_headers())
        return claims

    def _auth(self, request: Request) -> Response | None:
        found = self.home._verify(request.bearer(), (ACCESS_SCOPE, "com.atproto.access"))
        return found if isinstance(found, Response) else None

    def issue_session(self, did: str = DID, jti: str | None = None) -> dict[str, str]:
        """A new access and refresh JWT of the account (createTokens), the refresh one stored."""
        now = self.now()
        jti = jti or _b64(secrets.token_bytes(32))
        common = {"sub": did, "aud": SERVICE_DID, "iat": int(now)}
        access = self._mint("at+jwt", {"scope": ACCESS_SCOPE, **common, "exp": int(now + self.access_ttl)})
        refresh = self._mint(
            "refresh+jwt", {"scope": REFRESH_SCOPE, **common, "jti": jti, "exp": int(now + REFRESH_TTL)}
        )
        with self._state:
            self.refresh_tokens.setdefault(jti, RefreshToken(did, now + REFRESH_TTL))  # re-granted in a grace period
        return {"accessJwt": access, "refreshJwt": refresh}

    def _rotate(self, jti: str) -> str | None:
        """rotateRefreshToken: the next id, or None when the token is revoked or past its grace."""
        now = self.now()
        with self._state:
            row = self.refresh_tokens.get(jti)
            for key in [k for k, r in self.refresh_tokens.items() if r.expires_at <= now]:
                del self.refresh_tokens[key]  # tidy expired tokens, as the PDS does
            if row is None or row.expires_at <= now:
                return None
            row.expires_at = min(row.expires_at, now + self.refresh_grace_seconds)
            row.next_id = row.next_id or _b64(secrets.token_bytes(32))
            return row.next_id

    def revoke_refresh_tokens(self) -> None:
        """As a password change or takedown does (revokeRefreshTokensByDid)."""
        with self.home._state:
            self.home.refresh_tokens.clear()

    def _did_doc(self) -> dict:
        return {
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": DID,
            "alsoKnownAs": [f"at://{self.identifier}"],
            "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": self.home.url}],
        }

    def _login_limits(self, identifier: str) -> tuple[bool, dict[str, str]]:
        """Count one createSession against both limits: (exceeded, the tightest limit's headers)."""
        now = self.now()
        statuses = []  # (points, duration, used, reset)
        with self._state:
            for duration, points in LOGIN_LIMITS:
                window = self.login_windows.get((identifier, duration))
                if window is None or now >= window.started + duration:
                    window = self.login_windows[(identifier, duration)] = _Window(now)
                window.used += 1
                statuses.append((points, duration, window.used, window.started + duration))
        exceeded = [s for s in statuses if s[2] > s[0]]
        points, duration, used, reset = exceeded[0] if exceeded else min(statuses, key=lambda s: s[0] - s[2])
        headers = {
            "RateLimit-Limit": str(points),
            "RateLimit-Remaining": str(max(0, points - used)),
            "RateLimit-Reset": str(int(reset)),
            "RateLimit-Policy": f"{points};w={duration}",
        }
        return bool(exceeded), headers

    def create_session(self, request: Request) -> Response:
        data = request.json or {}
        exceeded, headers = self._login_limits(str(data.get("identifier") or "").lower())
        if exceeded:
            return error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers)
        if self.login_gate is not None:
            self.login_gate.wait(timeout=60)
        if data.get("identifier") not in (self.identifier, DID) or data.get("password") != self.app_password:
            return error(401, "AuthenticationRequired", "Invalid identifier or password", headers)
        tokens = self.home.issue_session()
        body = {"did": DID, "didDoc": self._did_doc(), "handle": self.identifier, **tokens, "active": True}
        return Response(200, body, headers)

    def refresh_session(self, request: Request) -> Response:
        home, token = self.home, request.bearer()
        with home._state:
            home.refresh_uses.append(token or "")
        claims = home._verify(token, (REFRESH_SCOPE,))
        if isinstance(claims, Response):
            return claims
        next_id = home._rotate(str(claims.get("jti", "")))
        if next_id is None:
            return error(400, "ExpiredToken", "Token has been revoked", self.rate_headers())
        tokens = home.issue_session(did=str(claims["sub"]), jti=next_id)
        body = {"did": DID, "didDoc": self._did_doc(), "handle": self.identifier, **tokens, "active": True}
        return Response(200, body, self.rate_headers())

    def add_record(self, rkey: str, record: dict) -> dict:
        cid = "bafyrei" + hashlib.sha256(rkey.encode()).hexdigest()[:40]
        entry = {"uri": f"at://{DID}/{COLLECTION}/{rkey}", "cid": cid, "value": record}
        with self._state:
            self.repo[rkey] = entry
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
                target = self.repo.get(str(ref.get("uri", "")).rsplit("/", 1)[-1])
                if target is None or target["uri"] != ref.get("uri") or target["cid"] != ref.get("cid"):
                    return error(400, "InvalidRequest", f"Invalid app.bsky.feed.post record: reply {which} not found")
        rkey = data.get("rkey") or f"3k{int(time.time() * 1e6):011d}"[:13]
        with self._state:
            if rkey in self.repo:
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
        with self._state:
            entry = self.repo.get(rkey)
        if entry is None or request.param("collection") != COLLECTION:
            return error(
                400,
                "RecordNotFound",
                f"Could not locate record: at://{request.param('repo')}/{request.param('collection')}/{rkey}",
            )
        return Response(200, entry, self.rate_headers())

    def list_records(self, request: Request) -> Response:
        limit = int(request.param("limit") or 50)
        with self._state:
            entries = sorted(self.repo.items(), reverse=True)[:limit]
        return Response(200, {"records": [e for _, e in entries]}, self.rate_headers())

    def upload_blob(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        if len(request.body) > BLOB_LIMIT:
            return error(413, "PayloadTooLarge", "request entity too large")
        link = "bafkrei" + hashlib.sha256(request.body).hexdigest()[:40]
        with self._state:
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
