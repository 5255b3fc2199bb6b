"""A short-lived, bounded, per-process cache of authenticated SCIM tokens.

It saves one database round trip per request. A revoked token keeps working in a process
for at most `ttl` seconds (setting `token_cache_seconds`; 0 disables the cache). Only
successful lookups are cached, keyed by the token's hash, never by the secret.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from storage.scim_store import Principal


class TokenCache:
    def __init__(
        self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[tuple[bytes, str], tuple[float, Principal]] = OrderedDict()

    def get(self, secret_hash: bytes, tenant_slug: str) -> Principal | None:
        key = (secret_hash, tenant_slug)
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, principal = entry
        if self.clock() >= expires:
            del self._entries[key]
            return None
        return principal

    def put(self, secret_hash: bytes, tenant_slug: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        key = (secret_hash, tenant_slug)
        self._entries[key] = (self.clock() + self.ttl, principal)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
