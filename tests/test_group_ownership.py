"""SCIM never adopts a group made in the product (by an admin or the CLI)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import utc_now
from scim.errors import ConflictError
from storage.scim_store import ScimStore
from tests.conftest import Scim, TenantAccess, group, table_snapshot, user
from tests.test_cli import _cli


async def _product_group(store: ScimStore, tenant: TenantAccess, name: str) -> str:
    created = await store.create_product_group(tenant.tenant.id, name, utc_now())
    return str(created.id)


async def test_scim_post_of_a_product_group_name_is_409_and_nobody_joins(
    scim: Scim, store: ScimStore, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    await _product_group(store, tenant, "Admins")
    _, member, _ = await scim.post("/Users", user("mallory@corp.example"))
    before = await table_snapshot(engine, tenant.tenant.id)
    status, error, _ = await scim.post("/Groups", group("admins", [member["id"]]))
    assert status == 409 and error["scimType"] == "uniqueness", error
    assert "made in the product" in error["detail"]
    assert await table_snapshot(engine, tenant.tenant.id) == before


async def test_product_groups_are_invisible_to_scim(
    scim: Scim, store: ScimStore, tenant: TenantAccess
) -> None:
    native = await _product_group(store, tenant, "Billing")
    _, member, _ = await scim.post("/Users", user("eve@corp.example"))
    # Not listed, not found by name (Okta links a pushed group to one it finds by name).
    _, page, _ = await scim.get("/Groups", params={"filter": 'displayName eq "Billing"'})
    assert page["totalResults"] == 0 and page["Resources"] == []
    _, page, _ = await scim.get("/Groups")
    assert page["totalResults"] == 0
    assert (await scim.get(f"/Groups/{native}"))[0] == 404
    add = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": member["id"]}]}],
    }
    assert (await scim.request("PATCH", f"/Groups/{native}", add))[0] == 404
    assert (await scim.put(f"/Groups/{native}", group("Billing", [member["id"]])))[0] == 404
    assert (await scim.delete(f"/Groups/{native}"))[0] == 404
    # Nor can a SCIM group hold one as a member.
    status, error, _ = await scim.post("/Groups", group("Nested", [native]))
    assert status == 400 and error["scimType"] == "invalidValue"
    assert [g.name for g in await store.list_product_groups(tenant.tenant.id)] == ["Billing"]


async def test_scim_rename_onto_a_product_group_name_is_409(
    scim: Scim, store: ScimStore, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    await _product_group(store, tenant, "Owners")
    _, pushed, _ = await scim.post("/Groups", group("Staff"))
    before = await table_snapshot(engine, tenant.tenant.id)
    rename = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"displayName": "OWNERS"}}],
    }
    status, error, _ = await scim.request("PATCH", f"/Groups/{pushed['id']}", rename)
    assert status == 409 and error["scimType"] == "uniqueness", error
    status, _, _ = await scim.put(f"/Groups/{pushed['id']}", group("Owners"))
    assert status == 409
    assert await table_snapshot(engine, tenant.tenant.id) == before
    # Other renames still work.
    rename["Operations"][0]["value"] = {"displayName": "Staff 2"}
    assert (await scim.request("PATCH", f"/Groups/{pushed['id']}", rename))[0] == 204


async def test_concurrent_product_and_scim_creates_of_one_name_leave_one(
    scim: Scim, store: ScimStore, tenant: TenantAccess
) -> None:
    async def product() -> str:
        try:
            await _product_group(store, tenant, "Race")
            return "product"
        except ConflictError:
            return "refused"

    async def pushed() -> str:
        status, _, _ = await scim.post("/Groups", group("Race"))
        return "scim" if status == 201 else "refused"

    for _ in range(5):
        outcomes = sorted(await asyncio.gather(product(), pushed()))
        assert outcomes in (["product", "refused"], ["refused", "scim"]), outcomes
        natives = await store.list_product_groups(tenant.tenant.id)
        _, page, _ = await scim.get("/Groups", params={"filter": 'displayName eq "Race"'})
        assert len(natives) + page["totalResults"] == 1
        for resource in page["Resources"]:
            await scim.delete(f"/Groups/{resource['id']}")
        if natives:
            break  # the product group now owns the name for good


async def test_cli_creates_and_lists_product_groups(
    database_url: str, scim: Scim, tenant: TenantAccess
) -> None:
    made = await _cli(database_url, "group", "create", tenant.slug, "Support")
    assert made.exit_code == 0, made.output
    again = await _cli(database_url, "group", "create", tenant.slug, "support")
    assert again.exit_code == 1 and "already exists" in again.output
    await scim.post("/Groups", group("Pushed"))
    clash = await _cli(database_url, "group", "create", tenant.slug, "Pushed")
    assert clash.exit_code == 1 and "pushed by SCIM" in clash.output
    listed: list[dict[str, Any]] = json.loads(
        (await _cli(database_url, "group", "list", tenant.slug, "--json")).output
    )
    assert [g["name"] for g in listed] == ["Support"]
    assert (await scim.post("/Groups", group("SUPPORT")))[0] == 409
