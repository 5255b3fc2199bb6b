"""Roles, product groups and project roles from the mapping rules, through the app on
Postgres: SCIM writes and Bulk recompute the users they change, manual grants survive,
SCIM cannot write roles the rules do not accept, and name collisions grant nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.access import Access, catalogue, subject
from gateway.app import utc_now
from gateway.cli_access import load_document
from sso.mapping import MappingError, assign, parse_mapping
from storage.access_store import AccessStore, CatalogueNames, SubjectRow
from tests.conftest import Scim, TenantAccess, group, table_snapshot, user
from tests.test_cli import _cli

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

RULES: dict[str, Any] = {
    "rules": [
        {
            "name": "support-operators",
            "when": [{"group": "Support Team"}],
            "grant": {"roles": ["chat-operator"], "groups": ["Operators"]},
        },
        {
            "name": "finance-billing",
            "when": [{"attribute": "department", "equals": "Finance"}],
            "grant": {"projects": {"Billing": ["readonly"]}},
        },
    ],
}


async def _set_up(database_url: str, tenant: TenantAccess, tmp_path: Path, rules: Any) -> None:
    for args in (
        ("role", "add", tenant.slug, "chat-operator", "--description", "Answers chats"),
        ("project", "add", tenant.slug, "Billing"),
        ("group", "create", tenant.slug, "Operators"),
    ):
        done = await _cli(database_url, *args)
        assert done.exit_code == 0, done.output
    await _set_rules(database_url, tenant, tmp_path, rules)


async def _set_rules(database_url: str, tenant: TenantAccess, tmp_path: Path, rules: Any) -> Any:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    done = await _cli(database_url, "mapping", "set", tenant.slug, str(path))
    assert done.exit_code == 0, done.output
    return done


async def _grants(engine: AsyncEngine, user_id: str) -> set[tuple[str | None, str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sql(
                "SELECT p.name, g.role, g.source FROM role_grants g "
                "LEFT JOIN projects p ON p.id = g.project_id WHERE g.user_id = :u"
            ),
            {"u": uuid.UUID(user_id)},
        )
        return {(r[0], r[1], r[2]) for r in rows}


async def _product_groups(engine: AsyncEngine, user_id: str) -> set[tuple[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sql(
                "SELECT g.display_name, m.source FROM group_members m JOIN groups g "
                "ON g.id = m.group_id WHERE m.member_id = :u AND g.origin = 'product'"
            ),
            {"u": uuid.UUID(user_id)},
        )
        return {(r[0], r[1]) for r in rows}


async def _audit(engine: AsyncEngine, user_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sql("SELECT actor, action, details FROM audit_log WHERE target = :t ORDER BY id"),
            {"t": f"user:{user_id}"},
        )
        return [(r[0], r[1], r[2]) for r in rows]


def _members(op: str, *ids: str) -> dict[str, Any]:
    return {
        "schemas": [PATCH_OP],
        "Operations": [{"op": op, "path": "members", "value": [{"value": i} for i in ids]}],
    }


async def test_group_membership_gives_and_takes_roles_at_once(
    database_url: str, engine: AsyncEngine, tenant: TenantAccess, scim: Scim, tmp_path: Path
) -> None:
    await _set_up(database_url, tenant, tmp_path, RULES)
    _, ann, _ = await scim.post("/Users", user("ann@corp.example"))
    assert await _grants(engine, ann["id"]) == set()
    status, team, _ = await scim.post("/Groups", group("Support Team", [ann["id"]]))
    assert status == 201
    assert await _grants(engine, ann["id"]) == {(None, "chat-operator", "mapped")}
    assert await _product_groups(engine, ann["id"]) == {("Operators", "mapped")}
    _, shown, _ = await scim.get(f"/Users/{ann['id']}")
    assert shown["roles"] == [{"value": "chat-operator", "type": "mapped"}]

    # What Okta and Entra send when IT removes someone from the group.
    status, _, _ = await scim.request(
        "PATCH", f"/Groups/{team['id']}", _members("remove", ann["id"])
    )
    assert status == 204
    assert await _grants(engine, ann["id"]) == set()
    assert await _product_groups(engine, ann["id"]) == set()
    actor = f"scim:{tenant.token_id}"
    entries = await _audit(engine, ann["id"])
    assert [(a, act) for a, act, _ in entries if act.startswith(("role.", "group."))] == [
        (actor, "role.granted"),
        (actor, "group.member_added"),
        (actor, "role.revoked"),
        (actor, "group.member_removed"),
    ]
    shown = await _cli(database_url, "audit", tenant.slug, "--user", ann["id"], "--action", "role.")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert len(lines) == 2 and "role.revoked" in lines[0] and "support-operators" in lines[1]
    # Adding back through the Entra-style member add.
    await scim.request("PATCH", f"/Groups/{team['id']}", _members("add", ann["id"]))
    assert await _grants(engine, ann["id"]) == {(None, "chat-operator", "mapped")}
    # Renaming the group away from the rule's name takes the role; deleting it too.
    rename = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Helpdesk"}],
    }
    await scim.request("PATCH", f"/Groups/{team['id']}", rename)
    assert await _grants(engine, ann["id"]) == set()
    await scim.request(
        "PATCH",
        f"/Groups/{team['id']}",
        {**rename, "Operations": [{**rename["Operations"][0], "value": "Support Team"}]},
    )
    assert await _grants(engine, ann["id"]) == {(None, "chat-operator", "mapped")}
    assert (await scim.delete(f"/Groups/{team['id']}"))[0] == 204
    assert await _grants(engine, ann["id"]) == set()


async def test_user_attributes_give_project_roles(
    database_url: str, engine: AsyncEngine, tenant: TenantAccess, scim: Scim, tmp_path: Path
) -> None:
    await _set_up(database_url, tenant, tmp_path, RULES)
    body = user(
        "fin@corp.example",
        schemas=["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        **{ENTERPRISE: {"department": "Finance"}},
    )
    _, fin, _ = await scim.post("/Users", body)
    assert await _grants(engine, fin["id"]) == {("Billing", "readonly", "mapped")}
    move = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Sales"}],
    }
    status, _, _ = await scim.request("PATCH", f"/Users/{fin['id']}", move)
    assert status == 200
    assert await _grants(engine, fin["id"]) == set()


async def test_a_manual_grant_survives_recomputation(
    database_url: str, engine: AsyncEngine, tenant: TenantAccess, scim: Scim, tmp_path: Path
) -> None:
    await _set_up(database_url, tenant, tmp_path, RULES)
    _, bob, _ = await scim.post("/Users", user("bob@corp.example"))
    granted = await _cli(database_url, "role", "grant", tenant.slug, "bob@corp.example", "admin")
    assert granted.exit_code == 0, granted.output
    await _cli(database_url, "group", "add-member", tenant.slug, "Operators", bob["id"])
    _, team, _ = await scim.post("/Groups", group("Support Team", [bob["id"]]))
    await scim.request("PATCH", f"/Groups/{team['id']}", _members("remove", bob["id"]))
    recomputed = await _cli(database_url, "mapping", "recompute", tenant.slug)
    assert recomputed.exit_code == 0, recomputed.output
    assert await _grants(engine, bob["id"]) == {(None, "admin", "manual")}
    assert await _product_groups(engine, bob["id"]) == {("Operators", "manual")}
    _, shown, _ = await scim.get(f"/Users/{bob['id']}")
    assert shown["roles"] == [{"value": "admin", "type": "manual"}]
    shown_json = await _cli(database_url, "role", "show", tenant.slug, bob["id"], "--json")
    assert json.loads(shown_json.output) == [
        {"project": None, "role": "admin", "source": "manual", "rules": []}
    ]
    revoked = await _cli(database_url, "role", "revoke", tenant.slug, bob["id"], "admin")
    assert revoked.exit_code == 0, revoked.output
    assert await _grants(engine, bob["id"]) == set()


async def test_scim_cannot_write_roles_the_rules_do_not_accept(
    database_url: str, engine: AsyncEngine, tenant: TenantAccess, scim: Scim, tmp_path: Path
) -> None:
    await _set_up(database_url, tenant, tmp_path, {**RULES, "scim_roles": ["member"]})
    roles = [
        {"value": "owner"},
        {"value": "admin", "type": "mapped"},  # posing as a grant of the rules
        {"value": "chat-operator", "type": "manual"},
        {"value": "Member", "primary": True},
    ]
    status, eve, _ = await scim.post("/Users", user("eve@corp.example", roles=roles))
    assert status == 201
    assert await _grants(engine, eve["id"]) == {(None, "member", "scim")}
    _, shown, _ = await scim.get(f"/Users/{eve['id']}")
    # What the client sent is kept as its own (minus the forged grants); only `member` counts.
    assert shown["roles"] == [{"value": "owner"}, {"value": "Member", "primary": True}]

    # Without the rules accepting SCIM roles, none is.
    await _set_rules(database_url, tenant, tmp_path, RULES)
    assert await _grants(engine, eve["id"]) == set()


async def test_name_collisions_grant_nothing(
    database_url: str,
    engine: AsyncEngine,
    tenant: TenantAccess,
    scim: Scim,
    tmp_path: Path,
) -> None:
    await _set_up(database_url, tenant, tmp_path, RULES)
    _, cat, _ = await scim.post("/Users", user("cat@corp.example"))
    _, real, _ = await scim.post("/Groups", group("Support Team", [cat["id"]]))
    assert await _grants(engine, cat["id"]) == {(None, "chat-operator", "mapped")}
    # A second SCIM group of the same name (any case): the name no longer tells which is
    # meant, so neither group grants by name, and the member of the first loses the role.
    _, dan, _ = await scim.post("/Users", user("dan@corp.example"))
    _, twin, _ = await scim.post("/Groups", group("support team", [dan["id"]]))
    assert await _grants(engine, cat["id"]) == set()
    assert await _grants(engine, dan["id"]) == set()
    # A rule naming the group by id still grants through it.
    by_id = {
        "rules": [
            {"name": "by-id", "when": [{"group_id": real["id"]}], "grant": {"roles": ["admin"]}}
        ]
    }
    await _set_rules(database_url, tenant, tmp_path, by_id)
    assert await _grants(engine, cat["id"]) == {(None, "admin", "mapped")}
    assert await _grants(engine, dan["id"]) == set()
    # A user whose own display name is the group's grants nothing either.
    _, ed, _ = await scim.post("/Users", user("ed@corp.example", displayName="Support Team"))
    await _set_rules(database_url, tenant, tmp_path, RULES)
    assert await _grants(engine, ed["id"]) == set()
    # Removing the twin makes the name unambiguous again.
    await scim.delete(f"/Groups/{twin['id']}")
    assert await _grants(engine, cat["id"]) == {(None, "chat-operator", "mapped")}


async def test_bulk_recomputes_after_commit(
    database_url: str, engine: AsyncEngine, tenant: TenantAccess, scim: Scim, tmp_path: Path
) -> None:
    await _set_up(database_url, tenant, tmp_path, RULES)
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": user("b1@corp.example")},
            {"method": "POST", "path": "/Users", "bulkId": "u2", "data": user("b2@corp.example")},
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g",
                "data": group("Support Team", ["bulkId:u1", "bulkId:u2"]),
            },
        ],
    }
    status, answer, _ = await scim.post("/Bulk", body)
    assert status == 200, answer
    ids = [op["location"].rsplit("/", 1)[1] for op in answer["Operations"][:2]]
    for user_id in ids:
        assert await _grants(engine, user_id) == {(None, "chat-operator", "mapped")}


async def test_concurrent_membership_changes_leave_grants_matching_membership(
    database_url: str, engine: AsyncEngine, tenant: TenantAccess, scim: Scim, tmp_path: Path
) -> None:
    await _set_up(database_url, tenant, tmp_path, RULES)
    _, fay, _ = await scim.post("/Users", user("fay@corp.example"))
    _, team, _ = await scim.post("/Groups", group("Support Team"))
    ops = ["add", "remove"] * 6
    await asyncio.gather(
        *(scim.request("PATCH", f"/Groups/{team['id']}", _members(op, fay["id"])) for op in ops)
    )
    _, found, _ = await scim.get(f"/Groups/{team['id']}")
    member = any(m["value"] == fay["id"] for m in found.get("members", []))
    expected = {(None, "chat-operator", "mapped")} if member else set()
    assert await _grants(engine, fay["id"]) == expected


async def test_invalid_rules_change_nothing(
    database_url: str, engine: AsyncEngine, tenant: TenantAccess, scim: Scim, tmp_path: Path
) -> None:
    await _set_up(database_url, tenant, tmp_path, RULES)
    _, gus, _ = await scim.post("/Users", user("gus@corp.example"))
    await scim.post("/Groups", group("Support Team", [gus["id"]]))
    before = await table_snapshot(engine, tenant.tenant.id)
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {"rules": [{"name": "x", "when": [{"group": "A"}], "grant": {"roles": ["superadmin"]}}]}
        )
    )
    refused = await _cli(database_url, "mapping", "set", tenant.slug, str(bad))
    assert refused.exit_code == 1
    assert "rules[0].grant.roles[0]" in refused.output
    assert await table_snapshot(engine, tenant.tenant.id) == before
    # A role the rules name cannot be removed from under them.
    removal = await _cli(database_url, "role", "remove", tenant.slug, "chat-operator")
    assert removal.exit_code == 1 and "name it" in removal.output
    assert await _grants(engine, gus["id"]) == {(None, "chat-operator", "mapped")}


async def test_mapping_test_explains_without_writing(
    database_url: str, engine: AsyncEngine, tenant: TenantAccess, scim: Scim, tmp_path: Path
) -> None:
    await _set_up(database_url, tenant, tmp_path, RULES)
    _, hal, _ = await scim.post("/Users", user("hal@corp.example"))
    await scim.post("/Groups", group("Support Team", [hal["id"]]))
    shown = await _cli(database_url, "mapping", "test", tenant.slug, "--user", "hal@corp.example")
    assert shown.exit_code == 0, shown.output
    assert "chat-operator" in shown.output and "support-operators" in shown.output
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps({"department": ["Finance"], "groups": ["Support Team"]}))
    tried = await _cli(
        database_url, "mapping", "test", tenant.slug, "--attributes", str(claims), "--json"
    )
    assert tried.exit_code == 0, tried.output
    answer = json.loads(tried.output)
    assert {(g["kind"], g["target"], g["role"]) for g in answer["grants"]} == {
        ("role", "chat-operator", None),
        ("group", "Operators", None),
        ("project", "Billing", "readonly"),
    }
    assert answer["default_role"] is None
    nobody = tmp_path / "nobody.json"
    nobody.write_text("{}")
    empty = json.loads(
        (
            await _cli(
                database_url, "mapping", "test", tenant.slug, "--attributes", str(nobody), "--json"
            )
        ).output
    )
    assert empty["grants"] == [] and empty["default_role"] == "readonly"


async def test_rule_change_recomputes_everyone(
    database_url: str, engine: AsyncEngine, tenant: TenantAccess, scim: Scim, tmp_path: Path
) -> None:
    await _set_up(database_url, tenant, tmp_path, RULES)
    _, ivy, _ = await scim.post("/Users", user("ivy@corp.example"))
    await scim.post("/Groups", group("Support Team", [ivy["id"]]))
    access = Access(AccessStore(engine), utc_now)
    stricter = {"default_role": "member", "rules": []}
    users, changes = await access.set_rules(tenant.tenant.id, stricter, "test")
    assert users == 1 and changes == 2  # the role and the product group
    assert await _grants(engine, ivy["id"]) == set()
    cleared = await _cli(database_url, "mapping", "clear", tenant.slug)
    assert cleared.exit_code == 0, cleared.output
    assert (await _cli(database_url, "mapping", "show", tenant.slug)).exit_code == 1


def test_the_deployed_example_rules_validate() -> None:
    document = load_document(Path(__file__).parent.parent / "deploy" / "mapping.example.yaml")
    names = CatalogueNames(("chat-operator",), ("Operators",), ("Billing",))
    rules = parse_mapping(document, catalogue(names))
    assert [r.name for r in rules.rules] == [
        "support-operators",
        "finance-billing",
        "ad-admins",
        "entra-app-roles",
    ]
    assert rules.scim_roles == frozenset({"member", "readonly"})
    # Without the custom role it names, it is refused.
    with pytest.raises(MappingError, match="chat-operator"):
        parse_mapping(document, catalogue(CatalogueNames((), ("Operators",), ("Billing",))))


def test_a_rule_scoped_to_a_connection_reads_only_that_connections_claims() -> None:
    names = CatalogueNames(("chat-operator",), (), ())
    rules = parse_mapping(
        {
            "rules": [
                {
                    "name": "entra-roles",
                    "connection": "entra",
                    "when": [{"attribute": "roles", "present": True}],
                    "grant": {"roles_from": "roles"},
                },
                {
                    "name": "entra-admins",
                    "connection": "entra",
                    "when": [{"group": "Admins"}],
                    "grant": {"roles": ["admin"]},
                },
            ]
        },
        catalogue(names),
    )
    row = SubjectRow(
        uuid.uuid4(),
        {"userName": "kim@corp.example"},
        True,
        (
            ("okta", {"roles": ["admin"], "groups": ["Admins"]}),  # another IdP's say-so
            ("entra", {"roles": ["chat-operator"]}),
        ),
        (),
    )
    assert {(g.target, g.rules) for g in assign(rules, subject(rules, row)).grants} == {
        ("chat-operator", ("entra-roles",))
    }
