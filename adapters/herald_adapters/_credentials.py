"""Credentials: one file per Secret key in HERALD_CREDENTIALS_DIR, and nothing else."""

from __future__ import annotations

from pathlib import Path

from ._contract import ErrorClass, fail
from ._redact import Redactor

MAX_CREDENTIAL_BYTES = 64 * 1024


class Credentials:
    """Reads every key of the mounted Secret and registers each value with the redactor,
    so even keys an adapter doesn't use never leak."""

    def __init__(self, directory: Path, redact: Redactor):
        self._dir = directory
        self._values: dict[str, str] = {}
        self._unreadable: dict[str, str] = {}
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                # A Secret volume also holds ..data and ..<timestamp> entries.
                if path.name.startswith(".") or not path.is_file():
                    continue
                try:
                    raw = path.read_bytes()[:MAX_CREDENTIAL_BYTES]
                except OSError as exc:
                    self._unreadable[path.name] = exc.strerror or type(exc).__name__
                    continue
                value = raw.decode("utf-8", errors="replace").strip()
                redact.add(value)
                self._values[path.name] = value

    def keys(self) -> list[str]:
        return sorted(self._values)

    def get(self, key: str) -> str | None:
        value = self._values.get(key)
        return value or None

    def require(self, key: str) -> str:
        value = self.get(key)
        if value is None and key in self._unreadable:
            raise fail(
                ErrorClass.AUTH,
                f"cannot read the credentials Secret's key {key!r} in {self._dir}: {self._unreadable[key]} "
                "(check the pod's user and the Secret volume's defaultMode)",
            )
        if value is None and not self._values and not self._unreadable:
            raise fail(
                ErrorClass.AUTH,
                f"no credentials are mounted at {self._dir}: the PlatformAdapter's credentialsSecretRef names "
                "a Secret that is missing or empty",
            )
        if value is None:
            raise fail(
                ErrorClass.AUTH,
                f"the credentials Secret has no key {key!r} (mounted at {self._dir}; keys present: "
                f"{', '.join(self.keys()) or 'none'})",
            )
        return value

    def require_url(self, key: str) -> str:
        """A Secret key holding a URL (a webhook URL is itself a credential)."""
        value = self.require(key)
        if not value.startswith(("https://", "http://")):
            raise fail(ErrorClass.AUTH, f"the credentials Secret's key {key!r} is not an http(s) URL")
        return value
