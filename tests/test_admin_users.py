"""The users part of `/api/v1`: list, search, filters, pages, export, a user's page, edits,
block, deactivation, deletion and roles, through the real app on PostgreSQL."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.keys import ACCESS
from tests.admin_support import (
    PROBLEM,
    audit_entries,
    call,
    grant,
    key_headers,
    own_user,
    person,
    pushed_user,
    session_headers,
)
from tests.conftest import Scim, TenantAccess, group, table_snapshot

Client = TestClient[Any, Any]


async def test_no_credentials_is_a_401_problem(client: Client, tenant: TenantAccess) -> None:
    resp = await client.get(f"/api/v1/orgs/{tenant.slug}/users")
    assert resp.status == 401
    assert resp.content_type == PROBLEM
    body = await resp.json(content_type=None)
    assert body["status"] == 401 and body["code"] == "unauthenticated"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_an_api_key_sees_only_its_own_organisation(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, other_tenant: TenantAccess
) -> None:
    headers = await key_headers(engine, tenant, "admin")
    assert (await call(client, "GET", f"/orgs/{tenant.slug}/users", headers))[0] == 200
    status, body = await call(client, "GET", f"/orgs/{other_tenant.slug}/users", headers)
    assert status == 404 and body["code"] == "not_found"
    # An organisation that does not exist answers the same.
    assert (await call(client, "GET", "/orgs/no-such-org/users", headers))[0] == 404


async def test_members_and_readonly_users_have_no_administration(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    for role in ("member", "readonly"):
        _, headers = await person(engine, scim, tenant, f"{role}@corp.example", role)
        status, body = await call(client, "GET", f"/orgs/{tenant.slug}/users", headers)
        assert status == 403, role
        assert body["code"] == "forbidden"
    _, admin = await person(engine, scim, tenant, "boss@corp.example", "admin")
    assert (await call(client, "GET", f"/orgs/{tenant.slug}/users", admin))[0] == 200


async def test_search_by_part_of_name_email_or_id_in_pages(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    headers = await key_headers(engine, tenant, "admin:read")
    ids = {}
    for first, last in [("Ada", "Lovelace"), ("Alan", "Turing"), ("Grace", "Hopper"),
                        ("Adele", "Goldberg"), ("Barbara", "Liskov")]:  # fmt: skip
        login = f"{first.lower()}.{last.lower()}@corp.example"
        ids[first] = await pushed_user(
            scim,
            login,
            name={"givenName": first, "familyName": last},
            emails=[{"value": f"{first[0].lower()}{last.lower()}@mail.example", "primary": True}],
        )
    base = f"/orgs/{tenant.slug}/users"

    async def names(q: str) -> list[str]:
        status, body = await call(client, "GET", base, headers, params={"q": q})
        assert status == 200, body
        return [u["name"] for u in body["data"]]

    assert await names("LOVE") == ["Ada Lovelace"]
    assert await names("hopper@mail") == ["Grace Hopper"]  # part of an e-mail
    assert await names("ad") == ["Ada Lovelace", "Adele Goldberg"]
    assert await names(str(ids["Alan"])) == ["Alan Turing"]
    assert await names(str(ids["Alan"])[:8]) == ["Alan Turing"]
    assert await names("nobody-like-this") == []
    # Pages of two, in userName order, each user once.
    seen: list[str] = []
    params: dict[str, str] = {"limit": "2"}
    while True:
        status, body = await call(client, "GET", base, headers, params=params)
        assert status == 200 and len(body["data"]) <= 2
        seen += [u["user_name"] for u in body["data"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 5
    status, body = await call(client, "GET", base, headers, params={"cursor": "garbage"})
    assert status == 400 and body["errors"][0]["field"] == "cursor"
    status, body = await call(client, "GET", base, headers, params={"limit": "0"})
    assert status == 400 and body["errors"][0]["field"] == "limit"


async def test_filters_by_status_role_group_and_last_login(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    headers = await key_headers(engine, tenant, "owner")
    base = f"/orgs/{tenant.slug}/users"
    active = await pushed_user(scim, "active@corp.example")
    blocked = await pushed_user(scim, "blocked@corp.example")
    gone = await pushed_user(scim, "gone@corp.example", active=False)
    await grant(engine, tenant, active, "admin")
    status, body = await call(client, "POST", f"{base}/{blocked}/block", headers, {"reason": "x"})
    assert status == 200, body
    await session_headers(engine, tenant, active)  # a login
    status, group, _ = await scim.post("/Groups", {"schemas": [
        "urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Ops",
        "members": [{"value": str(blocked)}]})  # fmt: skip
    assert status == 201

    async def found(**params: str) -> set[uuid.UUID]:
        status, body = await call(client, "GET", base, headers, params=params)
        assert status == 200, body
        return {uuid.UUID(u["id"]) for u in body["data"]}

    assert await found(status="active") == {active}
    assert await found(status="blocked") == {blocked}
    assert await found(status="deactivated") == {gone}
    assert await found(role="admin") == {active}
    assert await found(group=group["id"]) == {blocked}
    assert await found(last_login_from="2000-01-01T00:00:00Z") == {active}
    assert await found(never_logged_in="true") == {blocked, gone}
    status, body = await call(client, "GET", base, headers, params={"status": "sleepy"})
    assert status == 400 and body["errors"][0]["field"] == "status"


async def test_a_users_page_shows_roles_groups_activity_and_attributes(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    headers = await key_headers(engine, tenant, "admin:read")
    user_id = await pushed_user(
        scim,
        "jane@corp.example",
        name={"givenName": "Jane", "familyName": "Doe"},
        timezone="Europe/Paris",
        locale="fr-FR",
        emails=[{"value": "jane@corp.example", "primary": True}],
        **{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}},
    )
    await grant(engine, tenant, user_id, "member")
    await session_headers(engine, tenant, user_id)
    status, body = await call(client, "GET", f"/orgs/{tenant.slug}/users/{user_id}", headers)
    assert status == 200, body
    assert body["name"] == "Jane Doe" and body["email"] == "jane@corp.example"
    assert (body["timezone"], body["locale"]) == ("Europe/Paris", "fr-FR")
    assert body["status"] == "active" and body["roles"] == ["member"]
    assert body["roles_detail"] == [
        {"role": "member", "source": "manual", "project_id": None, "project": None}
    ]
    assert body["managed_by"].startswith("scim:")
    assert body["activity"]["logins"] == 1 and body["activity"]["last_login_at"]
    assert body["custom_attributes"] == {
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}
    }
    missing = f"/orgs/{tenant.slug}/users/{uuid.uuid4()}"
    assert (await call(client, "GET", missing, headers))[0] == 404
    assert (await call(client, "GET", f"/orgs/{tenant.slug}/users/not-a-uuid", headers))[0] == 404


async def test_block_needs_a_reason_and_takes_effect_at_once(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    _, admin = await person(engine, scim, tenant, "admin@corp.example", "admin")
    user_id = await pushed_user(scim, "jo@corp.example")
    jo = await session_headers(engine, tenant, user_id)
    assert (await client.get("/auth/verify", headers=jo)).status == 200
    path = f"/orgs/{tenant.slug}/users/{user_id}"
    before = await table_snapshot(engine, tenant.tenant.id)
    for body in ({}, {"reason": "   "}, {"reason": "x", "extra": 1}):
        status, problem = await call(client, "POST", path + "/block", admin, body)
        assert status == 400 and problem["code"] == "invalid_request", body
    assert await table_snapshot(engine, tenant.tenant.id) == before
    status, body = await call(client, "POST", path + "/block", admin, {"reason": "left"})
    assert status == 200 and body["status"] == "blocked" and body["blocked_reason"] == "left"
    assert (await client.get("/auth/verify", headers=jo)).status == 401
    [entry] = await audit_entries(engine, f"user:{user_id}", "user.blocked")
    assert entry.actor.startswith("user:") and entry.details["reason"] == "left"
    status, body = await call(client, "POST", path + "/unblock", admin, {"reason": "back"})
    assert status == 200 and body["status"] == "active" and body["blocked_reason"] is None


async def test_an_admin_cannot_touch_an_owner_but_an_owner_can(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    _, admin = await person(engine, scim, tenant, "admin@corp.example", "admin")
    _, owner = await person(engine, scim, tenant, "owner@corp.example", "owner")
    other_owner = await pushed_user(scim, "owner2@corp.example")
    await grant(engine, tenant, other_owner, "owner")
    path = f"/orgs/{tenant.slug}/users/{other_owner}"
    status, body = await call(client, "POST", path + "/block", admin, {"reason": "coup"})
    assert status == 403 and "owner" in body["detail"]
    assert (await call(client, "POST", path + "/deactivate", admin))[0] == 403
    status, body = await call(client, "POST", path + "/block", owner, {"reason": "left"})
    assert status == 200 and body["status"] == "blocked"


async def test_deactivate_and_reactivate_are_scims_active(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    admin = await key_headers(engine, tenant, "admin")
    user_id = await pushed_user(scim, "deact@corp.example")
    path = f"/orgs/{tenant.slug}/users/{user_id}"
    status, body = await call(client, "POST", path + "/deactivate", admin)
    assert status == 200 and body["status"] == "deactivated"
    _, resource, _ = await scim.get(f"/Users/{user_id}")
    assert resource["active"] is False
    status, body = await call(client, "POST", path + "/reactivate", admin)
    assert status == 200 and body["status"] == "active"
    _, resource, _ = await scim.get(f"/Users/{user_id}")
    assert resource["active"] is True


async def test_the_idp_owns_the_profile_of_the_users_it_manages(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim, store: Any
) -> None:
    admin = await key_headers(engine, tenant, "admin")
    pushed = await pushed_user(scim, "pushed@corp.example")
    mine = await own_user(engine, scim, "mine@corp.example")
    edit = {"given_name": "New", "family_name": "Name", "timezone": "UTC"}
    status, body = await call(client, "PATCH", f"/orgs/{tenant.slug}/users/{pushed}", admin, edit)
    assert status == 409 and body["code"] == "idp_managed"
    # Fields the IdP does not own are the admin's.
    status, body = await call(
        client, "PATCH", f"/orgs/{tenant.slug}/users/{pushed}", admin, {"locale": "de-DE"}
    )
    assert status == 200 and body["locale"] == "de-DE"
    status, body = await call(client, "PATCH", f"/orgs/{tenant.slug}/users/{mine}", admin, edit)
    assert status == 200 and body["name"] == "New Name" and body["timezone"] == "UTC"
    await store.update_tenant_settings(tenant.slug, {"admin_overrides": True})
    status, body = await call(client, "PATCH", f"/orgs/{tenant.slug}/users/{pushed}", admin, edit)
    assert status == 200 and body["name"] == "New Name"
    bad = {"email": "not-an-email"}
    status, body = await call(client, "PATCH", f"/orgs/{tenant.slug}/users/{mine}", admin, bad)
    assert status == 400 and body["errors"][0]["field"] == "email"


async def test_hard_delete_needs_a_recent_login_or_an_owner_key(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    owner_id = await pushed_user(scim, "owner@corp.example")
    await grant(engine, tenant, owner_id, "owner")
    stale = await session_headers(engine, tenant, owner_id, age=timedelta(minutes=30))
    fresh = await session_headers(engine, tenant, owner_id)
    admin_key = await key_headers(engine, tenant, "admin")
    victims = [await pushed_user(scim, f"v{i}@corp.example") for i in range(3)]
    path = f"/orgs/{tenant.slug}/users/"
    hard = {"params": {"mode": "hard"}}
    status, body = await call(client, "DELETE", path + str(victims[0]), stale, **hard)
    assert status == 401 and body["code"] == "reauthentication_required"
    status, body = await call(client, "DELETE", path + str(victims[0]), admin_key, **hard)
    assert status == 403
    assert (await call(client, "DELETE", path + str(victims[0]), fresh, **hard))[0] == 204
    # A soft delete needs neither, and keeps the user apart.
    assert (await call(client, "DELETE", path + str(victims[1]), admin_key))[0] == 204
    async with engine.connect() as conn:
        kept = set(
            (await conn.execute(text("SELECT id FROM deleted_users WHERE tenant_id = :t"),
                                {"t": tenant.tenant.id})).scalars()
        )  # fmt: skip
    assert kept == {victims[1]}
    assert (await call(client, "GET", path + str(victims[0]), admin_key))[0] == 404


async def test_roles_preview_and_change_with_what_is_gained_and_lost(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    _, admin = await person(engine, scim, tenant, "admin@corp.example", "admin")
    user_id = await pushed_user(scim, "r@corp.example")
    await grant(engine, tenant, user_id, "member")
    path = f"/orgs/{tenant.slug}/users/{user_id}/roles"
    change = {"roles": ["Admin"]}
    status, impact = await call(client, "POST", path + "/preview", admin, change)
    assert status == 200, impact
    assert impact["gained"] == ["admin"] and impact["lost"] == ["member"]
    assert impact["applied"] is False
    status, body = await call(client, "GET", f"/orgs/{tenant.slug}/users/{user_id}", admin)
    assert body["roles"] == ["member"]  # the preview changed nothing
    status, impact = await call(client, "PUT", path, admin, change)
    assert status == 200 and impact["applied"] is True
    status, body = await call(client, "GET", f"/orgs/{tenant.slug}/users/{user_id}", admin)
    assert body["roles"] == ["admin"]
    before = await table_snapshot(engine, tenant.tenant.id)
    status, body = await call(client, "PUT", path, admin, {"roles": ["owner"]})
    assert status == 403
    status, body = await call(client, "PUT", path, admin, {"roles": ["admin", "wizard"]})
    assert status == 400 and "wizard" in body["detail"]
    status, body = await call(
        client, "PUT", path, admin, {"roles": [], "project_roles": [{"project": "Nope",
                                                                      "role": "member"}]}
    )  # fmt: skip
    assert status == 400 and "Nope" in body["detail"]
    assert await table_snapshot(engine, tenant.tenant.id) == before


async def test_export_is_csv_with_formulas_defused(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    headers = await key_headers(engine, tenant, "admin:read")
    await pushed_user(scim, "plain@corp.example")
    await pushed_user(scim, "formula@corp.example", displayName="=HYPERLINK(1)")
    resp = await client.get(f"/api/v1/orgs/{tenant.slug}/users.csv", headers=headers)
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert {r["user_name"] for r in rows} == {"plain@corp.example", "formula@corp.example"}
    formula = next(r for r in rows if r["user_name"] == "formula@corp.example")
    assert formula["name"] == "'=HYPERLINK(1)"


async def test_a_cookie_write_from_another_site_is_refused(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    _, admin = await person(engine, scim, tenant, "admin@corp.example", "admin")
    user_id = await pushed_user(scim, "x@corp.example")
    path = f"/orgs/{tenant.slug}/users/{user_id}/block"
    evil = {**admin, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    status, body = await call(client, "POST", path, evil, {"reason": "csrf"})
    assert status == 403 and body["code"] == "cross_site"
    same = {**admin, "Sec-Fetch-Site": "same-origin"}
    assert (await call(client, "POST", path, same, {"reason": "ok"}))[0] == 200


async def test_a_reseller_admin_acts_in_a_dependent_organisation_visibly(
    client: Client,
    engine: AsyncEngine,
    tenant: TenantAccess,
    other_tenant: TenantAccess,
    scim: Scim,
    other_scim: Scim,
) -> None:
    # `tenant` resells to `other_tenant`.
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE tenants SET parent_id = :p WHERE id = :c"),
            {"p": tenant.tenant.id, "c": other_tenant.tenant.id},
        )
    _, reseller_owner = await person(engine, scim, tenant, "owner@reseller.example", "owner")
    client_user = await pushed_user(other_scim, "u@client.example")
    client_owner = await pushed_user(other_scim, "boss@client.example")
    await grant(engine, other_tenant, client_owner, "owner")
    base = f"/orgs/{other_tenant.slug}/users"
    resp = await client.get("/api/v1" + base, headers=reseller_owner)
    assert resp.status == 200
    assert resp.headers["X-Idgate-Acting-As"] == f"admin via {tenant.slug}"
    status, _ = await call(
        client, "POST", f"{base}/{client_user}/block", reseller_owner, {"reason": "unpaid"}
    )
    assert status == 200
    [(actor, details)] = await audit_entries(engine, f"user:{client_user}", "user.blocked")
    assert actor.endswith(f"@{tenant.slug}") and details["via"] == tenant.slug
    # As an admin, never an owner, there; and the dependent sees nothing of the reseller.
    status, _ = await call(
        client, "POST", f"{base}/{client_owner}/block", reseller_owner, {"reason": "x"}
    )
    assert status == 403
    client_admin_key = await key_headers(engine, other_tenant, "owner")
    status, _ = await call(client, "GET", f"/orgs/{tenant.slug}/users", client_admin_key)
    assert status == 404


async def test_an_owner_who_is_out_is_still_an_owner_for_admins(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    access = client.server.app[ACCESS]
    rules = {"rules": [{"name": "owners", "when": [{"group": "Owners"}],
                        "grant": {"roles": ["owner"]}}]}  # fmt: skip
    await access.set_rules(tenant.tenant.id, rules, "test")
    boss = await pushed_user(scim, "boss@corp.example")
    status, _, _ = await scim.post("/Groups", group("Owners", [str(boss)]))
    assert status == 201
    owner_key = await key_headers(engine, tenant, "owner")
    admin = await key_headers(engine, tenant, "admin")
    path = f"/orgs/{tenant.slug}/users/{boss}"
    assert (await call(client, "GET", path, admin))[1]["roles"] == ["owner"]
    status, body = await call(client, "POST", path + "/block", owner_key, {"reason": "audit"})
    assert status == 200 and body["roles"] == []  # suspended while blocked
    status, body = await call(client, "POST", path + "/unblock", admin, {"reason": "x"})
    assert status == 403, body
    assert (await call(client, "DELETE", path, admin))[0] == 403
    status, body = await call(client, "POST", path + "/unblock", owner_key, {"reason": "ok"})
    assert status == 200 and body["roles"] == ["owner"]


async def test_a_nul_in_a_path_or_an_out_of_range_time_is_a_4xx(
    client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    admin = await key_headers(engine, tenant, "admin")
    for path in ("/orgs/%00/users", f"/orgs/{tenant.slug}/roles/%00",
                 f"/orgs/{tenant.slug}/invitations/%00/resend"):  # fmt: skip
        method = "DELETE" if "roles" in path else ("POST" if "resend" in path else "GET")
        status, body = await call(client, method, path, admin)
        assert status == 404, (path, body)
    status, body = await call(client, "GET", f"/orgs/{tenant.slug}/users", admin,
                              params={"last_login_from": "9999-12-31T23:59:59-14:00"})  # fmt: skip
    assert status == 400 and body["errors"][0]["field"] == "last_login_from"
    assert (await client.get("/login/%00")).status == 404


async def test_a_users_own_idle_limit_applies_to_its_live_sessions(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    _, admin = await person(engine, scim, tenant, "admin@corp.example", "admin")
    _, owner = await person(engine, scim, tenant, "owner@corp.example", "owner")
    user_id = await pushed_user(scim, "jo@corp.example")
    # Started and last seen 10 minutes ago, with an idle limit of 70 minutes of its own
    # (a check that passes restarts the idle clock: each session is checked once it counts).
    ago = timedelta(minutes=10)
    path = f"/orgs/{tenant.slug}/users/{user_id}/session-policy"
    before = await table_snapshot(engine, tenant.tenant.id)
    for body in ({}, {"idle_minutes": 0}, {"idle_minutes": "5"}, {"idle_minutes": 5, "x": 1}):
        status, problem = await call(client, "PUT", path, admin, body)
        assert status == 400 and problem["code"] == "invalid_request", body
    assert await table_snapshot(engine, tenant.tenant.id) == before

    first = await session_headers(engine, tenant, user_id, age=ago)
    status, body = await call(client, "PUT", path, admin, {"idle_minutes": 5})
    assert status == 200 and body["session_idle_minutes"] == 5
    assert (await client.get("/auth/verify", headers=first)).status == 401
    [entry] = await audit_entries(engine, f"user:{user_id}", "user.session_policy")
    assert entry.actor.startswith("user:") and entry.details == {"session_idle_seconds": 300}
    # Back to the organisation's limit (none: the session's own): it lives again.
    status, body = await call(client, "PUT", path, admin, {"idle_minutes": None})
    assert status == 200 and body["session_idle_minutes"] is None
    assert (await client.get("/auth/verify", headers=first)).status == 200

    # The organisation's limit applies to live sessions too; a user's own wins over it.
    second = await session_headers(engine, tenant, user_id, age=ago)
    third = await session_headers(engine, tenant, user_id, age=ago)
    settings = f"/orgs/{tenant.slug}/settings"
    assert (await call(client, "PATCH", settings, owner, {"session_idle_minutes": 5}))[0] == 200
    assert (await client.get("/auth/verify", headers=second)).status == 401
    assert (await call(client, "PUT", path, admin, {"idle_minutes": 60}))[0] == 200
    assert (await client.get("/auth/verify", headers=third)).status == 200


async def test_an_owners_idle_limit_is_an_owners_to_set(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    _, admin = await person(engine, scim, tenant, "admin@corp.example", "admin")
    _, owner = await person(engine, scim, tenant, "owner@corp.example", "owner")
    boss = await pushed_user(scim, "boss@corp.example")
    await grant(engine, tenant, boss, "owner")
    path = f"/orgs/{tenant.slug}/users/{boss}/session-policy"
    status, body = await call(client, "PUT", path, admin, {"idle_minutes": 1})
    assert status == 403 and "owner" in body["detail"]
    assert await audit_entries(engine, f"user:{boss}", "user.session_policy") == []
    status, body = await call(client, "PUT", path, owner, {"idle_minutes": 15})
    assert status == 200 and body["session_idle_minutes"] == 15
