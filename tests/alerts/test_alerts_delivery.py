"""Herald's own alerts delivered to local receivers (127.0.0.1 HTTP servers)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from datetime import datetime

import pytest

from herald.alerts import (
    DIGEST_SECONDS,
    Alerter,
    AlertEvent,
    AlertKey,
    MemoryStateStore,
    Severity,
    Timing,
    events,
)
from herald.config import OperatorConfig
from herald_contract.signing import verify

from .helpers import config, running, sent, suppressed, unique

SECRET = "whsec-0123456789abcdef-secret"


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does: the contract's check, and a timestamp of the last five minutes."""
    return abs(time.time() - float(timestamp)) <= 300 and verify(secret, timestamp, body, signature)


def parse_ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def down(adapter: str = "mastodon-main", namespace: str = "news") -> AlertEvent:
    return events.platform_down(namespace=namespace, adapter=adapter, platform="mastodon")


async def test_webhook_is_hmac_signed_and_carries_the_alert(receiver):
    name = unique("hook")
    cfg = config(
        {"type": "webhook", "name": name, "url": receiver.url + "/hook", "secret": SECRET},
        extraLabels={"cluster": "prod-eu"},
    )
    async with running(cfg) as alerter:
        alerter.condition(down(), True)  # PlatformDown fires at once (its for is 0)
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
    assert body["status"] == "firing" and body["source"] == "herald"
    assert body["alertname"] == events.PLATFORM_DOWN
    assert body["severity"] == "critical"
    assert body["adapter"] == "mastodon-main" and body["namespace"] == "news"
    assert body["labels"] == {
        "alertname": events.PLATFORM_DOWN,
        "severity": "critical",
        "adapter": "mastodon-main",
        "namespace": "news",
        "cluster": "prod-eu",
    }
    assert body["annotations"]["platform"] == "mastodon"
    assert body["annotations"]["runbook_url"].endswith("docs/runbooks.md#heraldplatformdown")
    assert body["endsAt"] is None
    assert sent(name, events.PLATFORM_DOWN, "sent") == 1


async def test_webhook_resolve_sends_resolved(receiver):
    cfg = config({"type": "webhook", "url": receiver.url, "secret": SECRET})
    async with running(cfg) as alerter:
        alerter.notify(events.credentials_invalid(namespace="n", adapter="bsky"))
        await receiver.await_requests(1)
        alerter.resolve(AlertKey(events.CREDENTIALS_INVALID, "n", "bsky"))
        first, second = await receiver.await_requests(2)
        assert await alerter.flush(5)
        assert alerter.active == []
    a, b = first.json(), second.json()
    assert (a["status"], b["status"]) == ("firing", "resolved")
    assert b["startsAt"] == a["startsAt"]
    assert parse_ts(b["endsAt"]) >= parse_ts(b["startsAt"])
    assert b["dedupKey"] == a["dedupKey"] == "HeraldCredentialsInvalid/n/bsky"
    assert verify_signature(
        SECRET, second.headers["x-herald-timestamp"], second.body, second.headers["x-herald-signature"]
    )


async def test_slack_payload(receiver):
    cfg = config({"type": "slack", "url": receiver.url + "/services/T000/B000/XXXXXXXX"})
    async with running(cfg) as alerter:
        alerter.notify(
            events.dead_lettered(
                namespace="news",
                adapter="mastodon-main",
                publication="launch",
                error_class="rejected",
                message="text <too> long & more",
            )
        )
        (req,) = await receiver.await_requests(1)
        alerter.resolve(AlertKey(events.DEAD_LETTER_GROWING, "news", "mastodon-main"))
        _, resolved = await receiver.await_requests(2)
    body = req.json()
    assert req.headers["content-type"].split(";")[0] == "application/json"  # the Slack adapter adds the charset
    assert body["text"].startswith("[FIRING:warning] HeraldDeadLetterGrowing (news/mastodon-main)")
    (att,) = body["attachments"]
    assert att["color"] == "#DAA038"
    assert att["title_link"].endswith("#heralddeadlettergrowing")
    assert "&lt;too&gt; long &amp; more" in att["text"]  # Slack's escaping
    fields = {f["title"]: f["value"] for f in att["fields"]}
    assert fields["adapter"] == "mastodon-main" and fields["namespace"] == "news"
    assert fields["publication"] == "launch"
    r = resolved.json()
    assert r["text"].startswith("[RESOLVED] HeraldDeadLetterGrowing")
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
        alerter.notify(events.rate_limited_too_long(namespace="n", adapter="x-main", reset_at="2026-01-01T10:00:00Z"))
        (req,) = await rec.await_requests(1)
    assert req.path == f"/bot{token}/sendMessage"
    body = req.json()
    assert body["chat_id"] == "-1001234"
    assert body["disable_web_page_preview"] is True
    lines = body["text"].splitlines()
    assert lines[0] == "[FIRING:warning] HeraldRateLimitedTooLong (n/x-main)"
    assert "resets at 2026-01-01T10:00:00Z" in body["text"]
    assert "adapter: x-main" in lines
    assert lines[-1].startswith("Runbook: https://")


async def test_retries_after_a_500_then_succeeds(receiver_factory):
    rec = receiver_factory([500, (503, "busy")])
    name = unique("retry")
    async with running(config({"type": "slack", "name": name, "url": rec.url})) as alerter:
        alerter.notify(events.queue_overloaded(namespace="n", adapter="a", depth=150, threshold=100))
        assert await alerter.flush(10)
    reqs = rec.requests
    assert len(reqs) == 3
    assert reqs[0].body == reqs[1].body == reqs[2].body
    assert sent(name, events.QUEUE_OVERLOADED, "sent") == 1
    assert sent(name, events.QUEUE_OVERLOADED, "failed") == 0


async def test_a_failed_delivery_is_counted_and_tried_again_until_it_gets_through(receiver_factory, caplog):
    rec = receiver_factory([500, 500, 500, (404, "no_service")])  # two failed deliveries, then 200
    name = unique("down")
    caplog.set_level(logging.WARNING, logger="herald.alerts")
    async with running(config({"type": "slack", "name": name, "url": rec.url}), retry_seconds=0.2) as alerter:
        alerter.notify(events.credentials_invalid(namespace="n", adapter="a"))
        reqs = await rec.await_requests(5, timeout=20)
        assert await alerter.flush(10)
    assert len(reqs) == 5  # 3 attempts (retried 5xx), 1 (a 4xx is not retried at once), then delivered
    assert sent(name, events.CREDENTIALS_INVALID, "failed") == 2
    assert sent(name, events.CREDENTIALS_INVALID, "sent") == 1
    assert "HeraldCredentialsInvalid" in caplog.text and "tried again" in caplog.text


async def test_a_rate_limited_channel_coalesces_into_one_digest_and_drops_nothing(receiver_factory, caplog):
    assert DIGEST_SECONDS == 60  # the default: a digest at most a minute after the first one waited
    limited, free = receiver_factory(), receiver_factory()
    ln, fn = unique("limited"), unique("free")
    cfg = config(
        {"type": "slack", "name": ln, "url": limited.url, "rateLimit": {"perMinute": 0.01, "burst": 1}},
        {"type": "slack", "name": fn, "url": free.url},
    )
    caplog.set_level(logging.WARNING, logger="herald.alerts")
    async with running(cfg, digest_seconds=1.0) as alerter:
        alerter.notify(events.credentials_invalid(namespace="n", adapter="adapter-0"))
        assert await alerter.flush(10)  # the one token: sent alone
        started = time.monotonic()
        for i in range(1, 5):  # four more root causes, all critical: none may be lost
            alerter.notify(events.credentials_invalid(namespace="n", adapter=f"adapter-{i}"))
        await limited.await_requests(2, timeout=10)
        waited = time.monotonic() - started
        assert await alerter.flush(10)
    assert len(free.requests) == 5
    first, digest = (r.json() for r in limited.requests)
    assert first["text"].startswith("[FIRING:critical] HeraldCredentialsInvalid (n/adapter-0)")
    # No token left: the four wait together and go as one digest, on the digest deadline.
    assert waited >= 1.0
    assert digest["text"] == "Herald digest: 4 alert notifications (4 firing, 0 resolved)"
    titles = sorted(a["title"] for a in digest["attachments"])
    assert titles == [f"[FIRING:critical] HeraldCredentialsInvalid (n/adapter-{i})" for i in range(1, 5)]
    assert sent(ln, events.CREDENTIALS_INVALID, "sent") == 5
    assert suppressed(ln, events.CREDENTIALS_INVALID, "rate_limited") == 4
    assert suppressed(fn, events.CREDENTIALS_INVALID, "rate_limited") == 0
    # every suppression is logged with its alert name
    held = [r.getMessage() for r in caplog.records if "goes out in a digest" in r.getMessage()]
    assert len(held) == 4 and all("HeraldCredentialsInvalid (n/adapter-" in m for m in held)


async def test_too_few_tokens_for_one_message_each_sends_one_digest_at_once(receiver):
    name = unique("few")
    cfg = config({"type": "slack", "name": name, "url": receiver.url, "rateLimit": {"perMinute": 0.01, "burst": 2}})
    async with running(cfg, digest_seconds=60) as alerter:
        for i in range(5):
            alerter.notify(events.platform_down(namespace="n", adapter=f"p{i}"))
        assert await alerter.flush(10)  # well before the 60 s deadline: a token was there
    (req,) = receiver.requests
    assert req.json()["text"] == "Herald digest: 5 alert notifications (5 firing, 0 resolved)"
    assert suppressed(name, events.PLATFORM_DOWN, "rate_limited") == 5


async def test_a_burst_within_the_tokens_goes_one_by_one(receiver):
    name = unique("burst")
    cfg = config({"type": "slack", "name": name, "url": receiver.url, "rateLimit": {"perMinute": 1, "burst": 3}})
    async with running(cfg, digest_seconds=1.0) as alerter:
        for i in range(3):
            alerter.notify(events.credentials_invalid(namespace="n", adapter=f"b{i}"))
        assert await alerter.flush(10)
    assert [r.json()["text"].split(" ")[0] for r in receiver.requests] == ["[FIRING:critical]"] * 3
    assert suppressed(name, events.CREDENTIALS_INVALID, "rate_limited") == 0


async def test_one_alert_per_root_cause(receiver, caplog):
    name = unique("dedup")
    caplog.set_level(logging.INFO, logger="herald.alerts")
    async with running(config({"type": "slack", "name": name, "url": receiver.url})) as alerter:
        # One broken platform, ten publications dead-lettered on it: one alert.
        for i in range(10):
            alerter.notify(events.dead_lettered(namespace="news", adapter="mastodon-main", publication=f"p{i}"))
        alerter.notify(events.dead_lettered(namespace="news", adapter="bluesky-main"))
        assert await alerter.flush(10)
        assert len(alerter.active) == 2
    bodies = [r.json()["text"] for r in receiver.requests]
    assert len(bodies) == 2
    assert any("(news/mastodon-main)" in b for b in bodies) and any("(news/bluesky-main)" in b for b in bodies)
    assert sent(name, events.DEAD_LETTER_GROWING, "sent") == 2
    assert suppressed(name, events.DEAD_LETTER_GROWING, "duplicate") == 9
    assert caplog.text.count("HeraldDeadLetterGrowing (news/mastodon-main) already firing") == 9


async def test_hysteresis_a_flapping_condition_pages_once(receiver):
    """RateLimitExhausted flapped firing/resolved every ~45 s; a condition that comes back within its
    hold is one alert: one firing, and one resolved once it stays away."""
    name = unique("flap")
    timings = {events.RATE_LIMITED_TOO_LONG: Timing(for_seconds=0, hold_seconds=0.5)}
    async with running(config({"type": "slack", "name": name, "url": receiver.url}), timings=timings) as alerter:
        ev = events.rate_limited_too_long(namespace="n", adapter="flappy")
        for i in range(20):
            alerter.condition(ev, i % 2 == 0)
            assert await alerter.flush(5)
        assert len(receiver.requests) == 1
        alerter.condition(ev, False)
        _, resolved = await receiver.await_requests(2, timeout=10)
    assert resolved.json()["text"].startswith("[RESOLVED] HeraldRateLimitedTooLong (n/flappy)")
    assert len(receiver.requests) == 2
    assert suppressed(name, events.RATE_LIMITED_TOO_LONG, "flapping") == 9


async def test_a_condition_fires_only_after_its_for(receiver):
    timings = {events.QUEUE_OVERLOADED: Timing(for_seconds=0.5, hold_seconds=0.2)}
    async with running(config({"type": "slack", "url": receiver.url}), timings=timings) as alerter:
        started = time.monotonic()
        alerter.condition(events.queue_overloaded(namespace="n", adapter="q", depth=150, threshold=100), True)
        (req,) = await receiver.await_requests(1, timeout=10)
    assert time.monotonic() - started >= 0.5
    assert req.json()["text"].startswith("[FIRING:warning] HeraldQueueOverloaded (n/q)")


async def test_a_restart_re_fires_nothing_and_keeps_starts_at(receiver):
    store = MemoryStateStore()
    cfg = config({"type": "webhook", "url": receiver.url, "secret": SECRET})
    timings = {events.PLATFORM_DOWN: Timing(0, 0.3)}
    async with running(cfg, store=store, timings=timings) as first:
        first.condition(down(), True)
        (fired,) = await receiver.await_requests(1)
    assert store.document and store.document["alerts"][0]["state"] == "firing"
    # A new operator: it reports the same condition; nobody is told again.
    async with running(cfg, store=store, timings=timings) as second:
        assert [a.key for a in second.active] == [AlertKey(events.PLATFORM_DOWN, "news", "mastodon-main")]
        second.condition(down(), True)
        assert await second.flush(5)
        assert len(receiver.requests) == 1
        second.condition(down(), False)
        _, resolved = await receiver.await_requests(2, timeout=10)
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["startsAt"] == fired.json()["startsAt"]
    assert store.document == {"version": 1, "alerts": []}


async def test_a_failing_state_store_does_not_stop_the_alerts(receiver, caplog):
    class Broken(MemoryStateStore):
        async def load(self):
            raise OSError("no API server")

        async def save(self, document):
            raise OSError("no API server")

    caplog.set_level(logging.WARNING, logger="herald.alerts")
    async with running(config({"type": "slack", "url": receiver.url}), store=Broken()) as alerter:
        alerter.condition(down(), True)
        await receiver.await_requests(1)
    assert "cannot load the saved alert state" in caplog.text
    assert caplog.text.count("cannot save the alert state") == 1  # once per failure streak


async def test_adapters_gone_resolve_their_alerts(receiver):
    async with running(config({"type": "slack", "url": receiver.url})) as alerter:
        alerter.condition(down("gone"), True)
        alerter.condition(down("kept"), True)
        await receiver.await_requests(2)
        alerter.adapters_present({("news", "kept")})
        await receiver.await_requests(3)
        assert await alerter.flush(5)
    texts = [r.json()["text"] for r in receiver.requests]
    assert texts[2].startswith("[RESOLVED] HeraldPlatformDown (news/gone)")


async def test_alert_fires_again_after_it_was_resolved(receiver):
    async with running(config({"type": "slack", "url": receiver.url})) as alerter:
        ev = events.platform_down(namespace="n", adapter="m")
        alerter.notify(ev)
        alerter.notify(ev)
        assert await alerter.flush(5)
        alerter.resolve(ev)
        alerter.resolve(ev)  # a second resolve is a no-op
        assert await alerter.flush(5)
        alerter.notify(ev)
        assert await alerter.flush(10)
    texts = [r.json()["text"].split(":")[0] for r in receiver.requests]
    assert texts == ["[FIRING", "[RESOLVED] HeraldPlatformDown (n/m)", "[FIRING"]


async def test_resolve_of_an_unknown_alert_sends_nothing(receiver):
    async with running(config({"type": "slack", "url": receiver.url})) as alerter:
        alerter.resolve(events.PLATFORM_DOWN, namespace="n", adapter="never-fired")
        assert await alerter.flush(5)
    assert receiver.requests == []


async def test_min_severity(receiver_factory):
    crit, all_ = receiver_factory(), receiver_factory()
    cfg = config(
        {"type": "slack", "name": unique("crit"), "url": crit.url, "minSeverity": "critical"},
        {"type": "slack", "name": unique("all"), "url": all_.url, "minSeverity": "info"},
    )
    async with running(cfg) as alerter:
        alerter.notify(events.queue_overloaded(namespace="n", adapter="a", depth=101, threshold=100))  # warning
        alerter.notify(events.platform_down(namespace="n", adapter="a"))  # critical
        alerter.notify(AlertEvent(name="HeraldInfo", severity="info", summary="fyi"))
        assert await alerter.flush(10)
    assert [r.json()["text"].split(" ")[1] for r in crit.requests] == ["HeraldPlatformDown"]
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
    store = MemoryStateStore()
    async with running(cfg, store=store) as alerter:
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
    saved = json.dumps(store.document)  # the state saved in the ConfigMap is redacted too
    assert all(s not in saved for s in secrets) and "[REDACTED]" in saved
    # the request to Telegram itself of course carries the token in its path
    assert recs["telegram"].requests[0].path == f"/bot{tg_token}/sendMessage"
    assert recs["am"].requests[0].headers["authorization"] == f"Bearer {am_token}"
    assert recs["hook"].requests[0].headers["x-api-key"] == "header-secret-value"


async def test_notify_never_blocks_and_a_hung_channel_loses_nothing(receiver_factory):
    rec = receiver_factory(hold=True)  # the receiver hangs until released
    name = unique("slow")
    cfg = config({"type": "slack", "name": name, "url": rec.url, "timeoutSeconds": 30})
    async with running(cfg) as alerter:
        alerter.notify(events.credentials_invalid(namespace="n", adapter="first"))
        await rec.await_requests(1)  # the worker is now stuck in the first delivery
        started = time.monotonic()
        for i in range(50):
            alerter.notify(events.credentials_invalid(namespace="n", adapter=f"more-{i}"))
        assert time.monotonic() - started < 1.0  # notify() returns at once
        assert not await alerter.flush(timeout=0.2)  # still held
        rec.release()
        assert await alerter.flush(timeout=10)
    # Nothing was dropped: the first one, then the other fifty (one message each, or a digest).
    later = " ".join(r.text for r in rec.requests[1:])
    assert all(f"(n/more-{i})" in later for i in range(50))
    assert sent(name, events.CREDENTIALS_INVALID, "sent") == 51


async def test_notify_never_raises(receiver):
    async with running(config({"type": "slack", "url": receiver.url})) as alerter:
        alerter.notify("not an event")  # type: ignore[arg-type]
        alerter.notify(None)  # type: ignore[arg-type]
        alerter.condition(None, True)  # type: ignore[arg-type]
        alerter.resolve(12345)  # type: ignore[arg-type]
        alerter.notify(events.platform_down(namespace="n", adapter="ok"))
        assert await alerter.flush(5)
    assert len(receiver.requests) == 1
    alerter.notify(events.platform_down(namespace="n", adapter="after-stop"))  # after stop(): ignored, logged
    assert len(receiver.requests) == 1


async def test_notify_from_another_thread(receiver):
    async with running(config({"type": "slack", "url": receiver.url})) as alerter:
        # e.g. a synchronous kopf handler running in a worker thread
        t = threading.Thread(target=alerter.notify, args=(events.platform_down(namespace="n", adapter="threaded"),))
        t.start()
        await asyncio.to_thread(t.join, 10)
        (req,) = await receiver.await_requests(1)
    assert "(n/threaded)" in req.json()["text"]


async def test_alertmanager_channel_resends_while_firing_and_resolves(receiver_factory):
    am = receiver_factory(default=(200, ""))
    cfg = config({"type": "alertmanager", "url": am.url, "resendIntervalSeconds": 0.1})
    async with running(cfg) as alerter:
        alerter.condition(down(), True)
        firing = await am.await_requests(3)
        alerter.resolve(AlertKey(events.PLATFORM_DOWN, "news", "mastodon-main"))
        assert await alerter.flush(5)
        resolved_at = time.time()
    for req in firing:
        assert req.path == "/api/v2/alerts"
    batches = [r.json() for r in am.requests]
    firing_alerts = [b[0] for b in batches[:3]]
    assert len({a["startsAt"] for a in firing_alerts}) == 1  # the same alert, re-sent
    for a in firing_alerts:
        assert a["labels"]["alertname"] == events.PLATFORM_DOWN
        assert parse_ts(a["endsAt"]) > time.time() + 60  # expires only if no longer re-sent
    last = batches[-1][0]
    assert parse_ts(last["endsAt"]) <= resolved_at + 1
    assert last["labels"] == firing_alerts[0]["labels"]


async def test_stop_delivers_what_is_due(receiver):
    alerter = Alerter.from_config(config({"type": "slack", "url": receiver.url}))
    await alerter.start()
    for i in range(3):
        alerter.notify(events.credentials_invalid(namespace="n", adapter=f"a{i}"))
    await alerter.stop(timeout=10)
    assert len(receiver.requests) == 3


async def test_disabled_without_configuration(monkeypatch, receiver):
    monkeypatch.delenv("HERALD_ALERTS_CONFIG", raising=False)
    alerter = Alerter.from_config(OperatorConfig().alerts_config)
    assert not alerter.enabled
    await alerter.start()
    alerter.notify(events.platform_down(namespace="n", adapter="x"))
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
    alerter = Alerter.from_config(OperatorConfig().alerts_config)  # as the operator does
    assert alerter.channel_names == ["from-env"]
    await alerter.start()
    try:
        alerter.condition(events.operator_degraded(reason="watch stream keeps failing", component="watcher"), True)
        (req,) = await receiver.await_requests(1)
    finally:
        await alerter.stop()
    assert req.path == "/env"
    assert json.loads(req.body)["annotations"]["component"] == "watcher"


async def test_an_invalid_channel_is_left_out_and_the_others_deliver(receiver, tmp_path, caplog):
    broken, good = unique("broken"), unique("good")
    path = tmp_path / "alerts.yaml"
    path.write_text(
        json.dumps(
            config(
                {"type": "slack", "name": broken, "url": receiver.url + "/broken/slack-secret-x", "minSeverty": "info"},
                {"type": "webhook", "name": good, "url": receiver.url + "/good", "secret": SECRET},
            )
        )
    )
    caplog.set_level(logging.WARNING, logger="herald.alerts")
    alerter = Alerter.from_config(path)  # JSON is YAML too; never raises
    assert alerter.channel_names == [good]
    await alerter.start()
    try:
        alerter.notify(events.credentials_invalid(namespace="n", adapter="a"))
        (req,) = await receiver.await_requests(1)
        assert await alerter.flush(5)
    finally:
        await alerter.stop()
    assert req.path == "/good" and len(receiver.requests) == 1
    assert sent(good, events.CREDENTIALS_INVALID, "sent") == 1
    assert [r.getMessage().split(" (")[0] for r in caplog.records if r.levelno == logging.WARNING] == [
        f"alerts channel {broken} is left out"
    ]
    assert "slack-secret-x" not in caplog.text
