"""Herald's own alerts against a real Alertmanager (API v2)."""

from __future__ import annotations

import asyncio

from herald.alerts import AlertKey, events
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
        alerter.notify(events.credentials_invalid(adapter="mastodon-main", namespace="news", reason="HTTP 401"))
        alert = await wait_alert(alertmanager, events.ADAPTER_CREDENTIALS_INVALID, {"adapter": "mastodon-main"})
        assert alert["labels"] == {
            "alertname": events.ADAPTER_CREDENTIALS_INVALID,
            "severity": "critical",
            "source": "herald",
            "adapter": "mastodon-main",
            "namespace": "news",
            "cluster": "test",
        }
        assert alert["annotations"]["summary"] == "Herald adapter credentials are invalid."
        assert "HTTP 401" in alert["annotations"]["description"]
        assert alert["annotations"]["runbook_url"].endswith("#heraldcredentialsinvalid")
        assert alert["status"]["state"] == "active"

        alerter.resolve(AlertKey(events.ADAPTER_CREDENTIALS_INVALID, "mastodon-main", "news"))
        await wait_gone(alertmanager, events.ADAPTER_CREDENTIALS_INVALID, {"adapter": "mastodon-main"})
    assert sent(name, events.ADAPTER_CREDENTIALS_INVALID, "sent") == 2  # fired, then resolved
    assert sent(name, events.ADAPTER_CREDENTIALS_INVALID, "failed") == 0


async def test_duplicates_are_one_alert_in_alertmanager(alertmanager):
    async with running(config({"type": "alertmanager", "url": alertmanager.url})) as alerter:
        for pub in ("a", "b", "c"):
            alerter.notify(events.publication_dead_lettered(adapter="bsky", publication=pub, error_class="rejected"))
        alerter.notify(events.publication_dead_lettered(adapter="x-main", publication="d"))
        assert await alerter.flush(10)
        await wait_alert(alertmanager, events.PUBLICATION_DEAD_LETTERED, {"adapter": "x-main"})
        mine = [a for a in alertmanager.alerts() if a["labels"]["alertname"] == events.PUBLICATION_DEAD_LETTERED]
        assert sorted(a["labels"]["adapter"] for a in mine) == ["bsky", "x-main"]


async def test_firing_alert_is_kept_alive_by_resends(alertmanager):
    """Alertmanager sees the alert's endsAt pushed forward on every re-send."""
    cfg = config({"type": "alertmanager", "url": alertmanager.url, "resendIntervalSeconds": 0.2})
    async with running(cfg) as alerter:
        alerter.notify(events.circuit_opened(adapter="resend"))
        first = await wait_alert(alertmanager, events.ADAPTER_CIRCUIT_OPEN, {"adapter": "resend"})

        def later():
            a = alertmanager.find_alert(events.ADAPTER_CIRCUIT_OPEN, {"adapter": "resend"})
            return a if a and a["endsAt"] > first["endsAt"] else None

        again = await asyncio.to_thread(wait_until, later, timeout=20, what="re-sent alert")
        assert again["startsAt"] == first["startsAt"]
        assert again["fingerprint"] == first["fingerprint"]
        alerter.resolve(events.ADAPTER_CIRCUIT_OPEN, adapter="resend")
        await wait_gone(alertmanager, events.ADAPTER_CIRCUIT_OPEN, {"adapter": "resend"})
