"""Generic webhook: a signed JSON POST to the endpoint.

Headers: `Idempotency-Key`, `X-Herald-Timestamp` (Unix seconds) and
`X-Herald-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with hmacSecret>`.
"""

from __future__ import annotations

import json

from herald_contract.signing import sign

from ._base import Context, body_snippet, get_str, json_body
from ._contract import ErrorClass, Result, fail

PLATFORM = "webhook"
SIGNATURE_HEADER = "X-Herald-Signature"
TIMESTAMP_HEADER = "X-Herald-Timestamp"


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
    timestamp = str(int(ctx.http.now().timestamp()))
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": ctx.key,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        "X-Herald-Attempt": str(ctx.settings.attempt),
        "X-Herald-Mode": ctx.settings.mode.value,
    }
    bearer = ctx.credentials.get("bearerToken")
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    response = ctx.http.request("POST", ctx.settings.endpoint, content=body, headers=headers, what="webhook POST")
    if not response.is_success:
        data = json_body(response)
        detail = get_str(data, "error") or get_str(data, "message") or body_snippet(response, 120) or None
        raise ctx.failure(response, what="webhook POST", detail=detail)
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
