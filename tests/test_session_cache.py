"""The in-memory copies of checked sessions behind `/auth/verify` (`gateway.session_cache`):
used while fresh, dropped when the database notifies a change, never kept from a read a
notification overtook; and across two gateway processes on one Postgres, a deactivation, a
logout or a role taken back reaches the other process's next checks within a second."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import create_app
from gateway.auth_api import SESSION_COOKIE
from gateway.keys import ACCESS, SESSION_CACHE
from gateway.session_cache import SessionCache
from gateway.settings import Settings
from storage.admin_store import AdminStore
from storage.scim_store import ScimStore
from storage.session_store import SessionUser
from tests.conftest import Scim, TenantAccess, user
from tests.test_auth_verify import _session

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
USER, OTHER_USER = uuid.uuid4(), uuid.uuid4()
TENANT = uuid.uuid4()
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _user(user_id: uuid.UUID = USER, **changes: Any) -> SessionUser:
    fields: dict[str, Any] = {
        "user_id": user_id,
        "tenant": "acme",
        "user_name": "jane",
        "email": None,
        "groups": (),
        "roles": ("readonly",),
        "project_roles": (),
        "tenant_id": TENANT,
        "last_seen_at": NOW,
        "idle_seconds": 3600,
        "expires_at": NOW + timedelta(hours=12),
        "started_at": NOW,
    }
    return SessionUser(**(fields | changes))


class FakeStore:
    """Answers like `SessionStore.check`, counting the calls; `during` runs mid-read."""

    def __init__(self) -> None:
        self.answers: dict[bytes, SessionUser] = {b"a": _user(), b"b": _user(OTHER_USER)}
        self.calls = 0
        self.during: Any = None

    async def check(self, secret_hash: bytes, now: datetime, touch: float) -> SessionUser | None:
        self.calls += 1
        if self.during is not None:
            self.during()
        return self.answers.get(secret_hash)

    async def revoke(self, secret_hash: bytes, now: datetime) -> bool:
        return self.answers.pop(secret_hash, None) is not None


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _cache(ttl: float = 5.0) -> tuple[SessionCache, FakeStore, Clock]:
    store, clock = FakeStore(), Clock()
    cache = SessionCache(store, ttl, monotonic=clock)  # type: ignore[arg-type]
    cache.listener_up()
    return cache, store, clock


async def test_a_fresh_copy_answers_without_the_database() -> None:
    cache, store, clock = _cache()
    assert await cache.check(b"a", NOW, 60) == _user()
    assert await cache.check(b"a", NOW + timedelta(seconds=1), 60) == _user()
    assert store.calls == 1
    clock.t += 5  # past the ttl
    await cache.check(b"a", NOW, 60)
    assert store.calls == 2
    assert await cache.check(b"unknown", NOW, 60) is None
    assert await cache.check(b"unknown", NOW, 60) is None
    assert store.calls == 4  # a miss is never kept


async def test_limits_of_the_session_and_its_touch_send_back_to_the_database() -> None:
    cache, store, _ = _cache()
    await cache.check(b"a", NOW, 60)
    await cache.check(b"a", NOW + timedelta(seconds=61), 60)  # last-seen due to be written
    assert store.calls == 2
    store.answers[b"a"] = _user(expires_at=NOW + timedelta(seconds=1))
    cache.notified(f"u:{USER}")
    await cache.check(b"a", NOW, 60)
    await cache.check(b"a", NOW + timedelta(seconds=2), 60)  # past its lifetime
    assert store.calls == 4


async def test_notifications_drop_the_copies_they_concern() -> None:
    cache, store, _ = _cache()
    await cache.check(b"a", NOW, 60)
    await cache.check(b"b", NOW, 60)
    cache.notified(f"u:{OTHER_USER}")
    assert len(cache) == 1
    await cache.check(b"a", NOW, 60)
    assert store.calls == 2  # a's copy is still used
    cache.notified(f"t:{TENANT}")
    assert len(cache) == 0
    await cache.check(b"a", NOW, 60)
    cache.notified("garbage")  # not understood: everything goes
    assert len(cache) == 0


async def test_a_read_overtaken_by_a_notification_is_not_kept() -> None:
    cache, store, _ = _cache()
    store.during = lambda: cache.notified(f"u:{USER}")
    await cache.check(b"a", NOW, 60)
    assert len(cache) == 0
    store.during = lambda: cache.notified(f"t:{TENANT}")
    await cache.check(b"a", NOW, 60)
    assert len(cache) == 0
    store.during = lambda: cache.notified(f"u:{OTHER_USER}")  # about someone else
    await cache.check(b"a", NOW, 60)
    assert len(cache) == 1


async def test_nothing_is_kept_while_not_listening_or_when_off() -> None:
    cache, store, _ = _cache()
    await cache.check(b"a", NOW, 60)
    cache.listener_down()
    assert len(cache) == 0
    await cache.check(b"a", NOW, 60)
    await cache.check(b"a", NOW, 60)
    assert store.calls == 3
    off, off_store, _ = _cache(ttl=0)
    await off.check(b"a", NOW, 60)
    await off.check(b"a", NOW, 60)
    assert off_store.calls == 2


async def test_a_full_cache_starts_again_and_logout_forgets_at_once() -> None:
    store, clock = FakeStore(), Clock()
    cache = SessionCache(store, 5, max_entries=1, monotonic=clock)  # type: ignore[arg-type]
    cache.listener_up()
    await cache.check(b"a", NOW, 60)
    await cache.check(b"b", NOW, 60)
    assert len(cache) == 1
    assert await cache.revoke(b"b", NOW) is True
    assert len(cache) == 0
    assert await cache.check(b"b", NOW, 60) is None


# --- two gateway processes on one database -------------------------------------------------


async def _until(check: Any, limit: float = 1.0) -> float:
    """Seconds until `check()` holds; fails after `limit`."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < limit, "not seen within the limit"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def test_changes_reach_another_process_within_a_second(
    aiohttp_client: Any,
    settings: Settings,
    engine: AsyncEngine,
    tenant: TenantAccess,
    scim: Scim,
) -> None:
    first = await _cached_app(aiohttp_client, settings)
    second = await _cached_app(aiohttp_client, settings)
    _, kim, _ = await scim.post("/Users", user("kim@corp.example"))
    secret = await _session(engine, tenant, kim["id"])
    cookie = {"Cookie": f"{SESSION_COOKIE}={secret}"}

    assert await _roles_are(second, cookie, "readonly")
    assert len(second.app[SESSION_CACHE]) == 1  # kept: the next checks need no database

    # A role given by hand shows in the other process's next checks.
    await first.app[ACCESS].store.grant_manual(
        tenant.tenant.id, uuid.UUID(kim["id"]), "admin", None, NOW, "test"
    )
    assert await _until(lambda: _roles_are(second, cookie, "admin")) < 1.0
    # SCIM deactivation: out of the session in the other process.
    off = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    assert (await scim.request("PATCH", f"/Users/{kim['id']}", off))[0] == 200
    waited = await _until(lambda: _status_is(second, cookie, 401))
    assert waited < 1.0

    on = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": True}}]}
    await scim.request("PATCH", f"/Users/{kim['id']}", on)
    # Reactivation does not bring back the sessions the deactivation revoked.
    assert await _status_is(second, cookie, 401)
    cookie = {"Cookie": f"{SESSION_COOKIE}={await _session(engine, tenant, kim['id'])}"}
    assert await _status_is(second, cookie, 200)
    # Logout through the first process ends the session in the second.
    assert (await first.post("/auth/logout", headers=cookie)).status == 204
    await _until(lambda: _status_is(second, cookie, 401))


async def _cached_app(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    """A process of its own that keeps checked sessions 30 s, once it listens for changes
    (connecting may be slow)."""
    cached = settings.model_copy(update={"session_cache_seconds": 30.0})
    client: TestClient[Any, Any] = await aiohttp_client(create_app(cached))
    await _until(lambda: _listening(client), limit=10.0)
    return client


async def _status_is(client: TestClient[Any, Any], cookie: dict[str, str], wanted: int) -> bool:
    return (await client.get("/auth/verify", headers=cookie)).status == wanted


async def _roles_are(client: TestClient[Any, Any], cookie: dict[str, str], roles: str) -> bool:
    return (await client.get("/auth/verify", headers=cookie)).headers.get("X-Idgate-Roles") == roles


async def _listening(client: TestClient[Any, Any]) -> bool:
    return client.app[SESSION_CACHE].listening


async def test_an_idle_limit_set_in_one_process_ends_the_session_in_another(
    aiohttp_client: Any,
    settings: Settings,
    engine: AsyncEngine,
    tenant: TenantAccess,
    scim: Scim,
) -> None:
    second = await _cached_app(aiohttp_client, settings)
    _, kim, _ = await scim.post("/Users", user("kim@corp.example"))
    cookie = {"Cookie": f"{SESSION_COOKIE}={await _session(engine, tenant, kim['id'])}"}
    await asyncio.sleep(1.2)  # the session has been idle for more than a second
    assert await _status_is(second, cookie, 200)
    assert len(second.app[SESSION_CACHE]) == 1
    # One second, for this user alone: its cached session is out at once.
    await AdminStore(engine).set_session_idle(
        tenant.tenant.id, uuid.UUID(kim["id"]), 1, NOW, "test"
    )
    assert await _until(lambda: _status_is(second, cookie, 401)) < 1.0
    await AdminStore(engine).set_session_idle(
        tenant.tenant.id, uuid.UUID(kim["id"]), None, NOW, "test"
    )
    assert await _until(lambda: _status_is(second, cookie, 200)) < 1.0
    # The organisation's limit reaches the cached copy as well.
    await ScimStore(engine).update_tenant_settings(tenant.slug, {"session_idle_minutes": 0.01})
    assert await _until(lambda: _status_is(second, cookie, 401)) < 1.0
