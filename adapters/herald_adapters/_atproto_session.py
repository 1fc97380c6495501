"""atproto (Bluesky) sessions that outlive one Job: reuse, refresh, and log in only when needed.

A PDS allows 30 ``createSession`` calls per 5 minutes and 300 a day per account, so the
session (access and refresh JWTs, the account's DID and PDS) is kept in a ``TokenStore``
(``_token_store``: the adapter's own Secret, or a file) between attempts:

1. Read the store. A saved session of this account whose access JWT (its ``exp`` claim,
   read without verifying) is valid for longer than ``margin`` is used as it is.
2. Otherwise take the *lease* (``blueskySessionLease``, written at the version just read):
   of two attempts racing, one wins; the other waits for its saved session and never logs
   in itself.
3. The holder sends the saved refresh JWT to ``refreshSession`` (the PDS rotates it: the old
   one works for a grace period at most), and when there is none, it has expired or the PDS
   refuses it, logs in (``createSession``). It saves the new session and drops the lease.

A lost refresh is not fatal here (unlike X): the next attempt logs in. Without a writable
store every attempt logs in, as before. Tokens never reach logs or results: each is added
to the redactor as soon as it is read or received.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from ._oauth2 import Lease, LeaseWait, default_holder, deferred_sigterm
from ._redact import Redactor
from ._token_store import Conflict, Snapshot, StoreError, TokenStore

log = logging.getLogger("herald_adapters")

# One JSON value, not one key per field: every value of the Secret is redacted wherever it
# appears, and the DID alone must stay readable in post URLs.
SESSION = "blueskySession"
LEASE = "blueskySessionLease"
SESSION_KEYS = (SESSION, LEASE)


@dataclass(frozen=True)
class Session:
    did: str
    pds: str  # the account's PDS: where its repository lives
    access_jwt: str
    refresh_jwt: str | None
    fresh: bool = True  # obtained by this attempt (login or refresh), not read from the store

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_jwt}"}


class _Saved(BaseModel):
    """The stored form of a session (JSON, with atproto's camelCase names)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    account: str
    did: str
    pds: str
    access_jwt: str
    refresh_jwt: str | None = None

    def dumps(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class RefreshRefused(Exception):
    """The PDS refused the refresh JWT (expired, revoked, already rotated): log in instead."""


def account_fingerprint(endpoint: str, identifier: str, password: str) -> str:
    """Which login a saved session belongs to: a changed identifier, app password or
    endpoint in the Secret makes the saved session someone else's."""
    seed = "\n".join((endpoint.rstrip("/"), identifier.lower(), password))
    return hashlib.sha256(b"herald-bluesky-session:" + seed.encode()).hexdigest()[:32]


def jwt_expiry(token: str | None) -> datetime | None:
    """The ``exp`` claim of a JWT, read without verifying the signature (None if absent)."""
    if not token or token.count(".") != 2:
        return None
    segment = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        exp = claims.get("exp") if isinstance(claims, dict) else None
        return datetime.fromtimestamp(float(exp), tz=UTC) if isinstance(exp, (int, float)) else None
    except (ValueError, binascii.Error, OverflowError, OSError):
        return None


class SessionManager:
    """Hands out a session: the saved one, a refreshed one, or a new login.

    ``login()`` and ``refresh(session)`` call the PDS and return a fresh ``Session``;
    ``refresh`` raises ``RefreshRefused`` when the refresh JWT is refused, and both raise
    ``AdapterError`` for anything else (network, rate limit, wrong app password)."""

    def __init__(
        self,
        store: TokenStore | None,
        *,
        account: str,
        login: Callable[[], Session],
        refresh: Callable[[Session], Session],
        redact: Redactor,
        clock: Callable[[], datetime],
        lease_seconds: float = 30.0,
        margin_seconds: float = 900.0,
        holder: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.store = store if store is not None and store.writable else None
        self.account = account
        self._login = login
        self._refresh = refresh
        self.redact = redact
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.margin = timedelta(seconds=margin_seconds)
        self.holder = holder or default_holder()
        self._sleep = sleep

    # --- public -------------------------------------------------------------

    def session(self) -> Session:
        return self._obtain(rejected=None)

    def after_rejection(self, rejected: Session) -> Session:
        """The PDS refused ``rejected``'s access JWT: a newer session, refreshed or new."""
        return self._obtain(rejected=rejected)

    # --- renewing: refresh, else log in ---------------------------------------

    def _renew(self, saved: Session | None) -> Session:
        """A fresh session: ``saved``'s refresh JWT if it may still work, else a login."""
        refresh = saved.refresh_jwt if saved is not None else None
        expires = jwt_expiry(refresh)
        if saved is not None and refresh and (expires is None or expires > self.clock()):
            try:
                session = self._refresh(saved)
                log.info("bluesky: refreshed the session")
                return self._remember(session)
            except RefreshRefused as exc:
                log.info("bluesky: the PDS refused the saved refresh token (%s); logging in", exc)
        return self._remember(self._login())

    def _remember(self, session: Session) -> Session:
        self.redact.add(session.access_jwt)
        self.redact.add(session.refresh_jwt)
        return session

    # --- with a store: the lease protocol -------------------------------------

    def _saved(self, values: Mapping[str, str]) -> Session | None:
        raw = values.get(SESSION)
        if not raw:
            return None
        try:
            saved = _Saved.model_validate_json(raw)
        except ValidationError:
            log.warning("bluesky: the saved session is unreadable; ignoring it")
            return None
        self.redact.add(saved.access_jwt)
        self.redact.add(saved.refresh_jwt)
        if saved.account != self.account:
            return None  # another login's (the Secret's identifier or app password changed)
        return Session(saved.did, saved.pds, saved.access_jwt, saved.refresh_jwt, fresh=False)

    def _usable(self, saved: Session | None, rejected: Session | None) -> bool:
        if saved is None or (rejected is not None and saved.access_jwt == rejected.access_jwt):
            return False
        expires = jwt_expiry(saved.access_jwt)
        return expires is None or expires - self.clock() > self.margin

    def _obtain(self, rejected: Session | None) -> Session:
        if self.store is None:  # nowhere to keep a session: every attempt logs in
            return self._renew(rejected)
        wait = LeaseWait(self.holder, self.lease_seconds, "renewing the bluesky session", self._sleep)
        waited_for: str | None = None
        while True:
            try:
                snapshot = self.store.read()
            except StoreError as exc:
                return self._without_store(exc, rejected)
            saved = self._saved(snapshot.values)
            if self._usable(saved, rejected):
                assert saved is not None
                if waited_for:
                    log.info("bluesky: using the session %s saved", waited_for)
                return saved
            now = self.clock()
            lease = Lease.parse(snapshot.values.get(LEASE))
            if wait.held_by_another(lease, now):
                assert lease is not None
                if waited_for != lease.holder:
                    log.info("bluesky: another attempt (%s) is renewing the session; waiting for it", lease.holder)
                    waited_for = lease.holder
                continue
            mine = Lease(self.holder, now + timedelta(seconds=self.lease_seconds))
            try:
                held = self.store.write(snapshot.version, {LEASE: mine.dumps()})
            except Conflict:
                continue
            except StoreError as exc:
                return self._without_store(exc, rejected)
            return self._renew_holding(self.store, held, saved or rejected, mine)

    def _without_store(self, error: StoreError, rejected: Session | None) -> Session:
        log.warning("bluesky: cannot use the session store (%s); logging in without saving the session", error)
        return self._renew(rejected)

    def _renew_holding(self, store: TokenStore, held: Snapshot, saved: Session | None, lease: Lease) -> Session:
        with deferred_sigterm():
            try:
                session = self._renew(saved)
            except BaseException:
                with contextlib.suppress(Conflict, StoreError):
                    store.write(held.version, {LEASE: None})  # let the next attempt try at once
                raise
            stored = _Saved(
                account=self.account,
                did=session.did,
                pds=session.pds,
                access_jwt=session.access_jwt,
                refresh_jwt=session.refresh_jwt,
            )
            if not self._save(store, held, {SESSION: stored.dumps(), LEASE: None}, lease):
                log.warning("bluesky: the new session could not be saved; the next attempt logs in again")
        return session

    def _save(self, store: TokenStore, held: Snapshot, changes: dict[str, str | None], lease: Lease) -> bool:
        """Write ``changes`` over the lease-holding version; re-read on conflicts (someone edited
        the Secret) until the lease would end."""
        version = held.version
        delay = 0.05
        give_up = time.monotonic() + self.lease_seconds
        while True:
            try:
                store.write(version, changes)
                return True
            except (Conflict, StoreError) as exc:
                last = exc
            if self.clock() >= lease.until or time.monotonic() >= give_up:
                log.warning("bluesky: cannot save to the session store: %s", last)
                return False
            self._sleep(delay)
            delay = min(delay * 2, 1.0)
            with contextlib.suppress(StoreError):
                snapshot = store.read()
                current = Lease.parse(snapshot.values.get(LEASE))
                if current is not None and current.holder != self.holder:
                    log.warning("bluesky: the session lease was taken over; not saving over it")
                    return False
                version = snapshot.version
