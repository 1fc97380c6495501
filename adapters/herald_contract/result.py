"""The result an adapter writes to its termination message (docs/adapter-contract.md), as one
model: the adapter builds it, the operator reads it, third-party authors get its JSON Schema
(docs/adapter-result.schema.json, from ``result_schema()``).

Reading is total: ``read_result`` takes any text and returns a result or None, never raises; a
field of the wrong type or out of range is dropped (a bad field never discards the outcome).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import ErrorClass

# Kubernetes keeps at most 4096 bytes of a termination message; anything much larger, or nested
# deeper than any result is, is not a result.
MAX_RESULT_BYTES = 4096
_MAX_READ_BYTES = 64 * 1024
_MAX_DEPTH = 32
MAX_RETRY_AFTER = 86400.0


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class RateLimitInfo(_Wire):
    """What the platform said about its rate limit for this account."""

    remaining: int = Field(ge=0, lt=2**31, description="Requests left in the platform's window.")
    reset_at: datetime | None = Field(default=None, alias="resetAt", description="When the window resets (RFC 3339).")


class ResultModel(_Wire):
    """One attempt's result, written as one JSON object (at most 4096 bytes, shortened by the
    writer if need be) to the termination message."""

    outcome: Literal["published", "failed"] = Field(description="published, or failed with an errorClass.")
    error_class: ErrorClass | None = Field(
        default=None,
        alias="errorClass",
        description="Why it failed: rate_limited, network, server_error, unknown_outcome, auth, rejected or "
        "destination_forbidden (pod_failure and invalid_spec are the operator's own). Missing or unknown: "
        "unknown_outcome.",
    )
    message: str | None = Field(default=None, description="A short, redacted explanation.")
    retry_after_seconds: float | None = Field(
        default=None, alias="retryAfterSeconds", ge=0, description="The platform's Retry-After, in seconds."
    )
    post_id: str | None = Field(default=None, alias="postId", description="The post's ID.")
    url: str | None = Field(default=None, description="The post's URL (http or https).")
    rate_limit: RateLimitInfo | None = Field(default=None, alias="rateLimit")
    response_seconds: float | None = Field(
        default=None, alias="responseSeconds", ge=0, description="How long the platform took to answer."
    )
    verified: bool | None = Field(
        default=None, description="In verify mode: true when an earlier attempt's post was found."
    )

    def to_wire(self) -> dict[str, Any]:
        out = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        if self.rate_limit is not None and self.rate_limit.reset_at is not None:
            out["rateLimit"]["resetAt"] = _rfc3339(self.rate_limit.reset_at)
        for key in ("retryAfterSeconds", "responseSeconds"):
            if key in out:
                out[key] = round(out[key], 3)
        return out


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def result_schema() -> dict[str, Any]:
    """The JSON Schema of the result, for third-party adapter authors."""
    schema = ResultModel.model_json_schema(by_alias=True)
    schema["$id"] = "https://herald.dev/schemas/adapter-result.json"
    schema["title"] = "Herald adapter result"
    return schema


def _depth(text: str) -> int:
    """The deepest nesting of JSON arrays and objects in ``text`` (strings are skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _number(value: Any, low: float = 0.0, high: float = 1e12) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value) if low <= value <= high else None


def _text(value: Any, limit: int) -> str | None:
    if value is None or isinstance(value, dict | list | bool):
        return None
    return str(value)[: limit * 4]


def read_result(message: object) -> ResultModel | None:
    """The result in a termination message, or None when it holds none. Never raises."""
    if not message or not isinstance(message, str) or len(message) > _MAX_READ_BYTES:
        return None
    if _depth(message) > _MAX_DEPTH:
        return None
    try:
        data = json.loads(message)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("outcome") not in ("published", "failed"):
        return None
    try:
        error_class = ErrorClass(str(data["errorClass"])) if data.get("errorClass") is not None else None
    except ValueError:
        error_class = ErrorClass.UNKNOWN_OUTCOME
    rate_limit = None
    rl = data.get("rateLimit")
    if isinstance(rl, dict):
        remaining = _number(rl.get("remaining"), 0, 2**31 - 1)
        reset_at = None
        if isinstance(rl.get("resetAt"), str):
            try:
                reset_at = datetime.fromisoformat(rl["resetAt"].replace("Z", "+00:00")).astimezone(UTC)
            except (ValueError, OverflowError):
                reset_at = None
        if remaining is not None:
            rate_limit = RateLimitInfo(remaining=int(remaining), resetAt=reset_at)
    retry_after = _number(data.get("retryAfterSeconds"), 0, 1e12)
    return ResultModel(
        outcome=data["outcome"],
        errorClass=error_class,
        message=(_text(data.get("message"), 1024) or None) if isinstance(data.get("message"), str) else None,
        retryAfterSeconds=None if retry_after is None else min(retry_after, MAX_RETRY_AFTER),
        postId=(_text(data.get("postId"), 256) or None),
        url=_text(data.get("url"), 1024) if isinstance(data.get("url"), str) else None,
        rateLimit=rate_limit,
        responseSeconds=_number(data.get("responseSeconds"), 0, 1e6),
        verified=data.get("verified") if isinstance(data.get("verified"), bool) else None,
    )
