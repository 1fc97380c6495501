"""OAuth 2.0 access tokens from a rotating refresh token, shared by every attempt's pod.

X rotates the refresh token on every use: the old one stops working the moment X answers.
So a refresh must (1) happen in one pod at a time, and (2) save the new refresh token
before anything else, or the account is locked out until someone re-authorizes the app.

The protocol, over a ``TokenStore`` with optimistic concurrency (``_token_store``):

1. Read the store. A saved access token that is valid for longer than ``margin`` is used
   as it is: most attempts never refresh.
2. Otherwise take the refresh *lease*: write ``tokenRefreshLease`` (holder, expiry) at the
   version just read. Two pods racing get one success and one ``Conflict``; the loser
   re-reads and waits, polling, while the lease is live. When the winner has saved, the
   loser finds a valid access token and uses it: it never sends the refresh token.
3. The lease holder calls the token endpoint with the refresh token it read, then writes the
   new access token, refresh token and expiry (and drops the lease), retrying conflicts and
   store errors until the lease would expire, and only then uses the access token.
   SIGTERM is deferred while it does this, so a stopped pod finishes saving first.
4. If the platform refuses the refresh token, and the store still holds that same token,
   the refresh token is dead. The adapter records its fingerprint (``refreshTokenRefused``)
   and fails ``auth`` asking for re-authorization; later attempts see the fingerprint and
   fail at once without writing (a write would change the Secret's version, which Herald
   takes as "the Secret changed, retry with it").

What cannot be recovered: a pod killed (SIGKILL, node loss) after the platform rotated and
before the store write. The lease then expires, the next attempt takes it over, its
refresh is refused, and it fails ``auth`` saying an earlier refresh was lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ._contract import AdapterError, ErrorClass, fail, rfc3339
from ._redact import Redactor
from ._token_store import Conflict, Snapshot, StoreError, TokenStore

log = logging.getLogger("herald_adapters")

ACCESS_TOKEN = "accessToken"
REFRESH_TOKEN = "refreshToken"
EXPIRES_AT = "accessTokenExpiresAt"
LEASE = "tokenRefreshLease"
REFUSED = "refreshTokenRefused"
TOKEN_KEYS = (ACCESS_TOKEN, REFRESH_TOKEN, EXPIRES_AT, LEASE, REFUSED)


@dataclass(frozen=True)
class Refreshed:
    access_token: str
    refresh_token: str | None
    expires_in: float | None


class RefreshRefused(Exception):
    """The token endpoint refused the refresh token itself (invalid, expired, already used)."""


@dataclass(frozen=True)
class Lease:
    holder: str
    until: datetime

    def dumps(self) -> str:
        return json.dumps({"holder": self.holder, "until": rfc3339(self.until)}, separators=(",", ":"))

    @staticmethod
    def parse(raw: str | None) -> Lease | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return Lease(str(data["holder"]), _parse_time(data["until"]) or datetime.min.replace(tzinfo=UTC))
        except (ValueError, KeyError, TypeError):
            return None


class LeaseWait:
    """Waiting for another attempt's live lease (X's token refresh, Bluesky's session renewal):
    poll with a doubling delay up to 1 s, and give up as ``server_error`` (retried later) once
    the lease outlives its own length by 5 s."""

    def __init__(self, holder: str, lease_seconds: float, doing: str, sleep: Callable[[float], None]):
        self.holder = holder
        self.doing = doing  # e.g. "refreshing the x token"
        self._sleep = sleep
        self._deadline = time.monotonic() + lease_seconds + 5.0
        self._delay = 0.05

    def held_by_another(self, lease: Lease | None, now: datetime) -> bool:
        """Whether ``lease`` is someone else's and live; if so, waits once (or gives up)."""
        if lease is None or lease.holder == self.holder or lease.until <= now:
            return False
        if time.monotonic() > self._deadline:
            raise fail(
                ErrorClass.SERVER_ERROR,
                f"another attempt ({lease.holder}) has been {self.doing} for too long",
                retry_after_seconds=max(1.0, (lease.until - now).total_seconds()),
            )
        self._sleep(self._delay)
        self._delay = min(self._delay * 2, 1.0)
        return True


def fingerprint(token: str) -> str:
    return hashlib.sha256(b"herald-refresh-token:" + token.encode()).hexdigest()[:32]


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def default_holder() -> str:
    return f"{os.environ.get('HOSTNAME', 'local')}/{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def deferred_sigterm() -> Iterator[None]:
    """Hold SIGTERM until the block ends (main thread only; elsewhere signals can't arrive)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if received:
            log.warning("SIGTERM arrived while saving refreshed tokens; handling it now")
            if callable(previous):
                previous(signal.SIGTERM, None)
            elif previous != signal.SIG_IGN:
                os.kill(os.getpid(), signal.SIGTERM)


class TokenManager:
    """Hands out a valid access token, refreshing through the lease protocol when needed.

    ``refresh(refresh_token)`` calls the platform's token endpoint and returns ``Refreshed``,
    raises ``RefreshRefused`` when the refresh token itself is refused, or an
    ``AdapterError`` (network, server_error, rate_limited, auth) otherwise."""

    def __init__(
        self,
        store: TokenStore,
        refresh: Callable[[str], Refreshed],
        *,
        platform: str,
        redact: Redactor,
        clock: Callable[[], datetime],
        lease_seconds: float = 30.0,
        margin_seconds: float = 300.0,
        holder: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        reauthorize: str = "re-authorize the app for the account and put the new refreshToken in the Secret",
    ):
        self.store = store
        self._refresh = refresh
        self.platform = platform
        self.redact = redact
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.margin = timedelta(seconds=margin_seconds)
        self.holder = holder or default_holder()
        self._sleep = sleep
        self._reauthorize = reauthorize
        self.refreshed = False  # this process refreshed (for tests and messages)

    # --- public -------------------------------------------------------------

    def access_token(self) -> str:
        return self._obtain(rejected=None)

    def after_rejection(self, rejected: str) -> str:
        """The platform refused ``rejected`` (HTTP 401): a newer token, by refresh if need be."""
        return self._obtain(rejected=rejected)

    # --- the protocol ---------------------------------------------------------

    def _read(self) -> Snapshot:
        try:
            snapshot = self.store.read()
        except StoreError as exc:
            raise fail(ErrorClass.NETWORK, f"cannot read the {self.platform} tokens: {exc}") from None
        for key in (ACCESS_TOKEN, REFRESH_TOKEN):
            self.redact.add(snapshot.values.get(key))
        return snapshot

    def _usable(self, values, rejected: str | None) -> str | None:
        access = values.get(ACCESS_TOKEN)
        if not access or access == rejected:
            return None
        expires = _parse_time(values.get(EXPIRES_AT))
        if expires is not None and expires - self.clock() <= self.margin:
            return None
        return access

    def _obtain(self, rejected: str | None) -> str:
        wait = LeaseWait(self.holder, self.lease_seconds, f"refreshing the {self.platform} token", self._sleep)
        while True:
            snapshot = self._read()
            values = snapshot.values
            if (access := self._usable(values, rejected)) is not None:
                return access
            refresh = values.get(REFRESH_TOKEN)
            if not refresh:
                why = "was refused" if rejected else "has expired or is missing"
                raise fail(
                    ErrorClass.AUTH,
                    f"the {self.platform} access token {why} and the Secret has no refreshToken: {self._reauthorize}",
                )
            if values.get(REFUSED) == fingerprint(refresh):
                raise fail(
                    ErrorClass.AUTH,
                    f"{self.platform} refused this refreshToken in an earlier attempt: {self._reauthorize}",
                )
            if not self.store.writable:
                raise fail(
                    ErrorClass.AUTH,
                    f"the {self.platform} access token needs a refresh, but {self.platform} rotates refresh tokens and "
                    f"there is nowhere to save the new one ({self.store.description}): set up token write-back "
                    "(tokenStoreSecret and a ServiceAccount, docs/adapters-x-linkedin.md), or put a fresh accessToken "
                    "and accessTokenExpiresAt in the Secret",
                )
            now = self.clock()
            lease = Lease.parse(values.get(LEASE))
            if wait.held_by_another(lease, now):
                continue
            took_over = lease.holder if lease is not None and lease.holder != self.holder else None
            mine = Lease(self.holder, now + timedelta(seconds=self.lease_seconds))
            try:
                held = self.store.write(snapshot.version, {LEASE: mine.dumps()})
            except Conflict:
                continue
            except StoreError as exc:
                raise fail(ErrorClass.NETWORK, f"cannot take the {self.platform} token refresh lease: {exc}") from None
            result = self._refresh_holding(held, refresh, mine, took_over)
            if result is not None:
                return result
            # The store had moved on (someone else rotated): decide again.

    def _refresh_holding(self, held: Snapshot, refresh: str, lease: Lease, took_over: str | None) -> str | None:
        with deferred_sigterm():
            try:
                new = self._refresh(refresh)
            except RefreshRefused as exc:
                return self._refused(refresh, str(exc), took_over)
            except AdapterError as exc:
                # An HTTP answer means the token was not rotated: let the next attempt try at once.
                # A lost answer may hide a rotation: keep the lease, so whoever takes it over after
                # it expires knows an earlier refresh may have been lost.
                if exc.result.error_class is not ErrorClass.NETWORK:
                    self._release(held)
                raise
            for token in (new.access_token, new.refresh_token):
                self.redact.add(token)
            changes: dict[str, str | None] = {
                ACCESS_TOKEN: new.access_token,
                EXPIRES_AT: rfc3339(self.clock() + timedelta(seconds=new.expires_in)) if new.expires_in else None,
                LEASE: None,
                REFUSED: None,
            }
            if new.refresh_token:
                changes[REFRESH_TOKEN] = new.refresh_token
            self._persist(held, changes, lease)
        self.refreshed = True
        log.info("%s: refreshed the access token and saved the new tokens", self.platform)
        return new.access_token

    def _persist(self, held: Snapshot, changes: dict[str, str | None], lease: Lease) -> None:
        """Save the new tokens before they are used; keep trying until the lease would end."""
        version = held.version
        delay = 0.05
        last_error = ""
        give_up = time.monotonic() + self.lease_seconds
        while True:
            try:
                self.store.write(version, changes)
                return
            except Conflict:
                last_error = "the store kept changing"
            except StoreError as exc:
                last_error = str(exc)
            if self.clock() >= lease.until or time.monotonic() >= give_up:
                raise fail(
                    ErrorClass.AUTH,
                    f"{self.platform} issued a new refresh token but it could not be saved ({last_error}); the one in "
                    f"the Secret no longer works: {self._reauthorize}",
                )
            self._sleep(delay)
            delay = min(delay * 2, 1.0)
            try:
                version = self.store.read().version
            except StoreError as exc:
                last_error = str(exc)

    def _refused(self, refresh: str, detail: str, took_over: str | None) -> str | None:
        try:
            latest = self.store.read()
        except StoreError:
            latest = None
        if latest is not None and latest.values.get(REFRESH_TOKEN) not in (None, refresh):
            return None  # another pod rotated it meanwhile: use theirs
        if latest is not None:
            with contextlib.suppress(Conflict, StoreError):
                self.store.write(latest.version, {LEASE: None, REFUSED: fingerprint(refresh)})
        lost = (
            f" An earlier attempt ({took_over}) started a refresh and never saved its result, so "
            f"{self.platform} has most likely rotated the token already."
            if took_over
            else ""
        )
        raise fail(
            ErrorClass.AUTH,
            f"{self.platform} refused the refresh token ({detail}).{lost} Nothing can refresh it now: "
            f"{self._reauthorize}",
        )

    def _release(self, held: Snapshot) -> None:
        with contextlib.suppress(Conflict, StoreError):
            self.store.write(held.version, {LEASE: None})
