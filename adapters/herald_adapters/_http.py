"""The httpx client: connect-only retries, timing, and classified transport failures."""

from __future__ import annotations

import contextlib
import functools
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay, wait_exponential

from ._classify import classify_status, classify_transport_error
from ._contract import AdapterError, ErrorClass, fail
from ._redact import Redactor
from ._tracing import DISABLED, Tracing

if TYPE_CHECKING:
    from ._base import Context

log = logging.getLogger("herald_adapters")

USER_AGENT = "herald-adapter/0.1"

# A connection that was never made carried no request: safe to retry at once, briefly.
CONNECT_RETRY_ATTEMPTS = 3
CONNECT_RETRY_BUDGET_SECONDS = 2.0

# Media and link-card pages often sit behind redirects (CDNs, raw.githubusercontent.com, shorteners).
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def connect_retrying() -> Retrying:
    return Retrying(
        retry=retry_if_exception_type((httpx.ConnectError, httpx.ConnectTimeout)),
        stop=stop_after_attempt(CONNECT_RETRY_ATTEMPTS) | stop_after_delay(CONNECT_RETRY_BUDGET_SECONDS),
        wait=wait_exponential(multiplier=0.1, max=0.5),
        reraise=True,
    )


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle is the slow part of making a client; do it once per process.
    return httpx.create_ssl_context()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Http:
    """One client per run.

    `last_seconds`: how long the latest platform call took (its responseSeconds).
    `may_have_posted`: a request that creates a post got past connecting, so a
    crash from here on must not be reported as "nothing happened".
    """

    def __init__(
        self,
        timeout: float,
        redact: Redactor,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = _utcnow,
        tracing: Tracing = DISABLED,
        user_agent: str = USER_AGENT,
    ):
        self.redact = redact
        self.clock = clock
        self.tracing = tracing  # a span per call (docs/observability.md, Tracing)
        self.last_seconds: float | None = None
        self.may_have_posted = False
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": user_agent},
            follow_redirects=False,
            verify=_ssl_context(),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def now(self) -> datetime:
        return self.clock()

    def request(
        self, method: str, url: str, *, what: str, creates_post: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send one request; a transport failure becomes a classified AdapterError.

        `what` names the call in messages ("createRecord"). URLs never go into
        messages: some (webhooks, Telegram) embed a credential. `creates_post`
        (default: any non-GET) says whether a lost response leaves the outcome unknown.
        """
        return self._send(method, url, what=what, creates_post=creates_post, stream=False, **kwargs)

    def _send(
        self, method: str, url: str, *, what: str, creates_post: bool | None, stream: bool, **kwargs: Any
    ) -> httpx.Response:
        if not self.tracing.enabled:
            return self._send_untraced(method, url, what=what, creates_post=creates_post, stream=stream, **kwargs)
        # Method, host and the call's name only: paths and queries may embed a credential.
        parts = urlsplit(url)
        attributes: dict[str, str | int] = {
            "http.request.method": method.upper(),
            "url.scheme": parts.scheme,
            "server.address": self.redact(parts.hostname or ""),
            "herald.call": what,
        }
        with contextlib.suppress(ValueError):
            attributes["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
        with self.tracing.span(f"{method.upper()} {what}", client=True, attributes=attributes) as span:
            try:
                response = self._send_untraced(
                    method, url, what=what, creates_post=creates_post, stream=stream, **kwargs
                )
            except AdapterError as exc:
                span.error(exc.result.error_class.value if exc.result.error_class else "failed")
                raise
            span.set("http.response.status_code", response.status_code)
            if response.status_code >= 400:
                span.error(f"HTTP {response.status_code}")
            return response

    def _send_untraced(
        self, method: str, url: str, *, what: str, creates_post: bool | None, stream: bool, **kwargs: Any
    ) -> httpx.Response:
        if creates_post is None:
            creates_post = method.upper() not in ("GET", "HEAD", "OPTIONS")
        started = time.monotonic()
        try:
            for attempt in connect_retrying():
                with attempt:
                    started = time.monotonic()
                    try:
                        request = self._client.build_request(method, url, **kwargs)
                        response = self._client.send(request, stream=stream)
                    except (httpx.ConnectError, httpx.ConnectTimeout):
                        raise
                    except BaseException:
                        self.may_have_posted = self.may_have_posted or creates_post
                        raise
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            self.last_seconds = time.monotonic() - started
            error_class = classify_transport_error(exc, may_have_posted=creates_post)
            detail = type(exc).__name__
            if error_class is ErrorClass.UNKNOWN_OUTCOME:
                message = f"{what}: {detail} after the request was sent; the outcome is unknown"
            elif error_class is ErrorClass.REJECTED:
                message = f"{what}: {detail}: the URL is not a valid http(s) URL"
            else:
                message = f"{what}: {detail}, could not reach the platform"
            log.warning("%s", self.redact(f"{message} ({exc})"))
            raise fail(error_class, message, response_seconds=self.last_seconds) from None
        self.last_seconds = time.monotonic() - started
        self.may_have_posted = self.may_have_posted or creates_post
        log.info("%s: HTTP %s in %.3fs", what, response.status_code, self.last_seconds)
        return response

    def fetch(
        self,
        url: str,
        *,
        what: str,
        max_bytes: int | Callable[[str], int],
        max_redirects: int = MAX_REDIRECTS,
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
        partial: bool = False,
    ) -> Fetched:
        """GET a public resource (media, a web page) that is not the platform.

        Follows at most `max_redirects` redirects, each to an http(s) URL only, and reads at
        most `max_bytes` of the body (a callable gets the Content-Type and returns the cap):
        a larger body raises TooLarge without being read whole (with `partial`, its first
        `max_bytes` are returned instead). A non-2xx final answer is returned with an empty
        body; the caller decides what it means."""
        current = url
        extra = {"timeout": timeout} if timeout is not None else {}
        for _ in range(max_redirects + 1):
            if urlsplit(current).scheme.lower() not in ("http", "https"):
                raise fail(ErrorClass.REJECTED, self.redact(f"{what}: redirected to a URL that is not http(s)"))
            response = self._send(
                "GET", current, what=what, creates_post=False, stream=True, headers=headers or {}, **extra
            )
            try:
                location = response.headers.get("location")
                if response.status_code in REDIRECT_STATUSES and location:
                    current = urljoin(current, location.strip())
                    continue
                content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if not response.is_success:
                    return Fetched(current, response.status_code, response.headers, content_type, b"")
                limit = max_bytes(content_type) if callable(max_bytes) else max_bytes
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit and not partial:
                    raise TooLarge(int(declared), limit)
                body = bytearray()
                try:
                    for chunk in response.iter_bytes():
                        body.extend(chunk)
                        if len(body) > limit:
                            if partial:
                                del body[limit:]
                                break
                            raise TooLarge(None, limit)
                except httpx.HTTPError as exc:
                    raise fail(ErrorClass.NETWORK, f"{what}: {type(exc).__name__} while reading the body") from None
                return Fetched(current, response.status_code, response.headers, content_type, bytes(body))
            finally:
                response.close()
        raise fail(ErrorClass.REJECTED, self.redact(f"{what}: more than {max_redirects} redirects"))


class Refused(Exception):
    """The platform answered, but not with success: the reason, classified by the platform's
    module. A platform's send function raises it; an adapter turns it into its failed result
    (`as_failure`), Herald's own alerts decide from `error_class` whether to try again."""

    def __init__(
        self,
        response: httpx.Response,
        *,
        what: str,
        detail: str | None = None,
        error_class: ErrorClass | None = None,
        retry_after: float | None = None,
    ):
        self.response = response
        self.what = what
        self.detail = detail
        self.error_class = error_class or classify_status(response.status_code) or ErrorClass.REJECTED
        self.retry_after = retry_after
        status = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        super().__init__(f"{what}: {status}" + (f": {detail}" if detail else ""))

    def as_failure(self, ctx: Context) -> AdapterError:
        return ctx.failure(
            self.response,
            what=self.what,
            detail=self.detail,
            error_class=self.error_class,
            retry_after=self.retry_after,
        )


class TooLarge(Exception):
    """A fetched body over its cap. `size` is the declared size, if the server gave one."""

    def __init__(self, size: int | None, limit: int):
        super().__init__(f"larger than {limit} bytes")
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    status: int
    headers: httpx.Headers
    content_type: str  # lower case, without parameters
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300
