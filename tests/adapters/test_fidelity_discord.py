"""Discord against data Herald didn't write: the message and webhook objects published in
discord-api-docs (vendored in fidelity/discord_api_docs/), and discord.py, whose
handle_message_parameters builds the Execute Webhook request Herald must match and whose
HTTP exceptions read Discord's error bodies."""

from __future__ import annotations

import io
import json
import warnings
from types import SimpleNamespace

import pytest

with warnings.catch_warnings():  # discord.py's voice support imports audioop (deprecated in 3.11)
    warnings.simplefilter("ignore", DeprecationWarning)
    import discord
    from discord.http import handle_message_parameters

from herald_adapters import discord as herald_discord
from tests.platforms import PNG, DiscordFake

from ._replay import FIDELITY, Recorded, Replay, run
from ._support import payload

DOCS = FIDELITY / "discord_api_docs"
MESSAGE = json.loads((DOCS / "example_message.json").read_text(encoding="utf-8"))
WEBHOOK = json.loads((DOCS / "example_incoming_webhook.json").read_text(encoding="utf-8"))
HOOK = {"webhookUrl": f"https://discord.test/api/webhooks/{WEBHOOK['id']}/{WEBHOOK['token']}"}


def test_the_documented_message_has_no_guild_so_the_link_comes_from_the_webhook(tmp_path):
    assert "guild_id" not in MESSAGE
    path = f"/api/webhooks/{WEBHOOK['id']}/{WEBHOOK['token']}"
    transport = Replay({f"POST {path}": Recorded.json(200, MESSAGE), f"GET {path}": Recorded.json(200, WEBHOOK)})
    result = run(herald_discord.publish, transport, tmp_path, platform="discord", credentials=HOOK)
    assert result.post_id == MESSAGE["id"]
    assert result.url == f"https://discord.com/channels/{WEBHOOK['guild_id']}/{MESSAGE['channel_id']}/{MESSAGE['id']}"


def test_without_a_guild_there_is_no_link(tmp_path):
    path = f"/api/webhooks/{WEBHOOK['id']}/{WEBHOOK['token']}"
    application_webhook = {**WEBHOOK, "type": 3, "guild_id": None, "channel_id": None}
    transport = Replay(
        {f"POST {path}": Recorded.json(200, MESSAGE), f"GET {path}": Recorded.json(200, application_webhook)}
    )
    result = run(herald_discord.publish, transport, tmp_path, platform="discord", credentials=HOOK)
    assert result.post_id == MESSAGE["id"] and result.url is None


def _payload_json(request) -> tuple[dict, dict[str, tuple]]:
    from tests.platforms._server import multipart

    fields = multipart(request)
    return json.loads(fields.pop("payload_json")[0]), fields


def test_herald_builds_the_request_discord_py_builds(run_adapter):
    with DiscordFake(forum=True) as fake:
        media = [{"url": f"{fake.url}/_herald/media/a.png", "altText": "A cover"}]
        options = {
            "threadName": "Herald 1.0",
            "username": "Herald News",
            "avatarUrl": "https://e.org/a.png",
            "silent": True,
        }
        run = run_adapter(
            "discord", credentials=fake.credentials(), document=payload("@everyone hi", media=media, options=options)
        )
        assert run.exit_code == 0, run.output
        herald, herald_files = _payload_json(fake.requests_to("execute")[0])

    params = handle_message_parameters(
        content="@everyone hi",
        username="Herald News",
        avatar_url="https://e.org/a.png",
        files=[discord.File(io.BytesIO(PNG), filename="a.png", description="A cover")],
        allowed_mentions=discord.AllowedMentions.none(),
        thread_name="Herald 1.0",
        flags=discord.MessageFlags(suppress_notifications=True),
    )
    parts = {part["name"]: part for part in params.multipart}
    sdk = json.loads(parts.pop("payload_json")["value"])
    assert set(parts) == set(herald_files) == {"files[0]"}
    assert herald_files["files[0]"][:2] == (PNG, "a.png")
    for key in ("content", "username", "avatar_url", "thread_name", "flags", "attachments"):
        assert herald[key] == sdk[key], key
    # "Mentions never ping": discord.py's AllowedMentions.none() says the same, and more.
    assert herald["allowed_mentions"].items() <= sdk["allowed_mentions"].items()
    assert sdk["allowed_mentions"]["parse"] == []


def _exception(status: int, body: dict) -> discord.HTTPException:
    response = SimpleNamespace(status=status, reason="", headers={})
    kind = {403: discord.Forbidden, 404: discord.NotFound}.get(status, discord.HTTPException)
    if status >= 500:
        kind = discord.DiscordServerError
    return kind(response, body)


ERRORS = [
    (403, {"message": "Missing Access", "code": 50001}, "destination_forbidden"),
    (403, {"message": "Missing Permissions", "code": 50013}, "destination_forbidden"),
    (401, {"message": "Invalid Webhook Token", "code": 50027}, "auth"),
    (404, {"message": "Unknown Webhook", "code": 10015}, "auth"),
    (404, {"message": "Unknown Channel", "code": 10003}, "rejected"),
    (
        400,
        {"message": "Webhooks posted to forum channels must have a thread_name or thread_id", "code": 220001},
        "rejected",
    ),
    (
        400,
        {
            "message": "Invalid Form Body",
            "code": 50035,
            "errors": {
                "content": {
                    "_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]
                }
            },
        },
        "rejected",
    ),
    (500, {"message": "500: Internal Server Error", "code": 0}, "server_error"),
]


@pytest.mark.parametrize("status,body,error_class", ERRORS, ids=[f"{s}-{b['code']}" for s, b, _ in ERRORS])
def test_errors_mean_what_discord_py_reads_in_them(tmp_path, status, body, error_class):
    exc = _exception(status, body)
    assert exc.code == body["code"]  # discord.py reads the same JSON code Herald classifies by
    path = f"/api/webhooks/{WEBHOOK['id']}/{WEBHOOK['token']}"
    transport = Replay({f"POST {path}": Recorded.json(status, body)})
    result = run(herald_discord.publish, transport, tmp_path, platform="discord", credentials=HOOK)
    assert result.error_class.value == error_class
    assert exc.text.split("\n")[0] in result.message
    if isinstance(exc, discord.Forbidden):
        assert error_class in ("destination_forbidden", "auth")
