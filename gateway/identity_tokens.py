"""Identity tokens for the product: who is logged in, as a short-lived JWT signed by the
gateway, verifiable by the product with the keys at `/.well-known/jwks.json`.

The keys live in the database, shared by every replica. The newest key signs; older ones
stay published until `idgate keys rotate` has superseded them for longer than any token
lives. A process reads the keys at most every `_KEYS_SECONDS`; the first token ever made
creates the first key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sso import tokens
from storage.key_store import KeyStore, SigningKey

_KEYS_SECONDS = 60.0


class TokenIssuer:
    def __init__(self, keys: KeyStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.keys = keys
        self.clock = clock
        self._loaded: tuple[float, list[SigningKey]] | None = None

    async def _keys(self, now: datetime) -> list[SigningKey]:
        if self._loaded is None or self.clock() - self._loaded[0] > _KEYS_SECONDS:
            found = await self.keys.published()
            if not found:
                kid, pem = tokens.new_key()
                await self.keys.add(SigningKey(kid, pem, now))
                found = await self.keys.published()
            self._loaded = (self.clock(), found)
        return self._loaded[1]

    async def sign(self, claims: dict[str, Any], now: datetime) -> str:
        newest = (await self._keys(now))[0]
        return tokens.sign(newest.kid, newest.private_pem, claims)

    async def jwks(self, now: datetime) -> dict[str, Any]:
        return tokens.jwks([(k.kid, k.private_pem) for k in await self._keys(now)])
