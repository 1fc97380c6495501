"""Downloading a publication's media so it can be uploaded to a platform."""

from __future__ import annotations

import mimetypes
import posixpath
from dataclasses import dataclass
from urllib.parse import urlsplit

from ._base import Context
from ._classify import classify_status
from ._contract import ErrorClass, Media, fail


@dataclass(frozen=True)
class Downloaded:
    data: bytes
    content_type: str
    filename: str
    alt_text: str


def download(ctx: Context, media: Media, *, max_bytes: int, platform: str) -> Downloaded:
    response = ctx.http.request("GET", media.url, what=f"downloading media {media.url}")
    if response.status_code >= 300:
        error_class = classify_status(response.status_code) or ErrorClass.REJECTED
        if error_class is ErrorClass.AUTH:  # the platform's credentials are fine; the media is not
            error_class = ErrorClass.REJECTED
        raise fail(error_class, ctx.redact(f"media {media.url}: HTTP {response.status_code}"))
    data = response.content
    if len(data) > max_bytes:
        raise fail(
            ErrorClass.REJECTED,
            ctx.redact(f"media {media.url} is {len(data)} bytes; {platform} allows at most {max_bytes}"),
        )
    name = posixpath.basename(urlsplit(media.url).path) or "media"
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    if not content_type or content_type == "application/octet-stream":
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Downloaded(data=data, content_type=content_type, filename=name, alt_text=media.alt_text or "")
