"""Partners on a client's projects through `/api/v1`: the client enables the partner and
sets roles, the partner's owner chooses its members, and neither sees more of the other."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import utc_now
from storage.access_store import AccessStore
from tests.admin_support import call, key_headers, person, pushed_user, session_headers
from tests.conftest import Scim, TenantAccess, table_snapshot

Client = TestClient[Any, Any]


async def test_a_partner_works_on_a_client_project_and_sees_nothing_else(
    client: Client,
    engine: AsyncEngine,
    tenant: TenantAccess,
    other_tenant: TenantAccess,
    scim: Scim,
    other_scim: Scim,
) -> None:
    # `tenant` is the client, `other_tenant` the agency.
    await AccessStore(engine).add_project(tenant.tenant.id, "Website", "", utc_now())
    await AccessStore(engine).add_project(tenant.tenant.id, "Secret", "", utc_now())
    _, client_admin = await person(engine, scim, tenant, "admin@client.example", "admin")
    await pushed_user(scim, "staff@client.example")
    _, agency_owner = await person(engine, other_scim, other_tenant, "owner@agency.example",
                                   "owner")  # fmt: skip
    _, agency_admin = await person(engine, other_scim, other_tenant, "admin@agency.example",
                                   "admin")  # fmt: skip
    designer = await pushed_user(other_scim, "designer@agency.example")
    intern = await pushed_user(other_scim, "intern@agency.example")
    project = f"/orgs/{tenant.slug}/projects/Website/partners"

    status, body = await call(client, "POST", project, client_admin,
                              {"partner": other_tenant.slug})  # fmt: skip
    assert status == 201, body
    assert [(p["partner"], p["members"]) for p in body["data"]] == [(other_tenant.slug, [])]

    members = f"/orgs/{other_tenant.slug}/partnerships/{tenant.slug}/website/members"
    wanted = {"user_ids": [str(designer)]}
    assert (await call(client, "PUT", members, agency_admin, wanted))[0] == 403  # owners only
    status, body = await call(client, "PUT", members, agency_owner, wanted)
    assert status == 200, body
    assert [m["user_name"] for m in body["data"][0]["members"]] == ["designer@agency.example"]
    # Another organisation's user cannot be chosen, and nothing changes.
    before = await table_snapshot(engine, other_tenant.tenant.id)
    client_user = await pushed_user(scim, "someone@client.example")
    status, _ = await call(client, "PUT", members, agency_owner,
                           {"user_ids": [str(designer), str(client_user)]})  # fmt: skip
    assert status == 404
    assert await table_snapshot(engine, other_tenant.tenant.id) == before
    # A project the partner is not on, or a client that does not exist: the same 404.
    for path in (
        f"/orgs/{other_tenant.slug}/partnerships/{tenant.slug}/Secret/members",
        f"/orgs/{other_tenant.slug}/partnerships/no-such-org/Website/members",
    ):
        status, body = await call(client, "PUT", path, agency_owner, wanted)
        assert (status, body["detail"]) == (404, "partnership not found")

    roles = f"{project}/{other_tenant.slug}/members/{designer}/roles"
    status, body = await call(client, "PUT", roles, client_admin, {"roles": ["member"]})
    assert status == 200, body
    assert body["data"][0]["members"][0]["roles"] == ["member"]
    not_member = f"{project}/{other_tenant.slug}/members/{intern}/roles"
    assert (await call(client, "PUT", not_member, client_admin, {"roles": ["member"]}))[0] == 404
    assert (await call(client, "PUT", roles, client_admin, {"roles": ["owner"]}))[0] == 403

    # The product sees the client's project, named with the client, on the designer's session.
    cookie = await session_headers(engine, other_tenant, designer)
    verified = await client.get("/auth/verify", headers=cookie)
    # Each side percent-encoded, as every name in these headers is.
    assert verified.headers["X-Idgate-Project-Roles"] == f"{tenant.slug}%2FWebsite:member"

    # The partner's view: only its partnership; nothing of the client's own.
    status, body = await call(client, "GET", f"/orgs/{other_tenant.slug}/partnerships",
                              agency_owner)  # fmt: skip
    assert [(p["client"], p["project"]) for p in body["data"]] == [(tenant.slug, "Website")]
    for path in ("/users", "/projects", "/groups", "/projects/Website/partners"):
        status, _ = await call(client, "GET", f"/orgs/{tenant.slug}{path}", agency_owner)
        assert status == 404, path
    # The client sees the partner's members on its project, not the partner's users.
    status, _ = await call(client, "GET", f"/orgs/{other_tenant.slug}/users", client_admin)
    assert status == 404

    # Taking the designer off the project takes the role back; so does disabling the partner.
    status, body = await call(client, "PUT", members, agency_owner, {"user_ids": []})
    assert status == 200 and body["data"][0]["members"] == []
    verified = await client.get("/auth/verify", headers=cookie)
    assert verified.headers["X-Idgate-Project-Roles"] == ""
    await call(client, "PUT", members, agency_owner, wanted)
    await call(client, "PUT", roles, client_admin, {"roles": ["member"]})
    status, _ = await call(client, "DELETE", f"{project}/{other_tenant.slug}", client_admin)
    assert status == 204
    verified = await client.get("/auth/verify", headers=cookie)
    assert verified.headers["X-Idgate-Project-Roles"] == ""
    status, body = await call(client, "GET", project, client_admin)
    assert body["data"] == []


async def test_an_organisation_is_not_its_own_partner(
    client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    await AccessStore(engine).add_project(tenant.tenant.id, "Website", "", utc_now())
    admin = await key_headers(engine, tenant, "admin")
    path = f"/orgs/{tenant.slug}/projects/Website/partners"
    status, body = await call(client, "POST", path, admin, {"partner": tenant.slug})
    assert status == 409 and body["detail"]
    status, body = await call(client, "POST", path, admin, {"partner": "no-such-org"})
    assert status == 404
    status, _ = await call(client, "POST", f"/orgs/{tenant.slug}/projects/Nope/partners", admin,
                           {"partner": "x"})  # fmt: skip
    assert status == 404


async def test_concurrent_member_choices_end_as_one_of_them(
    client: Client,
    engine: AsyncEngine,
    tenant: TenantAccess,
    other_tenant: TenantAccess,
    other_scim: Scim,
) -> None:
    await AccessStore(engine).add_project(tenant.tenant.id, "Web", "", utc_now())
    client_admin = await key_headers(engine, tenant, "admin")
    owner = await key_headers(engine, other_tenant, "owner")
    await call(client, "POST", f"/orgs/{tenant.slug}/projects/Web/partners", client_admin,
               {"partner": other_tenant.slug})  # fmt: skip
    a = await pushed_user(other_scim, "a@agency.example")
    b = await pushed_user(other_scim, "b@agency.example")
    path = f"/orgs/{other_tenant.slug}/partnerships/{tenant.slug}/Web/members"
    for _ in range(5):
        answers = await asyncio.gather(
            call(client, "PUT", path, owner, {"user_ids": [str(a)]}),
            call(client, "PUT", path, owner, {"user_ids": [str(b)]}),
        )
        assert [status for status, _ in answers] == [200, 200]
        _, body = await call(client, "GET", f"/orgs/{other_tenant.slug}/partnerships", owner)
        members = {m["user_name"] for m in body["data"][0]["members"]}
        assert members in ({"a@agency.example"}, {"b@agency.example"}), members
