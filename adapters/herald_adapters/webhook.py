"""Generic webhook: a signed JSON POST to the endpoint.

Headers: `Idempotency-Key`, `X-Herald-Timestamp` (Unix seconds) and
`X-Herald-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with hmacSecret>`.

`post_json` and `send_signed` are the POST itself, shared with Herald's own alerts (webhook and
Alertmanager channels).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import httpx

from herald_contract.signing import sign

from ._base import Context, body_snippet, get_str, json_body
from ._contract import ErrorClass, Result, fail
from ._http import Http, Refused

PLATFORM = "webhook"
SIGNATURE_HEADER = "X-Herald-Signature"
TIMESTAMP_HEADER = "X-Herald-Timestamp"


def post_json(http: Http, url: str, body: bytes, *, headers: Mapping[str, str], what: str) -> httpx.Response:
    """POST a JSON body; the response when it is a 2xx, else raises Refused."""
    response = http.request(
        "POST", url, content=body, headers={"Content-Type": "application/json", **headers}, what=what
    )
    if not response.is_success:
        data = json_body(response)
        detail = get_str(data, "error") or get_str(data, "message") or body_snippet(response, 120) or None
        raise Refused(response, what=what, detail=detail)
    return response


def send_signed(
    http: Http,
    url: str,
    body: bytes,
    secret: str,
    *,
    headers: Mapping[str, str] = {},
    what: str = "webhook POST",
    signature_header: str = SIGNATURE_HEADER,
    timestamp_header: str = TIMESTAMP_HEADER,
) -> httpx.Response:
    """POST a JSON body signed with `secret` over "<timestamp>.<body>" (herald_contract.signing)."""
    timestamp = str(int(http.now().timestamp()))
    signed = {**headers, timestamp_header: timestamp, signature_header: sign(secret, timestamp, body)}
    return post_json(http, url, body, headers=signed, what=what)


def publish(ctx: Context) -> Result:
    if not ctx.settings.endpoint:
        raise fail(ErrorClass.REJECTED, "the webhook platform needs spec.endpoint: the URL to POST to")
    secret = ctx.credentials.require("hmacSecret")
    payload = ctx.payload
    document = {
        "idempotencyKey": ctx.key,
        "publication": payload.publication.model_dump(exclude_none=True),
        "target": payload.target,
        "attempt": ctx.settings.attempt,
        "mode": ctx.settings.mode.value,
        "content": payload.content.model_dump(by_alias=True, exclude_none=True, exclude={"options"}),
        "truncate": payload.truncate,
    }
    if payload.platform_options:
        document["options"] = payload.platform_options
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Idempotency-Key": ctx.key,
        "X-Herald-Attempt": str(ctx.settings.attempt),
        "X-Herald-Mode": ctx.settings.mode.value,
    }
    bearer = ctx.credentials.get("bearerToken")
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    try:
        response = send_signed(ctx.http, ctx.settings.endpoint, body, secret, headers=headers)
    except Refused as refused:
        raise refused.as_failure(ctx) from None
    data = json_body(response)
    replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
    # verified: the receiver says it returned what an earlier attempt's request created.
    return ctx.published(
        response,
        post_id=get_str(data, "postId") or get_str(data, "id"),
        url=get_str(data, "url"),
        verified=True if (replayed and ctx.verifying) else None,
        message="replayed: the receiver already had this idempotency key"
        if replayed
        else f"HTTP {response.status_code}" + (" (verify: the receiver reported no replay)" if ctx.verifying else ""),
    )
