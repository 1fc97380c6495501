"""What every platform adapter gets, and helpers for turning responses into results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from ._classify import classify_status, parse_rate_limit, retry_after_seconds
from ._contract import AdapterError, ErrorClass, Mode, Payload, RateLimit, Result, Settings, fail, failed, published
from ._credentials import Credentials
from ._http import Http
from ._redact import Redactor


class Options(BaseModel):
    """A platform's options (the target's `overrides.options`): camelCase names, as in the
    API (snake_case is accepted too); an unknown name is refused rather than ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


OptionsT = TypeVar("OptionsT", bound=Options)


@dataclass
class Context:
    settings: Settings
    payload: Payload
    credentials: Credentials
    http: Http
    redact: Redactor

    @property
    def key(self) -> str:
        return self.settings.idempotency_key

    @property
    def verifying(self) -> bool:
        return self.settings.mode is Mode.VERIFY

    def options(self, model: type[OptionsT]) -> OptionsT:
        """The payload's options for this platform, validated; invalid ones are `rejected`."""
        raw = self.payload.platform_options
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            problems = []
            for error in exc.errors()[:3]:
                where = ".".join(str(p) for p in error["loc"]) or "options"
                problems.append(f"{where}: {error['msg']}")
            allowed = ", ".join(f.alias or n for n, f in model.model_fields.items())
            raise fail(
                ErrorClass.REJECTED,
                f"invalid options for {self.settings.platform}: {'; '.join(problems)} (options it reads: {allowed})",
            ) from None

    def endpoint(self, default: str) -> str:
        return (self.settings.endpoint or default).rstrip("/")

    def rate_limit(self, response: httpx.Response) -> RateLimit | None:
        return parse_rate_limit(response.headers, self.http.now())

    def published(self, response: httpx.Response | None = None, **kw: Any) -> Result:
        if response is not None:
            kw.setdefault("rate_limit", self.rate_limit(response))
        kw.setdefault("response_seconds", self.http.last_seconds)
        if "message" in kw:
            kw["message"] = self.redact(kw["message"])
        return published(**kw)

    def failure(
        self,
        response: httpx.Response,
        *,
        what: str,
        detail: str | None = None,
        error_class: ErrorClass | None = None,
        retry_after: float | None = None,
    ) -> AdapterError:
        """A failed result from an HTTP error response."""
        rate_limit = self.rate_limit(response)
        error_class = error_class or classify_status(response.status_code) or ErrorClass.REJECTED
        if retry_after is None:
            retry_after = retry_after_seconds(response.headers, self.http.now(), rate_limit)
        status = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        message = f"{what}: {status}" + (f": {detail}" if detail else "")
        return AdapterError(
            failed(
                error_class,
                self.redact(message),
                retry_after_seconds=retry_after
                if error_class in (ErrorClass.RATE_LIMITED, ErrorClass.SERVER_ERROR)
                else None,
                rate_limit=rate_limit,
                response_seconds=self.http.last_seconds,
            )
        )


def json_body(response: httpx.Response) -> Any:
    """The response's JSON, or None when it has none."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def body_snippet(response: httpx.Response, limit: int = 200) -> str:
    text = response.text.strip() if response.content else ""
    return text[:limit]


def get_str(data: Any, *path: str) -> str | None:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    if data is None or isinstance(data, (dict, list)):
        return None
    return str(data)
