"""Redaction, and the HTTP layer's connect-only retries."""

from __future__ import annotations

import io
import logging

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald_adapters import AdapterError, Redactor
from herald_adapters._http import CONNECT_RETRY_ATTEMPTS, Http
from herald_adapters._redact import REDACTED, RedactingFormatter

SECRET = "s3cr3t-T0ken/with:odd&chars"


def test_redacts_plain_url_encoded_and_json_escaped_forms():
    redact = Redactor()
    redact.add(SECRET)
    text = f"a {SECRET} b {httpx.QueryParams({'t': SECRET})} c " + '{"t": "s3cr3t-T0ken\\/with:odd&chars"}'
    out = redact(text)
    assert "s3cr3t" not in out
    assert out.count(REDACTED) == 3


def test_short_values_are_not_treated_as_secrets():
    redact = Redactor()
    redact.add("ab")
    assert redact("abcab") == "abcab"


@given(
    st.text(min_size=4, max_size=40).filter(lambda s: s.strip() == s and len(s) >= 4 and s not in REDACTED),
    st.text(max_size=40),
    st.text(max_size=40),
)
def test_a_registered_secret_never_survives(secret, before, after):
    redact = Redactor()
    redact.add(secret)
    assert secret not in redact(before + secret + after)


def test_log_formatter_redacts_messages_and_tracebacks():
    redact = Redactor()
    redact.add(SECRET)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(redact, "%(message)s"))
    logger = logging.getLogger("test_redact_formatter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        raise RuntimeError(f"failed with {SECRET}")
    except RuntimeError:
        logger.exception("calling with %s", SECRET)
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "RuntimeError" in output and "Traceback" in output
    assert "s3cr3t" not in output


class Flaky(httpx.BaseTransport):
    """Fails the first `failures` requests with `exc`, then answers 200."""

    def __init__(self, exc: type[Exception], failures: int):
        self.exc, self.failures, self.calls = exc, failures, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc("simulated", request=request)
        return httpx.Response(200, json={"ok": True})


def _http(transport) -> Http:
    return Http(1.0, Redactor(), transport=transport)


def test_connect_errors_are_retried_in_process_and_can_recover():
    transport = Flaky(httpx.ConnectError, failures=CONNECT_RETRY_ATTEMPTS - 1)
    response = _http(transport).request("POST", "http://platform.test/post", what="post", json={})
    assert response.status_code == 200
    assert transport.calls == CONNECT_RETRY_ATTEMPTS


def test_connect_errors_give_up_as_network_after_a_few_attempts():
    transport = Flaky(httpx.ConnectError, failures=100)
    http = _http(transport)
    with pytest.raises(AdapterError) as raised:
        http.request("POST", "http://platform.test/post", what="post", json={})
    assert raised.value.result.error_class.value == "network"
    assert transport.calls == CONNECT_RETRY_ATTEMPTS
    assert not http.may_have_posted


@pytest.mark.parametrize("exc", [httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError])
def test_failures_after_sending_a_post_are_never_retried_and_leave_the_outcome_unknown(exc):
    transport = Flaky(exc, failures=100)
    http = _http(transport)
    with pytest.raises(AdapterError) as raised:
        http.request("POST", "http://platform.test/post", what="post", json={})
    assert raised.value.result.error_class.value == "unknown_outcome"
    assert transport.calls == 1
    assert http.may_have_posted


def test_a_read_timeout_on_a_lookup_is_a_network_error():
    transport = Flaky(httpx.ReadTimeout, failures=100)
    with pytest.raises(AdapterError) as raised:
        _http(transport).request("GET", "http://platform.test/lookup", what="lookup")
    assert raised.value.result.error_class.value == "network"
    assert transport.calls == 1


def test_a_read_timeout_on_a_non_posting_call_is_a_network_error():
    transport = Flaky(httpx.ReadTimeout, failures=100)
    with pytest.raises(AdapterError) as raised:
        _http(transport).request("POST", "http://platform.test/session", what="session", creates_post=False)
    assert raised.value.result.error_class.value == "network"


def test_transport_failure_messages_never_contain_the_url():
    transport = Flaky(httpx.ReadTimeout, failures=100)
    with pytest.raises(AdapterError) as raised:
        _http(transport).request("POST", f"http://platform.test/bot{SECRET}/sendMessage", what="sendMessage")
    assert "platform.test" not in raised.value.result.message
    assert "s3cr3t" not in str(raised.value)
