"""Slack against data Herald didn't write: the chat.postMessage reference (arguments,
response example and documented errors, as published in slack-ruby/slack-api-ref,
vendored in fidelity/slack_api_ref/) and Slack's own Python SDK (slack_sdk): its Block Kit
models validate the blocks Herald sends, and its WebClient (chat_postMessage,
files_upload_v2) runs against the local Slack, so the requests Herald builds can be
compared with the SDK's."""

from __future__ import annotations

import json

import pytest
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block

from herald_adapters import slack
from tests.platforms import PNG, SlackFake

from ._replay import FIDELITY, Recorded, Replay, run
from ._support import payload

REFERENCE = json.loads((FIDELITY / "slack_api_ref" / "chat.postMessage.json").read_text(encoding="utf-8"))
BOT = {"botToken": "xoxb-recorded-0000", "channel": "C1H9RESGL"}

# What each documented chat.postMessage error means for a retry, from its description.
EXPECTED = {
    "channel_not_found": "destination_forbidden",  # "Value passed for channel was invalid." (or a private channel)
    "not_in_channel": "destination_forbidden",  # "Cannot post user messages to a channel they are not in."
    "restricted_action": "destination_forbidden",  # "A workspace preference prevents ... from posting."
    "restricted_action_read_only_channel": "destination_forbidden",
    "restricted_action_thread_only_channel": "destination_forbidden",
    "restricted_action_non_threadable_channel": "rejected",  # a threadTs option where threads are off
    "is_archived": "rejected",
    "msg_too_long": "rejected",
    "no_text": "rejected",
    "too_many_attachments": "rejected",
    "as_user_not_supported": "rejected",
    "invalid_arguments": "rejected",
    "invalid_arg_name": "rejected",
    "invalid_charset": "rejected",
    "invalid_form_data": "rejected",
    "invalid_post_type": "rejected",
    "missing_post_type": "rejected",
    "rate_limited": "rate_limited",
    "ekm_access_denied": "auth",
    "not_authed": "auth",
    "invalid_auth": "auth",
    "account_inactive": "auth",
    "token_revoked": "auth",
    "no_permission": "auth",
    "missing_scope": "auth",
    "org_login_required": "server_error",  # "will not be available until migration is complete"
    "team_added_to_org": "server_error",  # "intermittently unavailable"
    "request_timeout": "server_error",
    "fatal_error": "unknown_outcome",  # "It's possible some aspect of the operation succeeded"
}


def test_every_documented_error_has_an_expected_meaning():
    assert set(EXPECTED) == set(REFERENCE["errors"])


@pytest.mark.parametrize("code", sorted(REFERENCE["errors"]))
def test_documented_errors_are_classified_by_what_they_mean(tmp_path, code):
    transport = Replay({"POST /api/chat.postMessage": Recorded.json(200, {"ok": False, "error": code})})
    result = run(slack.publish, transport, tmp_path, platform="slack", credentials=BOT, endpoint="https://s.test/api")
    assert result.error_class.value == EXPECTED[code], REFERENCE["errors"][code]
    assert code in result.message


def test_the_documented_response_example_is_read(tmp_path):
    example = json.loads(REFERENCE["response"]["examples"][0])
    transport = Replay(
        {
            "POST /api/chat.postMessage": Recorded.json(200, example),
            "GET /api/chat.getPermalink": Recorded.json(200, {"ok": True, "permalink": "https://x.slack.com/p1"}),
        }
    )
    result = run(slack.publish, transport, tmp_path, platform="slack", credentials=BOT, endpoint="https://s.test/api")
    assert result.outcome == "published" and result.post_id == example["ts"]


def test_herald_sends_only_documented_arguments(tmp_path):
    transport = Replay(
        {
            "POST /api/chat.postMessage": Recorded.json(200, {"ok": True, "ts": "1.2"}),
            "GET /api/chat.getPermalink": Recorded.json(200, {"ok": False, "error": "message_not_found"}),
        }
    )
    options = {"threadTs": "1234567890.123456", "blocks": [{"type": "divider"}]}
    run(slack.publish, transport, tmp_path, platform="slack", credentials=BOT, endpoint="https://s.test/api",
        document=payload("Hi", options=options))  # fmt: skip
    sent = json.loads(transport.sent("POST", "/api/chat.postMessage")[0].content)
    # metadata (2022) postdates this reference; Slack documents it on chat.postMessage today.
    assert set(sent) - {"metadata"} <= set(REFERENCE["args"])
    assert {k for k, v in REFERENCE["args"].items() if v["required"]} <= set(sent)


BLOCKS = [
    {"type": "header", "text": {"type": "plain_text", "text": "Herald 1.0"}},
    {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*Out now* <https://example.org|notes>"},
        "accessory": {"type": "image", "image_url": "https://example.org/a.png", "alt_text": "cover"},
    },
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "posted by Herald"}]},
    {"type": "divider"},
]


def test_the_blocks_herald_sends_are_valid_block_kit(run_adapter):
    with SlackFake() as fake:
        document = payload("Herald 1.0 is out", options={"blocks": BLOCKS})
        run = run_adapter("slack", endpoint=fake.api_endpoint, credentials=fake.bot_credentials(), document=document)
        assert run.exit_code == 0, run.output
        sent = fake.requests_to("chat.postMessage")[0].json
        for block in sent["blocks"]:
            parsed = Block.parse(block)
            parsed.validate_json()
            assert parsed.to_dict() == block
        assert sent["text"]  # the fallback Slack shows in notifications


def test_block_kit_validation_can_fail():
    parsed = Block.parse({"type": "header", "text": {"type": "plain_text", "text": "x" * 151}})
    with pytest.raises(Exception):  # noqa: B017 - slack_sdk's SlackObjectFormationError
        parsed.validate_json()


def test_herald_and_slack_sdk_send_chat_post_message_alike(run_adapter):
    with SlackFake() as fake:
        client = WebClient(token=fake.bot_token, base_url=fake.api_endpoint + "/")
        answer = client.chat_postMessage(channel=fake.channel, text="From the SDK", thread_ts="1700000000.000100")
        assert answer["ok"] and "warning" not in answer.data  # the local Slack accepts the SDK's request
        document = payload("From Herald", options={"threadTs": "1700000000.000100"})
        run = run_adapter("slack", endpoint=fake.api_endpoint, credentials=fake.bot_credentials(), document=document)
        assert run.exit_code == 0, run.output
        sdk, herald = fake.requests_to("chat.postMessage")
        assert herald.headers["content-type"].replace(" ", "") == sdk.headers["content-type"].replace(" ", "")
        assert herald.headers["authorization"] == sdk.headers["authorization"]
        assert {k: type(v) for k, v in sdk.json.items()}.items() <= {k: type(v) for k, v in herald.json.items()}.items()


def test_herald_uploads_files_as_slack_sdk_does(run_adapter):
    with SlackFake() as fake:
        client = WebClient(token=fake.bot_token, base_url=fake.api_endpoint + "/")
        answer = client.files_upload_v2(
            channel=fake.channel, file=PNG, filename="sdk.png", alt_txt="SDK", initial_comment="From the SDK"
        )
        assert answer["ok"]
        media = [{"url": f"{fake.url}/_herald/media/herald.png", "altText": "Herald"}]
        document = payload("From Herald", media=media)
        run = run_adapter("slack", endpoint=fake.api_endpoint, credentials=fake.bot_credentials(), document=document)
        assert run.exit_code == 0, run.output
        for route in ("files.getUploadURLExternal", "files.completeUploadExternal"):
            sdk, herald = fake.requests_to(route)
            sdk_params = sdk.json if "json" in sdk.headers.get("content-type", "") else _form(sdk)
            assert set(_form(herald)) == set(sdk_params), route
        sdk_upload, herald_upload = fake.requests_to("upload")
        assert sdk_upload.body == herald_upload.body == PNG
        assert [p["text"] for p in fake.posts] == ["From the SDK", "From Herald"]


def _form(request) -> dict:
    from urllib.parse import parse_qs

    return {k: v[0] for k, v in parse_qs(request.body.decode()).items()} or {k: v[0] for k, v in request.query.items()}
