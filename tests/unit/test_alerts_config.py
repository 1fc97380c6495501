"""An invalid alerts configuration at runtime: the operator starts without the invalid channel (the
others run), says which channel and field in one Warning, shows it in a metric, and never echoes a
value. Pure: files and the metrics registry only."""

from __future__ import annotations

import logging
from pathlib import Path

from herald import metrics
from herald.alerts import Alerter, read_config
from herald.alerts.config import WHOLE_FILE
from herald.config import OperatorConfig

SLACK_URL = "https://hooks.slack.com/services/T0SECRET/B0SECRET/slack-secret-part"
HOOK_SECRET = "whsec-unit-0123456789abcdef"


def invalid(channel: str) -> float | None:
    return metrics.REGISTRY.get_sample_value("herald_alerts_config_invalid", {"channel": channel})


def write(tmp_path: Path, text: str, name: str = "alerts.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BROKEN_NEXT_TO_GOOD = f"""
channels:
  - type: slack
    name: unit-broken
    url: {SLACK_URL}
    minSeverty: critical
  - type: webhook
    name: unit-good
    url: https://hooks.example.org/herald
    secret: {HOOK_SECRET}
"""


def test_a_broken_channel_is_left_out_and_the_good_one_kept(tmp_path):
    report = read_config(write(tmp_path, BROKEN_NEXT_TO_GOOD))
    assert [c.channel_name for c in report.config.channels] == ["unit-good"]
    (problem,) = report.problems
    assert (problem.channel, problem.fields) == ("unit-broken", ("minSeverty",))
    assert "slack-secret-part" not in problem.message and "T0SECRET" not in problem.message


def test_the_operator_never_fails_on_its_alerts_config(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="herald.alerts")
    alerter = Alerter.from_config(str(write(tmp_path, BROKEN_NEXT_TO_GOOD)))
    assert alerter.enabled and alerter.channel_names == ["unit-good"]
    assert invalid("unit-broken") == 1 and invalid("unit-good") == 0
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    text = warning.getMessage()
    assert "unit-broken" in text and "minSeverty" in text and "left out" in text
    for secret in ("slack-secret-part", "T0SECRET", SLACK_URL, HOOK_SECRET):
        assert secret not in caplog.text


def test_each_invalid_channel_is_named_by_name_type_or_position(tmp_path):
    report = read_config(
        write(
            tmp_path,
            """
channels:
  - {type: discord, url: "ftp://discord.example/api/webhooks/1/very-secret-token"}
  - {type: sms, url: "https://x.example"}
  - "not a mapping"
  - {type: telegram, name: tg, botToken: "1:abcdefghij", chatId: 5}
  - {type: telegram, name: tg, botToken: "2:abcdefghij", chatId: 6}
""",
        )
    )
    assert [c.channel_name for c in report.config.channels] == ["tg"]
    assert [(p.channel, p.fields) for p in report.problems] == [
        ("discord", ("url",)),
        ("sms", ("type",)),
        ("channels[2]", ("type",)),
        ("channels[4]", ("name",)),  # the duplicate, by position: "tg" is the valid one's
    ]
    assert all("very-secret-token" not in p.message for p in report.problems)


def test_an_invalid_top_level_key_falls_back_to_its_default(tmp_path):
    report = read_config(
        write(
            tmp_path,
            """
retyr: {attempts: 5}
retry: {attempts: 0}
queueSize: 10
channels:
  - {type: slack, url: "https://hooks.example/a"}
""",
        )
    )
    assert report.config.queue_size == 10 and report.config.retry.attempts == 3  # the default
    assert [c.channel_name for c in report.config.channels] == ["slack"]
    assert {(p.channel, p.fields) for p in report.problems} == {
        (WHOLE_FILE, ("retyr",)),
        (WHOLE_FILE, ("retry.attempts",)),
    }


def test_an_unreadable_file_means_no_channel_and_a_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="herald.alerts")
    for path in (tmp_path / "missing.yaml", write(tmp_path, "channels: [\n", "bad.yaml")):
        alerter = Alerter.from_config(str(path))
        assert not alerter.enabled
    assert invalid(WHOLE_FILE) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("no alert channel runs" in w for w in warnings)


def test_channels_that_is_not_a_list(tmp_path):
    report = read_config(write(tmp_path, "channels: {type: slack}\n"))
    assert report.config.channels == []
    assert [(p.channel, p.fields) for p in report.problems] == [(WHOLE_FILE, ("channels",))]


def test_no_file_configured_means_no_alerts(monkeypatch):
    monkeypatch.delenv("HERALD_ALERTS_CONFIG", raising=False)
    assert not Alerter.from_config(OperatorConfig().alerts_config).enabled


def test_the_state_configmap_is_an_operator_setting(monkeypatch):
    monkeypatch.setenv("HERALD_ALERTS_STATE_CONFIGMAP", "herald-alerts-state")
    monkeypatch.setenv("POD_NAMESPACE", "herald-system")
    config = OperatorConfig()
    assert (config.alerts_state_configmap, config.pod_namespace) == ("herald-alerts-state", "herald-system")
    monkeypatch.setenv("HERALD_ALERTS_STATE_CONFIGMAP", "")
    assert OperatorConfig().alerts_state_configmap is None
