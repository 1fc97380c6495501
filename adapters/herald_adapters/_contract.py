"""The adapter contract (docs/adapter-contract.md): input payload, settings, result."""

from __future__ import annotations

import enum
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from herald_contract.errors import ErrorClass
from herald_contract.result import RateLimitInfo, ResultModel

# Kubernetes keeps at most 4096 bytes of a termination message.
MAX_RESULT_BYTES = 4096
MAX_MESSAGE_CHARS = 400


class Mode(enum.StrEnum):
    PUBLISH = "publish"
    VERIFY = "verify"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class Media(_Model):
    url: str
    alt_text: str | None = Field(default=None, alias="altText")


class Content(_Model):
    text: str
    title: str | None = None
    link: str | None = None
    media: list[Media] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    # Platform options of this target (its `overrides.options`), e.g. {"visibility": "unlisted"}.
    options: dict[str, Any] = Field(default_factory=dict)


class PublicationRef(_Model):
    namespace: str
    name: str
    uid: str | None = None


class Payload(_Model):
    publication: PublicationRef
    target: str
    content: Content
    truncate: bool = False
    # Also accepted here; merged over content.options.
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def platform_options(self) -> dict[str, Any]:
        return {**self.content.options, **self.options}


def rfc3339(value: datetime) -> str:
    value = value.astimezone(UTC).replace(microsecond=0)
    return value.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class RateLimit:
    remaining: int
    reset_at: datetime | None = None

    def to_json(self) -> dict:
        out: dict = {"remaining": self.remaining}
        if self.reset_at is not None:
            out["resetAt"] = rfc3339(self.reset_at)
        return out


@dataclass(frozen=True)
class Result:
    outcome: Literal["published", "failed"]
    error_class: ErrorClass | None = None
    retry_after_seconds: float | None = None
    post_id: str | None = None
    url: str | None = None
    rate_limit: RateLimit | None = None
    response_seconds: float | None = None
    message: str | None = None
    verified: bool | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.outcome == "published" else 1

    def to_json(self) -> dict:
        """The wire form, through the contract's model (herald_contract.result), which the
        operator reads with the same model."""
        rate_limit = None
        if self.rate_limit is not None:
            rate_limit = RateLimitInfo(remaining=self.rate_limit.remaining, resetAt=self.rate_limit.reset_at)
        return ResultModel(
            outcome=self.outcome,
            errorClass=self.error_class,
            message=_shorten(self.message, MAX_MESSAGE_CHARS) if self.message else None,
            retryAfterSeconds=self.retry_after_seconds,
            postId=self.post_id,
            url=self.url,
            rateLimit=rate_limit,
            responseSeconds=self.response_seconds,
            verified=self.verified,
        ).to_wire()

    def dumps(self) -> str:
        """The termination message: one JSON object, at most 4096 bytes."""
        out = self.to_json()
        text = json.dumps(out, ensure_ascii=False, separators=(",", ":"))
        for limit in (200, 60, 0):  # shorten the message, then the URL, until it fits
            if len(text.encode()) <= MAX_RESULT_BYTES:
                break
            if limit:
                out["message"] = _shorten(out.get("message", ""), limit)
            else:
                out.pop("message", None)
                out.pop("url", None)
            text = json.dumps(out, ensure_ascii=False, separators=(",", ":"))
        return text


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def published(**kw) -> Result:
    return Result(outcome="published", **kw)


def failed(error_class: ErrorClass, message: str, **kw) -> Result:
    return Result(outcome="failed", error_class=error_class, message=message, **kw)


class AdapterError(Exception):
    """Ends the attempt with a failed result. Raised anywhere inside an adapter."""

    def __init__(self, result: Result):
        super().__init__(result.message or (result.error_class.value if result.error_class else "failed"))
        self.result = result


def fail(error_class: ErrorClass, message: str, **kw) -> AdapterError:
    return AdapterError(failed(error_class, message, **kw))


_IDEMPOTENCY_KEY = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Settings:
    """The HERALD_* environment of the Job's container."""

    platform: str
    endpoint: str
    attempt: int
    mode: Mode
    idempotency_key: str
    publication: str
    target: str
    payload_file: Path
    credentials_dir: Path
    result_file: Path
    timeout_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        problems: list[str] = []

        def get(name: str, default: str = "") -> str:
            return env.get(name, default).strip()

        platform = get("HERALD_PLATFORM").lower()
        if not platform:
            problems.append("HERALD_PLATFORM is empty")
        try:
            attempt = int(get("HERALD_ATTEMPT", "1"))
        except ValueError:
            problems.append("HERALD_ATTEMPT is not an integer")
            attempt = 0
        try:
            mode = Mode(get("HERALD_MODE", "publish").lower())
        except ValueError:
            problems.append("HERALD_MODE must be publish or verify")
            mode = Mode.PUBLISH
        key = get("HERALD_IDEMPOTENCY_KEY")
        if not _IDEMPOTENCY_KEY.match(key):
            problems.append("HERALD_IDEMPOTENCY_KEY must be 32 lowercase hex characters")
        try:
            timeout = float(get("HERALD_TIMEOUT_SECONDS", "10") or "10")
            if not 0 < timeout <= 600:
                raise ValueError
        except ValueError:
            problems.append("HERALD_TIMEOUT_SECONDS must be a number of seconds in (0, 600]")
            timeout = 10.0
        settings = cls(
            platform=platform,
            endpoint=get("HERALD_ENDPOINT").rstrip("/"),
            attempt=attempt,
            mode=mode,
            idempotency_key=key,
            publication=get("HERALD_PUBLICATION"),
            target=get("HERALD_TARGET"),
            payload_file=Path(get("HERALD_PAYLOAD_FILE") or "/etc/herald/payload/publication.json"),
            credentials_dir=Path(get("HERALD_CREDENTIALS_DIR") or "/etc/herald/credentials"),
            result_file=Path(get("HERALD_RESULT_FILE") or "/dev/termination-log"),
            timeout_seconds=timeout,
        )
        if problems:
            raise SettingsError(settings, "; ".join(problems))
        return settings


class SettingsError(Exception):
    def __init__(self, settings: Settings, message: str):
        super().__init__(message)
        self.settings = settings


def load_payload(path: Path) -> Payload:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(ErrorClass.REJECTED, f"cannot read the payload file {path}: {exc.strerror}") from None
    try:
        return Payload.model_validate_json(raw)
    except ValueError as exc:
        first = exc.errors()[0] if hasattr(exc, "errors") and exc.errors() else None
        where = ".".join(str(p) for p in first["loc"]) if first else ""
        why = first["msg"] if first else str(exc)
        raise fail(ErrorClass.REJECTED, f"invalid payload file: {where} {why}".strip()) from None
