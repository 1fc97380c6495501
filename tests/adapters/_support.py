"""Helpers: lay out files like the Job's mounts, and the contract's environment."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IDEMPOTENCY_KEY = "0123456789abcdef0123456789abcdef"


def payload(text: str = "Herald 1.0 is out", *, truncate: bool = False, **content: Any) -> dict:
    return {
        "publication": {"namespace": "news", "name": "launch", "uid": "4c1c0000-0000-4000-8000-000000000001"},
        "target": "main",
        "content": {"text": text, **content},
        "truncate": truncate,
    }


@dataclass
class Run:
    exit_code: int
    result: dict | None
    raw_result: str
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """Everything the adapter left behind: result, stdout and stderr."""
        return "\n".join((self.raw_result, self.stdout, self.stderr))


def lay_out(tmp: Path, *, credentials: dict[str, str], document: dict) -> dict[str, Path]:
    """Files like the Job's mounts: the payload, a Secret volume (with its ..data
    indirection), and an empty termination-log file."""
    payload_dir = tmp / "etc/herald/payload"
    payload_dir.mkdir(parents=True)
    (payload_dir / "publication.json").write_text(json.dumps(document), encoding="utf-8")
    creds_dir = tmp / "etc/herald/credentials"
    data_dir = creds_dir / "..2026_11_23_10_00_00.000000001"
    data_dir.mkdir(parents=True)
    (creds_dir / "..data").symlink_to(data_dir.name)
    for key, value in credentials.items():
        (data_dir / key).write_text(value, encoding="utf-8")
        (creds_dir / key).symlink_to(Path("..data") / key)
    result = tmp / "dev/termination-log"
    result.parent.mkdir(parents=True)
    result.write_text("")
    return {"payload": payload_dir / "publication.json", "credentials": creds_dir, "result": result}


def job_env(
    paths: dict[str, Path],
    *,
    platform: str,
    endpoint: str = "",
    mode: str = "publish",
    attempt: int = 1,
    key: str = IDEMPOTENCY_KEY,
    timeout: float = 5.0,
) -> dict[str, str]:
    """Exactly the contract's environment variables."""
    return {
        "HERALD_PLATFORM": platform,
        "HERALD_ENDPOINT": endpoint,
        "HERALD_ATTEMPT": str(attempt),
        "HERALD_MODE": mode,
        "HERALD_IDEMPOTENCY_KEY": key,
        "HERALD_PUBLICATION": "news/launch",
        "HERALD_TARGET": "main",
        "HERALD_PAYLOAD_FILE": str(paths["payload"]),
        "HERALD_CREDENTIALS_DIR": str(paths["credentials"]),
        "HERALD_RESULT_FILE": str(paths["result"]),
        "HERALD_TIMEOUT_SECONDS": str(timeout),
    }


def assert_no_secrets(run: Run, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in run.output, f"a credential leaked into the adapter's output: {secret[:6]}…"


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
