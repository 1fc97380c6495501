"""The operator, as a real process on the local cluster, with an alerts configuration whose one
channel is invalid: it starts, publishes, delivers alerts on the valid channel, and says which
channel and field are wrong (one Warning, a metric), without echoing a value."""

from __future__ import annotations

import json

import pytest

from herald.alerts import events
from tests.integration.conftest import crds  # noqa: F401 - the CRDs, applied once per session
from tests.support.herald import PUBLISHED, Herald, fate, result
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.cluster

SLACK_SECRET = "T0SECRET/B0SECRET/slack-secret-in-a-broken-channel"
HOOK_SECRET = "whsec-operator-0123456789abcdef"
REJECTED = fate(result("failed", errorClass="rejected", message="HTTP 422: text too long"), exit_code=1)


def test_an_invalid_channel_never_stops_publishing(cluster, api, namespace, crds, receiver, tmp_path):  # noqa: F811
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(
        json.dumps(
            {
                "retry": {"attempts": 3, "initialBackoffSeconds": 0.05, "maxBackoffSeconds": 0.2},
                "channels": [
                    {
                        "type": "slack",
                        "name": "broken",
                        "url": f"{receiver.url}/services/{SLACK_SECRET}",
                        "minSeverty": "info",
                    },
                    {"type": "webhook", "name": "audit", "url": f"{receiver.url}/audit", "secret": HOOK_SECRET},
                ],
            }
        )
    )
    operator = OperatorProcess(cluster.kubeconfig, namespace, tmp_path, env={"HERALD_ALERTS_CONFIG": str(alerts)})
    operator.start()  # healthy, despite the broken channel
    try:
        herald = Herald(api, namespace)
        herald.adapter("mastodon", annotations=PUBLISHED)
        herald.adapter("strict", annotations=REJECTED)
        herald.publication("still-publishes", ["mastodon"])
        herald.publication("dead-letter", ["strict"])
        herald.wait_phase("still-publishes", "Published")

        # The valid channel works: the dead letter is told to the webhook, signed.
        (req,) = receiver.wait_for_requests(1, timeout=60)
        body = req.json()
        assert req.path == "/audit" and body["alertname"] == events.DEAD_LETTER_GROWING
        assert (body["namespace"], body["adapter"]) == (namespace, "strict")

        metrics = operator.metrics()
        assert 'herald_alerts_config_invalid{channel="broken"} 1.0' in metrics
        assert 'herald_alerts_config_invalid{channel="audit"} 0.0' in metrics
    finally:
        operator.stop()
    log = operator.log()
    warnings = [line for line in log.splitlines() if "alerts channel broken is left out" in line]
    assert len(warnings) == 1 and "minSeverty" in warnings[0], log[-5000:]
    assert "slack-secret-in-a-broken-channel" not in log and HOOK_SECRET not in log
    assert [r.path for r in receiver.requests if r.path != "/audit"] == []  # the broken channel sends nothing
