"""The adapter exactly as the Job's container runs it: the entrypoint in a separate
process, only the contract's environment, files laid out like the mounts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.platforms import Script

from ._support import IDEMPOTENCY_KEY, job_env, lay_out, payload

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = Path(sys.executable).with_name("herald-adapter")  # the console script the image runs


def _wait_for(probe, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)  # polling interval, bounded by the deadline
    return value


def test_entrypoint_publishes_and_leaves_the_termination_message(tmp_path, mastodon_fake):
    paths = lay_out(
        tmp_path, credentials=mastodon_fake.credentials(), document=payload("From the Job", link="https://e.org/1")
    )
    env = job_env(paths, platform="mastodon", endpoint=mastodon_fake.url)
    assert set(env) == {
        "HERALD_PLATFORM",
        "HERALD_ENDPOINT",
        "HERALD_ATTEMPT",
        "HERALD_MODE",
        "HERALD_IDEMPOTENCY_KEY",
        "HERALD_PUBLICATION",
        "HERALD_TARGET",
        "HERALD_PAYLOAD_FILE",
        "HERALD_CREDENTIALS_DIR",
        "HERALD_RESULT_FILE",
        "HERALD_TIMEOUT_SECONDS",
    }
    proc = subprocess.run([str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(paths["result"].read_text())
    assert result["outcome"] == "published"
    assert result["postId"] == mastodon_fake.posts[0]["id"]
    assert mastodon_fake.posts[0]["text"] == "From the Job\n\nhttps://e.org/1"
    assert mastodon_fake.posts[0]["idempotencyKey"] == IDEMPOTENCY_KEY
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == result
    assert mastodon_fake.access_token not in proc.stdout + proc.stderr + paths["result"].read_text()


def test_module_entrypoint_fails_with_exit_1_and_a_classified_result(tmp_path, telegram_fake):
    telegram_fake.fail(
        "sendMessage",
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 9",
            "parameters": {"retry_after": 9},
        },
    )
    paths = lay_out(tmp_path, credentials=telegram_fake.credentials(), document=payload())
    env = job_env(paths, platform="telegram", endpoint=telegram_fake.url)
    proc = subprocess.run(
        [sys.executable, "-m", "herald_adapters"], env=env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 1, proc.stderr
    result = json.loads(paths["result"].read_text())
    assert result["outcome"] == "failed"
    assert result["errorClass"] == "rate_limited"
    assert result["retryAfterSeconds"] == 9
    assert telegram_fake.bot_token not in proc.stdout + proc.stderr + paths["result"].read_text()


def test_sigterm_while_waiting_for_the_platform_reports_unknown_outcome(tmp_path, discord_fake):
    discord_fake.script("execute", Script(process=True, delay=10))
    paths = lay_out(tmp_path, credentials=discord_fake.credentials(), document=payload())
    env = job_env(paths, platform="discord", timeout=10)
    proc = subprocess.Popen([str(ENTRYPOINT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: discord_fake.posts, 10, "the post to reach the platform")
        proc.send_signal(signal.SIGTERM)  # the pod is being deleted or hit its deadline
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    result = json.loads(paths["result"].read_text())
    assert result["errorClass"] == "unknown_outcome"
    assert discord_fake.webhook_token not in out + err


def test_fake_platform_runs_standalone_for_end_to_end_tests(tmp_path):
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.platforms", "--platform", "bluesky", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(server.stdout.readline())
        assert httpx.get(info["url"] + "/_herald/posts").json() == []
        paths = lay_out(tmp_path, credentials=info["credentials"], document=payload("Standalone"))
        proc = subprocess.run(
            [str(ENTRYPOINT)],
            env=job_env(paths, platform="bluesky", endpoint=info["endpoint"]),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        posts = httpx.get(info["url"] + "/_herald/posts").json()
        assert [p["text"] for p in posts] == ["Standalone"]
    finally:
        server.terminate()
        server.communicate(timeout=10)
