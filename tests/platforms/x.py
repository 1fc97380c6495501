"""X (API v2, OAuth 2.0 user context), and the Kubernetes API's Secrets for token write-back.

``XFake`` serves:

- ``POST /2/oauth2/token`` (``grant_type=refresh_token``; a public client sends ``client_id``
  in the form, a confidential one HTTP Basic). Like X, every refresh token works **once**:
  the answer carries a new access token (valid ``expires_in`` = 7200 s) and a new refresh
  token, and the old refresh token is dead: presenting it again gets 400
  ``{"error": "invalid_request", "error_description": "Value passed for the token was
  invalid."}``. ``refresh_uses`` lists every refresh token presented, in order.
- ``POST /2/tweets`` ``{"text", "media": {"media_ids"}}`` -> 201 ``{"data": {"id", "text",
  "edit_history_tweet_ids"}}``; text identical to an earlier post -> 403 ``{"detail": "You are
  not allowed to create a Tweet with duplicate content.", "type": "about:blank", "title":
  "Forbidden", "status": 403}``; over 280 weighted characters (twitter-text, from the
  ``twitter-text-parser`` package) -> 400 invalid-request problem.
- ``POST /2/media/upload`` (JSON ``{"media": <base64>, "media_category"}``) -> 200 ``{"data":
  {"id", "media_key", "size", "expires_after_secs", "image"}}``, with ``processing_info``
  while ``media_processing_polls`` status checks remain; ``GET /2/media/upload?command=STATUS
  &media_id=`` ; ``POST /2/media/metadata`` ``{"id", "metadata": {"alt_text": {"text"}}}``.
- ``GET /2/users/me`` and ``GET /2/users/:id/tweets`` (newest first; the text as X returns it:
  links replaced by ``https://t.co/...`` with ``entities.urls``, the media link appended,
  ``& < >`` as HTML entities).

Bad or expired bearer tokens get 401 ``{"title": "Unauthorized", "type": "about:blank",
"status": 401, "detail": "Unauthorized"}``; 429 is ``{"title": "Too Many Requests", "detail":
"Too Many Requests", "type": "about:blank", "status": 429}``. Responses carry
``x-rate-limit-limit``/``-remaining``/``-reset`` (Unix seconds, a 15-minute window), and
``POST /2/tweets`` also ``x-user-limit-24hour-limit``/``-remaining``/``-reset``.

Assumption: the status and body for text over the limit (X documents neither; the adapter
refuses such text before sending it).

``KubeSecretsFake`` serves ``GET`` and ``PATCH`` (``application/merge-patch+json``) of
``/api/v1/namespaces/<ns>/secrets/<name>`` for one ServiceAccount token, allowing only the
Secrets named in ``allowed`` (a Role's ``resourceNames``), with ``resourceVersion``
preconditions: a stale one gets 409 Conflict, as from the API server.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs

from ._server import FakePlatform, Request, Response

CLIENT_ID = "fake-x-client-id-Q2w9"
DEFAULT_ACCESS_TOKEN = "fake-x-access-token-0001"
DEFAULT_REFRESH_TOKEN = "fake-x-refresh-token-0001"
USER_ID = "1580000000000000001"
USERNAME = "herald"
TEXT_LIMIT = 280
ACCESS_LIFETIME = 7200
INVALID_TOKEN = {"error": "invalid_request", "error_description": "Value passed for the token was invalid."}
UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
DUPLICATE = {
    "detail": "You are not allowed to create a Tweet with duplicate content.",
    "type": "about:blank",
    "title": "Forbidden",
    "status": 403,
}
TOO_MANY = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}


def problem(detail: str, message: str | None = None) -> dict:
    body: dict = {
        "title": "Invalid Request",
        "detail": detail,
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }
    if message:
        body["errors"] = [{"message": message}]
    return body


def rfc3339(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def weighted_length(text: str) -> int:
    from twitter_text import parse_tweet  # twitter-text-parser, an independent port of twitter-text

    return parse_tweet(text).weightedLength


def _url_entities(text: str) -> list[tuple[int, int, str]]:
    from twitter_text.extract_urls import extract_urls_with_indices

    return [(e["indices"][0], e["indices"][1], e["url"]) for e in extract_urls_with_indices(text)]


class XFake(FakePlatform):
    name = "x"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str | None = None,
        remaining: int = 99,
        user_remaining: int = 16,
        media_processing_polls: int = 0,
    ):
        self.client_id, self.client_secret = client_id, client_secret
        self.remaining, self.user_remaining = remaining, user_remaining
        self.media_processing_polls = media_processing_polls
        self.access_tokens: dict[str, float] = {DEFAULT_ACCESS_TOKEN: time.time() + ACCESS_LIFETIME}
        self.refresh_tokens: dict[str, bool] = {DEFAULT_REFRESH_TOKEN: True}  # token -> still valid
        self.refresh_uses: list[str] = []
        self.tweets: list[dict] = []  # oldest first
        self.media: dict[str, dict] = {}
        self.on_refresh: Callable[[Request], None] | None = None  # called after rotating, before answering
        self._next_id = 1_860_000_000_000_000_000
        self._token_counter = 1
        super().__init__(host, port)

    def routes(self) -> None:
        self.route("POST", r"/2/oauth2/token", "token", self.token)
        self.route("POST", r"/2/tweets", "tweets", self.create_tweet)
        self.route("POST", r"/2/media/upload", "media.upload", self.upload_media)
        self.route("GET", r"/2/media/upload", "media.status", self.media_status)
        self.route("POST", r"/2/media/metadata", "media.metadata", self.media_metadata)
        self.route("GET", r"/2/users/me", "users.me", self.users_me)
        self.route("GET", r"/2/users/(?P<id>\d+)/tweets", "users.tweets", self.user_tweets)

    # --- credentials and tokens --------------------------------------------

    def credentials(self) -> dict[str, str]:
        """A valid access token (saved with its expiry) and the refresh token."""
        return {
            "clientId": self.client_id,
            "refreshToken": DEFAULT_REFRESH_TOKEN,
            "accessToken": DEFAULT_ACCESS_TOKEN,
            "accessTokenExpiresAt": rfc3339(self.access_tokens[DEFAULT_ACCESS_TOKEN]),
        }

    def add_refresh_token(self, token: str) -> str:
        """A refresh token from a new authorization (as after re-authorizing the app)."""
        with self._lock:
            self.refresh_tokens[token] = True
        return token

    def expire_access_token(self, token: str = DEFAULT_ACCESS_TOKEN) -> None:
        with self._lock:
            self.access_tokens[token] = 0.0

    def valid_refresh_tokens(self) -> list[str]:
        with self._lock:
            return [t for t, ok in self.refresh_tokens.items() if ok]

    def _new_token(self, kind: str) -> str:
        with self._lock:
            self._token_counter += 1
            return f"fake-x-{kind}-token-{self._token_counter:04d}"

    def rate_headers(self, *, user: bool = False) -> dict[str, str]:
        now = int(time.time())
        headers = {
            "x-rate-limit-limit": "100",
            "x-rate-limit-remaining": str(self.remaining),
            "x-rate-limit-reset": str(now + 900),
        }
        if user:
            headers.update(
                {
                    "x-user-limit-24hour-limit": "17",
                    "x-user-limit-24hour-remaining": str(self.user_remaining),
                    "x-user-limit-24hour-reset": str(now + 86400),
                }
            )
        return headers

    def _auth(self, request: Request) -> Response | None:
        token = request.bearer()
        with self._lock:
            expiry = self.access_tokens.get(token or "")
        if expiry is None or expiry < time.time():
            return Response(401, UNAUTHORIZED, self.rate_headers())
        return None

    def token(self, request: Request) -> Response:
        if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            return Response(
                400, {"error": "invalid_request", "error_description": "Missing required parameter [grant_type]."}
            )
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if self.client_secret is not None:
            expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {expected}":
                return Response(
                    401, {"error": "unauthorized_client", "error_description": "Missing valid authorization header"}
                )
        elif form.get("client_id") != self.client_id:
            return Response(
                400, {"error": "invalid_request", "error_description": "Missing required parameter [client_id]."}
            )
        if form.get("grant_type") != "refresh_token":
            return Response(400, {"error": "unsupported_grant_type", "error_description": "grant_type not supported"})
        presented = form.get("refresh_token", "")
        with self._lock:
            self.refresh_uses.append(presented)
            if not self.refresh_tokens.get(presented):
                return Response(400, INVALID_TOKEN)
            self.refresh_tokens[presented] = False  # single use: rotated from now on
        access, refresh = self._new_token("access"), self._new_token("refresh")
        with self._lock:
            self.access_tokens[access] = time.time() + ACCESS_LIFETIME
            self.refresh_tokens[refresh] = True
        if self.on_refresh is not None:
            self.on_refresh(request)
        return Response(
            200,
            {
                "token_type": "bearer",
                "expires_in": ACCESS_LIFETIME,
                "access_token": access,
                "scope": "tweet.read tweet.write users.read media.write offline.access",
                "refresh_token": refresh,
            },
        )

    # --- posts ----------------------------------------------------------------

    def _id(self) -> str:
        with self._lock:
            self._next_id += 1
            return str(self._next_id)

    def add_tweet(self, text: str, *, media_ids: list[str] | None = None, created_at: float | None = None) -> dict:
        tweet = {
            "id": self._id(),
            "text": text,
            "media_ids": list(media_ids or []),
            "created_at": rfc3339(created_at or time.time()),
        }
        with self._lock:
            self.tweets.append(tweet)
        return tweet

    def rendered(self, tweet: dict) -> dict:
        """The tweet as the v2 API returns it: t.co links with entities, the media link, HTML entities."""
        text = tweet["text"]
        entities: list[dict] = []
        rendered, pos = "", 0
        for start, end, url in _url_entities(text):
            short = "https://t.co/" + hashlib.sha256(url.encode()).hexdigest()[:10]
            rendered += html.escape(text[pos:start], quote=False)
            entities.append(
                {
                    "start": len(rendered),
                    "end": len(rendered) + len(short),
                    "url": short,
                    "expanded_url": url if "://" in url else f"http://{url}",
                    "display_url": url,
                }
            )
            rendered += short
            pos = end
        rendered += html.escape(text[pos:], quote=False)
        for media_id in tweet["media_ids"][:1]:
            short = "https://t.co/" + hashlib.sha256(media_id.encode()).hexdigest()[:10]
            rendered += " "
            entities.append(
                {
                    "start": len(rendered),
                    "end": len(rendered) + len(short),
                    "url": short,
                    "expanded_url": f"https://x.com/{USERNAME}/status/{tweet['id']}/photo/1",
                    "display_url": "pic.x.com/" + short[-10:],
                    "media_key": self.media[media_id]["media_key"],
                }
            )
            rendered += short
        body = {
            "id": tweet["id"],
            "text": rendered,
            "created_at": tweet["created_at"],
            "edit_history_tweet_ids": [tweet["id"]],
        }
        if entities:
            body["entities"] = {"urls": entities}
        return body

    def create_tweet(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        data = request.json if isinstance(request.json, dict) else {}
        text = data.get("text") or ""
        media_ids = (data.get("media") or {}).get("media_ids") or []
        if not text and not media_ids:
            return Response(400, problem("One or more parameters to your request was invalid."), self.rate_headers())
        if weighted_length(text) > TEXT_LIMIT:
            return Response(
                400,
                problem("One or more parameters to your request was invalid.", "Tweet text is too long."),
                self.rate_headers(),
            )
        for media_id in media_ids:
            media = self.media.get(str(media_id))
            if media is None or media["pending_polls"] > 0:
                return Response(
                    400,
                    problem("One or more parameters to your request was invalid.", f"Invalid media id {media_id}"),
                    self.rate_headers(),
                )
        with self._lock:
            if any(t["text"] == text for t in self.tweets):
                return Response(403, DUPLICATE, self.rate_headers(user=True))
        tweet = self.add_tweet(text, media_ids=[str(m) for m in media_ids])
        self.record_post(
            {
                "id": tweet["id"],
                "text": text,
                "media": [self.media[str(m)] for m in media_ids],
                "url": f"https://x.com/{USERNAME}/status/{tweet['id']}",
            }
        )
        rendered = self.rendered(tweet)
        return Response(
            201,
            {"data": {"id": tweet["id"], "text": rendered["text"], "edit_history_tweet_ids": [tweet["id"]]}},
            self.rate_headers(user=True),
        )

    # --- media ------------------------------------------------------------------

    def upload_media(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        data = request.json if isinstance(request.json, dict) else {}
        try:
            raw = base64.b64decode(data.get("media") or "", validate=True)
        except ValueError:
            raw = b""
        category = data.get("media_category")
        if not raw or category not in ("tweet_image", "tweet_gif", "tweet_video"):
            return Response(400, problem("One or more parameters to your request was invalid."), self.rate_headers())
        media_id = self._id()
        entity = {
            "id": media_id,
            "media_key": f"3_{media_id}",
            "size": len(raw),
            "expires_after_secs": 86400,
            "image": {"image_type": "image/png", "w": 1, "h": 1},
        }
        with self._lock:
            self.media[media_id] = {
                **entity,
                "category": category,
                "alt_text": None,
                "pending_polls": self.media_processing_polls,
            }
        if self.media_processing_polls:
            entity["processing_info"] = {"state": "pending", "check_after_secs": 0}
        return Response(200, {"data": entity}, self.rate_headers())

    def media_status(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        with self._lock:
            media = self.media.get(request.param("media_id") or "")
            if media is None or request.param("command") != "STATUS":
                return Response(400, problem("One or more parameters to your request was invalid."))
            if media["pending_polls"] > 0:
                media["pending_polls"] -= 1
            state = "in_progress" if media["pending_polls"] > 0 else "succeeded"
        info = {"state": state, "progress_percent": 100 if state == "succeeded" else 50}
        if state != "succeeded":
            info["check_after_secs"] = 0
        return Response(
            200,
            {"data": {"id": media["id"], "media_key": media["media_key"], "processing_info": info}},
            self.rate_headers(),
        )

    def media_metadata(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        data = request.json if isinstance(request.json, dict) else {}
        media_id = str(data.get("id") or "")
        text = ((data.get("metadata") or {}).get("alt_text") or {}).get("text")
        with self._lock:
            media = self.media.get(media_id)
            if media is None or not isinstance(text, str) or len(text) > 1000:
                return Response(400, problem("One or more parameters to your request was invalid."))
            media["alt_text"] = text
        return Response(200, {"data": {"id": media_id, "associated_metadata": {"alt_text": {"text": text}}}})

    # --- reads ---------------------------------------------------------------------

    def users_me(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        return Response(200, {"data": {"id": USER_ID, "name": "Herald", "username": USERNAME}}, self.rate_headers())

    def user_tweets(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        if request.match["id"] != USER_ID:
            return Response(
                200,
                {
                    "errors": [
                        {
                            "title": "Not Found Error",
                            "detail": "Could not find user.",
                            "type": "https://api.twitter.com/2/problems/resource-not-found",
                        }
                    ]
                },
                self.rate_headers(),
            )
        limit = min(int(request.param("max_results") or 10), 100)
        since = request.param("start_time")
        with self._lock:
            newest_first = [t for t in reversed(self.tweets) if not since or t["created_at"] >= since][:limit]
        data = [self.rendered(t) for t in newest_first]
        meta = {"result_count": len(data)}
        if data:
            meta.update({"newest_id": data[0]["id"], "oldest_id": data[-1]["id"]})
        body: dict = {"meta": meta}
        if data:
            body["data"] = data
        return Response(200, body, self.rate_headers())


# --- the Kubernetes API, for the token store ---------------------------------------------

SA_TOKEN = "fake-serviceaccount-token-7Zp3"
NAMESPACE = "news"
SECRET_NAME = "x-main-credentials"


def status(code: int, reason: str, message: str, name: str = "") -> Response:
    return Response(
        code,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": {"name": name, "kind": "secrets"},
            "code": code,
        },
    )


class KubeSecretsFake(FakePlatform):
    name = "kubernetes"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str = SA_TOKEN,
        namespace: str = NAMESPACE,
        allowed: tuple[str, ...] = (SECRET_NAME,),
    ):
        self.token, self.namespace, self.allowed = token, namespace, allowed
        self.secrets: dict[tuple[str, str], dict] = {}
        self.conflicts = 0
        self.writes = 0
        super().__init__(host, port)

    def routes(self) -> None:
        path = r"/api/v1/namespaces/(?P<ns>[^/]+)/secrets/(?P<name>[^/]+)"
        self.route("GET", path, "secret.get", self.get_secret)
        self.route("PATCH", path, "secret.patch", self.patch_secret)

    def put_secret(self, name: str, values: dict[str, str], namespace: str | None = None) -> None:
        with self._lock:
            key = (namespace or self.namespace, name)
            version = self.secrets.get(key, {}).get("resourceVersion", 1000)
            self.secrets[key] = {
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
                "resourceVersion": version + 1,
            }

    def values(self, name: str = SECRET_NAME, namespace: str | None = None) -> dict[str, str]:
        with self._lock:
            data = self.secrets[(namespace or self.namespace, name)]["data"]
            return {k: base64.b64decode(v).decode() for k, v in data.items()}

    def version(self, name: str = SECRET_NAME, namespace: str | None = None) -> str:
        with self._lock:
            return str(self.secrets[(namespace or self.namespace, name)]["resourceVersion"])

    def _object(self, ns: str, name: str) -> dict:
        secret = self.secrets[(ns, name)]
        return {
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": str(secret["resourceVersion"])},
            "type": "Opaque",
            "data": dict(secret["data"]),
        }

    def _check(self, request: Request, verb: str) -> Response | None:
        ns, name = request.match["ns"], request.match["name"]
        if request.bearer() != self.token:
            return status(401, "Unauthorized", "Unauthorized")
        if ns != self.namespace or name not in self.allowed:
            return status(
                403,
                "Forbidden",
                f'secrets "{name}" is forbidden: User "system:serviceaccount:{self.namespace}:herald-x-token-writer" '
                f'cannot {verb} resource "secrets" in API group "" in the namespace "{ns}"',
                name,
            )
        if (ns, name) not in self.secrets:
            return status(404, "NotFound", f'secrets "{name}" not found', name)
        return None

    def get_secret(self, request: Request) -> Response:
        if (denied := self._check(request, "get")) is not None:
            return denied
        with self._lock:
            return Response(200, self._object(request.match["ns"], request.match["name"]))

    def patch_secret(self, request: Request) -> Response:
        if (denied := self._check(request, "patch")) is not None:
            return denied
        if request.headers.get("content-type") != "application/merge-patch+json":
            return status(415, "UnsupportedMediaType", "the body of the request was in an unknown format")
        patch = json.loads(request.body or b"{}")
        ns, name = request.match["ns"], request.match["name"]
        with self._lock:
            secret = self.secrets[(ns, name)]
            wanted = (patch.get("metadata") or {}).get("resourceVersion")
            if wanted is not None and str(wanted) != str(secret["resourceVersion"]):
                self.conflicts += 1
                return status(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on secrets "{name}": the object has been modified; please apply '
                    "your changes to the latest version and try again",
                    name,
                )
            for key, value in (patch.get("data") or {}).items():
                if value is None:
                    secret["data"].pop(key, None)
                else:
                    secret["data"][key] = value
            secret["resourceVersion"] += 1
            self.writes += 1
            return Response(200, self._object(ns, name))
