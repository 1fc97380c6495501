"""Mastodon: ``POST /api/v1/statuses`` (with ``Idempotency-Key``), ``POST /api/v2/media``
(200, or 202 while processing, then ``GET /api/v1/media/:id`` 206 until 200),
``GET /api/v1/accounts/verify_credentials``, ``GET /api/v1/accounts/:id/statuses`` and
``GET /api/v2/instance`` (its ``configuration``: ``max_characters`` and the media limits).
A remote mention ``@user@domain`` is rendered as Mastodon does, showing ``@user`` only.

Errors are ``{"error": "..."}``: 401 for a bad token, 422 for validation (e.g. the
500-character limit, where every URL counts as 23), 429 when rate limited. Every
response carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (an ISO 8601 time).
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

from ._server import FakePlatform, Request, Response, form_or_json, multipart

DEFAULT_ACCESS_TOKEN = "fake-mastodon-access-token-41d9"
ACCOUNT_ID = "109000000000000001"
USERNAME = "herald"
STATUS_LIMIT = 500
_URL = re.compile(r"https?://[^\s<>\"]+")


def _length(text: str) -> int:
    return len(_REMOTE_MENTION.sub(r"@\1", _URL.sub("x" * 23, text)))


_REMOTE_MENTION = re.compile(r"(?<![/\w])@(\w+)@([\w.-]+\w)")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_html(text: str) -> str:
    """Roughly what Mastodon renders a plain-text status as: paragraphs, <br />,
    links with an invisible scheme span, and hashtag links."""

    def link(url: str) -> str:
        scheme, rest = url.split("://", 1)
        return (
            f'<a href="{html.escape(url)}" target="_blank" rel="nofollow noopener noreferrer">'
            f'<span class="invisible">{scheme}://</span><span class="">{html.escape(rest)}</span></a>'
        )

    def plain(part: str) -> str:
        escaped = re.sub(
            r"(?<![\w/&])#(\w+)",
            lambda m: (
                f'<a href="https://fake.example/tags/{m.group(1)}" class="mention hashtag" rel="tag">'
                f"#<span>{m.group(1)}</span></a>"
            ),
            html.escape(part),
        )
        return _REMOTE_MENTION.sub(
            lambda m: (
                f'<span class="h-card" translate="no"><a href="https://{m.group(2)}/@{m.group(1)}" '
                f'class="u-url mention">@<span>{m.group(1)}</span></a></span>'
            ),
            escaped,
        )

    paragraphs = []
    for paragraph in text.split("\n\n"):
        out, pos = [], 0
        for match in _URL.finditer(paragraph):
            out += [plain(paragraph[pos : match.start()]), link(match.group(0))]
            pos = match.end()
        out.append(plain(paragraph[pos:]))
        paragraphs.append("<p>" + "".join(out).replace("\n", "<br />") + "</p>")
    return "".join(paragraphs)


class MastodonFake(FakePlatform):
    name = "mastodon"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        remaining: int = 299,
        media_processing_polls: int = 0,
        max_characters: int = STATUS_LIMIT,
        instance_status: int = 200,
        image_size_limit: int = 16777216,
        video_size_limit: int = 103809024,
    ):
        self.max_characters = max_characters
        self.image_size_limit = image_size_limit
        self.video_size_limit = video_size_limit
        self.instance_status = instance_status
        self.access_token = access_token
        self.remaining = remaining
        self.media_processing_polls = media_processing_polls
        self._next_id = 110_000_000_000_000_000
        self._by_key: dict[str, dict] = {}
        self.media: dict[str, dict] = {}
        self.statuses: list[dict] = []  # newest last; posts made outside Herald can be added here
        super().__init__(host, port)

    def routes(self) -> None:
        self.route("POST", r"/api/v1/statuses", "statuses", self.post_status)
        self.route("POST", r"/api/v2/media", "media", self.upload_media)
        self.route("GET", r"/api/v1/media/(?P<id>\d+)", "media.get", self.get_media)
        self.route("GET", r"/api/v1/accounts/verify_credentials", "verify_credentials", self.verify_credentials)
        self.route("GET", r"/api/v1/accounts/(?P<id>\d+)/statuses", "account.statuses", self.account_statuses)
        self.route("GET", r"/api/v2/instance", "instance", self.instance)
        self.route("GET", r"/api/v1/instance", "instance.v1", self.instance_v1)

    def instance_v1(self, request: Request) -> Response:
        return Response(404, {"error": "Not Found"})  # a 4.x instance keeps v1, but this fake needs neither

    def instance(self, request: Request) -> Response:
        if self.instance_status != 200:
            return Response(self.instance_status, {"error": "Not Found"})
        configuration = {
            "urls": {"streaming": "wss://fake.example"},
            "statuses": {
                "max_characters": self.max_characters,
                "max_media_attachments": 4,
                "characters_reserved_per_url": 23,
            },
            "media_attachments": {
                "image_size_limit": self.image_size_limit,
                "image_matrix_limit": 33177600,
                "video_size_limit": self.video_size_limit,
                "video_frame_rate_limit": 120,
                "video_matrix_limit": 8294400,
                "supported_mime_types": ["image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4"],
            },
            "polls": {"max_options": 4, "max_characters_per_option": 50, "min_expiration": 300},
        }
        return Response(
            200,
            {"domain": "fake.example", "title": "Fake", "version": "4.3.0", "configuration": configuration},
            self.rate_headers(),
        )

    def credentials(self) -> dict[str, str]:
        return {"accessToken": self.access_token}

    def rate_headers(self) -> dict[str, str]:
        reset = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
        return {
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": _iso(reset),
        }

    def _id(self) -> str:
        with self._lock:
            self._next_id += 1
            return str(self._next_id)

    def _auth(self, request: Request) -> Response | None:
        if request.bearer() != self.access_token:
            return Response(401, {"error": "The access token is invalid"}, self.rate_headers())
        return None

    def add_status(self, text: str, *, created_at: datetime | None = None) -> dict:
        """A status that already exists on the account (e.g. posted by hand)."""
        status_id = self._id()
        status = {
            "id": status_id,
            "created_at": _iso(created_at or datetime.now(UTC)),
            "content": to_html(text),
            "url": f"{self.url}/@{USERNAME}/{status_id}",
            "uri": f"{self.url}/users/{USERNAME}/statuses/{status_id}",
            "visibility": "public",
            "sensitive": False,
            "spoiler_text": "",
            "language": None,
            "media_attachments": [],
            "account": {"id": ACCOUNT_ID, "username": USERNAME, "acct": USERNAME},
        }
        with self._lock:
            self.statuses.append(status)
        return status

    def post_status(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        key = request.headers.get("idempotency-key")
        with self._lock:
            if key and key in self._by_key:  # Mastodon returns the original status
                return Response(200, self._by_key[key], self.rate_headers())
        params = form_or_json(request)
        text = params.get("status") or ""
        media_ids = params.get("media_ids") or []
        if not text and not media_ids:
            return Response(422, {"error": "Validation failed: Text can't be blank"}, self.rate_headers())
        spoiler = params.get("spoiler_text") or ""
        if _length(text) + len(spoiler) > self.max_characters:
            return Response(
                422,
                {"error": f"Validation failed: Text character limit of {self.max_characters} exceeded"},
                self.rate_headers(),
            )
        if params.get("visibility") not in (None, "public", "unlisted", "private", "direct"):
            return Response(422, {"error": "Validation failed: Visibility is not included in the list"})
        attachments = []
        for media_id in media_ids:
            media = self.media.get(str(media_id))
            if media is None:
                return Response(422, {"error": "Validation failed: Media attachments are invalid"}, self.rate_headers())
            if media["pending_polls"] > 0:
                return Response(
                    422,
                    {"error": "Cannot attach files that have not finished processing. Try again in a moment!"},
                    self.rate_headers(),
                )
            attachments.append(media["entity"])
        status = self.add_status(text)
        status["media_attachments"] = attachments
        options = {k: params[k] for k in ("visibility", "spoiler_text", "sensitive", "language") if k in params}
        status.update(options)
        with self._lock:
            if key:
                self._by_key[key] = status
        self.record_post(
            {
                "id": status["id"],
                "text": text,
                "idempotencyKey": key,
                "media": attachments,
                "url": status["url"],
                **options,
            }
        )
        return Response(200, status, self.rate_headers())

    def upload_media(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        fields = multipart(request)
        if "file" not in fields or not fields["file"][0]:
            return Response(422, {"error": "Validation failed: File can't be blank"}, self.rate_headers())
        data, filename, content_type = fields["file"]
        video = (content_type or "").startswith(("video/", "audio/"))
        if len(data) > (self.video_size_limit if video else self.image_size_limit):
            return Response(422, {"error": "Validation failed: File file size must be less than the limit"})
        description = fields.get("description", (b"", None, None))[0].decode()
        media_id = self._id()
        processing = self.media_processing_polls > 0
        entity = {
            "id": media_id,
            "type": "video" if (content_type or "").startswith("video/") else "image",
            "description": description or None,
            "url": None if processing else f"{self.url}/media/{media_id}/{filename}",
            "preview_url": f"{self.url}/media/{media_id}/small",
            "meta": {"size": len(data), "content_type": content_type},
        }
        with self._lock:
            self.media[media_id] = {"entity": entity, "pending_polls": self.media_processing_polls}
        return Response(202 if processing else 200, entity, self.rate_headers())

    def get_media(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        with self._lock:
            media = self.media.get(request.match["id"])
            if media is None:
                return Response(404, {"error": "Record not found"})
            if media["pending_polls"] > 0:
                media["pending_polls"] -= 1
                return Response(206, media["entity"], self.rate_headers())
            media["entity"]["url"] = f"{self.url}/media/{media['entity']['id']}/original"
            return Response(200, media["entity"], self.rate_headers())

    def verify_credentials(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        return Response(200, {"id": ACCOUNT_ID, "username": USERNAME, "acct": USERNAME}, self.rate_headers())

    def account_statuses(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        if request.match["id"] != ACCOUNT_ID:
            return Response(404, {"error": "Record not found"})
        limit = min(int(request.param("limit") or 20), 40)
        with self._lock:
            newest_first = list(reversed(self.statuses))[:limit]
        return Response(200, newest_first, self.rate_headers())
