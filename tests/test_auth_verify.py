"""`/auth/verify` and `/auth/logout` on Postgres: what a live session hands to the product,
and every way a session stops being live."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import utc_now
from gateway.auth_api import SESSION_COOKIE
from gateway.credentials import hash_token, new_session_secret
from sso.mapping import DEFAULT_ROLE
from storage.session_store import SessionStore
from tests.conftest import Scim, TenantAccess, group, user

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def _session(
    engine: AsyncEngine,
    tenant: TenantAccess,
    user_id: str,
    *,
    ago: timedelta = timedelta(0),
    idle: timedelta = timedelta(hours=1),
    lifetime: timedelta = timedelta(hours=12),
) -> str:
    secret, secret_hash = new_session_secret()
    await SessionStore(engine, DEFAULT_ROLE).create(
        secret_hash,
        tenant.tenant.id,
        uuid.UUID(user_id),
        None,
        utc_now() - ago,
        idle=idle,
        lifetime=lifetime,
    )
    return secret


async def _verify(client: TestClient[Any, Any], secret: str | None) -> Any:
    headers = {"Cookie": f"{SESSION_COOKIE}={secret}"} if secret else {}
    return await client.get("/auth/verify", headers=headers)


async def test_a_live_session_hands_the_user_to_the_product(
    client: TestClient[Any, Any], scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    emails = [
        {"value": "jane.home@example.org", "type": "home"},
        {"value": "jane@corp.example", "type": "work", "primary": True},
    ]
    _, jane, _ = await scim.post("/Users", user("jane", emails=emails))
    await scim.post("/Groups", group("Tour Guides", [jane["id"]]))
    await scim.post("/Groups", group("R&D, Europe", [jane["id"]]))
    secret = await _session(engine, tenant, jane["id"])
    resp = await _verify(client, secret)
    assert resp.status == 200
    assert resp.headers["X-Idgate-User"] == jane["id"]
    assert resp.headers["X-Idgate-Tenant"] == tenant.slug
    assert resp.headers["X-Idgate-Email"] == "jane@corp.example"
    assert resp.headers["X-Idgate-Groups"] == "R%26D%2C Europe,Tour Guides"
    assert resp.headers["Cache-Control"] == "no-store"


async def test_no_or_unknown_cookie_is_401(client: TestClient[Any, Any]) -> None:
    assert (await _verify(client, None)).status == 401
    assert (await _verify(client, "not-a-session")).status == 401


async def test_sessions_end_by_lifetime_idleness_and_deactivation(
    client: TestClient[Any, Any], scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    _, bob, _ = await scim.post("/Users", user("bob@corp.example"))
    old = await _session(engine, tenant, bob["id"], ago=timedelta(hours=13))
    assert (await _verify(client, old)).status == 401
    idle = await _session(engine, tenant, bob["id"], ago=timedelta(minutes=61))
    assert (await _verify(client, idle)).status == 401
    live = await _session(engine, tenant, bob["id"], ago=timedelta(minutes=59))
    resp = await _verify(client, live)
    assert resp.status == 200 and resp.headers["X-Idgate-Email"] == "bob@corp.example"
    # Used just now: the idle clock restarted (the check wrote last-seen, being over a minute).
    async with engine.connect() as conn:
        seen = (
            await conn.execute(
                sql("SELECT last_seen_at FROM sessions WHERE secret_hash = :h"),
                {"h": hash_token(live)},
            )
        ).scalar_one()
    assert utc_now() - seen < timedelta(minutes=1)
    # SCIM deactivation ends the session at once, on every replica (one database).
    off = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    assert (await scim.request("PATCH", f"/Users/{bob['id']}", off))[0] == 200
    assert (await _verify(client, live)).status == 401


async def test_logout_ends_the_session_and_clears_the_cookie(
    client: TestClient[Any, Any], scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    _, eve, _ = await scim.post("/Users", user("eve@corp.example"))
    secret = await _session(engine, tenant, eve["id"])
    other = await _session(engine, tenant, eve["id"])
    resp = await client.post("/auth/logout", headers={"Cookie": f"{SESSION_COOKIE}={secret}"})
    assert resp.status == 204
    assert f"{SESSION_COOKIE}=" in resp.headers["Set-Cookie"]
    assert "Max-Age=0" in resp.headers["Set-Cookie"]
    assert (await _verify(client, secret)).status == 401
    assert (await _verify(client, other)).status == 200  # only that session
    assert (
        await SessionStore(engine, DEFAULT_ROLE).revoke_user(uuid.UUID(eve["id"]), utc_now()) == 1
    )
    assert (await _verify(client, other)).status == 401
