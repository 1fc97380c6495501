"""The pure parts of herald.alerts: token bucket, the alert book (hysteresis, expiry, retries,
persistence), redaction and signing (the contract's), formatting, config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.alerts import (
    AlertBook,
    AlertEvent,
    AlertKey,
    ConfigError,
    Scrubber,
    Severity,
    Timing,
    TokenBucket,
    events,
    load_config,
    parse_config,
)
from herald.alerts.book import CLEARING, FIRING, PENDING, RESOLVED, ChannelPolicy, retry_delay
from herald.alerts.formatting import (
    alertmanager_alert,
    discord_payload,
    plain_text,
    slack_payload,
    telegram_text,
    truncate,
    webhook_digest,
    webhook_payload,
)
from herald_contract.redact import redact as pattern_redact
from herald_contract.signing import sign, verify

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


def test_bucket_wait_time():
    b = TokenBucket(rate=2.0, burst=1, now=0)
    assert b.wait_time(0) == 0
    assert b.try_take(0)
    assert b.wait_time(0) == pytest.approx(0.5)
    assert TokenBucket(rate=0, burst=1, now=0).wait_time(0, n=2) == float("inf")


# --- the alert book -----------------------------------------------------------------


def ev(name="HeraldX", adapter="a", severity="warning", **kw) -> AlertEvent:
    return AlertEvent(name=name, severity=severity, summary="s", adapter=adapter, namespace="ns", **kw)


CHANNELS = {"chat": ChannelPolicy(Severity.WARNING, 3600.0), "am": ChannelPolicy(Severity.INFO, 60.0)}
SLOW = Timing(for_seconds=100, hold_seconds=50, expire_seconds=0)


def book(**timings: Timing) -> AlertBook:
    return AlertBook(CHANNELS, timings)


def deliver_all(b: AlertBook, now: float, ok: bool = True) -> dict[str, list[tuple[str, str]]]:
    """Deliver everything due on every channel; what each got as (status, alertname)."""
    got: dict[str, list[tuple[str, str]]] = {}
    for ch in b.channels:
        notes = b.due(ch, now)
        b.delivered(ch, notes, ok, now)
        got[ch] = [(n.event.status, n.event.name) for n in notes]
    return got


def test_occurrences_fire_once_refresh_the_text_and_expire():
    b = book(HeraldX=Timing(expire_seconds=900))
    assert b.occur(ev(description="first", annotations={"publication": "p1"}), now=0) is True
    assert b.occur(ev(description="second", annotations={"publication": "p2"}), now=10) is False
    a = b.alerts[AlertKey("HeraldX", "ns", "a")]
    assert (a.state, a.starts_at, a.event.description) == (FIRING, 0, "second")
    assert a.event.annotations["publication"] == "p2"
    assert [(r, c) for r, _, c in b.suppressed] == [("duplicate", "chat"), ("duplicate", "am")]
    assert deliver_all(b, 10) == {"chat": [("firing", "HeraldX")], "am": [("firing", "HeraldX")]}
    b.advance(909)
    assert a.state == FIRING  # 900 s after the *last* occurrence
    b.advance(910)
    assert a.state == RESOLVED
    assert deliver_all(b, 910) == {"chat": [("resolved", "HeraldX")], "am": [("resolved", "HeraldX")]}
    assert b.alerts == {}


def test_a_condition_fires_after_for_and_resolves_after_hold():
    b = book(HeraldX=SLOW)
    b.condition(ev(), True, now=0)
    a = b.alerts[AlertKey("HeraldX", "ns", "a")]
    assert a.state == PENDING and deliver_all(b, 0) == {"chat": [], "am": []}
    b.advance(99)
    assert a.state == PENDING
    b.advance(100)
    assert (a.state, a.starts_at) == (FIRING, 100)
    assert deliver_all(b, 100)["chat"] == [("firing", "HeraldX")]
    b.condition(ev(), False, now=200)
    assert a.state == CLEARING
    b.advance(249)
    assert a.state == CLEARING and deliver_all(b, 249) == {"chat": [], "am": []}  # nothing re-sent while clearing
    b.advance(250)
    assert a.state == RESOLVED
    assert deliver_all(b, 250)["chat"] == [("resolved", "HeraldX")]


def test_hysteresis_a_flapping_condition_is_one_alert():
    """RateLimitExhausted flapped every ~45 s: with a hold longer than the flap it is one alert."""
    b = book(HeraldX=Timing(for_seconds=0, hold_seconds=120))
    sent: list[tuple[str, str]] = []
    for t in range(0, 1800, 45):
        b.condition(ev(), (t // 45) % 2 == 0, now=t)
        sent += deliver_all(b, t)["chat"]
    assert sent == [("firing", "HeraldX")]
    assert {r for r, _, _ in b.suppressed} == {"flapping"}
    b.condition(ev(), False, now=1800)
    b.advance(1920)
    assert deliver_all(b, 1920)["chat"] == [("resolved", "HeraldX")]


def test_a_pending_condition_survives_short_gaps_but_not_long_ones():
    b = book(HeraldX=SLOW)
    b.condition(ev(), True, now=0)
    b.condition(ev(), False, now=40)
    b.condition(ev(), True, now=60)  # back within the hold: still pending since 0
    b.advance(100)
    assert b.alerts[AlertKey("HeraldX", "ns", "a")].state == FIRING
    b2 = book(HeraldX=SLOW)
    b2.condition(ev(), True, now=0)
    b2.condition(ev(), False, now=10)
    b2.advance(60)  # false for the whole hold: starts over
    assert b2.alerts == {}


def test_half_open_keeps_the_state():
    b = book(HeraldX=Timing(0, 120))
    b.condition(ev(), None, now=0)
    assert b.alerts == {}  # None never starts an alert
    b.condition(ev(), True, now=1)
    b.condition(ev(description="probing"), None, now=500)
    a = b.alerts[AlertKey("HeraldX", "ns", "a")]
    assert a.state == FIRING and a.event.description == "probing"


def test_reminders_follow_each_channels_resend_interval():
    b = book(HeraldX=Timing(0, 120))
    b.condition(ev(), True, now=0)
    deliver_all(b, 0)
    assert deliver_all(b, 59) == {"chat": [], "am": []}
    assert deliver_all(b, 60) == {"chat": [], "am": [("firing", "HeraldX")]}
    assert deliver_all(b, 3600)["chat"] == [("firing", "HeraldX")]
    assert b.next_deadline(3600) == 3660


def test_failed_deliveries_are_retried_with_backoff_until_delivered():
    b = book(HeraldX=Timing(0, 120))
    b.condition(ev(severity="critical"), True, now=0)
    assert deliver_all(b, 0, ok=False)["chat"] == [("firing", "HeraldX")]
    assert deliver_all(b, 14)["chat"] == []  # busy no more, but backing off
    assert b.next_deadline(14) == retry_delay(1) == 15
    assert deliver_all(b, 15, ok=False)["chat"] == [("firing", "HeraldX")]
    assert retry_delay(2) == 30 and retry_delay(20) == 300
    assert deliver_all(b, 45)["chat"] == [("firing", "HeraldX")]
    assert deliver_all(b, 46)["chat"] == []


def test_a_critical_alert_resolved_before_any_delivery_is_still_told():
    b = book()
    b.occur(ev(name="HeraldCrit", severity="critical"), now=0)
    b.occur(ev(name="HeraldWarn"), now=0)
    b.resolve(AlertKey("HeraldCrit", "ns", "a"), now=1)
    b.resolve(AlertKey("HeraldWarn", "ns", "a"), now=1)
    b.advance(1)
    got = deliver_all(b, 1)
    assert got["chat"] == [("resolved", "HeraldCrit")]  # never dropped; the warning nobody saw is
    assert b.alerts == {}


def test_a_channel_below_the_severity_gets_nothing():
    b = AlertBook({"crit": ChannelPolicy(Severity.CRITICAL, 0)})
    b.occur(ev(), 0)
    assert b.due("crit", 0) == []


def test_escalation_tells_again_and_never_de_escalates():
    b = book()
    b.occur(ev(severity="warning"), 0)
    deliver_all(b, 0)
    b.occur(ev(severity="critical"), 1)
    assert deliver_all(b, 1)["chat"] == [("firing", "HeraldX")]
    b.occur(ev(severity="warning"), 2)
    assert b.alerts[AlertKey("HeraldX", "ns", "a")].event.severity is Severity.CRITICAL


def test_the_identity_stays_the_first_events():
    b = book()
    b.occur(ev(labels={"team": "x"}), 0)
    b.occur(ev(labels={"team": "y"}, description="new"), 1)
    a = b.alerts[AlertKey("HeraldX", "ns", "a")]
    assert a.event.labels == {"team": "x"} and a.event.description == "new"


def test_adapters_gone_resolve_their_alerts():
    b = book(HeraldX=Timing(0, 120))
    b.condition(ev(adapter="gone"), True, 0)
    b.condition(ev(adapter="kept"), True, 0)
    b.occur(AlertEvent(name="HeraldOperatorDegraded", severity="critical", summary="s"), 0)
    b.resolve_where({("ns", "kept")}, 1)
    states = {k.adapter: a.state for k, a in b.alerts.items()}
    assert states == {"gone": RESOLVED, "kept": FIRING, "": FIRING}


def test_more_alerts_than_the_bound_refuses_warnings_never_criticals():
    b = AlertBook(CHANNELS, max_alerts=2)
    assert b.occur(ev(adapter="1"), 0) and b.occur(ev(adapter="2"), 0)
    assert b.occur(ev(adapter="3"), 0) is False
    assert b.occur(ev(adapter="4", severity="critical"), 0) is True
    assert ("overload", "chat") in {(r, c) for r, _, c in b.suppressed}
    assert len(b.alerts) == 3


def test_the_book_round_trips_through_its_document():
    b = book(HeraldX=SLOW)
    b.condition(ev(adapter="firing"), True, 0)
    b.advance(100)
    deliver_all(b, 100)
    b.condition(ev(adapter="pending"), True, 150)
    b.occur(ev(name="HeraldY", adapter="occ", severity="critical"), 160)
    doc = json.loads(json.dumps(b.document()))  # JSON-able, as stored in the ConfigMap
    again = book(HeraldX=SLOW)
    assert again.load(doc) == 3
    assert again.document() == b.document()
    a = again.alerts[AlertKey("HeraldX", "ns", "firing")]
    assert (a.state, a.starts_at) == (FIRING, 100)
    # Restarted: what was delivered is not delivered again (only Alertmanager's reminder is due,
    # with the first startsAt); what was not, is.
    assert deliver_all(again, 161) == {
        "chat": [("firing", "HeraldY")],
        "am": [("firing", "HeraldX"), ("firing", "HeraldY")],
    }
    assert [n.started_at for n in again.due("am", 221)] == [100, 160]
    assert again.load({"version": 1, "alerts": [{"event": {}}, "junk"]}) == 3  # malformed entries skipped
    assert book().load({"version": 99}) == 0


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=30), st.sampled_from([True, False, None]), st.booleans()),
        max_size=60,
    )
)
def test_a_condition_alert_model(steps):
    """Whatever the reports and deliveries: each alert (one startsAt) is told to a channel at most
    once firing and once resolved, in that order; it fires only after its condition held ``for``."""
    timing = Timing(for_seconds=20, hold_seconds=15)
    b = book(HeraldX=timing)
    now = 0.0
    told: dict[float, list[str]] = {}
    for dt, level, ok in steps:
        now += dt
        b.condition(ev(), level, now)
        for n in b.due("chat", now):
            b.delivered("chat", [n], ok, now)
            if ok:
                told.setdefault(n.started_at, []).append(n.event.status)
        a = b.alerts.get(AlertKey("HeraldX", "ns", "a"))
        if a is not None and a.state in (FIRING, CLEARING):
            assert a.starts_at is not None and a.starts_at - a.since >= timing.for_seconds
    for statuses in told.values():
        assert statuses in (["firing"], ["firing", "resolved"], ["resolved"]), told


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
    out = Scrubber(secrets).text(pieces[-1])
    for s in secrets:
        assert s not in out


@given(text=st.text(max_size=200), secrets=st.lists(secret_text, max_size=4))
def test_redactor_leaves_clean_text_alone(text, secrets):
    scrubber = Scrubber(secrets)
    clean = pattern_redact(text, (), limit=10**9, keep_newlines=True) == text and scrubber.redactor(text) == text
    if clean:
        assert scrubber.text(text) == text


def test_redactor_masks_whole_urls_and_credential_patterns():
    url = "https://hooks.slack.com/services/T00/B00/abcdefghij"
    r = Scrubber([url, "services/T00/B00/abcdefghij"])
    out = r.text(f"POST {url} failed; token=abc123 Authorization: Bearer xyz.789")
    assert out == "POST [REDACTED] failed; token=[REDACTED] Authorization: Bearer [REDACTED]"
    obj = r.obj({"a": [url, 1, None], url: "k"})
    assert obj == {"a": ["[REDACTED]", 1, None], "[REDACTED]": "k"}
    # the contract's redactor also knows the secrets' escaped forms
    assert r.text('{"url": "https:\\/\\/hooks.slack.com\\/services\\/T00\\/B00\\/abcdefghij"}') == (
        '{"url": "[REDACTED]"}'
    )


def test_scrubbing_keeps_the_line_breaks_of_alert_texts():
    assert Scrubber(["s3cr3t-value"]).text("line one s3cr3t-value\nline two") == "line one [REDACTED]\nline two"


def test_redactor_ignores_very_short_values():
    assert Scrubber(["ab", ""]).text("abc ab") == "abc ab"


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
    """The alerts sign with the contract's signing, as the webhook adapter does."""
    sig = sign(secret, str(ts), body)
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", sig)
    assert verify(secret, str(ts), body, sig)
    assert not verify(secret, str(ts), body + b"x", sig)
    assert not verify(secret + "x", str(ts), body, sig)
    assert not verify(secret, str(ts + 1), body, sig)
    assert not verify(secret, str(ts), body, "")


def test_known_signature_value():
    # HMAC-SHA256("key", "1700000000." + body): pins the documented scheme.
    import hashlib
    import hmac

    body = b'{"status":"firing"}'
    expected = hmac.new(b"key", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("key", "1700000000", body) == "sha256=" + expected


EVENT = events.dead_lettered(
    namespace="news", adapter="mastodon-main", publication="launch", error_class="rejected", message="too long"
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
    d = discord_payload([big], now=0)
    assert len(d["content"]) <= 2000
    e = d["embeds"][0]
    assert len(e["title"]) <= 256 and len(e["description"]) <= 4096
    assert len(e["fields"]) <= 25 and all(len(f["value"]) <= 1024 for f in e["fields"])
    assert len(telegram_text([big])) <= 4096
    s = slack_payload([big])
    assert len(s["attachments"][0]["fields"]) <= 10
    assert len(s["attachments"][0]["text"]) <= 3000 * 5


def test_digests_carry_every_notification_within_the_platform_limits():
    many = [events.credentials_invalid(namespace="ns", adapter=f"a{i}", reason="x" * 500) for i in range(30)] + [
        events.platform_down(namespace="ns", adapter="b").resolved()
    ]
    s = slack_payload(many)
    assert s["text"] == "Herald digest: 31 alert notifications (30 firing, 1 resolved)"
    assert len(s["attachments"]) == 20 and s["attachments"][-1]["title"] == "… and 12 more"
    assert "[RESOLVED] HeraldPlatformDown (ns/b)" in s["attachments"][-1]["text"]
    d = discord_payload(many, now=0)
    assert len(d["embeds"]) == 10 and d["embeds"][-1]["title"] == "… and 22 more"
    assert d["content"].startswith("Herald digest: 31")
    t = telegram_text(many)
    assert len(t) <= 4096 and t.startswith("Herald digest: 31") and t.endswith("…")
    docs = [webhook_payload(e, started_at=0, now=1) for e in many]
    w = webhook_digest(docs, now=1)
    assert w["digest"] is True and len(w["alerts"]) == 31 and w["alerts"][-1]["status"] == "resolved"


def test_plain_text_and_webhook_document():
    text = plain_text(EVENT, {"cluster": "prod"})
    assert text.splitlines()[0] == "[FIRING:warning] HeraldDeadLetterGrowing (news/mastodon-main)"
    assert "cluster: prod" in text and "publication: launch" in text
    doc = webhook_payload(EVENT, started_at=0, now=60, extra_labels={"cluster": "prod"})
    assert doc["version"] == "1" and doc["status"] == "firing" and doc["source"] == "herald"
    assert doc["startsAt"] == "1970-01-01T00:00:00.000Z" and doc["sentAt"] == "1970-01-01T00:01:00.000Z"
    assert doc["dedupKey"] == "HeraldDeadLetterGrowing/news/mastodon-main"
    resolved = webhook_payload(EVENT.resolved(), started_at=0, now=60, ends_at=30)
    assert resolved["status"] == "resolved" and resolved["endsAt"] == "1970-01-01T00:00:30.000Z"


def test_alertmanager_alert_document_has_the_rules_identity():
    a = alertmanager_alert(EVENT, started_at=0, ends_at=300, extra_labels={"cluster": "c", "severity": "nope"})
    # Exactly the labels of the Prometheus rule of the same name (+ the configured extra labels):
    # Alertmanager sees one alert when both paths are on.
    assert a["labels"] == {
        "alertname": "HeraldDeadLetterGrowing",
        "severity": "warning",
        "namespace": "news",
        "adapter": "mastodon-main",
        "cluster": "c",
    }
    assert a["annotations"]["publication"] == "launch"
    assert a["annotations"]["runbook_url"].endswith("#heralddeadlettergrowing")
    assert a["endsAt"] == "1970-01-01T00:05:00.000Z"


# --- events -----------------------------------------------------------------------


def test_event_constructors():
    made = [
        events.platform_down(namespace="n", adapter="a", platform="mastodon"),
        events.credentials_invalid(namespace="n", adapter="a"),
        events.queue_overloaded(namespace="n", adapter="a", depth=150, threshold=100),
        events.rate_limited_too_long(namespace="n", adapter="a"),
        events.dead_lettered(namespace="n", adapter="a"),
        events.repeated_failure(namespace="n", adapter="a", publication="p", attempts=3, error_class="network"),
        events.operator_degraded(reason="r"),
    ]
    assert [e.name for e in made] == list(events.ALERT_NAMES)
    for e in made:
        assert e.firing and e.summary and e.description
        assert e.runbook_url == f"{events.RUNBOOK_BASE_URL}#{e.name.lower()}"
        assert e.labels == {}  # identity is name, severity, namespace, adapter: as the rules'
        assert e.name in events.TIMINGS
    assert made[0].annotations == {"platform": "mastodon"}
    assert made[5].key == AlertKey(events.TARGET_REPEATED_FAILURE, "n", "a")
    assert "3 attempts" in made[5].description


def test_the_operators_alerts_are_named_after_the_rules():
    import yaml

    rules = yaml.safe_load((REPO_ROOT / "alert-rules" / "herald.rules.yml").read_text())
    by_name = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    shared = [n for n in events.ALERT_NAMES if n in by_name]
    assert shared == [
        events.PLATFORM_DOWN,
        events.CREDENTIALS_INVALID,
        events.QUEUE_OVERLOADED,
        events.RATE_LIMITED_TOO_LONG,
        events.DEAD_LETTER_GROWING,
    ]
    made = {
        events.PLATFORM_DOWN: events.platform_down(namespace="n", adapter="a"),
        events.CREDENTIALS_INVALID: events.credentials_invalid(namespace="n", adapter="a"),
        events.QUEUE_OVERLOADED: events.queue_overloaded(namespace="n", adapter="a", depth=1, threshold=0),
        events.RATE_LIMITED_TOO_LONG: events.rate_limited_too_long(namespace="n", adapter="a"),
        events.DEAD_LETTER_GROWING: events.dead_lettered(namespace="n", adapter="a"),
    }
    for name, event in made.items():
        assert event.severity.value == by_name[name]["labels"]["severity"], name
        assert event.summary == by_name[name]["annotations"]["summary"], name


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


def test_load_config_yaml_and_json(tmp_path):
    y = tmp_path / "a.yaml"
    y.write_text("channels:\n  - type: discord\n    url: https://discord.example/api/webhooks/1/t\n")
    j = tmp_path / "a.json"
    j.write_text(json.dumps({"channels": [{"type": "telegram", "botToken": "1:abcdefgh", "chatId": 5}]}))
    assert load_config(y).channels[0].type == "discord"
    assert load_config(j).channels[0].chat_id == "5"
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels: [\n")
    with pytest.raises(ConfigError):
        load_config(bad)
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError):
        load_config(tmp_path / "list.yaml")
