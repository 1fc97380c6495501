"""alerts.config is checked by values.schema.json as the operator checks it (operator/herald/alerts/config.py): a typo
fails `helm template`/`helm install` naming the key, instead of an operator that never starts; every documented
example passes both."""

from __future__ import annotations

import json
import re
import typing

import pytest
import yaml

from herald.alerts import config as alerts_config
from tests.helm.chart import CHART, helm, set_args
from tests.support.cluster import ROOT

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFINITIONS = SCHEMA["definitions"]
CHANNELS = {
    "alertmanager": alerts_config.AlertmanagerChannel,
    "webhook": alerts_config.WebhookChannel,
    "slack": alerts_config.SlackChannel,
    "discord": alerts_config.DiscordChannel,
    "telegram": alerts_config.TelegramChannel,
}
MODELS = {
    "alertsConfig": alerts_config.AlertsConfig,
    "alertsRetry": alerts_config.DeliveryRetry,
    "alertsRateLimit": alerts_config.RateLimit,
    **{f"alertsChannel{t.capitalize()}": model for t, model in CHANNELS.items()},
}
VALID = {
    "channels": [
        {"type": "webhook", "name": "audit", "url": "https://hooks.example.org/herald", "secret": "0123456789abcdef"},
        {"type": "telegram", "botToken": "000000000:REPLACE-ME", "chatId": -1001234567890},
    ]
}


def template(config: dict, *extra: str):
    return helm(
        "template",
        "herald",
        str(CHART),
        *set_args({"alerts.enabled": True, "alerts.config": config}),
        *extra,
        check=False,
    )


def operator_accepts(config: dict) -> bool:
    try:
        alerts_config.parse_config(config)
    except alerts_config.ConfigError:
        return False
    return True


# -- the schema and the operator's models agree ---------------------------------------------------------------


@pytest.mark.parametrize("definition", sorted(MODELS))
def test_the_schema_has_exactly_the_keys_of_the_operators_model(definition):
    model, schema = MODELS[definition], DEFINITIONS[definition]
    assert schema["additionalProperties"] is False
    keys = {field.alias or name for name, field in model.model_fields.items()}
    assert set(schema["properties"]) == keys, (
        f"{definition}: schema {sorted(schema['properties'])}, model {sorted(keys)}"
    )
    required = {field.alias or name for name, field in model.model_fields.items() if field.is_required()}
    assert set(schema.get("required", [])) == required, definition


def test_the_schema_knows_every_channel_type_and_severity():
    channel = DEFINITIONS["alertsChannel"]
    literal_types = {typing.get_args(m.model_fields["type"].annotation)[0] for m in CHANNELS.values()}
    assert set(channel["properties"]["type"]["enum"]) == literal_types == set(CHANNELS)
    branches = {b["if"]["properties"]["type"]["const"]: b["then"]["$ref"] for b in channel["allOf"]}
    assert branches == {t: f"#/definitions/alertsChannel{t.capitalize()}" for t in CHANNELS}
    severities = {s.value for s in alerts_config.Severity}
    for t in CHANNELS:
        props = DEFINITIONS[f"alertsChannel{t.capitalize()}"]["properties"]
        assert set(props["minSeverity"]["enum"]) == severities
        assert props["type"] == {"const": t}
    assert SCHEMA["properties"]["alerts"]["properties"]["config"]["$ref"] == "#/definitions/alertsConfig"


# -- typos and invalid values fail, naming the key ---------------------------------------------------------------


def test_a_typo_at_the_top_fails_helm_install_naming_the_key():
    """The issue's case: `--set alerts.config.minSeverty=…` used to install, and the operator never started."""
    proc = helm(
        "template",
        "herald",
        str(CHART),
        "--set",
        "alerts.enabled=true",
        "--set",
        "alerts.config.minSeverty=critical",
        check=False,
    )
    assert proc.returncode != 0
    assert "at '/alerts/config': additional properties 'minSeverty' not allowed" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "config,where,message",
    [
        (
            {"channels": [{"type": "slack", "url": "https://hooks.slack.com/x", "minSeverty": "info"}]},
            "/alerts/config/channels/0",
            "additional properties 'minSeverty' not allowed",
        ),
        (
            {"channels": [{"type": "slack", "url": "https://hooks.slack.com/x", "rateLimit": {"perMinutes": 5}}]},
            "/alerts/config/channels/0/rateLimit",
            "additional properties 'perMinutes' not allowed",
        ),
        ({"retry": {"attemps": 3}}, "/alerts/config/retry", "additional properties 'attemps' not allowed"),
        ({"extraLabel": {"cluster": "eu"}}, "/alerts/config", "additional properties 'extraLabel' not allowed"),
        (
            # A key of another channel type.
            {"channels": [{"type": "slack", "url": "https://hooks.slack.com/x", "botToken": "123456789"}]},
            "/alerts/config/channels/0",
            "additional properties 'botToken' not allowed",
        ),
        (
            {"channels": [{"type": "email", "url": "https://x.example"}]},
            "/alerts/config/channels/0/type",
            "must be one of 'alertmanager'",
        ),
        ({"channels": [{"url": "https://x.example"}]}, "/alerts/config/channels/0", "missing property 'type'"),
        ({"channels": [{"type": "discord"}]}, "/alerts/config/channels/0", "missing property 'url'"),
        (
            {"channels": [{"type": "webhook", "url": "https://x.example", "secret": "short"}]},
            "/alerts/config/channels/0/secret",
            "minLength",
        ),
        (
            {"channels": [{"type": "slack", "url": "https://hooks.slack.com/x", "minSeverity": "warn"}]},
            "/alerts/config/channels/0/minSeverity",
            "'info', 'warning', 'critical'",
        ),
        (
            {"channels": [{"type": "slack", "url": "ftp://hooks.slack.com/x"}]},
            "/alerts/config/channels/0/url",
            "does not match pattern",
        ),
        ({"retry": {"attempts": 11}}, "/alerts/config/retry/attempts", "maximum"),
        ({"queueSize": "many"}, "/alerts/config/queueSize", "want integer"),
    ],
    ids=[
        "channel-typo",
        "rate-limit-typo",
        "retry-typo",
        "top-level-typo",
        "other-types-key",
        "unknown-type",
        "no-type",
        "no-url",
        "short-secret",
        "bad-severity",
        "not-http",
        "too-many-attempts",
        "wrong-type",
    ],
)
def test_invalid_alerts_config_fails_naming_the_key(config, where, message):
    proc = template(config)
    assert proc.returncode != 0, proc.stdout
    assert f"at '{where}'" in proc.stderr and message in proc.stderr, proc.stderr
    # The operator would have refused it too, at start: the schema only moves the failure to install time.
    assert not operator_accepts(config)


def test_keys_are_camel_case_only():
    """docs/alerting.md: keys are camelCase. The operator also takes snake_case (pydantic populate_by_name); the
    chart asks for the documented spelling."""
    config = {"channels": [{"type": "slack", "url": "https://hooks.slack.com/x", "min_severity": "info"}]}
    proc = template(config)
    assert proc.returncode != 0 and "'min_severity' not allowed" in proc.stderr, proc.stderr


def test_a_typo_in_a_values_file_fails_too(tmp_path):
    f = tmp_path / "values.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "alerts": {
                    "enabled": True,
                    "config": {"channels": [{"type": "slack", "url": "https://x.example", "nme": "a"}]},
                }
            }
        )
    )
    proc = helm("lint", "--strict", str(CHART), "-f", str(f), check=False)
    assert proc.returncode != 0 and "'nme' not allowed" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


# -- the documented examples pass --------------------------------------------------------------------------------


def yaml_blocks(doc: str) -> list:
    text = (ROOT / "docs" / doc).read_text()
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def documented_configs() -> list[tuple[str, dict]]:
    found = []
    for i, block in enumerate(yaml_blocks("alerting.md")):
        if isinstance(block, dict) and "channels" in block:
            found.append((f"alerting.md#{i}", block))
    for i, block in enumerate(yaml_blocks("install.md")):
        if isinstance(block, dict) and isinstance(block.get("alerts"), dict) and "config" in block["alerts"]:
            found.append((f"install.md#{i}", block["alerts"]["config"]))
    found.append(("this file", VALID))
    return found


def test_the_docs_have_examples():
    names = [n for n, _ in documented_configs()]
    assert any(n.startswith("alerting.md") for n in names) and any(n.startswith("install.md") for n in names), names


@pytest.mark.parametrize("name,config", [pytest.param(n, c, id=n) for n, c in documented_configs()])
def test_documented_configs_pass_the_schema_and_the_operator(name, config):
    assert operator_accepts(config), name
    proc = template(config)
    assert proc.returncode == 0, f"{name}:\n{proc.stderr}"
    [secret] = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "Secret"]
    assert yaml.safe_load(secret["stringData"]["config.yaml"]) == config
