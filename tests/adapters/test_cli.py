"""The CLI's side of the contract: environment, payload, result file, exit codes, crashes."""

from __future__ import annotations

import json

import pytest

from herald_adapters import ErrorClass, RateLimit, Result, cli
from herald_adapters._contract import MAX_RESULT_BYTES

from ._support import job_env, lay_out, payload

SECRET = "cli-test-secret-value-3141"


@pytest.fixture
def mounts(tmp_path):
    return lay_out(
        tmp_path, credentials={"hmacSecret": SECRET, "unusedKey": "unused-secret-value-2718"}, document=payload()
    )


def _main(env, capsys):
    code = cli.main([], env)
    out = capsys.readouterr()
    return code, out.out, out.err


def _result(mounts):
    raw = mounts["result"].read_text()
    return json.loads(raw) if raw else None


def test_invalid_environment_is_rejected_with_a_result(mounts, capsys):
    env = job_env(mounts, platform="webhook", endpoint="http://127.0.0.1:9/x")
    env["HERALD_IDEMPOTENCY_KEY"] = "NOT-HEX"
    env["HERALD_MODE"] = "sideways"
    code, _, _ = _main(env, capsys)
    result = _result(mounts)
    assert code == 1
    assert result["outcome"] == "failed" and result["errorClass"] == "rejected"
    assert "HERALD_IDEMPOTENCY_KEY" in result["message"] and "HERALD_MODE" in result["message"]


def test_unknown_platform_is_rejected(mounts, capsys):
    code, _, _ = _main(job_env(mounts, platform="myspace"), capsys)
    assert code == 1
    assert _result(mounts)["errorClass"] == "rejected"
    assert "myspace" in _result(mounts)["message"] and "mastodon" in _result(mounts)["message"]


def test_endpoint_must_be_http(mounts, capsys):
    code, _, _ = _main(job_env(mounts, platform="webhook", endpoint="ftp://example.org/x"), capsys)
    assert code == 1 and _result(mounts)["errorClass"] == "rejected"


@pytest.mark.parametrize(
    "content,expected",
    [
        ("{not json", "invalid payload"),
        (json.dumps({"publication": {"namespace": "n", "name": "p"}, "target": "t", "content": {}}), "content.text"),
    ],
)
def test_unreadable_payload_is_rejected(mounts, capsys, content, expected):
    mounts["payload"].write_text(content)
    code, _, _ = _main(job_env(mounts, platform="webhook", endpoint="http://127.0.0.1:9/x"), capsys)
    assert code == 1
    assert _result(mounts)["errorClass"] == "rejected"
    assert expected in _result(mounts)["message"]


def test_crash_before_posting_exits_2_without_a_result_and_redacts_the_traceback(mounts, capsys, monkeypatch):
    def boom(ctx):
        raise RuntimeError(f"unexpected, holding {ctx.credentials.require('hmacSecret')}")

    monkeypatch.setitem(cli.PLATFORMS, "webhook", boom)
    code, out, err = _main(job_env(mounts, platform="webhook", endpoint="http://127.0.0.1:9/x"), capsys)
    assert code == cli.EXIT_CRASHED
    assert _result(mounts) is None  # Herald reads this as pod_failure
    assert "Traceback" in err and "RuntimeError" in err and "[REDACTED]" in err
    assert SECRET not in err + out


def test_crash_after_sending_the_post_reports_unknown_outcome(mounts, capsys, monkeypatch, webhook_fake):
    def post_then_crash(ctx):
        ctx.http.request("POST", webhook_fake.endpoint, what="post", json={})
        raise KeyError("parsing the response")

    monkeypatch.setitem(cli.PLATFORMS, "webhook", post_then_crash)
    code, _out, _err = _main(job_env(mounts, platform="webhook", endpoint=webhook_fake.endpoint), capsys)
    assert code == 1
    assert _result(mounts)["errorClass"] == "unknown_outcome"


def test_values_of_unused_secret_keys_are_redacted_too(mounts, capsys, webhook_fake):
    webhook_fake.fail("hook", 400, {"error": "echo unused-secret-value-2718"})
    code, out, err = _main(job_env(mounts, platform="webhook", endpoint=webhook_fake.endpoint), capsys)
    assert code == 1
    assert "unused-secret-value-2718" not in mounts["result"].read_text() + out + err


def test_result_always_fits_the_termination_message():
    result = Result(
        outcome="failed",
        error_class=ErrorClass.REJECTED,
        message="x" * 10_000,
        url="https://e.org/" + "y" * 5000,
        rate_limit=RateLimit(remaining=0),
        response_seconds=0.1234,
    )
    text = result.dumps()
    assert len(text.encode()) <= MAX_RESULT_BYTES
    data = json.loads(text)
    assert data["outcome"] == "failed" and data["errorClass"] == "rejected"
    assert data["responseSeconds"] == 0.123


def test_result_uses_the_contract_field_names():
    result = Result(
        outcome="published",
        post_id="1",
        url="https://e.org/1",
        rate_limit=RateLimit(3),
        response_seconds=0.2,
        retry_after_seconds=None,
        verified=True,
        message="ok",
    )
    assert json.loads(result.dumps()) == {
        "outcome": "published",
        "postId": "1",
        "url": "https://e.org/1",
        "rateLimit": {"remaining": 3},
        "responseSeconds": 0.2,
        "verified": True,
        "message": "ok",
    }


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["--version"])
    assert raised.value.code == 0
    assert "herald-adapter" in capsys.readouterr().out
