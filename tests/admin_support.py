"""Callers of `/api/v1` for tests: API keys with scopes, and people logged in (a session
cookie) holding organisation roles."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import utc_now
from gateway.credentials import new_api_key, new_session_secret
from sso.mapping import DEFAULT_ROLE
from storage.access_store import AccessStore
from storage.api_key_store import ApiKeyStore
from storage.session_store import SessionStore
from tests.conftest import Scim, TenantAccess, user

PROBLEM = "application/problem+json"


async def key_headers(engine: AsyncEngine, tenant: TenantAccess, *scopes: str) -> dict[str, str]:
    key_id, secret, secret_hash = new_api_key()
    await ApiKeyStore(engine).create(
        tenant.tenant.id, key_id, "test", secret_hash, scopes, utc_now(), None
    )
    return {"Authorization": f"Bearer {secret}"}


async def pushed_user(scim: Scim, user_name: str, /, **extra: Any) -> uuid.UUID:
    """A user pushed by the tenant's SCIM token (so the IdP manages it)."""
    status, body, _ = await scim.post("/Users", user(user_name, **extra))
    assert status == 201, body
    return uuid.UUID(body["id"])


async def own_user(engine: AsyncEngine, scim: Scim, user_name: str, /, **extra: Any) -> uuid.UUID:
    """A user no IdP manages (as one an admin invited)."""
    user_id = await pushed_user(scim, user_name, **extra)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET created_by = NULL WHERE id = :id"), {"id": user_id}
        )
    return user_id


async def grant(engine: AsyncEngine, tenant: TenantAccess, user_id: uuid.UUID, *roles: str) -> None:
    for role in roles:
        await AccessStore(engine).grant_manual(
            tenant.tenant.id, user_id, role, None, utc_now(), "test"
        )


async def session_headers(
    engine: AsyncEngine, tenant: TenantAccess, user_id: uuid.UUID, age: timedelta = timedelta()
) -> dict[str, str]:
    """The cookie of a session of `user_id` that started `age` ago."""
    secret, secret_hash = new_session_secret()
    await SessionStore(engine, DEFAULT_ROLE).create(
        secret_hash,
        tenant.tenant.id,
        user_id,
        None,
        utc_now() - age,
        idle=timedelta(hours=1) + age,
        lifetime=timedelta(hours=12),
    )
    return {"Cookie": f"idgate_session={secret}"}


async def person(
    engine: AsyncEngine, scim: Scim, tenant: TenantAccess, name: str, *roles: str
) -> tuple[uuid.UUID, dict[str, str]]:
    """A user of the tenant holding `roles`, logged in."""
    user_id = await pushed_user(scim, name)
    await grant(engine, tenant, user_id, *roles)
    return user_id, await session_headers(engine, tenant, user_id)


async def call(
    client: TestClient[Any, Any],
    method: str,
    path: str,
    headers: dict[str, str],
    body: Any = None,
    **kwargs: Any,
) -> tuple[int, Any]:
    resp = await client.request(method, "/api/v1" + path, headers=headers, json=body, **kwargs)
    if resp.status == 204:
        return 204, None
    if resp.content_type in ("application/json", PROBLEM):
        return resp.status, await resp.json(content_type=None)
    return resp.status, await resp.text()


async def audit_entries(engine: AsyncEngine, target: str, action: str) -> list[Any]:
    """The audit entries (actor, details) of `action` on `target` (user:<id>), oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT actor, details FROM audit_log WHERE target = :t AND action = :a ORDER BY id"
            ),
            {"t": target, "a": action},
        )
        return list(rows)
