"""The adapter's settings (herald_adapters._contract.Settings): whatever the environment holds, the
adapter either runs with values in range or ends the attempt with a clear `rejected` result that
names each wrong variable; it never crashes on its own environment."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald_adapters import cli
from herald_adapters._contract import Mode, Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
KEY = "0123456789abcdef" * 2
VALID = {
    "HERALD_PLATFORM": "webhook",
    "HERALD_ENDPOINT": "http://127.0.0.1:9/hook",
    "HERALD_ATTEMPT": "2",
    "HERALD_MODE": "verify",
    "HERALD_IDEMPOTENCY_KEY": KEY,
    "HERALD_PUBLICATION": "news/launch",
    "HERALD_TARGET": "main",
    "HERALD_TIMEOUT_SECONDS": "7.5",
    "HERALD_LOG_LEVEL": "WARNING",
}
NAMES = sorted({*VALID, "HERALD_PAYLOAD_FILE", "HERALD_CREDENTIALS_DIR", "HERALD_RESULT_FILE"})

# Values an operator, a custom template or a typo could put there.
HOSTILE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", " ", "0", "-1", "601", "1e400", "nan", "inf", "-inf", "1_0", "0x10", "٣", "PUBLISH", "Verify", "\x00"]
    ),
    st.text(alphabet="0123456789abcdefABCDEF", min_size=30, max_size=34),
    st.text(min_size=1000, max_size=5000),
)


def _clauses(error: SettingsError) -> list[str]:
    return str(error).split("; ")


def _assert_in_range(s: Settings) -> None:
    assert s.platform and s.platform == s.platform.lower() and s.platform == s.platform.strip()
    assert not s.endpoint.endswith("/")
    assert s.attempt >= 1 and isinstance(s.mode, Mode)
    assert re.fullmatch(r"[0-9a-f]{32}", s.idempotency_key)
    assert 0 < s.timeout_seconds <= 600
    assert s.log_level in ("DEBUG", "INFO", "WARNING", "ERROR")


@given(st.sampled_from(NAMES), HOSTILE)
def test_one_hostile_variable_is_accepted_in_range_or_named_alone(name, value):
    env = {**VALID, name: value}
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        (clause,) = _clauses(exc)
        assert clause.startswith(f"{name} ") and (" must be " in clause or clause.endswith(" is not set")), clause
        if len(value.strip()) >= 8:
            assert value.strip() not in str(exc)  # the rule, never the value
        if name != "HERALD_RESULT_FILE":
            assert exc.report.result_file == Path("/dev/termination-log")
        return
    _assert_in_range(settings)
    unchanged = Settings.from_env(VALID).model_dump(exclude={_field(name)})
    assert settings.model_dump(exclude={_field(name)}) == unchanged  # one variable, one setting


def _field(name: str) -> str:
    return name.removeprefix("HERALD_").lower()


@given(st.dictionaries(st.sampled_from([*NAMES, "HERALD_OTHER", "PATH", "herald_mode"]), HOSTILE, max_size=12))
def test_any_environment_gives_settings_or_an_error_naming_each_wrong_variable(env):
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        for clause in _clauses(exc):
            name = clause.split(" ", 1)[0]
            assert name in NAMES, clause
            assert name in env or clause.endswith(" is not set"), clause
        return
    _assert_in_range(settings)


@pytest.fixture(scope="module")
def mounts(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("settings")
    (tmp / "credentials").mkdir()
    return {"payload": tmp / "missing.json", "credentials": tmp / "credentials", "result": tmp / "result"}


@given(env=st.dictionaries(st.sampled_from(sorted(VALID)), HOSTILE, max_size=len(VALID)))
def test_the_adapter_answers_any_environment_with_a_result_not_a_crash(env, mounts):
    """The payload file is missing, so no example ever reaches a platform: each ends `rejected`,
    with the environment's problems or the payload's in the result file."""
    mounts["result"].write_text("")
    env = {
        **env,
        "HERALD_PAYLOAD_FILE": str(mounts["payload"]),
        "HERALD_CREDENTIALS_DIR": str(mounts["credentials"]),
        "HERALD_RESULT_FILE": str(mounts["result"]),
    }
    code = cli.main([], env)
    result = json.loads(mounts["result"].read_text())
    assert code == 1 and result["outcome"] == "failed" and result["errorClass"] == "rejected", result
    try:
        Settings.from_env(env)
    except SettingsError as exc:
        assert result["message"].startswith("invalid adapter environment: HERALD_"), result
        assert str(exc)[:100] in " ".join(result["message"].split())
    assert len(result["message"]) <= 400


def test_an_invalid_environment_still_reports_to_its_result_file(tmp_path, capsys):
    result_file = tmp_path / "result"
    env = {"HERALD_RESULT_FILE": f" {result_file} ", "HERALD_ATTEMPT": "first"}
    assert cli.main([], env) == 1
    message = json.loads(result_file.read_text())["message"]
    assert message == (
        "invalid adapter environment: HERALD_PLATFORM is not set; HERALD_ATTEMPT must be a whole number, 1 or more; "
        "HERALD_IDEMPOTENCY_KEY is not set"
    )
    assert json.loads(capsys.readouterr().out)["message"] == message


def test_every_setting_is_in_the_module_table_and_the_contract_docs():
    from herald_adapters import _contract

    names = {f"HERALD_{field.upper()}" for field in Settings.model_fields}
    table = set(re.findall(r"^\| ``(HERALD_[A-Z_]+)``", _contract.__doc__ or "", re.M))
    docs = set(re.findall(r"^\| `(HERALD_[A-Z_]+)`", (ROOT / "docs" / "adapter-contract.md").read_text(), re.M))
    assert table == names
    assert docs == names
