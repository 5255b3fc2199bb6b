"""Organisation settings, a reseller's dependents, signing a user out everywhere, and the
access review, through `/api/v1`."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.admin_support import (
    audit_entries,
    call,
    grant,
    key_headers,
    person,
    pushed_user,
    session_headers,
)
from tests.conftest import Scim, TenantAccess
from tests.test_cli import _cli

Client = TestClient[Any, Any]


async def test_only_an_owner_changes_the_settings(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    _, admin = await person(engine, scim, tenant, "admin@corp.example", "admin")
    _, owner = await person(engine, scim, tenant, "owner@corp.example", "owner")
    path = f"/orgs/{tenant.slug}/settings"
    status, current = await call(client, "GET", path, admin)
    assert status == 200
    assert (current["delete_policy"], current["admin_overrides"]) == ("soft", False)
    change = {"delete_policy": "hard", "session_idle_minutes": 15, "admin_overrides": True}
    status, body = await call(client, "PATCH", path, admin, change)
    assert status == 403 and body["code"] == "forbidden"
    status, body = await call(client, "PATCH", path, owner, change)
    assert status == 200, body
    assert (body["delete_policy"], body["session_idle_minutes"], body["admin_overrides"]) == (
        "hard", 15, True,
    )  # fmt: skip
    status, body = await call(client, "PATCH", path, owner, {"session_idle_minutes": None})
    assert status == 200 and body["session_idle_minutes"] is None
    status, body = await call(client, "PATCH", path, owner, {"keep_deleted_days": 0})
    assert status == 400 and body["errors"][0]["field"] == "keep_deleted_days"


async def test_a_reseller_lists_its_dependents(
    client: Client,
    engine: AsyncEngine,
    tenant: TenantAccess,
    other_tenant: TenantAccess,
    database_url: str,
) -> None:
    done = await _cli(database_url, "tenant", "set", other_tenant.slug, "--reseller", tenant.slug)
    assert done.exit_code == 0, done.output
    refused = await _cli(database_url, "tenant", "set", tenant.slug, "--reseller",
                         other_tenant.slug)  # fmt: skip
    assert refused.exit_code != 0 and "reseller" in refused.output
    reseller = await key_headers(engine, tenant, "admin:read")
    status, body = await call(client, "GET", f"/orgs/{tenant.slug}/dependents", reseller)
    assert status == 200 and [d["slug"] for d in body["data"]] == [other_tenant.slug]
    status, body = await call(client, "GET", "/me", reseller)
    assert [(o["slug"], o["level"], o["via"]) for o in body["organisations"]] == [
        (tenant.slug, "read", None),
        (other_tenant.slug, "read", tenant.slug),
    ]
    status, body = await call(client, "GET", f"/orgs/{other_tenant.slug}/settings", reseller)
    assert status == 200 and body["reseller"] == tenant.slug


async def test_signing_a_user_out_everywhere(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    admin = await key_headers(engine, tenant, "admin")
    user_id = await pushed_user(scim, "out@corp.example")
    cookies = [await session_headers(engine, tenant, user_id) for _ in range(2)]
    for cookie in cookies:
        assert (await client.get("/auth/verify", headers=cookie)).status == 200
    path = f"/orgs/{tenant.slug}/users/{user_id}/sessions/revoke"
    status, body = await call(client, "POST", path, admin)
    assert status == 200 and body["revoked"] == 2
    for cookie in cookies:
        assert (await client.get("/auth/verify", headers=cookie)).status == 401
    [entry] = await audit_entries(engine, f"user:{user_id}", "session.revoked_all")
    assert entry.details["sessions"] == 2


async def test_the_access_review_finds_and_deactivates_the_inactive(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    _, admin = await person(engine, scim, tenant, "admin@corp.example", "admin")
    old_idle = await pushed_user(scim, "idle@corp.example")
    old_owner = await pushed_user(scim, "idle-owner@corp.example")
    await grant(engine, tenant, old_owner, "owner")
    recent = await pushed_user(scim, "recent@corp.example")
    new = await pushed_user(scim, "new@corp.example")  # never logged in, but just created
    long_ago = timedelta(days=200)
    for user_id in (old_idle, old_owner, recent):
        await session_headers(engine, tenant, user_id, age=long_ago)
    await session_headers(engine, tenant, recent)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET created_at = created_at - interval '300 days' "
                 "WHERE id = ANY(:ids)"), {"ids": [old_idle, old_owner, recent]}
        )  # fmt: skip
    path = f"/orgs/{tenant.slug}/access-review"
    status, body = await call(client, "GET", path, admin, params={"inactive_days": "90"})
    assert status == 200
    assert {uuid.UUID(u["id"]) for u in body["data"]} == {old_idle, old_owner}
    request = {"user_ids": [str(old_idle), str(old_owner), str(recent), str(new)]}
    status, body = await call(client, "POST", path + "/deactivate", admin, request)
    assert status == 200, body
    assert body["deactivated"] == [str(old_idle)]
    assert set(body["skipped"]) == {str(old_owner), str(recent), str(new)}
    status, user = await call(client, "GET", f"/orgs/{tenant.slug}/users/{old_idle}", admin)
    assert user["status"] == "deactivated"
