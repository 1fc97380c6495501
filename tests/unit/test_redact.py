"""Credentials never reach status, events, logs or alerts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald_contract.redact import redact

from .builders import DETERMINISTIC

TG_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.mark.parametrize(
    "text, secret",
    [
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-_x", "eyJhbGciOiJIUzI1NiJ9"),
        ("authorization: bearer abc123def456", "abc123def456"),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        (f"POST https://api.telegram.org/bot{TG_TOKEN}/sendMessage: 401", "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"),
        (
            "POST https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX: 404",
            "XXXXXXXXXXXXXXXXXXXXXXXX",
        ),
        (
            "POST https://discord.com/api/webhooks/123456789012345678/AbCdEf-GhIjKl_MnOp?wait=true: 401",
            "AbCdEf-GhIjKl_MnOp",
        ),
        ("POST https://discordapp.com/api/webhooks/1/tok_en-123 failed", "tok_en-123"),
        ("login failed: password=hunter2", "hunter2"),
        ("login failed: Password: hunter2", "hunter2"),
        ('{"password": "hunter2", "user": "x"}', "hunter2"),
        ("app_password=abcd-efgh-ijkl-mnop", "abcd-efgh-ijkl-mnop"),
        ("appPassword=abcd-efgh-ijkl-mnop", "abcd-efgh-ijkl-mnop"),
        ("POST /oauth/token body grant_type=client_credentials&client_secret=Zx9-QQ41 returned 401", "Zx9-QQ41"),
        ("refresh failed: refresh_token=rT0k3nVALUE", "rT0k3nVALUE"),
        ("GET /v1?access_token=xyz987&x=1", "xyz987"),
        ("api_key=K3Y-VALUE", "K3Y-VALUE"),
        ("x-api-key: K3Y-VALUE", "K3Y-VALUE"),
        ("slack says invalid_auth for xoxb-1234-5678-abcdefghij", "xoxb-1234-5678-abcdefghij"),
        ("proxy https://user:pa55word@proxy.example:3128 refused", "pa55word"),
    ],
    ids=[
        "bearer-jwt",
        "bearer-lowercase",
        "basic",
        "telegram-bot-url",
        "slack-webhook",
        "discord-webhook",
        "discordapp-webhook",
        "password-equals",
        "password-colon",
        "password-json",
        "app_password",
        "appPassword",
        "client_secret",
        "refresh_token",
        "access_token-query",
        "api_key",
        "x-api-key",
        "slack-xoxb",
        "url-userinfo",
    ],
)
def test_credential_patterns_are_removed(text, secret):
    out = redact(text)
    assert secret not in out
    assert "[REDACTED]" in out


def test_the_rest_of_the_message_is_kept():
    out = redact("HTTP 401 from https://api.telegram.org/bot" + TG_TOKEN + "/sendMessage: Unauthorized")
    assert out.startswith("HTTP 401 from https://api.telegram.org/")
    assert out.endswith("/sendMessage: Unauthorized")
    assert redact("HTTP 503 Service Unavailable") == "HTTP 503 Service Unavailable"
    assert (
        redact("rate limited; retry in 30s (token bucket empty)") == "rate limited; retry in 30s (token bucket empty)"
    )


def test_explicit_secret_values_are_removed():
    out = redact("the platform echoed s3cr3t-value back", secrets=("s3cr3t-value",))
    assert "s3cr3t-value" not in out
    assert out == "the platform echoed [REDACTED] back"


def test_every_occurrence_of_a_secret_is_removed():
    out = redact("abcdef / abcdef / abcdef", secrets=("abcdef",))
    assert "abcdef" not in out


def test_a_secret_that_extends_another_is_removed_whole():
    """Two credentials of one Secret where one starts with the other (an app id and the app id
    plus its key, say): the longer one must not be left half-visible."""
    out = redact("sent key ABCD1234-SECRETPART", secrets=("ABCD1234", "ABCD1234-SECRETPART"))
    assert "SECRETPART" not in out


def test_very_short_secret_values_are_not_used():
    # redacting "a" would shred every message; such values are not credentials anyway
    assert redact("a cat sat", secrets=("a", "")) == "a cat sat"


def test_empty_input():
    assert redact(None) == ""
    assert redact("") == ""


def test_long_text_is_shortened_after_redaction():
    text = "x" * 2000 + " password=hunter2"
    out = redact(text, limit=100)
    assert len(out) == 100 and out.endswith("…")
    out = redact("password=" + "h" * 50 + " " + "y" * 2000, limit=30)
    assert "hhhh" not in out


@DETERMINISTIC
@given(
    st.text(max_size=40),
    st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd")), min_size=8, max_size=30),
    st.text(max_size=40),
)
def test_an_explicit_secret_never_survives(before, secret, after):
    out = redact(before + secret + after, secrets=(secret,), limit=100_000)
    assert secret not in out


@DETERMINISTIC
@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=20, max_size=40),
    st.integers(min_value=1, max_value=10**10),
)
def test_telegram_bot_tokens_never_survive(tail, bot_id):
    url = f"https://api.telegram.org/bot{bot_id}:{tail}/sendMessage"
    assert tail not in redact(f"request to {url} failed")


@DETERMINISTIC
@given(st.text(max_size=300))
def test_redaction_is_idempotent_and_bounded(text):
    once = redact(text)
    assert redact(once) == once
    assert len(once) <= 1024


# -- what adapters report: printable, masked, http(s) only (issue: leaks and injection) ---------------

from herald_contract.redact import safe_url  # noqa: E402

# A value inside the marker itself ("REDACTED") would be "found" in every redacted text.
SECRETISH = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=8, max_size=30
).filter(lambda v: v not in "[REDACTED]")


@pytest.mark.parametrize(
    "name",
    ["accessToken", "access_token", "apiKey", "api_key", "password", "client_secret", "signature", "refreshToken"],
)
@DETERMINISTIC
@given(value=SECRETISH)
def test_credentials_in_json_shapes_never_survive(name, value):
    for text in (f'{{"{name}": "{value}"}}', f"{{'{name}': '{value}'}}", f"{name}={value}", f"{name}: {value}"):
        assert value not in redact(f"HTTP 401: {text}"), text


@DETERMINISTIC
@given(
    value=SECRETISH,
    param=st.sampled_from(["token", "access_token", "key", "api_key", "sig", "signature", "secret", "password"]),
)
def test_credentials_in_url_queries_never_survive(value, param):
    url = f"https://api.example/v1/post?id=7&{param}={value}&lang=en"
    assert value not in redact(f"GET {url} failed")
    shown = safe_url(url)
    assert shown is not None and value not in shown and "id=7" in shown and "lang=en" in shown


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        "data:text/html,<script>",
        "file:///etc/passwd",
        "ftp://host/x",
        "//no-scheme.example/x",
        "https://",
        42,
        None,
        "http://[::1",
    ],
)
def test_only_http_and_https_urls_are_kept(url):
    assert safe_url(url) is None


def test_a_plain_post_url_is_kept_as_is():
    assert safe_url("https://mastodon.example/@herald/109876") == "https://mastodon.example/@herald/109876"
    assert safe_url("https://user:pw@host.example/x") == "https://[REDACTED]@host.example/x"


def test_ansi_control_characters_and_line_breaks_are_removed():
    text = "\x1b[31mred\x1b[0m line1\r\nFORGED LOG LINE\x00\x07 \u202eevil\u202c"
    out = redact(text)
    assert out == "red line1  FORGED LOG LINE evil"


@DETERMINISTIC
@given(st.text(max_size=400))
def test_cleaned_text_has_no_control_characters(text):
    import unicodedata

    out = redact(text)
    assert not any(unicodedata.category(ch) == "Cc" for ch in out)
    assert "\x1b" not in out and "\n" not in out and "\r" not in out
