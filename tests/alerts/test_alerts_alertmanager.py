"""Herald's own alerts against a real Alertmanager (API v2)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from herald.alerts import AlertKey, MemoryStateStore, Timing, events
from tests.monitoring.servers import AlertmanagerServer, wait_until

from .helpers import config, running, sent, unique


async def wait_alert(am: AlertmanagerServer, alertname: str, labels: dict, timeout: float = 20.0) -> dict:
    return await asyncio.to_thread(am.wait_for_alert, alertname, labels, timeout=timeout)


async def wait_gone(am: AlertmanagerServer, alertname: str, labels: dict, timeout: float = 20.0) -> None:
    await asyncio.to_thread(am.wait_for_no_alert, alertname, labels, timeout=timeout)


async def test_alert_appears_in_alertmanager_and_resolves(alertmanager):
    name = unique("am")
    cfg = config({"type": "alertmanager", "name": name, "url": alertmanager.url}, extraLabels={"cluster": "test"})
    async with running(cfg) as alerter:
        alerter.condition(
            events.credentials_invalid(namespace="news", adapter="mastodon-main", reason="HTTP 401"), True
        )
        alert = await wait_alert(alertmanager, events.CREDENTIALS_INVALID, {"adapter": "mastodon-main"})
        # The labels of the Prometheus rule HeraldCredentialsInvalid, and nothing else.
        assert alert["labels"] == {
            "alertname": events.CREDENTIALS_INVALID,
            "severity": "critical",
            "adapter": "mastodon-main",
            "namespace": "news",
            "cluster": "test",
        }
        assert alert["annotations"]["summary"] == "Herald adapter credentials are invalid."
        assert "HTTP 401" in alert["annotations"]["description"]
        assert alert["annotations"]["runbook_url"].endswith("#heraldcredentialsinvalid")
        assert alert["status"]["state"] == "active"

        alerter.resolve(AlertKey(events.CREDENTIALS_INVALID, "news", "mastodon-main"))
        await wait_gone(alertmanager, events.CREDENTIALS_INVALID, {"adapter": "mastodon-main"})
    assert sent(name, events.CREDENTIALS_INVALID, "sent") == 2  # fired, then resolved
    assert sent(name, events.CREDENTIALS_INVALID, "failed") == 0


async def test_duplicates_are_one_alert_in_alertmanager(alertmanager):
    async with running(config({"type": "alertmanager", "url": alertmanager.url})) as alerter:
        for pub in ("a", "b", "c"):
            alerter.notify(events.dead_lettered(namespace="n", adapter="bsky", publication=pub))
        alerter.notify(events.dead_lettered(namespace="n", adapter="x-main", publication="d"))
        assert await alerter.flush(10)
        await wait_alert(alertmanager, events.DEAD_LETTER_GROWING, {"adapter": "x-main"})
        mine = [a for a in alertmanager.alerts() if a["labels"]["alertname"] == events.DEAD_LETTER_GROWING]
        assert sorted(a["labels"]["adapter"] for a in mine) == ["bsky", "x-main"]


async def test_firing_alert_is_kept_alive_by_resends(alertmanager):
    """Alertmanager sees the alert's endsAt pushed forward on every re-send."""
    cfg = config({"type": "alertmanager", "url": alertmanager.url, "resendIntervalSeconds": 0.2})
    async with running(cfg) as alerter:
        alerter.condition(events.platform_down(namespace="n", adapter="resend"), True)
        first = await wait_alert(alertmanager, events.PLATFORM_DOWN, {"adapter": "resend"})

        def later():
            a = alertmanager.find_alert(events.PLATFORM_DOWN, {"adapter": "resend"})
            return a if a and a["endsAt"] > first["endsAt"] else None

        again = await asyncio.to_thread(wait_until, later, timeout=20, what="re-sent alert")
        assert again["startsAt"] == first["startsAt"]
        assert again["fingerprint"] == first["fingerprint"]
        alerter.resolve(events.PLATFORM_DOWN, namespace="n", adapter="resend")
        await wait_gone(alertmanager, events.PLATFORM_DOWN, {"adapter": "resend"})


async def test_a_restarted_operator_keeps_starts_at_in_alertmanager(alertmanager):
    store = MemoryStateStore()
    cfg = config({"type": "alertmanager", "url": alertmanager.url, "resendIntervalSeconds": 0.2})
    timings = {events.PLATFORM_DOWN: Timing(0, 0.3)}
    async with running(cfg, store=store, timings=timings) as first:
        first.condition(events.platform_down(namespace="n", adapter="restart"), True)
        before = await wait_alert(alertmanager, events.PLATFORM_DOWN, {"adapter": "restart"})
    async with running(cfg, store=store, timings=timings) as second:
        second.condition(events.platform_down(namespace="n", adapter="restart"), True)

        def resent():
            a = alertmanager.find_alert(events.PLATFORM_DOWN, {"adapter": "restart"})
            return a if a and a["updatedAt"] > before["updatedAt"] else None

        after = await asyncio.to_thread(wait_until, resent, timeout=20, what="the alert re-sent after the restart")
        assert after["startsAt"] == before["startsAt"]
        assert after["fingerprint"] == before["fingerprint"]
        second.condition(events.platform_down(namespace="n", adapter="restart"), False)
        await wait_gone(alertmanager, events.PLATFORM_DOWN, {"adapter": "restart"})


async def test_the_rule_and_the_operator_are_one_alert_in_alertmanager(alertmanager):
    """Both paths on: Prometheus' HeraldPlatformDown (sent as Prometheus does, with the rule's
    labels) and the operator's are the same alert, so Alertmanager keeps one."""
    async with running(config({"type": "alertmanager", "url": alertmanager.url})) as alerter:
        alerter.condition(events.platform_down(namespace="news", adapter="both"), True)
        ours = await wait_alert(alertmanager, events.PLATFORM_DOWN, {"adapter": "both"})
        now = datetime.now(UTC)
        alertmanager.post_alerts(
            [
                {
                    "labels": {
                        "alertname": "HeraldPlatformDown",
                        "severity": "critical",
                        "namespace": "news",
                        "adapter": "both",
                    },
                    "annotations": {"summary": "from Prometheus"},
                    "startsAt": (now + timedelta(seconds=60)).isoformat(),
                    "endsAt": (now + timedelta(minutes=5)).isoformat(),
                    "generatorURL": "http://prometheus/graph",
                }
            ]
        )

        def updated():
            a = [x for x in alertmanager.alerts() if x["labels"]["alertname"] == events.PLATFORM_DOWN]
            return a if any(x["annotations"]["summary"] == "from Prometheus" for x in a) else None

        alerts = await asyncio.to_thread(wait_until, updated, timeout=20, what="the rule's alert merged")
        assert len(alerts) == 1
        assert alerts[0]["fingerprint"] == ours["fingerprint"]
        assert alerts[0]["startsAt"] == ours["startsAt"]  # the earlier start is kept
