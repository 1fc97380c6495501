"""`herald-adapter`: the adapter image's entrypoint. It takes no arguments; everything
comes from the HERALD_* environment and the mounted files (docs/adapter-contract.md)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from . import __version__, bluesky, discord, mastodon, slack, telegram, webhook
from ._base import Context
from ._contract import AdapterError, ErrorClass, LogLevel, Result, Settings, SettingsError, failed, load_payload
from ._credentials import Credentials
from ._http import Http
from ._redact import RedactingFormatter, Redactor
from ._tracing import Span, Tracing
from .linkedin import publish as publish_linkedin
from .x import publish as publish_x

log = logging.getLogger("herald_adapters")

PLATFORMS: dict[str, Callable[[Context], Result]] = {
    "webhook": webhook.publish,
    "slack": slack.publish,
    "discord": discord.publish,
    "telegram": telegram.publish,
    "mastodon": mastodon.publish,
    "bluesky": bluesky.publish,
    "x": publish_x,
    "linkedin": publish_linkedin,
}

EXIT_CRASHED = 2
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Terminated(BaseException):
    """SIGTERM: the pod is being stopped (deadline, deletion)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def setup_logging(redact: Redactor, level: LogLevel) -> None:
    """Logs go to stderr, every line redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(redact, _FORMAT))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(level)
    # httpx logs full request URLs at INFO, and some URLs embed a credential.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    if not root.handlers:  # a real process: other libraries' warnings are redacted too
        other = logging.StreamHandler(sys.stderr)
        other.setFormatter(RedactingFormatter(redact, _FORMAT))
        root.addHandler(other)


def run(settings: Settings, redact: Redactor, http: Http) -> Result:
    """One attempt: read the mounts, publish, and return the result."""
    credentials = Credentials(settings.credentials_dir, redact)  # first: redaction starts here
    adapter = PLATFORMS.get(settings.platform)
    if adapter is None:
        return failed(
            ErrorClass.REJECTED,
            f"unsupported platform {settings.platform!r}; built in: {', '.join(sorted(PLATFORMS))}",
        )
    if settings.endpoint and not settings.endpoint.startswith(("http://", "https://")):
        return failed(ErrorClass.REJECTED, "spec.endpoint must be an http:// or https:// URL")
    try:
        payload = load_payload(settings.payload_file)
        ctx = Context(settings=settings, payload=payload, credentials=credentials, http=http, redact=redact)
        log.info(
            "%s: %s, attempt %s of %s to %s",
            settings.platform,
            settings.mode.value,
            settings.attempt,
            settings.publication,
            settings.target,
        )
        return adapter(ctx)
    except AdapterError as exc:
        return exc.result


def write_result(path: Path, result: Result, redact: Redactor) -> None:
    """The termination message, also printed on stdout for `kubectl logs`."""
    result = dataclasses.replace(
        result,
        message=redact(result.message) if result.message else None,
        url=redact(result.url) if result.url else None,
        post_id=redact(result.post_id) if result.post_id else None,
    )
    text = redact(result.dumps())  # redacted before sizing; the last pass is a safety net
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        log.error("cannot write the result to %s: %s", path, exc.strerror)
    print(text, flush=True)


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="herald-adapter",
        description="Publish one Herald publication attempt. Configured only by HERALD_* "
        "environment variables and mounted files; see docs/adapter-contract.md.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.parse_args(argv)
    redact = Redactor()
    try:
        settings = Settings.from_env(env)  # the one read of the environment
    except SettingsError as exc:
        setup_logging(redact, exc.report.log_level)
        result = failed(ErrorClass.REJECTED, f"invalid adapter environment: {exc}")
        write_result(exc.report.result_file, result, redact)
        return result.exit_code
    setup_logging(redact, settings.log_level)
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if on_main_thread else None
    try:
        # OTEL_* are not Herald's settings: the tracing SDK's own variables, read here.
        return _main(settings, redact, Tracing.from_env(os.environ if env is None else env))
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _main(settings: Settings, redact: Redactor, tracing: Tracing) -> int:
    """One attempt in its span (the operator's trace continues here when OTLP is configured)."""
    try:
        with tracing.span("herald.adapter", attributes=_span_attributes(settings)) as span:
            code = _attempt(settings, redact, Http(settings.timeout_seconds, redact, tracing=tracing), span)
            span.set("herald.exit_code", code)
            if code != 0 and not span.failed:
                span.error(f"exit code {code}")
            return code
    finally:
        tracing.shutdown()


def _span_attributes(settings: Settings) -> dict[str, str | int]:
    return {
        "herald.platform": settings.platform,
        "herald.mode": settings.mode.value,
        "herald.attempt": settings.attempt,
        "herald.publication": settings.publication,
        "herald.adapter": settings.target,
    }


def _attempt(settings: Settings, redact: Redactor, http: Http, span: Span) -> int:
    try:
        result = run(settings, redact, http)
    except (Exception, Terminated) as exc:
        terminated = isinstance(exc, Terminated)
        log.error(
            "%s",
            "terminated by SIGTERM" if terminated else f"adapter crashed: {type(exc).__name__}: {exc}",
            exc_info=not terminated,
        )
        if not http.may_have_posted:
            return 128 + signal.SIGTERM if terminated else EXIT_CRASHED  # no result: nothing was posted
        # A post may exist: say so, so that Herald verifies instead of posting again.
        why = "was terminated" if terminated else f"crashed ({type(exc).__name__})"
        result = failed(ErrorClass.UNKNOWN_OUTCOME, f"the adapter {why} after sending the post")
    finally:
        http.close()
    write_result(settings.result_file, result, redact)
    log.info("outcome: %s%s", result.outcome, f" ({result.error_class.value})" if result.error_class else "")
    span.set("herald.outcome", result.outcome)
    if result.error_class is not None:
        span.set("herald.error_class", result.error_class.value)
        span.error(result.error_class.value)
    return result.exit_code
