"""Downloading a publication's media so it can be uploaded to a platform, and the little
image handling some platforms need (dimensions, recompression)."""

from __future__ import annotations

import io
import logging
import mimetypes
import posixpath
import struct
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ._base import Context
from ._classify import classify_status
from ._contract import ErrorClass, Media, fail
from ._http import TooLarge

log = logging.getLogger("herald_adapters")


@dataclass(frozen=True)
class Downloaded:
    data: bytes
    content_type: str
    filename: str
    alt_text: str

    @property
    def kind(self) -> str:
        """image, video, audio, or other."""
        major = self.content_type.split("/", 1)[0]
        return major if major in ("image", "video", "audio") else "other"


def download(ctx: Context, media: Media, *, max_bytes: int | Callable[[str], int], platform: str) -> Downloaded:
    """GET the media, following redirects (at most 5, http/https only), reading at most
    `max_bytes` (or `max_bytes(content_type)`): larger media fail as `rejected`."""
    what = f"downloading media {media.url}"
    try:
        fetched = ctx.http.fetch(media.url, what=what, max_bytes=max_bytes)
    except TooLarge as exc:
        size = f"{exc.size} bytes" if exc.size is not None else f"more than {exc.limit} bytes"
        raise fail(
            ErrorClass.REJECTED,
            ctx.redact(f"media {media.url} is {size}; {platform} allows at most {exc.limit}"),
        ) from None
    if not fetched.is_success:
        error_class = classify_status(fetched.status) or ErrorClass.REJECTED
        if error_class is ErrorClass.AUTH:  # the platform's credentials are fine; the media is not
            error_class = ErrorClass.REJECTED
        raise fail(error_class, ctx.redact(f"media {media.url}: HTTP {fetched.status}"))
    # The name from the URL the publication gave (redirect targets are often opaque).
    name = posixpath.basename(urlsplit(media.url).path) or posixpath.basename(urlsplit(fetched.url).path) or "media"
    content_type = fetched.content_type
    if not content_type or content_type in ("application/octet-stream", "binary/octet-stream"):
        content_type = mimetypes.guess_type(name)[0] or sniff_type(fetched.content) or "application/octet-stream"
    return Downloaded(data=fetched.content, content_type=content_type, filename=name, alt_text=media.alt_text or "")


def sniff_type(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as displayed (EXIF orientation applied when Pillow is there), or None."""
    try:
        from PIL import Image
    except ImportError:
        return _header_size(data)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (OSError, ValueError, Image.DecompressionBombError):
        return _header_size(data)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Dimensions from PNG, GIF, JPEG and WebP headers, without decoding."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
            if chunk == b"VP8 ":
                width, height = struct.unpack("<HH", data[26:30])
                return width & 0x3FFF, height & 0x3FFF
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if data.startswith(b"\xff\xd8"):
            pos = 2
            while pos + 9 < len(data):
                if data[pos] != 0xFF:
                    return None
                marker = data[pos + 1]
                length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
                if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                    height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
                    return width, height
                pos += 2 + length
    except struct.error:
        return None
    return None


# Official Bluesky clients re-encode large images as JPEG of at most 2000 px a side.
_SIDES = (2000, 1600, 1280, 1024, 800)
_QUALITIES = (90, 80, 70, 60)


def pillow_available() -> bool:
    try:
        import PIL  # noqa: F401
    except ImportError:
        return False
    return True


def shrink_image(data: bytes, max_bytes: int) -> bytes | None:
    """The image re-encoded as a JPEG of at most `max_bytes` (orientation applied,
    transparency flattened onto white), or None when Pillow is missing or it can't be done."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "P", "PA"):
                image = image.convert("RGBA")
                background = Image.new("RGB", image.size, (255, 255, 255))
                background.paste(image, mask=image.getchannel("A"))
                image = background
            elif image.mode != "RGB":
                image = image.convert("RGB")
            for side in _SIDES:
                candidate = image.copy()
                candidate.thumbnail((side, side))
                for quality in _QUALITIES:
                    out = io.BytesIO()
                    candidate.save(out, "JPEG", quality=quality, optimize=True)
                    if out.tell() <= max_bytes:
                        log.info("image re-encoded to %d bytes (%d px, quality %d)", out.tell(), side, quality)
                        return out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        log.warning("cannot re-encode the image: %s", exc)
    return None
