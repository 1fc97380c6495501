"""The pure parts of herald.alerts: token bucket, dedup, redaction, formatting, config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.alerts import (
    AlertEvent,
    AlertKey,
    ConfigError,
    DedupState,
    Redactor,
    Severity,
    TokenBucket,
    events,
    load_config,
    parse_config,
    sign,
    verify_signature,
)
from herald.alerts.config import config_from_env
from herald.alerts.formatting import (
    alertmanager_alert,
    discord_payload,
    plain_text,
    slack_payload,
    telegram_payload,
    truncate,
    webhook_payload,
)
from herald.redact import redact as pattern_redact

REPO_ROOT = Path(__file__).resolve().parents[2]

# --- token bucket -------------------------------------------------------------


def test_bucket_burst_then_refill():
    b = TokenBucket(rate=1.0, burst=3, now=0)
    assert [b.try_take(0) for _ in range(4)] == [True, True, True, False]
    assert not b.try_take(0.5)
    assert b.try_take(1.0)
    assert not b.try_take(1.0)
    assert b.tokens(100) == 3  # capped at burst


def test_bucket_rejects_bad_parameters():
    with pytest.raises(ValueError):
        TokenBucket(rate=-1, burst=1)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0)


@given(
    rate=st.floats(min_value=0, max_value=50),
    burst=st.integers(min_value=1, max_value=20),
    steps=st.lists(st.floats(min_value=0, max_value=5), max_size=200),
)
def test_bucket_never_exceeds_burst_plus_rate_times_elapsed(rate, burst, steps):
    b = TokenBucket(rate, burst, now=0.0)
    now = 0.0
    taken = 0
    for dt in steps:
        now += dt
        if b.try_take(now):
            taken += 1
        assert taken <= burst + rate * now + 1e-6
        assert 0 <= b.tokens(now) <= burst


@given(st.lists(st.floats(min_value=-100, max_value=100), max_size=50))
def test_bucket_time_going_backwards_refills_nothing(times):
    b = TokenBucket(rate=1.0, burst=1, now=100.0)
    assert b.try_take(100.0)
    for t in times:  # all at or before 100
        assert not b.try_take(t)


# --- dedup ----------------------------------------------------------------------


def ev(name="HeraldX", adapter="a", severity="warning", **kw) -> AlertEvent:
    return AlertEvent(name=name, severity=severity, summary="s", adapter=adapter, **kw)


def test_dedup_new_duplicate_resolve():
    d = DedupState()
    assert d.fire(ev(description="first", labels={"platform": "x"}), now=1) is True
    assert d.fire(ev(description="second", labels={"platform": "y"}), now=2) is False
    active = d.get(AlertKey("HeraldX", "a"))
    assert active.occurrences == 2
    assert active.started_at == 1
    assert active.event.description == "second"  # text is refreshed
    assert active.event.labels == {"platform": "x"}  # identity is not
    assert d.resolve(AlertKey("HeraldX", "a")) is active
    assert d.resolve(AlertKey("HeraldX", "a")) is None
    assert d.fire(ev(), now=3) is True


def test_dedup_escalation_is_new():
    d = DedupState()
    d.fire(ev(severity="warning"), 0)
    d.mark_sent(AlertKey("HeraldX", "a"), "slack", 0)
    assert d.fire(ev(severity="critical"), 1) is True
    assert d.get(AlertKey("HeraldX", "a")).event.severity is Severity.CRITICAL
    assert not d.was_sent(AlertKey("HeraldX", "a"), "slack")
    assert d.fire(ev(severity="warning"), 2) is False  # no de-escalation
    assert d.get(AlertKey("HeraldX", "a")).event.severity is Severity.CRITICAL


def test_dedup_due():
    d = DedupState()
    d.fire(ev(adapter="a"), 0)
    d.fire(ev(adapter="b"), 0)
    d.mark_sent(AlertKey("HeraldX", "a"), "am", 0)
    d.mark_sent(AlertKey("HeraldX", "b"), "am", 5)
    assert [x.key.adapter for x in d.due("am", 10, 10)] == ["a"]
    assert d.due("am", 0, 100) == []
    assert d.due("slack", 10, 100) == []  # never told


def test_dedup_rejects_resolved_event():
    with pytest.raises(ValueError):
        DedupState().fire(ev().resolved(), 0)


@given(st.lists(st.tuples(st.booleans(), st.sampled_from(["a", "b", "c"]), st.sampled_from(["X", "Y"])), max_size=100))
def test_dedup_notifies_once_per_root_cause_while_firing(ops):
    """Model: a set of firing keys. fire() is new exactly when the key is not firing."""
    d = DedupState()
    model: set[tuple[str, str]] = set()
    for is_fire, adapter, name in ops:
        key = (name, adapter)
        if is_fire:
            assert d.fire(ev(name=name, adapter=adapter), 0) is (key not in model)
            model.add(key)
        else:
            assert (d.resolve(AlertKey(name, adapter)) is not None) is (key in model)
            model.discard(key)
        assert {(a.key.alertname, a.key.adapter) for a in d.active()} == model


# --- redaction ------------------------------------------------------------------

secret_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=4, max_size=24)


@settings(max_examples=300)
@given(text=st.text(max_size=200), secrets=st.lists(secret_text, min_size=1, max_size=4), data=st.data())
def test_redactor_removes_every_secret(text, secrets, data):
    # put some secrets into the text at random places
    pieces = [text]
    for s in secrets:
        pos = data.draw(st.integers(min_value=0, max_value=len(pieces[-1])))
        pieces.append(pieces[-1][:pos] + s + pieces[-1][pos:])
    out = Redactor(secrets).redact(pieces[-1])
    for s in secrets:
        assert s not in out


@given(text=st.text(max_size=200), secrets=st.lists(secret_text, max_size=4))
def test_redactor_leaves_clean_text_alone(text, secrets):
    clean = all(s not in text for s in secrets) and pattern_redact(text, (), limit=10**9) == text
    if clean:
        assert Redactor(secrets).redact(text) == text


def test_redactor_masks_whole_urls_and_credential_patterns():
    url = "https://hooks.slack.com/services/T00/B00/abcdefghij"
    r = Redactor([url, "services/T00/B00/abcdefghij"])
    out = r.redact(f"POST {url} failed; token=abc123 Authorization: Bearer xyz.789")
    assert out == "POST [REDACTED] failed; token=[REDACTED] Authorization: Bearer [REDACTED]"
    obj = r.redact_obj({"a": [url, 1, None], url: "k"})
    assert obj == {"a": ["[REDACTED]", 1, None], "[REDACTED]": "k"}


def test_redactor_ignores_very_short_values():
    assert Redactor(["ab", ""]).redact("abc ab") == "abc ab"


def test_config_secrets_cover_urls_tokens_and_query_values():
    cfg = parse_config(
        {
            "channels": [
                {
                    "type": "webhook",
                    "url": "https://h.example/p?key=qsecret-1",
                    "secret": "s" * 20,
                    "headers": {"X-Key": "hdr-secret"},
                },
                {"type": "telegram", "botToken": "123:tok-abcdef", "chatId": 1},
                {"type": "alertmanager", "url": "https://user:pw-secret@am.example", "bearerToken": "tok-xyz-123"},
            ]
        }
    )
    secrets = set(cfg.secrets())
    assert {"qsecret-1", "s" * 20, "hdr-secret", "123:tok-abcdef", "pw-secret", "tok-xyz-123"} <= secrets


# --- formatting -------------------------------------------------------------------


@given(st.text(max_size=300), st.integers(min_value=1, max_value=100))
def test_truncate(text, limit):
    out = truncate(text, limit)
    assert len(out) <= limit
    if len(text) <= limit:
        assert out == text
    else:
        assert out.endswith("…") and text.startswith(out[:-1])


@given(
    secret=st.text(min_size=1, max_size=64), ts=st.integers(min_value=0, max_value=2**40), body=st.binary(max_size=500)
)
def test_signature_roundtrip(secret, ts, body):
    sig = sign(secret, str(ts), body)
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", sig)
    assert verify_signature(secret, str(ts), body, sig, now=ts)
    assert not verify_signature(secret, str(ts), body + b"x", sig, now=ts)
    assert not verify_signature(secret + "x", str(ts), body, sig, now=ts)


def test_signature_rejects_stale_or_bad_timestamps():
    body = b'{"a":1}'
    sig = sign("k" * 16, "1000", body)
    assert verify_signature("k" * 16, "1000", body, sig, now=1200)
    assert not verify_signature("k" * 16, "1000", body, sig, now=1000 + 301)
    assert not verify_signature("k" * 16, "nope", body, sig, now=1000)
    assert not verify_signature("k" * 16, "1000", body, "", now=1000)


def test_known_signature_value():
    # HMAC-SHA256("key", "1700000000." + body): pins the documented scheme.
    import hashlib
    import hmac

    body = b'{"status":"firing"}'
    expected = hmac.new(b"key", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("key", "1700000000", body) == "sha256=" + expected


EVENT = events.publication_dead_lettered(
    adapter="mastodon-main", namespace="news", publication="launch", error_class="rejected", message="too long"
)


def test_channel_payloads_fit_platform_limits():
    big = AlertEvent(
        name="HeraldBig",
        severity="critical",
        summary="s" * 5000,
        description="d" * 10000,
        adapter="a",
        labels={f"l{i}": "v" * 2000 for i in range(40)},
    )
    d = discord_payload(big, now=0)
    assert len(d["content"]) <= 2000
    e = d["embeds"][0]
    assert len(e["title"]) <= 256 and len(e["description"]) <= 4096
    assert len(e["fields"]) <= 25 and all(len(f["value"]) <= 1024 for f in e["fields"])
    assert len(telegram_payload(big, "1")["text"]) <= 4096
    s = slack_payload(big)
    assert len(s["attachments"][0]["fields"]) <= 10
    assert len(s["attachments"][0]["text"]) <= 3000 * 5


def test_plain_text_and_webhook_document():
    text = plain_text(EVENT, {"cluster": "prod"})
    assert text.splitlines()[0] == "[FIRING:warning] HeraldPublicationDeadLettered (mastodon-main)"
    assert "cluster: prod" in text and "publication: launch" in text
    doc = webhook_payload(EVENT, started_at=0, now=60, extra_labels={"cluster": "prod"})
    assert doc["version"] == "1" and doc["status"] == "firing"
    assert doc["startsAt"] == "1970-01-01T00:00:00.000Z" and doc["sentAt"] == "1970-01-01T00:01:00.000Z"
    assert doc["dedupKey"] == "HeraldPublicationDeadLettered/mastodon-main/news"
    resolved = webhook_payload(EVENT.resolved(), started_at=0, now=60)
    assert resolved["status"] == "resolved" and resolved["endsAt"] == "1970-01-01T00:01:00.000Z"


def test_alertmanager_alert_document():
    a = alertmanager_alert(EVENT, started_at=0, ends_at=300, extra_labels={"cluster": "c", "severity": "nope"})
    assert a["labels"]["severity"] == "warning"  # the event's own labels win
    assert a["labels"]["cluster"] == "c"
    assert "publication" not in a["labels"]  # per-publication detail is not identity
    assert a["annotations"]["publication"] == "launch"
    assert a["endsAt"] == "1970-01-01T00:05:00.000Z"


# --- events -----------------------------------------------------------------------


def test_event_constructors():
    made = [
        events.publication_dead_lettered(adapter="a"),
        events.circuit_opened(adapter="a", platform="mastodon"),
        events.credentials_invalid(adapter="a"),
        events.queue_overloaded(adapter="a", depth=150, threshold=100),
        events.rate_limit_exhausted(adapter="a"),
        events.repeated_failure(adapter="a", publication="p", attempts=3, error_class="network"),
        events.operator_degraded(reason="r"),
    ]
    assert [e.name for e in made] == list(events.ALERT_NAMES)
    for e in made:
        assert e.firing and e.summary and e.description
        assert e.runbook_url and e.runbook_url.startswith(events.RUNBOOK_BASE_URL + "#")
        assert "publication" not in e.labels  # never a per-publication label
    assert made[5].key == AlertKey(events.TARGET_REPEATED_FAILURE, "a", "")
    assert "3 attempts" in made[5].description


def test_event_validation():
    with pytest.raises(ValueError):
        AlertEvent(name="", severity="warning", summary="s")
    with pytest.raises(ValueError):
        AlertEvent(name="X", severity="urgent", summary="s")
    assert AlertEvent(name="X", severity="critical", summary="s").severity is Severity.CRITICAL
    assert Severity.INFO.rank < Severity.WARNING.rank < Severity.CRITICAL.rank


# --- configuration ------------------------------------------------------------------


def _doc_config_blocks() -> list[str]:
    text = (REPO_ROOT / "docs" / "alerting.md").read_text()
    return re.findall(r"```yaml\n# herald-alerts\.yaml\n(.*?)```", text, flags=re.S)


def test_the_documented_example_configuration_is_valid():
    blocks = _doc_config_blocks()
    assert blocks, "docs/alerting.md has no example configuration"
    import yaml

    for block in blocks:
        cfg = parse_config(yaml.safe_load(block))
        assert cfg.channels


def test_config_defaults():
    cfg = parse_config(
        {
            "channels": [
                {"type": "alertmanager", "url": "http://am:9093"},
                {"type": "slack", "url": "https://hooks.example/x"},
            ]
        }
    )
    am, slack = cfg.channels
    assert am.channel_name == "alertmanager" and am.resend_interval == 60 and am.min_severity is Severity.INFO
    assert slack.resend_interval == 14400 and slack.min_severity is Severity.WARNING
    assert slack.rate_limit.per_minute == 30 and slack.rate_limit.burst == 10
    assert cfg.retry.attempts == 3 and cfg.queue_size == 1000


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"channels": [{"type": "sms", "url": "https://x"}]}, "type"),
        ({"channels": [{"type": "slack", "url": "ftp://hooks.example/very-secret-path"}]}, "http(s) URL"),
        ({"channels": [{"type": "slack", "url": "https://a/b", "colour": "red"}]}, "colour"),
        ({"channels": [{"type": "webhook", "url": "https://a/b", "secret": "short-secret"}]}, "secret"),
        ({"channels": [{"type": "slack", "url": "https://a/b"}, {"type": "slack", "url": "https://a/c"}]}, "unique"),
        ({"channels": [{"type": "slack", "url": "https://a/b", "minSeverity": "urgent"}]}, "minSeverity"),
        ({"retry": {"attempts": 0}}, "attempts"),
    ],
)
def test_invalid_configurations(data, message):
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert message in str(err.value)


def test_config_errors_never_echo_values():
    with pytest.raises(ConfigError) as err:
        parse_config({"channels": [{"type": "webhook", "url": "ftp://x/y-very-secret", "secret": "tiny-secret"}]})
    assert "very-secret" not in str(err.value) and "tiny-secret" not in str(err.value)


def test_load_config_yaml_json_and_env(tmp_path):
    y = tmp_path / "a.yaml"
    y.write_text("channels:\n  - type: discord\n    url: https://discord.example/api/webhooks/1/t\n")
    j = tmp_path / "a.json"
    j.write_text(json.dumps({"channels": [{"type": "telegram", "botToken": "1:abcdefgh", "chatId": 5}]}))
    assert load_config(y).channels[0].type == "discord"
    assert load_config(j).channels[0].chat_id == "5"
    assert config_from_env({"HERALD_ALERTS_CONFIG": str(y)}).channels[0].type == "discord"
    assert config_from_env({}) is None
    with pytest.raises(ConfigError):
        config_from_env({"HERALD_ALERTS_CONFIG": str(tmp_path / "missing.yaml")})
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels: [\n")
    with pytest.raises(ConfigError):
        load_config(bad)
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError):
        load_config(tmp_path / "list.yaml")
