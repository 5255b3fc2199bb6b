"""Groups and memberships over HTTP on real Postgres."""

from __future__ import annotations

from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Scim, TenantAccess, group, table_snapshot, user


async def _users(scim: Scim, *names: str) -> list[str]:
    ids = []
    for name in names:
        status, created, _ = await scim.post("/Users", user(name))
        assert status == 201
        ids.append(created["id"])
    return ids


async def test_group_with_members_and_user_groups(scim: Scim) -> None:
    alice, bob = await _users(scim, "alice@corp.example", "bob@corp.example")
    status, created, resp = await scim.post("/Groups", group("Tour Guides", [alice, bob]))
    assert status == 201, created
    assert resp.headers["Location"].endswith(f"/Groups/{created['id']}")
    members = {m["value"]: m for m in created["members"]}
    assert set(members) == {alice, bob}
    assert members[alice]["type"] == "User"
    assert "display" not in members[alice]  # returned on request only
    assert members[alice]["$ref"].endswith(f"/Users/{alice}")
    _, shown, _ = await scim.get(
        f"/Groups/{created['id']}", params={"attributes": "members.value,members.display"}
    )
    assert {m["value"]: m["display"] for m in shown["members"]} == {
        alice: "alice@corp.example",
        bob: "bob@corp.example",
    }
    _, fetched_user, _ = await scim.get(f"/Users/{alice}")
    assert fetched_user["groups"] == [
        {
            "value": created["id"],
            "display": "Tour Guides",
            "type": "direct",
            "$ref": f"http://scim.test{scim.access.base}/Groups/{created['id']}",
        }
    ]


async def test_nested_group_member(scim: Scim) -> None:
    _, inner, _ = await scim.post("/Groups", group("Inner"))
    status, outer, _ = await scim.post("/Groups", group("Outer", [inner["id"]]))
    assert status == 201
    assert outer["members"][0]["type"] == "Group"
    assert outer["members"][0]["$ref"].endswith(f"/Groups/{inner['id']}")


async def test_unknown_member_is_400_and_nothing_changes(
    scim: Scim, engine: AsyncEngine, tenant: TenantAccess, other_scim: Scim
) -> None:
    (alice,) = await _users(scim, "alice@corp.example")
    _, foreign, _ = await other_scim.post("/Users", user("foreign@corp.example"))
    _, existing, _ = await scim.post("/Groups", group("Keep", [alice]))
    before = await table_snapshot(engine, tenant.tenant.id)
    for members in (
        [alice, "00000000-0000-0000-0000-000000000000"],
        [alice, "not-a-uuid"],
        [foreign["id"]],
    ):
        status, error, _ = await scim.post("/Groups", group("Broken", members))
        assert status == 400 and error["scimType"] == "invalidValue", error
        status, error, _ = await scim.put(f"/Groups/{existing['id']}", group("Keep", members))
        assert status == 400 and error["scimType"] == "invalidValue", error
    assert await table_snapshot(engine, tenant.tenant.id) == before


async def test_put_replaces_members_set_wise(scim: Scim) -> None:
    a, b, c = await _users(scim, "a@corp.example", "b@corp.example", "c@corp.example")
    _, created, _ = await scim.post("/Groups", group("Team", [a, b]))
    status, updated, _ = await scim.put(f"/Groups/{created['id']}", group("Team 2", [b, c]))
    assert status == 200, updated
    assert updated["displayName"] == "Team 2"
    assert {m["value"] for m in updated["members"]} == {b, c}
    _, a_user, _ = await scim.get(f"/Users/{a}")
    assert "groups" not in a_user


async def test_group_cannot_contain_itself(scim: Scim) -> None:
    _, created, _ = await scim.post("/Groups", group("Loop"))
    status, error, _ = await scim.put(f"/Groups/{created['id']}", group("Loop", [created["id"]]))
    assert status == 400 and error["scimType"] == "invalidValue"


async def test_deleting_a_user_removes_its_memberships(scim: Scim) -> None:
    a, b = await _users(scim, "a@corp.example", "b@corp.example")
    _, created, _ = await scim.post("/Groups", group("Team", [a, b]))
    assert (await scim.delete(f"/Users/{a}"))[0] == 204
    _, fetched, _ = await scim.get(f"/Groups/{created['id']}")
    assert [m["value"] for m in fetched["members"]] == [b]


async def test_group_filters(scim: Scim) -> None:
    (a,) = await _users(scim, "a@corp.example")
    _, with_a, _ = await scim.post("/Groups", group("Has A", [a]))
    await scim.post("/Groups", group("Empty"))
    cases = {
        f'members[value eq "{a}"]': ["Has A"],
        f'members.value eq "{a}"': ["Has A"],
        'displayName eq "has a"': ["Has A"],
        "members pr": ["Has A"],
        "not (members pr)": ["Empty"],
        'members[type eq "User"]': ["Has A"],
    }
    for text, expected in cases.items():
        status, page, _ = await scim.get("/Groups", params={"filter": text})
        assert status == 200, (text, page)
        assert [r["displayName"] for r in page["Resources"]] == expected, text
    _, by_group, _ = await scim.get(
        "/Users", params={"filter": f'groups[value eq "{with_a["id"]}"]'}
    )
    assert [r["id"] for r in by_group["Resources"]] == [a]


async def test_excluding_members(scim: Scim) -> None:
    (a,) = await _users(scim, "a@corp.example")
    status, _, _ = await scim.post("/Groups", group("Big", [a]))
    assert status == 201
    _, page, _ = await scim.get("/Groups", params={"excludedAttributes": "members"})
    assert page["Resources"][0]["displayName"] == "Big"
    assert "members" not in page["Resources"][0]


async def test_large_group_is_streamed_in_chunks(
    scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    """Members come from a cursor in chunks of 1,000; the document is the same as ever."""
    _, created, _ = await scim.post("/Groups", group("Everyone"))
    async with engine.begin() as conn:
        await conn.execute(
            sql(
                "INSERT INTO users (id, tenant_id, user_name, active, data, version,"
                " created_at, updated_at)"
                " SELECT gen_random_uuid(), :t, 'bulk' || i, true,"
                " jsonb_build_object('userName', 'bulk' || i), 1, now(), now()"
                " FROM generate_series(1, 2500) AS i"
            ),
            {"t": tenant.tenant.id},
        )
        await conn.execute(
            sql(
                "INSERT INTO group_members (group_id, member_id, tenant_id, member_type)"
                " SELECT :g, id, :t, 'User' FROM users WHERE tenant_id = :t"
            ),
            {"g": created["id"], "t": tenant.tenant.id},
        )
    path = f"/Groups/{created['id']}"
    status, full, resp = await scim.get(path)
    assert status == 200 and resp.headers["ETag"] == 'W/"1"'
    assert resp.headers["Content-Type"] == "application/scim+json; charset=utf-8"
    assert len(full["members"]) == 2500 == len({m["value"] for m in full["members"]})
    assert full["displayName"] == "Everyone" and full["meta"]["location"].endswith(path)
    assert all(m["$ref"].endswith(f"/Users/{m['value']}") for m in full["members"])
    _, slim, _ = await scim.get(path, params={"attributes": "members.display"})
    assert set(slim) == {"schemas", "id", "members"}
    assert {m["display"] for m in slim["members"]} == {f"bulk{i}" for i in range(1, 2501)}
    assert set(slim["members"][0]) == {"display"}
    status, _, _ = await scim.get(path, headers={"If-None-Match": 'W/"1"'})
    assert status == 304


async def test_group_without_members_has_no_members_attribute(scim: Scim) -> None:
    _, created, _ = await scim.post("/Groups", group("Empty"))
    status, fetched, _ = await scim.get(f"/Groups/{created['id']}")
    assert status == 200 and "members" not in fetched
    assert fetched["displayName"] == "Empty"
    assert (await scim.get("/Groups/00000000-0000-0000-0000-000000000000"))[0] == 404
