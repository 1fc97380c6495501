"""LinkedIn (Community Management API, versioned ``/rest``): ``POST /rest/posts``,
``GET /rest/posts?q=author``, ``POST /rest/images?action=initializeUpload`` (then ``PUT`` of the
bytes to the returned ``uploadUrl``) and ``GET /rest/images/{urn}``.

Every ``/rest`` call needs ``Authorization: Bearer``, ``LinkedIn-Version: YYYYMM`` (one of
``versions``) and ``X-Restli-Protocol-Version: 2.0.0``. A created post answers 201 with an
empty body and its URN in ``x-restli-id``. Errors are ``{"status", "serviceErrorCode",
"code", "message"}``: 401 ``INVALID_ACCESS_TOKEN`` (65600), ``REVOKED_ACCESS_TOKEN`` (65601),
``EXPIRED_ACCESS_TOKEN`` (65602); 403 ``ACCESS_DENIED``; 426 ``NONEXISTENT_VERSION``; 400
``VERSION_MISSING``; 429 ``TOO_MANY_REQUESTS`` ("Resource level throttle ... DAY limit ...",
no Retry-After: daily limits reset at midnight UTC); 422 for an invalid post, and for a post
identical to an earlier one the body LinkedIn sends (``Content is a duplicate of
urn:li:share:...``, ``DUPLICATE_POST``).

The fake stores ``commentary`` as sent and records the text a reader sees (little-text
escapes removed) as the post's ``text``. Assumption: LinkedIn's commentary limit (3000) is
counted here in UTF-16 code units of the commentary as sent.
"""

from __future__ import annotations

import re
import time
from urllib.parse import unquote

from ._server import FakePlatform, Request, Response

DEFAULT_ACCESS_TOKEN = "fake-linkedin-access-token-5m1k"
AUTHOR = "urn:li:organization:2414183"
VERSIONS = ("202605", "202609", "202611")
COMMENTARY_LIMIT = 3000


def error(status: int, message: str, code: str | None = None, service_code: int | None = None, **extra) -> Response:
    body: dict = {"status": status, "message": message}
    if code:
        body["code"] = code
    if service_code is not None:
        body["serviceErrorCode"] = service_code
    body.update(extra)
    return Response(status, body)


def unescape(commentary: str) -> str:
    return re.sub(r"\\(.)", r"\1", commentary)


def duplicate(urn: str) -> Response:
    """The body LinkedIn sent for a duplicate post (recorded in Arisamiga/Linkedin-RSS#5)."""
    return Response(
        422,
        {
            "errorDetailType": "com.linkedin.common.error.BadRequest",
            "message": "com.linkedin.content.common.exception.BadRequestResponseException: "
            f"Content is a duplicate of {urn}",
            "errorDetails": {
                "inputErrors": [{"description": "Duplicate post is detected", "input": {}, "code": "DUPLICATE_POST"}]
            },
            "status": 422,
        },
    )


class LinkedInFake(FakePlatform):
    name = "linkedin"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        author: str = AUTHOR,
        versions: tuple[str, ...] = VERSIONS,
        image_processing_polls: int = 0,
        can_read_posts: bool = True,
        upload_base: str | None = None,
    ):
        self.access_token, self.author, self.versions = access_token, author, versions
        self.image_processing_polls = image_processing_polls
        self.can_read_posts = can_read_posts
        # Upload URLs on another host (as LinkedIn's dms-uploads host): no bearer token expected there.
        self.upload_base = upload_base
        self.images: dict[str, dict] = {}  # urn -> {data, pending_polls, uploaded}
        self.shares: list[dict] = []  # oldest first
        self._next = 7_300_000_000_000_000_000
        super().__init__(host, port)

    def routes(self) -> None:
        self.route("POST", r"/rest/posts", "posts", self.create_post)
        self.route("GET", r"/rest/posts", "posts.find", self.find_posts)
        self.route("POST", r"/rest/images", "images.action", self.image_action)
        self.route("GET", r"/rest/images/(?P<urn>[^/]+)", "images.get", self.get_image)
        self.route("PUT", r"/_upload/(?P<id>[^/]+)", "images.upload", self.upload)

    def credentials(self) -> dict[str, str]:
        return {"accessToken": self.access_token, "author": self.author}

    def _id(self) -> int:
        with self._lock:
            self._next += 1
            return self._next

    def _check(self, request: Request) -> Response | None:
        if request.bearer() != self.access_token:
            return error(401, "Invalid access token", "INVALID_ACCESS_TOKEN", 65600)
        version = request.headers.get("linkedin-version")
        if not version:
            return error(
                400,
                "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
                "VERSION_MISSING",
            )
        if version not in self.versions:
            return error(426, f"Requested version {version} is not active", "NONEXISTENT_VERSION")
        if request.headers.get("x-restli-protocol-version") != "2.0.0":
            return error(400, "Rest.li protocol version 2.0.0 is required (X-Restli-Protocol-Version)")
        return None

    def add_share(self, commentary: str, *, created_at: float | None = None) -> dict:
        """A post the author already has (e.g. made by hand)."""
        share = {
            "id": f"urn:li:share:{self._id()}",
            "author": self.author,
            "commentary": commentary,
            "visibility": "PUBLIC",
            "lifecycleState": "PUBLISHED",
            "createdAt": int((created_at or time.time()) * 1000),
        }
        with self._lock:
            self.shares.append(share)
        return share

    def create_post(self, request: Request) -> Response:
        if (denied := self._check(request)) is not None:
            return denied
        post = request.json if isinstance(request.json, dict) else {}
        if post.get("author") != self.author:
            return error(
                403, "Not enough permissions to access: partnerApiPostsExternal.CREATE.20260501", "ACCESS_DENIED", 100
            )
        commentary = post.get("commentary")
        distribution = post.get("distribution") or {}
        problems = []
        if not isinstance(commentary, str):
            problems.append("/commentary")
        elif len(commentary.encode("utf-16-le")) // 2 > COMMENTARY_LIMIT:
            problems.append("/commentary: length exceeds 3000")
        if post.get("visibility") not in ("PUBLIC", "CONNECTIONS", "LOGGED_IN"):
            problems.append("/visibility")
        if distribution.get("feedDistribution") not in ("MAIN_FEED", "NONE"):
            problems.append("/distribution/feedDistribution")
        if post.get("lifecycleState") not in ("PUBLISHED", "DRAFT"):
            problems.append("/lifecycleState")
        content = post.get("content")
        images: list[dict] = []
        if isinstance(content, dict):
            if "media" in content:
                images = [content["media"]]
            elif "multiImage" in content:
                images = list((content["multiImage"] or {}).get("images") or [])
                if not 2 <= len(images) <= 20:
                    problems.append("/content/multiImage/images: 2 to 20 images")
            elif "article" in content:
                article = content["article"] or {}
                if not article.get("source") or not article.get("title"):
                    problems.append("/content/article: source and title are required")
            else:
                problems.append("/content")
        for image in images:
            stored = self.images.get(image.get("id", ""))
            if stored is None or not stored["uploaded"] or stored["pending_polls"] > 0:
                problems.append(f"/content: image {image.get('id')} is not available")
        if problems:
            return error(422, "ERROR :: " + "; ".join(problems), "UNPROCESSABLE_ENTITY")
        with self._lock:
            for share in self.shares:
                if unescape(share["commentary"]) == unescape(commentary):
                    return duplicate(share["id"])
        share = self.add_share(commentary)
        share.update({"content": content, "distribution": distribution, "visibility": post["visibility"]})
        self.record_post(
            {
                "id": share["id"],
                "text": unescape(commentary),
                "commentary": commentary,
                "content": content,
                "url": f"https://www.linkedin.com/feed/update/{share['id']}/",
            }
        )
        return Response(201, None, {"x-restli-id": share["id"], "x-linkedin-id": share["id"]})

    def find_posts(self, request: Request) -> Response:
        if (denied := self._check(request)) is not None:
            return denied
        if request.param("q") != "author" or request.param("author") != self.author:
            return error(400, "Invalid finder parameters", "ILLEGAL_ARGUMENT")
        if not self.can_read_posts:
            message = "Not enough permissions to access: partnerApiPostsExternal.FINDER-author"
            return error(403, message, "ACCESS_DENIED", 100)
        count = min(int(request.param("count") or 10), 100)
        with self._lock:
            elements = list(reversed(self.shares))[:count]
        return Response(200, {"elements": elements, "paging": {"start": 0, "count": count, "links": []}})

    def image_action(self, request: Request) -> Response:
        if (denied := self._check(request)) is not None:
            return denied
        if request.param("action") != "initializeUpload":
            return error(400, "Unknown action", "ILLEGAL_ARGUMENT")
        owner = ((request.json or {}).get("initializeUploadRequest") or {}).get("owner")
        if owner != self.author:
            return error(403, "Not enough permissions to access: images.ACTION-initializeUpload", "ACCESS_DENIED", 100)
        upload_id = str(self._id())
        urn = f"urn:li:image:C4E10AQ{upload_id}"
        with self._lock:
            self.images[urn] = {"data": b"", "uploaded": False, "pending_polls": self.image_processing_polls}
            self.images[upload_id] = self.images[urn]
        return Response(
            200,
            {
                "value": {
                    "uploadUrlExpiresAt": int(time.time() * 1000) + 86_400_000,
                    "uploadUrl": f"{self.upload_base or self.url}/_upload/{upload_id}",
                    "image": urn,
                }
            },
        )

    def upload(self, request: Request) -> Response:
        if self.upload_base is None and request.bearer() != self.access_token:
            return error(401, "Invalid access token", "INVALID_ACCESS_TOKEN", 65600)
        with self._lock:
            image = self.images.get(request.match["id"])
            if image is None:
                return error(404, "Upload not found")
            image.update(data=request.body, uploaded=True, content_type=request.headers.get("content-type"))
        return Response(201, None)

    def get_image(self, request: Request) -> Response:
        if (denied := self._check(request)) is not None:
            return denied
        urn = unquote(request.match["urn"])
        with self._lock:
            image = self.images.get(urn)
            if image is None:
                return error(404, f"Image {urn} not found", "NOT_FOUND")
            if not image["uploaded"]:
                state = "WAITING_UPLOAD"
            elif image["pending_polls"] > 0:
                image["pending_polls"] -= 1
                state = "PROCESSING"
            else:
                state = "AVAILABLE"
        return Response(200, {"id": urn, "owner": self.author, "status": state})
