"""The per-process token cache: bounded, expiring, and what a revoked token can still do."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import create_app, utc_now
from gateway.settings import Settings
from gateway.token_cache import TokenCache
from storage.scim_store import Principal, ScimStore
from tests.conftest import make_tenant


def _principal(n: int) -> Principal:
    return Principal(f"tok_{n}", uuid.uuid4(), "acme")


def test_entries_expire() -> None:
    now = [100.0]
    cache = TokenCache(ttl=5, clock=lambda: now[0])
    principal = _principal(1)
    cache.put(b"h", "acme", principal)
    assert cache.get(b"h", "acme") is principal
    assert cache.get(b"h", "other") is None
    now[0] = 105.0
    assert cache.get(b"h", "acme") is None


def test_size_is_bounded_and_zero_ttl_disables() -> None:
    cache = TokenCache(ttl=5, max_entries=3)
    for n in range(5):
        cache.put(bytes([n]), "acme", _principal(n))
    assert [cache.get(bytes([n]), "acme") is not None for n in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    off = TokenCache(ttl=0)
    off.put(b"h", "acme", _principal(1))
    assert off.get(b"h", "acme") is None


async def test_revocation_takes_effect_after_the_cache_time(
    aiohttp_client: Any, settings: Settings, store: ScimStore
) -> None:
    cached = settings.model_copy(update={"token_cache_seconds": 3600})
    client: TestClient[Any, Any] = await aiohttp_client(create_app(cached))
    access = await make_tenant(store, "cache")
    assert (await client.get(access.base + "/Users", headers=access.headers)).status == 200
    await store.revoke_token(access.tenant, access.token_id, utc_now())
    # Within the cache time this process still trusts the token it checked ...
    assert (await client.get(access.base + "/Users", headers=access.headers)).status == 200
    # ... while a process that never saw it refuses it at once.
    fresh: TestClient[Any, Any] = await aiohttp_client(create_app(cached))
    assert (await fresh.get(access.base + "/Users", headers=access.headers)).status == 401
