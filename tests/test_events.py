"""Events through the app on Postgres: each change writes its events in its own transaction
(a refused or failed one writes none), numbered per tenant without gaps in commit order,
read back by `GET /api/v1/events` with an API key."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import utc_now
from gateway.credentials import new_api_key
from storage.api_key_store import ApiKeyStore
from storage.event_store import EventStore
from tests.conftest import Scim, TenantAccess, group, table_snapshot, user
from tests.test_auth_verify import _session
from tests.test_cli import _cli

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def _types(engine: AsyncEngine, tenant: TenantAccess, after: int = 0) -> list[str]:
    found = await EventStore(engine).after(tenant.tenant.id, after, 1000)
    return [e.type for e in found]


async def _key(engine: AsyncEngine, tenant: TenantAccess, scopes: list[str]) -> dict[str, str]:
    key_id, secret, secret_hash = new_api_key()
    await ApiKeyStore(engine).create(
        tenant.tenant.id, key_id, "test", secret_hash, scopes, utc_now(), None
    )
    return {"Authorization": f"Bearer {secret}"}


async def test_each_change_is_an_event_in_order(
    engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    _, ann, _ = await scim.post("/Users", user("ann@corp.example"))
    _, team, _ = await scim.post("/Groups", group("Team", [ann["id"]]))
    secret = await _session(engine, tenant, ann["id"])
    assert secret
    rename = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"title": "Dr"}}]}
    await scim.request("PATCH", f"/Users/{ann['id']}", rename)
    off = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    await scim.request("PATCH", f"/Users/{ann['id']}", off)
    await scim.request("PATCH", f"/Users/{ann['id']}", {**off, "Operations": [
        {"op": "replace", "value": {"active": True}}]})  # fmt: skip
    await scim.delete(f"/Groups/{team['id']}")
    await scim.delete(f"/Users/{ann['id']}")
    assert await _types(engine, tenant) == [
        "user.created",
        "group.created",
        "group.member_added",
        "session.started",
        "user.updated",
        "user.deactivated",
        "session.revoked",  # a deactivation ends the user's sessions, in its transaction
        "user.reactivated",
        "group.member_removed",
        "group.deleted",
        "user.deleted",
    ]
    found = await EventStore(engine).after(tenant.tenant.id, 0, 1000)
    assert [e.seq for e in found] == list(range(1, len(found) + 1))
    created = found[0]
    assert created.resource_type == "User" and created.resource_id == ann["id"]
    assert created.data["userName"] == "ann@corp.example" and "password" not in created.data
    assert created.id.startswith("evt_")


async def test_a_refused_or_failed_change_has_no_event(
    engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    await scim.post("/Users", user("bo@corp.example"))
    before = await _types(engine, tenant)
    snapshot = await table_snapshot(engine, tenant.tenant.id)
    assert (await scim.post("/Users", user("BO@corp.example")))[0] == 409
    bad = {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [
        {"value": str(uuid.uuid4())}]}]}  # fmt: skip
    _, team, _ = await scim.post("/Groups", group("Crew"))
    assert (await scim.request("PATCH", f"/Groups/{team['id']}", bad))[0] == 400
    assert await _types(engine, tenant) == [*before, "group.created"]
    # A transaction that writes and then rolls back leaves no event and no number used.
    async with engine.connect() as conn:
        transaction = await conn.begin()
        await conn.execute(
            sql('UPDATE users SET data = data || \'{"title": "x"}\' WHERE tenant_id = :t'),
            {"t": tenant.tenant.id},
        )
        await transaction.rollback()
    assert await _types(engine, tenant) == [*before, "group.created"]
    assert (await table_snapshot(engine, tenant.tenant.id))["users"] == snapshot["users"]


async def test_numbers_follow_commit_order_under_concurrent_writes(
    engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    results = await asyncio.gather(
        *(scim.post("/Users", user(f"u{i}@corp.example")) for i in range(40))
    )
    assert all(status == 201 for status, _, _ in results)
    found = await EventStore(engine).after(tenant.tenant.id, 0, 1000)
    assert [e.seq for e in found] == list(range(1, 41))
    assert {e.resource_id for e in found} == {body["id"] for _, body, _ in results}


async def test_the_events_api_pages_with_a_cursor(
    client: TestClient[Any, Any], engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    for i in range(5):
        await scim.post("/Users", user(f"p{i}@corp.example"))
    await scim.post("/Groups", group("Pagers"))
    headers = await _key(engine, tenant, ["events:read"])
    seen: list[dict[str, Any]] = []
    after = 0
    while True:
        resp = await client.get(
            "/api/v1/events", params={"after": after, "limit": 2}, headers=headers
        )
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        seen += page["data"]
        after = page["next_after"]
        if not page["has_more"]:
            break
    assert [e["sequence"] for e in seen] == [1, 2, 3, 4, 5, 6]
    assert seen[0]["type"] == "user.created" and seen[0]["tenant"] == tenant.slug
    assert seen[-1]["resource"]["type"] == "Group"
    only = await client.get("/api/v1/events", params={"types": "group.created"}, headers=headers)
    assert [e["type"] for e in (await only.json())["data"]] == ["group.created"]


async def test_the_events_api_needs_a_live_key_of_the_tenant_with_the_scope(
    client: TestClient[Any, Any],
    engine: AsyncEngine,
    tenant: TenantAccess,
    other_tenant: TenantAccess,
    scim: Scim,
    other_scim: Scim,
    database_url: str,
) -> None:
    await scim.post("/Users", user("mine@corp.example"))
    await other_scim.post("/Users", user("theirs@corp.example"))
    assert (await client.get("/api/v1/events")).status == 401
    bogus = {"Authorization": "Bearer idgk_nothing"}
    assert (await client.get("/api/v1/events", headers=bogus)).status == 401
    assert (
        await client.get("/api/v1/events", headers=await _key(engine, tenant, []))
    ).status == 403
    made = await _cli(database_url, "api-key", "create", tenant.slug, "--scope", "events:read",
                      "--json")  # fmt: skip
    assert made.exit_code == 0, made.output
    created = json.loads(made.output)
    headers = {"Authorization": f"Bearer {created['key']}"}
    page = await (await client.get("/api/v1/events", headers=headers)).json()
    # Only this tenant's events.
    assert [e["data"]["userName"] for e in page["data"]] == ["mine@corp.example"]
    bad = await client.get("/api/v1/events", params={"limit": "0"}, headers=headers)
    assert bad.status == 400
    revoked = await _cli(database_url, "api-key", "revoke", tenant.slug, created["id"])
    assert revoked.exit_code == 0, revoked.output
    assert (await client.get("/api/v1/events", headers=headers)).status == 401
    listed = await _cli(database_url, "events", tenant.slug)
    assert [json.loads(line)["type"] for line in listed.output.splitlines()] == ["user.created"]


async def test_scim_writes_are_audited_with_fields_request_and_address(
    client: TestClient[Any, Any], tenant: TenantAccess, scim: Scim, database_url: str
) -> None:
    _, eli, _ = await scim.post("/Users", user("eli@corp.example"))
    change = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "value": {"title": "Dr", "password": "s3cret!pass"}}],
    }
    resp = await client.patch(
        f"{tenant.base}/Users/{eli['id']}",
        json=change,
        headers={**tenant.headers, "X-Request-Id": "trace-42"},
    )
    assert resp.status == 200 and resp.headers["X-Request-Id"] == "trace-42"
    shown = await _cli(database_url, "audit", tenant.slug, "--user", eli["id"], "--json")
    updated, created = json.loads(shown.output)
    assert (created["action"], updated["action"]) == ("user.created", "user.updated")
    assert updated["actor"] == f"scim:{tenant.token_id}"
    assert updated["details"]["fields"] == ["password", "title"]
    assert updated["details"]["request_id"] == "trace-42"
    assert updated["details"]["ip"] == "127.0.0.1"
    assert "s3cret" not in shown.output
    # A request without an id gets one.
    assert (await client.get("/healthz")).headers["X-Request-Id"].startswith("req_")


async def test_bulk_beside_single_writes_takes_no_tenant_wide_lock(
    engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    """Events are numbered after commit, so a Bulk holding some users' rows and single
    PATCHes of the same users queue on those rows only: no deadlock, no 500."""
    made = [await scim.post("/Users", user(f"d{i}@corp.example")) for i in range(12)]
    ids = [body["id"] for _, body, _ in made]

    def title(value: str) -> dict[str, Any]:
        return {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"title": value}}]}

    bulk = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "PATCH", "path": f"/Users/{i}", "data": title("bulk")} for i in ids
        ]
        + [{"method": "POST", "path": "/Users", "bulkId": f"e{n}",
            "data": user(f"e{n}@corp.example")} for n in range(16)],
    }  # fmt: skip
    singles = [scim.request("PATCH", f"/Users/{i}", title("single")) for i in reversed(ids)]
    creates = [scim.post("/Users", user(f"f{n}@corp.example")) for n in range(16)]
    results = await asyncio.gather(scim.post("/Bulk", bulk), *singles, *creates)
    assert all(status in (200, 201) for status, _, _ in results), [r[0] for r in results]
    answered = results[0][1]["Operations"]
    assert {op["status"] for op in answered} == {"200", "201"}, answered
    found = await EventStore(engine).after(tenant.tenant.id, 0, 1000)
    assert [e.seq for e in found] == list(range(1, len(found) + 1))
    assert len(found) == 12 + 12 + 12 + 16 + 16
