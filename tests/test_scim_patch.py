"""PATCH through the app on Postgres: stored results, atomicity, ETags, client variants."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Scim, TenantAccess, group, table_snapshot, user

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def patch_op(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


async def _user(scim: Scim, name: str = "pat@corp.example", **extra: Any) -> dict[str, Any]:
    status, created, _ = await scim.post("/Users", user(name, **extra))
    assert status == 201, created
    return created


async def test_user_patch_returns_the_resource_and_stores_it(scim: Scim) -> None:
    created = await _user(scim, emails=[{"value": "pat@corp.example", "type": "work"}])
    body = patch_op(
        {"op": "replace", "path": "displayName", "value": "Pat"},
        {"op": "add", "path": "emails", "value": [{"value": "pat@home.example", "type": "home"}]},
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "p@corp.example"},
        {"op": "add", "path": f"{ENTERPRISE}:department", "value": "Finance"},
    )
    status, patched, resp = await scim.request("PATCH", f"/Users/{created['id']}", body)
    assert status == 200, patched
    assert resp.headers["ETag"] == 'W/"2"'
    _, stored, _ = await scim.get(f"/Users/{created['id']}")
    assert stored == patched
    assert stored["displayName"] == "Pat"
    assert {e["type"]: e["value"] for e in stored["emails"]} == {
        "work": "p@corp.example",
        "home": "pat@home.example",
    }
    assert stored[ENTERPRISE] == {"department": "Finance"}
    assert ENTERPRISE in stored["schemas"]


async def test_failing_third_operation_changes_nothing(
    scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    created = await _user(scim, title="Before")
    before = await table_snapshot(engine, tenant.tenant.id)
    body = patch_op(
        {"op": "replace", "path": "title", "value": "After"},
        {"op": "add", "path": "nickName", "value": "n"},
        {"op": "replace", "path": 'emails[type eq "nope"].value', "value": "x@y"},
    )
    status, error, _ = await scim.request("PATCH", f"/Users/{created['id']}", body)
    assert status == 400 and error["scimType"] == "noTarget", error
    assert "Operations[2]" in error["detail"]
    assert await table_snapshot(engine, tenant.tenant.id) == before


async def test_concurrent_patches_with_one_version_one_wins(scim: Scim) -> None:
    created = await _user(scim)
    headers = {"If-Match": created["meta"]["version"]}

    async def rename(title: str) -> int:
        body = patch_op({"op": "replace", "path": "title", "value": title})
        status, _, _ = await scim.request("PATCH", f"/Users/{created['id']}", body, headers=headers)
        return status

    statuses = sorted(await asyncio.gather(rename("A"), rename("B")))
    assert statuses == [200, 412]
    _, stored, _ = await scim.get(f"/Users/{created['id']}")
    assert stored["meta"]["version"] == 'W/"2"'


async def test_concurrent_patches_without_version_lose_no_update(scim: Scim) -> None:
    created = await _user(scim)

    async def set_attribute(name: str) -> int:
        body = patch_op({"op": "add", "path": name, "value": name.upper()})
        status, _, _ = await scim.request("PATCH", f"/Users/{created['id']}", body)
        return status

    names = ["title", "nickName", "profileUrl", "locale", "timezone", "userType"]
    assert await asyncio.gather(*(set_attribute(n) for n in names)) == [200] * len(names)
    _, stored, _ = await scim.get(f"/Users/{created['id']}")
    # Each write was re-applied on the newer version when it lost a race: none is lost.
    assert {n: stored.get(n) for n in names} == {n: n.upper() for n in names}
    assert stored["meta"]["version"] == f'W/"{1 + len(names)}"'


async def test_group_patch_is_204_and_changes_members_set_wise(scim: Scim) -> None:
    ids = [(await _user(scim, f"m{i}@corp.example"))["id"] for i in range(4)]
    _, created, _ = await scim.post("/Groups", group("Team", ids[:2]))
    # Okta: add and remove members in one request.
    body = patch_op(
        {"op": "add", "path": "members", "value": [{"value": ids[2]}, {"value": ids[3]}]},
        {"op": "remove", "path": f'members[value eq "{ids[0]}"]'},
        {"op": "replace", "value": {"id": created["id"], "displayName": "Team 2"}},
    )
    status, body_out, resp = await scim.request("PATCH", f"/Groups/{created['id']}", body)
    assert status == 204 and body_out is None
    assert resp.headers["ETag"] == 'W/"2"'
    _, stored, _ = await scim.get(f"/Groups/{created['id']}")
    assert stored["displayName"] == "Team 2"
    assert {m["value"] for m in stored["members"]} == set(ids[1:])


async def test_group_patch_with_attributes_returns_the_group(scim: Scim) -> None:
    (a,) = [(await _user(scim, "solo@corp.example"))["id"]]
    _, created, _ = await scim.post("/Groups", group("G"))
    body = patch_op({"op": "add", "path": "members", "value": [{"value": a}]})
    status, out, _ = await scim.request(
        "PATCH", f"/Groups/{created['id']}", body, params={"attributes": "members"}
    )
    assert status == 200, out
    assert [m["value"] for m in out["members"]] == [a]


async def test_group_patch_unknown_member_changes_nothing(
    scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    a = (await _user(scim, "known@corp.example"))["id"]
    _, created, _ = await scim.post("/Groups", group("G", [a]))
    before = await table_snapshot(engine, tenant.tenant.id)
    body = patch_op(
        {"op": "replace", "path": "displayName", "value": "Renamed"},
        {
            "op": "add",
            "path": "members",
            "value": [{"value": "00000000-0000-0000-0000-00000000dead"}],
        },
    )
    status, error, _ = await scim.request("PATCH", f"/Groups/{created['id']}", body)
    assert status == 400 and error["scimType"] == "invalidValue", error
    assert await table_snapshot(engine, tenant.tenant.id) == before


async def test_idempotent_member_add_and_remove(scim: Scim) -> None:
    a = (await _user(scim, "idem@corp.example"))["id"]
    _, created, _ = await scim.post("/Groups", group("G", [a]))
    for op in (
        {"op": "add", "path": "members", "value": [{"value": a}]},
        {"op": "remove", "path": 'members[value eq "00000000-0000-0000-0000-000000000001"]'},
    ):
        status, _, _ = await scim.request("PATCH", f"/Groups/{created['id']}", patch_op(op))
        assert status == 204
    _, stored, _ = await scim.get(f"/Groups/{created['id']}")
    assert [m["value"] for m in stored["members"]] == [a]


async def test_entra_capitalised_ops_and_string_booleans(scim: Scim) -> None:
    created = await _user(scim)
    # As Microsoft Entra ID sends a deactivation in its default flavour.
    body = patch_op(
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "pat@corp.example"},
        {"op": "Replace", "path": 'emails[type eq "work"].primary', "value": "True"},
    )
    status, patched, _ = await scim.request("PATCH", f"/Users/{created['id']}", body)
    assert status == 200, patched
    assert patched["active"] is False
    assert patched["emails"] == [{"value": "pat@corp.example", "type": "work", "primary": True}]
    _, page, _ = await scim.get("/Users", params={"filter": "active eq false"})
    assert [r["id"] for r in page["Resources"]] == [created["id"]]


async def test_entra_member_removal_by_value_list(scim: Scim) -> None:
    ids = [(await _user(scim, f"e{i}@corp.example"))["id"] for i in range(3)]
    _, created, _ = await scim.post("/Groups", group("Entra", ids))
    body = patch_op(
        {"op": "Remove", "path": "members", "value": [{"value": ids[0]}, {"value": ids[2]}]}
    )
    status, _, _ = await scim.request("PATCH", f"/Groups/{created['id']}", body)
    assert status == 204
    _, stored, _ = await scim.get(f"/Groups/{created['id']}")
    # Only the listed members went; a literal reading would have emptied the group.
    assert [m["value"] for m in stored["members"]] == [ids[1]]


async def test_empty_operations_is_a_no_op(scim: Scim) -> None:
    created = await _user(scim)
    status, patched, _ = await scim.request("PATCH", f"/Users/{created['id']}", patch_op())
    assert status == 200
    assert patched["userName"] == created["userName"]


async def test_patch_errors(scim: Scim) -> None:
    created = await _user(scim)
    path = f"/Users/{created['id']}"
    cases: list[tuple[Any, int, str | None]] = [
        ({"Operations": []}, 400, "invalidValue"),
        (patch_op({"op": "jump", "path": "title", "value": "x"}), 400, "invalidSyntax"),
        (patch_op({"op": "remove"}), 400, "noTarget"),
        (patch_op({"op": "replace", "path": "title[", "value": "x"}), 400, "invalidPath"),
        (patch_op({"op": "replace", "path": "id", "value": "x"}), 400, "mutability"),
        (patch_op({"op": "replace", "path": "active", "value": "maybe"}), 400, "invalidValue"),
    ]
    for body, status, scim_type in cases:
        got, error, _ = await scim.request("PATCH", path, body)
        assert (got, error.get("scimType")) == (status, scim_type), (body, error)
    missing = f"/Users/{'0' * 8}-0000-0000-0000-{'0' * 12}"
    got, _, _ = await scim.request("PATCH", missing, patch_op())
    assert got == 404


async def test_group_patch_paths_without_rename(
    scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    """A PATCH that keeps the name is one statement: member checks, replace and remove-all."""
    ids = [(await _user(scim, f"s{i}@corp.example"))["id"] for i in range(4)]
    _, created, _ = await scim.post("/Groups", group("Stable", ids[:2]))
    path = f"/Groups/{created['id']}"
    before = await table_snapshot(engine, tenant.tenant.id)
    unknown = patch_op(
        {"op": "remove", "path": f'members[value eq "{ids[0]}"]'},
        {"op": "add", "path": "members", "value": [{"value": ids[2]}, {"value": "not-an-id"}]},
    )
    status, error, _ = await scim.request("PATCH", path, unknown)
    assert status == 400 and error["scimType"] == "invalidValue", error
    assert "not-an-id" in error["detail"]
    assert await table_snapshot(engine, tenant.tenant.id) == before

    replace = patch_op({"op": "replace", "path": "members", "value": [{"value": ids[3]}]})
    assert (await scim.request("PATCH", path, replace))[0] == 204
    _, stored, _ = await scim.get(path)
    assert [m["value"] for m in stored["members"]] == [ids[3]]
    assert stored["meta"]["version"] == 'W/"2"'

    everyone = patch_op({"op": "remove", "path": "members"})
    assert (await scim.request("PATCH", path, everyone))[0] == 204
    _, stored, _ = await scim.get(path)
    assert "members" not in stored and stored["displayName"] == "Stable"


async def test_concurrent_group_patches_lose_no_member(scim: Scim) -> None:
    ids = [(await _user(scim, f"c{i}@corp.example"))["id"] for i in range(8)]
    _, created, _ = await scim.post("/Groups", group("Busy"))

    async def add(member: str) -> int:
        body = patch_op({"op": "add", "path": "members", "value": [{"value": member}]})
        status, _, _ = await scim.request("PATCH", f"/Groups/{created['id']}", body)
        return status

    assert await asyncio.gather(*(add(m) for m in ids)) == [204] * len(ids)
    _, stored, _ = await scim.get(f"/Groups/{created['id']}")
    assert {m["value"] for m in stored["members"]} == set(ids)
    assert stored["meta"]["version"] == f'W/"{1 + len(ids)}"'

    headers = {"If-Match": stored["meta"]["version"]}

    async def remove(member: str) -> int:
        body = patch_op({"op": "remove", "path": f'members[value eq "{member}"]'})
        status, _, _ = await scim.request(
            "PATCH", f"/Groups/{created['id']}", body, headers=headers
        )
        return status

    assert sorted(await asyncio.gather(remove(ids[0]), remove(ids[1]))) == [204, 412]
    _, stored, _ = await scim.get(f"/Groups/{created['id']}")
    assert len(stored["members"]) == len(ids) - 1


async def test_members_only_patch_is_applied_without_reading_the_group(
    scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    a, b = [(await _user(scim, f"mo{i}@corp.example"))["id"] for i in range(2)]
    _, created, _ = await scim.post("/Groups", group("Members only", [a], externalId="ext-1"))
    path = f"/Groups/{created['id']}"
    body = patch_op(
        {"op": "add", "path": "members", "value": [{"value": b}]},
        {"op": "remove", "path": f'members[value eq "{a}"]'},
    )
    status, _, resp = await scim.request("PATCH", path, body)
    assert status == 204 and resp.headers["ETag"] == 'W/"2"'
    _, stored, _ = await scim.get(path)
    assert [m["value"] for m in stored["members"]] == [b]
    assert (stored["displayName"], stored["externalId"]) == ("Members only", "ext-1")
    assert stored["meta"]["version"] == 'W/"2"'

    before = await table_snapshot(engine, tenant.tenant.id)
    ghost = patch_op({"op": "add", "path": "members", "value": [{"value": str(uuid.uuid4())}]})
    status, error, _ = await scim.request("PATCH", path, ghost)
    assert status == 400 and error["scimType"] == "invalidValue"
    missing = f"/Groups/{uuid.uuid4()}"
    assert (await scim.request("PATCH", missing, ghost))[0] == 404
    assert await table_snapshot(engine, tenant.tenant.id) == before
