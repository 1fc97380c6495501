"""Http.fetch (media and link-card pages): bounded redirects, http(s) only, size caps."""

from __future__ import annotations

import httpx
import pytest

from herald_adapters import AdapterError, Redactor
from herald_adapters._http import Http, TooLarge
from herald_adapters._media import _header_size, image_size, shrink_image
from tests.platforms._server import PNG, noise_png


def _http(handler) -> Http:
    return Http(2.0, Redactor(), transport=httpx.MockTransport(handler))


def _redirecting(hops: int, final: httpx.Response, location=lambda n: f"/hop/{n}"):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        n = len(seen)
        if n <= hops:
            return httpx.Response(302, headers={"Location": location(n)})
        return final

    return handler, seen


def test_follows_relative_and_absolute_redirects():
    handler, seen = _redirecting(
        3, httpx.Response(200, content=PNG, headers={"Content-Type": "image/png"}), lambda n: f"/cdn/{n}.png"
    )
    fetched = _http(handler).fetch("https://media.test/a.png", what="media", max_bytes=1000)
    assert fetched.content == PNG and fetched.content_type == "image/png"
    assert seen == ["https://media.test/a.png", "https://media.test/cdn/1.png", "https://media.test/cdn/2.png",
                    "https://media.test/cdn/3.png"]  # fmt: skip
    assert fetched.url == "https://media.test/cdn/3.png"


def test_gives_up_after_five_redirects():
    handler, seen = _redirecting(6, httpx.Response(200, content=PNG))
    with pytest.raises(AdapterError) as raised:
        _http(handler).fetch("https://media.test/a.png", what="media", max_bytes=1000)
    assert raised.value.result.error_class.value == "rejected"
    assert "more than 5 redirects" in raised.value.result.message
    assert len(seen) == 6


@pytest.mark.parametrize("location", ["ftp://media.test/a.png", "file:///etc/passwd", "javascript:alert(1)"])
def test_refuses_redirects_to_other_schemes(location):
    handler, seen = _redirecting(1, httpx.Response(200, content=PNG), lambda n: location)
    with pytest.raises(AdapterError) as raised:
        _http(handler).fetch("https://media.test/a.png", what="media", max_bytes=1000)
    assert raised.value.result.error_class.value == "rejected"
    assert len(seen) == 1


def test_a_declared_size_over_the_cap_is_refused_before_reading():
    response = httpx.Response(200, headers={"Content-Length": "5000"}, content=b"x" * 5000)
    with pytest.raises(TooLarge) as raised:
        _http(lambda request: response).fetch("https://media.test/a", what="media", max_bytes=4999)
    assert raised.value.size == 5000


def test_an_undeclared_size_is_capped_while_reading():
    def handler(request):
        return httpx.Response(200, stream=httpx.ByteStream(b"x" * 5000))  # no Content-Length

    with pytest.raises(TooLarge):
        _http(handler).fetch("https://media.test/a", what="media", max_bytes=4000)
    partial = _http(handler).fetch("https://media.test/a", what="page", max_bytes=4000, partial=True)
    assert partial.content == b"x" * 4000


def test_the_cap_can_depend_on_the_content_type():
    def handler(request):
        kind = "video/mp4" if request.url.path.endswith(".mp4") else "image/png"
        return httpx.Response(200, content=b"x" * 3000, headers={"Content-Type": kind})

    def cap(content_type):
        return 5000 if content_type.startswith("video/") else 1000

    assert len(_http(handler).fetch("https://m.test/a.mp4", what="media", max_bytes=cap).content) == 3000
    with pytest.raises(TooLarge):
        _http(handler).fetch("https://m.test/a.png", what="media", max_bytes=cap)


def test_errors_are_returned_not_raised():
    fetched = _http(lambda r: httpx.Response(404, content=b"gone")).fetch("https://m.test/a", what="m", max_bytes=10)
    assert fetched.status == 404 and fetched.content == b"" and not fetched.is_success


def test_image_sizes_from_headers_and_pillow():
    png = noise_png(7, 5)
    assert _header_size(png) == (7, 5) and image_size(png) == (7, 5)
    assert _header_size(b"GIF89a\x03\x00\x02\x00") == (3, 2)
    assert _header_size(b"not an image") is None


def test_shrink_image_reencodes_as_jpeg_under_the_cap():
    big = noise_png(900, 900)
    assert len(big) > 1_000_000
    small = shrink_image(big, 1_000_000)
    assert small is not None and len(small) <= 1_000_000 and small.startswith(b"\xff\xd8\xff")
    assert image_size(small) == (900, 900)
    assert shrink_image(b"no image" * 10, 100) is None
