"""POST /Bulk through the app on Postgres: references, isolation, failOnErrors, limits."""

from __future__ import annotations

import io
import json
from typing import Any

from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Scim, TenantAccess, group, table_snapshot, user

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def bulk(*operations: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"schemas": [BULK], "Operations": list(operations), **extra}


def post(path: str, bulk_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"method": "POST", "path": path, "bulkId": bulk_id, "data": data}


async def _send(scim: Scim, body: dict[str, Any]) -> list[dict[str, Any]]:
    status, out, _ = await scim.post("/Bulk", body)
    assert status == 200, out
    assert out["schemas"] == [BULK_RESPONSE]
    results: list[dict[str, Any]] = out["Operations"]
    return results


async def test_references_forward_and_back_resolve_to_the_created_ids(scim: Scim) -> None:
    results = await _send(
        scim,
        bulk(
            # The group names a user created later in the request.
            post("/Groups", "g1", group("Tour Guides", ["bulkId:u2", "bulkId:u1"])),
            post("/Users", "u1", user("alice@corp.example")),
            post("/Users", "u2", user("bob@corp.example")),
        ),
    )
    assert [(r["method"], r["bulkId"], r["status"]) for r in results] == [
        ("POST", "g1", "201"),
        ("POST", "u1", "201"),
        ("POST", "u2", "201"),
    ]
    group_location = results[0]["location"]
    assert group_location.startswith(f"http://scim.test{scim.access.base}/Groups/")
    _, stored, _ = await scim.get("/Groups/" + group_location.rsplit("/", 1)[1])
    user_ids = {r["location"].rsplit("/", 1)[1] for r in results[1:]}
    assert {m["value"] for m in stored["members"]} == user_ids
    assert results[0]["version"] == stored["meta"]["version"]


async def test_a_failed_operation_changes_nothing_and_the_rest_goes_on(
    scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    before = await table_snapshot(engine, tenant.tenant.id)
    missing = "00000000-0000-0000-0000-00000000beef"
    results = await _send(
        scim,
        bulk(
            post("/Groups", "bad", group("Ghosts", [missing])),
            post("/Users", "ok", user("carol@corp.example")),
        ),
    )
    assert [r["status"] for r in results] == ["400", "201"]
    assert results[0]["response"]["scimType"] == "invalidValue"
    assert "location" not in results[0]  # a failed POST has none (§3.7.3)
    after = await table_snapshot(engine, tenant.tenant.id)
    assert after["groups"] == before["groups"] and after["group_members"] == []
    assert len(after["users"]) == len(before["users"]) + 1


async def test_fail_on_errors_stops_the_rest(scim: Scim) -> None:
    await scim.post("/Users", user("taken@corp.example"))
    results = await _send(
        scim,
        bulk(
            post("/Users", "dup", user("TAKEN@corp.example")),
            post("/Users", "never", user("never@corp.example")),
            failOnErrors=1,
        ),
    )
    assert [(r["bulkId"], r["status"]) for r in results] == [("dup", "409")]
    assert results[0]["response"]["scimType"] == "uniqueness"
    _, page, _ = await scim.get("/Users", params={"filter": 'userName eq "never@corp.example"'})
    assert page["totalResults"] == 0


async def test_put_patch_delete_with_versions(scim: Scim) -> None:
    _, a, _ = await scim.post("/Users", user("a@corp.example"))
    _, b, _ = await scim.post("/Users", user("b@corp.example"))
    _, g, _ = await scim.post("/Groups", group("G", [a["id"]]))
    results = await _send(
        scim,
        bulk(
            {
                "method": "PUT",
                "path": f"/Users/{a['id']}",
                "version": a["meta"]["version"],
                "data": user("a@corp.example", title="Lead"),
            },
            {
                "method": "PATCH",
                "path": f"/Groups/{g['id']}",
                "data": {
                    "schemas": [PATCH_OP],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": b["id"]}]}],
                },
            },
            {"method": "DELETE", "path": f"/Users/{b['id']}", "version": 'W/"99"'},
            {"method": "DELETE", "path": f"/Users/{a['id']}", "version": 'W/"1"'},
        ),
    )
    assert [r["status"] for r in results] == ["200", "200", "412", "412"]
    assert results[0]["version"] == 'W/"2"'
    assert results[2]["location"].endswith(f"/Users/{b['id']}")
    _, stored_a, _ = await scim.get(f"/Users/{a['id']}")
    assert stored_a["title"] == "Lead"
    _, stored_g, _ = await scim.get(f"/Groups/{g['id']}")
    assert {m["value"] for m in stored_g["members"]} == {a["id"], b["id"]}
    assert (await scim.get(f"/Users/{b['id']}"))[0] == 200


async def test_circular_references_are_refused_with_409(scim: Scim) -> None:
    # RFC 7644 §3.7.1: two groups that hold each other, both created in one request.
    results = await _send(
        scim,
        bulk(
            post("/Groups", "qwerty", group("Group A", ["bulkId:ytrewq"])),
            post("/Groups", "ytrewq", group("Group B", ["bulkId:qwerty"])),
        ),
    )
    assert [r["status"] for r in results] == ["409", "409"]
    assert "bulkId:qwerty" in results[0]["response"]["detail"]
    _, page, _ = await scim.get("/Groups")
    assert page["totalResults"] == 0


async def test_limits_are_advertised_and_enforced_with_413(
    scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    _, config, _ = await scim.get("/ServiceProviderConfig")
    assert config["bulk"] == {"supported": True, "maxOperations": 1000, "maxPayloadSize": 1048576}
    before = await table_snapshot(engine, tenant.tenant.id)
    many = bulk(*(post("/Users", f"u{i}", user(f"u{i}@corp.example")) for i in range(1001)))
    status, error, _ = await scim.post("/Bulk", many)
    assert status == 413 and error["status"] == "413", error
    assert "maxOperations (1000)" in error["detail"]
    padding = "x" * 1_048_576
    large = json.dumps(bulk(post("/Users", "big", user(padding)))).encode()
    resp = await scim.client.post(
        scim.access.base + "/Bulk", data=io.BytesIO(large), headers=scim.access.headers
    )
    error = await resp.json(content_type=None)
    assert resp.status == 413 and "maxPayloadSize (1048576)" in error["detail"], error
    assert await table_snapshot(engine, tenant.tenant.id) == before


async def test_malformed_bulk_is_400_and_runs_nothing(
    scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    before = await table_snapshot(engine, tenant.tenant.id)
    body = bulk(
        post("/Users", "fine", user("fine@corp.example")),
        {"method": "POST", "path": "/Widgets", "bulkId": "w", "data": {}},
    )
    status, error, _ = await scim.post("/Bulk", body)
    assert status == 400 and "Operations[1]" in error["detail"], error
    assert await table_snapshot(engine, tenant.tenant.id) == before


async def test_user_creations_together_keep_one_by_one_answers(
    scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    """Creations of users are written together; each still gets its own answer."""
    await scim.post("/Users", user("exists@corp.example"))
    results = await _send(
        scim,
        bulk(
            post("/Users", "u1", user("one@corp.example", password="S3cret-pass", title="A")),
            post("/Users", "dup-old", user("EXISTS@corp.example")),
            post("/Users", "bad", user("bad@corp.example", active="maybe")),
            post("/Users", "u2", user("two@corp.example", active=False)),
            post("/Users", "dup-new", user("Two@corp.example")),
        ),
    )
    assert [(r["bulkId"], r["status"]) for r in results] == [
        ("u1", "201"),
        ("dup-old", "409"),
        ("bad", "400"),
        ("u2", "201"),
        ("dup-new", "409"),
    ]
    assert results[1]["response"]["scimType"] == "uniqueness"
    assert results[2]["response"]["scimType"] == "invalidValue"
    one = results[0]["location"].rsplit("/", 1)[1]
    _, stored, resp = await scim.get(f"/Users/{one}")
    assert stored["userName"] == "one@corp.example" and stored["title"] == "A"
    assert stored["active"] is True and "password" not in stored
    assert resp.headers["ETag"] == results[0]["version"] == 'W/"1"'
    _, two, _ = await scim.get("/Users/" + results[3]["location"].rsplit("/", 1)[1])
    assert two["active"] is False
    _, page, _ = await scim.get("/Users")
    assert page["totalResults"] == 3  # the counts follow the rows created together
    async with engine.connect() as conn:
        hashed = (
            await conn.execute(sql("SELECT password_hash FROM users WHERE id = :id"), {"id": one})
        ).scalar_one()
    assert hashed and "S3cret-pass" not in hashed
