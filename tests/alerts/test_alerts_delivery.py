"""Herald's own alerts delivered to local receivers (127.0.0.1 HTTP servers)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime

import pytest

from herald.alerts import Alerter, AlertEvent, AlertKey, Severity, events, verify_signature

from .helpers import config, running, sent, unique

SECRET = "whsec-0123456789abcdef-secret"


def parse_ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


async def test_webhook_is_hmac_signed_and_carries_the_alert(receiver):
    name = unique("hook")
    cfg = config(
        {"type": "webhook", "name": name, "url": receiver.url + "/hook", "secret": SECRET},
        extraLabels={"cluster": "prod-eu"},
    )
    async with running(cfg) as alerter:
        alerter.notify(events.circuit_opened(adapter="mastodon-main", namespace="news", platform="mastodon"))
        (req,) = await receiver.await_requests(1)
    assert req.method == "POST" and req.path == "/hook"
    ts = req.headers["x-herald-timestamp"]
    sig = req.headers["x-herald-signature"]
    assert sig.startswith("sha256=")
    assert verify_signature(SECRET, ts, req.body, sig)
    # the signature covers timestamp and body
    assert not verify_signature(SECRET, ts, req.body + b" ", sig)
    assert not verify_signature(SECRET, str(int(ts) + 1), req.body, sig)
    assert not verify_signature("another-secret-value", ts, req.body, sig)
    body = req.json()
    assert body["status"] == "firing"
    assert body["alertname"] == events.ADAPTER_CIRCUIT_OPEN
    assert body["severity"] == "critical"
    assert body["adapter"] == "mastodon-main" and body["namespace"] == "news"
    assert body["labels"] == {
        "alertname": events.ADAPTER_CIRCUIT_OPEN,
        "severity": "critical",
        "source": "herald",
        "adapter": "mastodon-main",
        "namespace": "news",
        "platform": "mastodon",
        "cluster": "prod-eu",
    }
    assert body["annotations"]["runbook_url"].endswith("docs/runbooks.md#heraldplatformdown")
    assert body["endsAt"] is None
    assert sent(name, events.ADAPTER_CIRCUIT_OPEN, "sent") == 1


async def test_webhook_resolve_sends_resolved(receiver):
    cfg = config({"type": "webhook", "url": receiver.url, "secret": SECRET})
    async with running(cfg) as alerter:
        alerter.notify(events.credentials_invalid(adapter="bsky"))
        await receiver.await_requests(1)
        alerter.resolve(AlertKey(events.ADAPTER_CREDENTIALS_INVALID, "bsky"))
        first, second = await receiver.await_requests(2)
        assert await alerter.flush(5)
        assert alerter.active == []
    a, b = first.json(), second.json()
    assert (a["status"], b["status"]) == ("firing", "resolved")
    assert b["startsAt"] == a["startsAt"]
    assert parse_ts(b["endsAt"]) >= parse_ts(b["startsAt"])
    assert b["dedupKey"] == a["dedupKey"]
    assert verify_signature(
        SECRET, second.headers["x-herald-timestamp"], second.body, second.headers["x-herald-signature"]
    )


async def test_slack_payload(receiver):
    cfg = config({"type": "slack", "url": receiver.url + "/services/T000/B000/XXXXXXXX"})
    async with running(cfg) as alerter:
        alerter.notify(
            events.publication_dead_lettered(
                adapter="mastodon-main",
                namespace="news",
                publication="launch",
                error_class="rejected",
                message="text <too> long & more",
            )
        )
        (req,) = await receiver.await_requests(1)
        alerter.resolve(AlertKey(events.PUBLICATION_DEAD_LETTERED, "mastodon-main", "news"))
        _, resolved = await receiver.await_requests(2)
    body = req.json()
    assert req.headers["content-type"] == "application/json"
    assert body["text"].startswith("[FIRING:warning] HeraldPublicationDeadLettered (mastodon-main)")
    (att,) = body["attachments"]
    assert att["color"] == "#DAA038"
    assert att["title_link"].endswith("#heraldpublicationdeadlettered")
    assert "&lt;too&gt; long &amp; more" in att["text"]  # Slack's escaping
    fields = {f["title"]: f["value"] for f in att["fields"]}
    assert fields["adapter"] == "mastodon-main" and fields["namespace"] == "news"
    assert fields["publication"] == "launch"
    r = resolved.json()
    assert r["text"].startswith("[RESOLVED] HeraldPublicationDeadLettered")
    assert r["attachments"][0]["color"] == "#2EB886"


async def test_discord_payload(receiver_factory):
    rec = receiver_factory(default=(204, b""))
    cfg = config({"type": "discord", "url": rec.url + "/api/webhooks/123/tok-abcdefgh", "username": "Herald Bot"})
    async with running(cfg) as alerter:
        alerter.notify(
            AlertEvent(
                name=events.OPERATOR_DEGRADED,
                severity=Severity.CRITICAL,
                summary="S",
                description="@everyone " + "x" * 5000,
            )
        )
        (req,) = await rec.await_requests(1)
        assert await alerter.flush(5)
    body = req.json()
    assert body["username"] == "Herald Bot"
    assert body["allowed_mentions"] == {"parse": []}  # no @everyone ping
    (embed,) = body["embeds"]
    assert embed["title"] == "[FIRING:critical] HeraldOperatorDegraded"
    assert embed["color"] == 0xD00000
    assert len(embed["description"]) <= 4096 and embed["description"].endswith("…")
    assert embed["url"].endswith("#heraldoperatordegraded")
    assert parse_ts(embed["timestamp"]) == pytest.approx(time.time(), abs=60)


async def test_telegram_payload(receiver_factory):
    rec = receiver_factory(default=(200, {"ok": True, "result": {}}))
    token = "123456:AAH-telegram-token-value"
    cfg = config({"type": "telegram", "botToken": token, "chatId": -1001234, "apiUrl": rec.url})
    async with running(cfg) as alerter:
        alerter.notify(events.rate_limit_exhausted(adapter="x-main", reset_at="2026-01-01T10:00:00Z"))
        (req,) = await rec.await_requests(1)
    assert req.path == f"/bot{token}/sendMessage"
    body = req.json()
    assert body["chat_id"] == "-1001234"
    assert body["disable_web_page_preview"] is True
    lines = body["text"].splitlines()
    assert lines[0] == "[FIRING:warning] HeraldAdapterRateLimitExhausted (x-main)"
    assert "until 2026-01-01T10:00:00Z" in body["text"]
    assert "adapter: x-main" in lines
    assert lines[-1].startswith("Runbook: https://")


async def test_retries_after_a_500_then_succeeds(receiver_factory):
    rec = receiver_factory([500, (503, "busy")])
    name = unique("retry")
    async with running(config({"type": "slack", "name": name, "url": rec.url})) as alerter:
        alerter.notify(events.queue_overloaded(adapter="a", depth=150, threshold=100))
        assert await alerter.flush(10)
    reqs = rec.requests
    assert len(reqs) == 3
    assert reqs[0].body == reqs[1].body == reqs[2].body
    assert sent(name, events.ADAPTER_QUEUE_OVERLOADED, "sent") == 1
    assert sent(name, events.ADAPTER_QUEUE_OVERLOADED, "failed") == 0


async def test_retries_are_bounded_and_counted_failed(receiver_factory):
    rec = receiver_factory(default=500)
    name = unique("down")
    async with running(config({"type": "slack", "name": name, "url": rec.url})) as alerter:
        alerter.notify(events.queue_overloaded(adapter="a", depth=150, threshold=100))
        assert await alerter.flush(10)
    assert len(rec.requests) == 3  # attempts: 3
    assert sent(name, events.ADAPTER_QUEUE_OVERLOADED, "failed") == 1
    assert sent(name, events.ADAPTER_QUEUE_OVERLOADED, "sent") == 0


async def test_a_client_error_is_not_retried(receiver_factory):
    rec = receiver_factory(default=(404, "no_service"))
    name = unique("gone")
    async with running(config({"type": "slack", "name": name, "url": rec.url})) as alerter:
        alerter.notify(events.queue_overloaded(adapter="a", depth=150, threshold=100))
        assert await alerter.flush(10)
    assert len(rec.requests) == 1
    assert sent(name, events.ADAPTER_QUEUE_OVERLOADED, "failed") == 1


async def test_rate_limit_per_channel(receiver_factory):
    limited, free = receiver_factory(), receiver_factory()
    ln, fn = unique("limited"), unique("free")
    cfg = config(
        {"type": "slack", "name": ln, "url": limited.url, "rateLimit": {"perMinute": 1, "burst": 2}},
        {"type": "slack", "name": fn, "url": free.url},
    )
    async with running(cfg) as alerter:
        for i in range(5):  # five different root causes
            alerter.notify(events.credentials_invalid(adapter=f"adapter-{i}"))
        assert await alerter.flush(10)
    assert len(limited.requests) == 2
    assert len(free.requests) == 5
    assert sent(ln, events.ADAPTER_CREDENTIALS_INVALID, "sent") == 2
    assert sent(ln, events.ADAPTER_CREDENTIALS_INVALID, "suppressed") == 3
    assert sent(fn, events.ADAPTER_CREDENTIALS_INVALID, "suppressed") == 0


async def test_one_alert_per_root_cause(receiver):
    name = unique("dedup")
    async with running(config({"type": "slack", "name": name, "url": receiver.url})) as alerter:
        # One expired token, ten publications failing on it: one alert.
        for i in range(10):
            alerter.notify(events.credentials_invalid(adapter="mastodon-main", reason=f"publication {i}: HTTP 401"))
        alerter.notify(events.credentials_invalid(adapter="bluesky-main"))
        assert await alerter.flush(10)
        assert len(alerter.active) == 2
    bodies = [r.json()["text"] for r in receiver.requests]
    assert len(bodies) == 2
    assert any("(mastodon-main)" in b for b in bodies) and any("(bluesky-main)" in b for b in bodies)
    assert sent(name, events.ADAPTER_CREDENTIALS_INVALID, "sent") == 2
    assert sent(name, events.ADAPTER_CREDENTIALS_INVALID, "suppressed") == 9


async def test_alert_fires_again_after_it_was_resolved(receiver):
    async with running(config({"type": "slack", "url": receiver.url})) as alerter:
        ev = events.circuit_opened(adapter="m")
        alerter.notify(ev)
        alerter.notify(ev)
        alerter.resolve(ev)
        alerter.resolve(ev)  # a second resolve is a no-op
        alerter.notify(ev)
        assert await alerter.flush(10)
    texts = [r.json()["text"].split(":")[0] for r in receiver.requests]
    assert texts == ["[FIRING", "[RESOLVED] HeraldAdapterCircuitOpen (m)", "[FIRING"]


async def test_resolve_of_an_unknown_alert_sends_nothing(receiver):
    async with running(config({"type": "slack", "url": receiver.url})) as alerter:
        alerter.resolve(events.ADAPTER_CIRCUIT_OPEN, adapter="never-fired")
        assert await alerter.flush(5)
    assert receiver.requests == []


async def test_min_severity(receiver_factory):
    crit, all_ = receiver_factory(), receiver_factory()
    cfg = config(
        {"type": "slack", "name": unique("crit"), "url": crit.url, "minSeverity": "critical"},
        {"type": "slack", "name": unique("all"), "url": all_.url, "minSeverity": "info"},
    )
    async with running(cfg) as alerter:
        alerter.notify(events.queue_overloaded(adapter="a", depth=101, threshold=100))  # warning
        alerter.notify(events.circuit_opened(adapter="a"))  # critical
        alerter.notify(AlertEvent(name="HeraldInfo", severity="info", summary="fyi"))
        assert await alerter.flush(10)
    assert [r.json()["text"].split(" ")[1] for r in crit.requests] == ["HeraldAdapterCircuitOpen"]
    assert len(all_.requests) == 3


async def test_escalation_to_critical_notifies_again(receiver_factory):
    crit = receiver_factory()
    cfg = config({"type": "slack", "url": crit.url, "minSeverity": "critical"})
    async with running(cfg) as alerter:
        warn = AlertEvent(name="HeraldCustom", severity="warning", summary="s", adapter="a")
        alerter.notify(warn)
        alerter.notify(AlertEvent(name="HeraldCustom", severity="critical", summary="s", adapter="a"))
        assert await alerter.flush(10)
    assert [r.json()["text"].split(" ")[0] for r in crit.requests] == ["[FIRING:critical]"]


async def test_no_secret_in_any_message(receiver_factory):
    recs = {k: receiver_factory(default=(200, {"ok": True})) for k in ("hook", "slack", "discord", "telegram", "am")}
    slack_url = recs["slack"].url + "/services/T0SECRET/B0SECRET/slacksecretpart123"
    discord_url = recs["discord"].url + "/api/webhooks/987654321/discord-secret-token-xyz"
    tg_token = "424242:telegram-secret-token-abc"
    am_token = "am-bearer-secret-token"
    cfg = config(
        {
            "type": "webhook",
            "url": recs["hook"].url + "/in?key=query-secret-123",
            "secret": SECRET,
            "headers": {"X-Api-Key": "header-secret-value"},
        },
        {"type": "slack", "url": slack_url},
        {"type": "discord", "url": discord_url},
        {"type": "telegram", "botToken": tg_token, "chatId": "42", "apiUrl": recs["telegram"].url},
        {"type": "alertmanager", "url": recs["am"].url, "bearerToken": am_token},
    )
    secrets = [
        SECRET,
        "query-secret-123",
        "header-secret-value",
        "slacksecretpart123",
        "T0SECRET/B0SECRET",
        "discord-secret-token-xyz",
        tg_token,
        am_token,
    ]
    leak = (
        f"failed posting to {slack_url} and {discord_url} with bot{tg_token}; "
        f"secret={SECRET} header-secret-value Bearer {am_token} query-secret-123"
    )
    async with running(cfg) as alerter:
        alerter.notify(
            AlertEvent(
                name=events.OPERATOR_DEGRADED,
                severity="critical",
                summary=f"summary {tg_token}",
                description=leak,
                labels={"component": "x"},
                annotations={"detail": leak},
            )
        )
        assert await alerter.flush(10)
    bodies = {k: [r.body.decode() for r in rec.requests] for k, rec in recs.items()}
    assert all(len(v) == 1 for v in bodies.values()), bodies
    for channel, (body,) in bodies.items():
        for s in secrets:
            assert s not in body, f"{channel} leaked {s!r}"
        assert "[REDACTED]" in body, channel
    # the request to Telegram itself of course carries the token in its path
    assert recs["telegram"].requests[0].path == f"/bot{tg_token}/sendMessage"
    assert recs["am"].requests[0].headers["authorization"] == f"Bearer {am_token}"
    assert recs["hook"].requests[0].headers["x-api-key"] == "header-secret-value"


async def test_notify_never_blocks_and_a_full_queue_drops_with_suppressed(receiver_factory):
    rec = receiver_factory(hold=True)  # the receiver hangs until released
    name = unique("slow")
    cfg = config({"type": "slack", "name": name, "url": rec.url, "timeoutSeconds": 30}, queueSize=1)
    async with running(cfg) as alerter:
        alerter.notify(events.credentials_invalid(adapter="first"))
        await rec.await_requests(1)  # the worker is now stuck in the first delivery
        # The dispatcher queue holds 1; four more are dropped, counted, and
        # notify() returns at once without raising.
        started = time.monotonic()
        for i in range(5):
            alerter.notify(events.credentials_invalid(adapter=f"more-{i}"))
        assert time.monotonic() - started < 1.0
        assert sent(name, events.ADAPTER_CREDENTIALS_INVALID, "suppressed") == 4
        assert not await alerter.flush(timeout=0.2)  # still held
        rec.release()
        assert await alerter.flush(timeout=10)
    assert sent(name, events.ADAPTER_CREDENTIALS_INVALID, "sent") == 2
    assert len(rec.requests) == 2


async def test_notify_never_raises(receiver):
    async with running(config({"type": "slack", "url": receiver.url})) as alerter:
        alerter.notify("not an event")  # type: ignore[arg-type]
        alerter.notify(None)  # type: ignore[arg-type]
        alerter.resolve(12345)  # type: ignore[arg-type]
        alerter.notify(events.circuit_opened(adapter="ok"))
        assert await alerter.flush(5)
    assert len(receiver.requests) == 1
    alerter.notify(events.circuit_opened(adapter="after-stop"))  # after stop(): dropped quietly
    assert len(receiver.requests) == 1


async def test_notify_from_another_thread(receiver):
    async with running(config({"type": "slack", "url": receiver.url})) as alerter:
        # e.g. a synchronous kopf handler running in a worker thread
        t = threading.Thread(target=alerter.notify, args=(events.circuit_opened(adapter="threaded"),))
        t.start()
        await asyncio.to_thread(t.join, 10)
        (req,) = await receiver.await_requests(1)
    assert "(threaded)" in req.json()["text"]


async def test_alertmanager_channel_resends_while_firing_and_resolves(receiver_factory):
    am = receiver_factory(default=(200, ""))
    cfg = config({"type": "alertmanager", "url": am.url, "resendIntervalSeconds": 0.1})
    async with running(cfg) as alerter:
        alerter.notify(events.circuit_opened(adapter="mastodon-main", namespace="news"))
        firing = await am.await_requests(3)
        alerter.resolve(AlertKey(events.ADAPTER_CIRCUIT_OPEN, "mastodon-main", "news"))
        assert await alerter.flush(5)
        resolved_at = time.time()
    for req in firing:
        assert req.path == "/api/v2/alerts"
    batches = [r.json() for r in am.requests]
    firing_alerts = [b[0] for b in batches[:3]]
    assert len({a["startsAt"] for a in firing_alerts}) == 1  # the same alert, re-sent
    for a in firing_alerts:
        assert a["labels"]["alertname"] == events.ADAPTER_CIRCUIT_OPEN
        assert parse_ts(a["endsAt"]) > time.time() + 60  # expires only if no longer re-sent
    last = batches[-1][0]
    assert parse_ts(last["endsAt"]) <= resolved_at + 1
    assert last["labels"] == firing_alerts[0]["labels"]


async def test_stop_delivers_what_is_queued(receiver):
    alerter = Alerter.from_config(config({"type": "slack", "url": receiver.url}))
    await alerter.start()
    for i in range(3):
        alerter.notify(events.credentials_invalid(adapter=f"a{i}"))
    await alerter.stop(timeout=10)
    assert len(receiver.requests) == 3


async def test_disabled_without_configuration(monkeypatch, receiver):
    monkeypatch.delenv("HERALD_ALERTS_CONFIG", raising=False)
    alerter = Alerter.from_config()
    assert not alerter.enabled
    await alerter.start()
    alerter.notify(events.circuit_opened(adapter="x"))
    assert await alerter.flush(1)
    await alerter.stop()
    assert receiver.requests == []


async def test_configuration_file_from_the_environment(monkeypatch, tmp_path, receiver):
    path = tmp_path / "alerts.yaml"
    path.write_text(
        "channels:\n"
        f"  - type: webhook\n    name: from-env\n    url: {receiver.url}/env\n    secret: {SECRET}\n"
        "retry:\n  attempts: 2\n  initialBackoffSeconds: 0.01\n"
    )
    monkeypatch.setenv("HERALD_ALERTS_CONFIG", str(path))
    alerter = Alerter.from_config()
    assert alerter.channel_names == ["from-env"]
    await alerter.start()
    try:
        alerter.notify(events.operator_degraded(reason="watch stream keeps failing", component="watcher"))
        (req,) = await receiver.await_requests(1)
    finally:
        await alerter.stop()
    assert req.path == "/env"
    assert json.loads(req.body)["labels"]["component"] == "watcher"
