"""Invitations and CSV imports through `/api/v1`, on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import utc_now
from storage.access_store import AccessStore
from tests.admin_support import audit_entries, call, key_headers, person, pushed_user
from tests.conftest import Scim, TenantAccess, table_snapshot

Client = TestClient[Any, Any]


async def _catalogue(engine: AsyncEngine, store: Any, tenant: TenantAccess) -> None:
    access = AccessStore(engine)
    await access.add_role(tenant.tenant.id, "auditor", "", utc_now())
    await access.add_project(tenant.tenant.id, "Billing", "", utc_now())
    for name in ("Support", "Engineering"):
        await store.create_product_group(tenant.tenant.id, name, utc_now())


async def _count_users(engine: AsyncEngine, tenant: TenantAccess) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT count(*) FROM users WHERE tenant_id = :t"), {"t": tenant.tenant.id}
        )
        return int(found.scalar_one())


async def test_an_invited_person_is_pending_with_the_access_given(
    client: Client, engine: AsyncEngine, store: Any, tenant: TenantAccess, scim: Scim
) -> None:
    await _catalogue(engine, store, tenant)
    _, admin = await person(engine, scim, tenant, "admin@corp.example", "admin")
    body = {
        "email": "New.Person@Corp.Example",
        "name": "New Person",
        "roles": ["member", "Auditor"],
        "project_roles": [{"project": "billing", "role": "admin"}],
        "groups": ["support"],
    }
    status, sent = await call(client, "POST", f"/orgs/{tenant.slug}/invitations", admin, body)
    assert status == 201, sent
    assert sent["link"].startswith("http://scim.test/invite/idgi_")
    invitation = sent["invitation"]
    assert invitation["status"] == "pending" and invitation["email"] == "new.person@corp.example"
    user_path = f"/orgs/{tenant.slug}/users/{invitation['user_id']}"
    status, user = await call(client, "GET", user_path, admin)
    assert status == 200 and user["status"] == "pending" and user["name"] == "New Person"
    assert user["roles"] == ["auditor", "member"]
    assert [(g["project"], g["role"]) for g in user["project_roles"]] == [("Billing", "admin")]
    assert [g["name"] for g in user["groups"]] == ["Support"]
    assert user["managed_by"] is None  # an admin's user: the admin API may edit it
    status, page = await call(
        client, "GET", f"/orgs/{tenant.slug}/users", admin, params={"status": "pending"}
    )
    assert [u["email"] for u in page["data"]] == ["new.person@corp.example"]
    [entry] = await audit_entries(engine, f"user:{invitation['user_id']}", "invitation.created")
    assert entry.actor.startswith("user:")


async def test_a_refused_invitation_changes_nothing(
    client: Client, engine: AsyncEngine, store: Any, tenant: TenantAccess, scim: Scim
) -> None:
    await _catalogue(engine, store, tenant)
    _, admin = await person(engine, scim, tenant, "admin@corp.example", "admin")
    await pushed_user(scim, "taken@corp.example")
    before = await table_snapshot(engine, tenant.tenant.id)
    path = f"/orgs/{tenant.slug}/invitations"
    cases = [
        ({"email": "taken@corp.example"}, 409),
        ({"email": "TAKEN@corp.example"}, 409),
        ({"email": "x@corp.example", "roles": ["wizard"]}, 400),
        ({"email": "x@corp.example", "groups": ["Nope"]}, 400),
        ({"email": "x@corp.example", "project_roles": [{"project": "Nope", "role": "member"}]},
         400),
        ({"email": "not an email"}, 400),
        ({"email": "x@corp.example", "roles": ["owner"]}, 403),
    ]  # fmt: skip
    for body, expected in cases:
        status, problem = await call(client, "POST", path, admin, body)
        assert status == expected, (body, problem)
        assert problem["status"] == expected and problem["detail"]
    assert await table_snapshot(engine, tenant.tenant.id) == before


async def test_resend_gives_a_new_link_and_revoke_removes_the_pending_user(
    client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    admin = await key_headers(engine, tenant, "admin")
    path = f"/orgs/{tenant.slug}/invitations"
    _, sent = await call(client, "POST", path, admin, {"email": "inv@corp.example"})
    invitation = sent["invitation"]
    status, again = await call(client, "POST", f"{path}/{invitation['id']}/resend", admin)
    assert status == 200 and again["link"] != sent["link"]
    assert again["invitation"]["sends"] == 2
    assert again["invitation"]["expires_at"] >= invitation["expires_at"]
    assert (await call(client, "DELETE", f"{path}/{invitation['id']}", admin))[0] == 204
    status, listed = await call(client, "GET", path, admin)
    assert [(i["id"], i["status"]) for i in listed["data"]] == [(invitation["id"], "revoked")]
    user_path = f"/orgs/{tenant.slug}/users/{invitation['user_id']}"
    assert (await call(client, "GET", user_path, admin))[0] == 404
    assert (await call(client, "DELETE", f"{path}/{invitation['id']}", admin))[0] == 404
    assert (await call(client, "POST", f"{path}/{invitation['id']}/resend", admin))[0] == 404


async def test_an_invitation_past_its_expiry_shows_expired(
    client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    admin = await key_headers(engine, tenant, "admin")
    path = f"/orgs/{tenant.slug}/invitations"
    _, sent = await call(client, "POST", path, admin, {"email": "late@corp.example"})
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE invitations SET expires_at = now() - interval '1 day' WHERE id = :i"),
            {"i": sent["invitation"]["id"]},
        )
    _, listed = await call(client, "GET", path, admin)
    assert [i["status"] for i in listed["data"]] == ["expired"]


def _thousand_rows_with_fifty_bad() -> str:
    lines = ["email,name,role,groups"]
    for i in range(1000):
        if i % 20 == 0:  # 50 bad rows of five kinds
            kind = (i // 20) % 5
            lines.append(
                [
                    f"bad-{i}-at-corp.example,Bad {i},member,",
                    f"u{i - 1}@corp.example,Duplicate {i},member,",
                    f"u{i}@corp.example,Unknown role {i},wizard,",
                    f"u{i}@corp.example,Unknown group {i},member,Nowhere",
                    f"u{i}@corp.example,{'x' * 300},member,",
                ][kind]
            )
        else:
            lines.append(f"u{i}@corp.example,User {i},member,Support;engineering")
    return "\r\n".join(lines) + "\r\n"


async def test_csv_import_of_1000_rows_with_50_bad_ones(
    client: Client, engine: AsyncEngine, store: Any, tenant: TenantAccess
) -> None:
    await _catalogue(engine, store, tenant)
    admin = await key_headers(engine, tenant, "admin")
    data = _thousand_rows_with_fifty_bad()
    headers = {**admin, "Content-Type": "text/csv"}
    base = f"/api/v1/orgs/{tenant.slug}/imports"
    resp = await client.post(base + "/preview", data=data.encode(), headers=headers)
    assert resp.status == 200, await resp.text()
    preview = await resp.json()
    assert preview["counts"] == {"add": 950, "update": 0, "skip": 0, "error": 50}
    assert {e["code"] for e in preview["errors"]} == {
        "invalid_email", "duplicate", "unknown_role", "unknown_group", "name_too_long"
    }  # fmt: skip
    assert len(preview["error_csv"].strip().splitlines()) == 51
    assert await _count_users(engine, tenant) == 0  # a preview changes nothing

    resp = await client.post(base, data=data.encode(), headers=headers)
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert done["replayed"] is False and done["counts"]["add"] == 950
    assert len(done["invited"]) == 950 and len({i["link"] for i in done["invited"]}) == 950
    assert await _count_users(engine, tenant) == 950
    async with engine.connect() as conn:
        memberships = await conn.execute(
            text("SELECT count(*) FROM group_members WHERE tenant_id = :t"),
            {"t": tenant.tenant.id},
        )
        assert memberships.scalar_one() == 950 * 2

    resp = await client.post(base, data=data.encode(), headers=headers)
    again = await resp.json()
    assert resp.status == 200 and again["replayed"] is True and again["invited"] == []
    assert again["counts"] == done["counts"]
    assert await _count_users(engine, tenant) == 950


async def test_a_file_changed_after_import_adds_only_what_is_new(
    client: Client, engine: AsyncEngine, store: Any, tenant: TenantAccess, scim: Scim
) -> None:
    await _catalogue(engine, store, tenant)
    admin = await key_headers(engine, tenant, "admin")
    headers = {**admin, "Content-Type": "text/csv"}
    base = f"/api/v1/orgs/{tenant.slug}/imports"
    pushed = await pushed_user(scim, "idp@corp.example", displayName="From IdP")
    first = "email,name,role\na@corp.example,A,member\n"
    assert (await client.post(base, data=first, headers=headers)).status == 200
    second = (
        "email,name,role,groups\n"
        "a@corp.example,A,member,Support\n"  # adds a group
        "b@corp.example,B,,\n"  # new
        "idp@corp.example,,auditor,\n"  # adds a role to a user the IdP manages
        "IDP@corp.example,Renamed,,\n"  # refused: duplicate of the row above
    )
    resp = await client.post(base + "/preview", data=second, headers=headers)
    preview = await resp.json()
    assert preview["counts"] == {"add": 1, "update": 2, "skip": 0, "error": 1}
    resp = await client.post(base, data=second, headers=headers)
    assert resp.status == 200
    resp = await client.post(base + "/preview", data=second, headers=headers)
    assert (await resp.json())["counts"] == {"add": 0, "update": 0, "skip": 3, "error": 1}
    _, user = await call(client, "GET", f"/orgs/{tenant.slug}/users/{pushed}", admin)
    assert user["roles"] == ["auditor"] and user["name"] == "From IdP"


async def test_two_identical_confirms_at_once_import_once(
    client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    admin = await key_headers(engine, tenant, "admin")
    headers = {**admin, "Content-Type": "text/csv"}
    data = "email,name\n" + "".join(f"c{i}@corp.example,C {i}\n" for i in range(200))
    base = f"/api/v1/orgs/{tenant.slug}/imports"
    answers = await asyncio.gather(
        client.post(base, data=data, headers=headers), client.post(base, data=data, headers=headers)
    )
    bodies = [await r.json() for r in answers]
    assert sorted(b["replayed"] for b in bodies) == [False, True]
    assert await _count_users(engine, tenant) == 200


async def test_a_bad_file_is_refused_whole(
    client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    admin = await key_headers(engine, tenant, "admin")
    base = f"/api/v1/orgs/{tenant.slug}/imports"
    csv = {**admin, "Content-Type": "text/csv"}
    cases = [
        ("name,role\nA,member\n", csv, 400, "missing_column"),
        ("email,colour\na@corp.example,red\n", csv, 400, "unknown_columns"),
        ("", csv, 400, "empty"),
        ("email\n" + "".join(f"m{i}@corp.example\n" for i in range(1001)), csv, 400,
         "too_many_rows"),
        ("email\na@corp.example\n", {**admin, "Content-Type": "application/json"}, 415,
         "unsupported_media_type"),
    ]  # fmt: skip
    for data, headers, status, code in cases:
        resp = await client.post(base, data=data, headers=headers)
        body = await resp.json(content_type=None)
        assert (resp.status, body["code"]) == (status, code), data[:40]
    assert await _count_users(engine, tenant) == 0


async def test_only_an_owner_imports_owners(
    client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    data = "email,role\nboss@corp.example,owner\n"
    base = f"/api/v1/orgs/{tenant.slug}/imports/preview"
    for scope, counts in (
        ("admin", {"add": 0, "update": 0, "skip": 0, "error": 1}),
        ("owner", {"add": 1, "update": 0, "skip": 0, "error": 0}),
    ):
        headers = {**await key_headers(engine, tenant, scope), "Content-Type": "text/csv"}
        resp = await client.post(base, data=data, headers=headers)
        assert (await resp.json())["counts"] == counts, scope


async def test_an_owners_invitation_is_an_owners_to_resend_or_revoke(
    client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    owner = await key_headers(engine, tenant, "owner")
    admin = await key_headers(engine, tenant, "admin")
    path = f"/orgs/{tenant.slug}/invitations"
    _, sent = await call(client, "POST", path, owner,
                         {"email": "owner2@corp.example", "roles": ["owner"]})  # fmt: skip
    invitation = sent["invitation"]["id"]
    status, body = await call(client, "POST", f"{path}/{invitation}/resend", admin)
    assert status == 403 and "owner" in body["detail"]
    assert (await call(client, "DELETE", f"{path}/{invitation}", admin))[0] == 403
    assert (await call(client, "POST", f"{path}/{invitation}/resend", owner))[0] == 200
    assert (await call(client, "DELETE", f"{path}/{invitation}", owner))[0] == 204


async def test_an_admins_import_cannot_change_an_owner(
    client: Client, engine: AsyncEngine, store: Any, tenant: TenantAccess, scim: Scim
) -> None:
    await _catalogue(engine, store, tenant)
    _, _owner = await person(engine, scim, tenant, "boss@corp.example", "owner")
    admin = {**await key_headers(engine, tenant, "admin"), "Content-Type": "text/csv"}
    owner = {**await key_headers(engine, tenant, "owner"), "Content-Type": "text/csv"}
    data = "email,role,groups\nboss@corp.example,auditor,Support\n"
    base = f"/api/v1/orgs/{tenant.slug}/imports"
    preview = await (await client.post(base + "/preview", data=data, headers=admin)).json()
    assert preview["counts"]["error"] == 1
    assert preview["errors"][0]["code"] == "owner_not_allowed"
    done = await (await client.post(base, data=data, headers=admin)).json()
    assert done["counts"]["update"] == 0 and done["replayed"] is False
    # The owner's confirm of the same file does it: it is not a replay of the admin's.
    done = await (await client.post(base, data=data, headers=owner)).json()
    assert done["counts"]["update"] == 1 and done["replayed"] is False


async def test_a_file_that_could_not_be_done_is_done_once_it_can(
    client: Client, engine: AsyncEngine, store: Any, tenant: TenantAccess
) -> None:
    admin = {**await key_headers(engine, tenant, "admin"), "Content-Type": "text/csv"}
    data = "email,groups\nnew@corp.example,Later\n"
    base = f"/api/v1/orgs/{tenant.slug}/imports"
    first = await (await client.post(base, data=data, headers=admin)).json()
    assert first["counts"]["error"] == 1 and first["invited"] == []
    await store.create_product_group(tenant.tenant.id, "Later", utc_now())
    second = await (await client.post(base, data=data, headers=admin)).json()
    assert second["replayed"] is False and len(second["invited"]) == 1
    third = await (await client.post(base, data=data, headers=admin)).json()
    assert third["replayed"] is True and third["counts"] == second["counts"]
