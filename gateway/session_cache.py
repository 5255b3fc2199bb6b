"""Checked sessions kept in memory for a moment, so that `/auth/verify` need not ask the
database on every request, without answering from a stale copy.

A copy is dropped as soon as the database says something it shows may have changed: the
triggers of migration 0013 send `u:<user id>` (the user's sessions, row, grants or groups)
or `t:<tenant id>` (a group renamed, the rules' default role, many users at once) on the
channel `idgate_auth` when the change commits, and every process listens
(`storage.notifications`). A copy is also kept no longer than `ttl` seconds, is not used
past its session's idle or absolute limit, and is not used once the session's last-seen
time is due to be written again (the database is asked, which writes it). While the
listening connection is down, nothing is kept.

A check that reads the database while a notification about the same user or tenant
arrives does not keep what it read: notifications are numbered, and a copy is kept only if
none about it (and no reset) came after the read started.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from storage.session_store import SessionStore, SessionUser

CHANNEL = "idgate_auth"


@dataclass(frozen=True)
class _Copy:
    user: SessionUser
    kept_at: float  # monotonic


class SessionCache:
    def __init__(
        self,
        store: SessionStore,
        ttl: float,
        *,
        max_entries: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.max_entries = max_entries
        self.monotonic = monotonic
        self.listening = False  # a LISTEN is in place (`listener_up` / `listener_down`)
        self._copies: dict[bytes, _Copy] = {}
        self._by_user: dict[uuid.UUID, set[bytes]] = {}
        self._seq = 0  # notifications and resets received
        self._reset_seq = 0
        self._user_seq: dict[uuid.UUID, int] = {}
        self._tenant_seq: dict[uuid.UUID, int] = {}

    async def check(
        self, secret_hash: bytes, now: datetime, touch_after: float
    ) -> SessionUser | None:
        """As `SessionStore.check`, from a copy when a fresh one is at hand."""
        copy = self._copies.get(secret_hash)
        if copy is not None:
            fresh = self.monotonic() - copy.kept_at < self.ttl
            user = copy.user
            untouched = (now - user.last_seen_at).total_seconds() <= touch_after
            if self.listening and fresh and untouched and user.live_at(now):
                return user
            self._drop(secret_hash)
        started = self._seq
        found = await self.store.check(secret_hash, now, touch_after)
        if found is not None and self._may_keep(found, started):
            self._keep(secret_hash, found)
        return found

    async def revoke(self, secret_hash: bytes, now: datetime) -> bool:
        """Log a session out (every process hears of it; this one forgets it now)."""
        self._drop(secret_hash)
        revoked = await self.store.revoke(secret_hash, now)
        self._drop(secret_hash)
        return revoked

    def _may_keep(self, user: SessionUser, started: int) -> bool:
        return (
            self.ttl > 0
            and self.listening
            and self._reset_seq <= started
            and self._user_seq.get(user.user_id, 0) <= started
            and self._tenant_seq.get(user.tenant_id, 0) <= started
        )

    def _keep(self, secret_hash: bytes, user: SessionUser) -> None:
        if len(self._copies) >= self.max_entries:
            self.reset()
        self._copies[secret_hash] = _Copy(user, self.monotonic())
        self._by_user.setdefault(user.user_id, set()).add(secret_hash)

    def _drop(self, secret_hash: bytes) -> None:
        copy = self._copies.pop(secret_hash, None)
        if copy is not None:
            hashes = self._by_user.get(copy.user.user_id)
            if hashes is not None:
                hashes.discard(secret_hash)
                if not hashes:
                    del self._by_user[copy.user.user_id]

    def notified(self, payload: str) -> None:
        """A notification on `CHANNEL`: drop the copies it may concern."""
        kind, _, value = payload.partition(":")
        try:
            target = uuid.UUID(value)
        except ValueError:
            self.reset()
            return
        self._seq += 1
        if kind == "u":
            self._user_seq[target] = self._seq
            for secret_hash in list(self._by_user.get(target, ())):
                self._drop(secret_hash)
        elif kind == "t":
            self._tenant_seq[target] = self._seq
            for secret_hash, copy in list(self._copies.items()):
                if copy.user.tenant_id == target:
                    self._drop(secret_hash)
        else:
            self.reset()
            return
        if len(self._user_seq) > self.max_entries:
            self.reset()  # forget old numbers without ever trusting a stale read

    def listener_up(self) -> None:
        # A read that started while nobody listened may have missed a notification.
        self.reset()
        self.listening = True

    def listener_down(self) -> None:
        """Notifications may be missed from now on: keep nothing until `listener_up`."""
        self.listening = False
        self.reset()

    def reset(self) -> None:
        """Drop everything (notifications may have been missed, or the cache is full)."""
        self._seq += 1
        self._reset_seq = self._seq
        self._copies.clear()
        self._by_user.clear()
        self._user_seq.clear()
        self._tenant_seq.clear()

    def __len__(self) -> int:
        return len(self._copies)
