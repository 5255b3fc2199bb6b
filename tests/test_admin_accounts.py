"""One person in several organisations: an invitation accepted with the account they are
logged in with, then switching organisations without logging in again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.admin_support import call, key_headers, person, pushed_user, session_headers
from tests.conftest import Scim, TenantAccess, table_snapshot

Client = TestClient[Any, Any]
SAME_SITE = {"Sec-Fetch-Site": "same-origin"}


def _cookie(resp: Any) -> dict[str, str]:
    return {"Cookie": f"idgate_session={resp.cookies['idgate_session'].value}"}


async def test_a_person_joins_another_organisation_and_switches_to_it(
    client: Client,
    engine: AsyncEngine,
    tenant: TenantAccess,
    other_tenant: TenantAccess,
    scim: Scim,
) -> None:
    jane, home = await person(engine, scim, tenant, "jane@corp.example", "member")
    b_admin = await key_headers(engine, other_tenant, "admin")
    _, sent = await call(client, "POST", f"/orgs/{other_tenant.slug}/invitations", b_admin,
                         {"email": "JANE@corp.example", "roles": ["admin"]})  # fmt: skip
    secret = sent["link"].rsplit("/", 1)[1]

    status, joined = await call(client, "POST", "/invitations/accept", {**home, **SAME_SITE},
                                {"secret": secret})  # fmt: skip
    assert status == 200, joined
    assert joined["organisation"] == other_tenant.slug
    status, me = await call(client, "GET", "/me", home)
    assert (other_tenant.slug, "admin", "account") in {
        (o["slug"], o["level"], o["via"]) for o in me["organisations"]
    }
    # The link is used up.
    status, _ = await call(client, "POST", "/invitations/accept", {**home, **SAME_SITE},
                           {"secret": secret})  # fmt: skip
    assert status == 404

    resp = await client.post("/api/v1/me/switch", json={"organisation": other_tenant.slug},
                             headers={**home, **SAME_SITE})  # fmt: skip
    assert resp.status == 200, await resp.text()
    there = _cookie(resp)
    assert (await client.get("/auth/verify", headers=home)).status == 401  # the old session
    verified = await client.get("/auth/verify", headers=there)
    assert verified.status == 200
    assert verified.headers["X-Idgate-Tenant"] == other_tenant.slug
    assert verified.headers["X-Idgate-Roles"] == "admin"
    status, me = await call(client, "GET", "/me", there)
    assert (tenant.slug, "none", "account") in {
        (o["slug"], o["level"], o["via"]) for o in me["organisations"]
    }
    # And back.
    resp = await client.post("/api/v1/me/switch", json={"organisation": tenant.slug},
                             headers={**there, **SAME_SITE})  # fmt: skip
    assert resp.status == 200
    verified = await client.get("/auth/verify", headers=_cookie(resp))
    assert verified.headers["X-Idgate-User"] == str(jane)


async def test_what_cannot_be_joined_or_switched_to(
    client: Client,
    engine: AsyncEngine,
    tenant: TenantAccess,
    other_tenant: TenantAccess,
    scim: Scim,
) -> None:
    _, home = await person(engine, scim, tenant, "joe@corp.example", "member")
    b_admin = await key_headers(engine, other_tenant, "admin")
    a_admin = await key_headers(engine, tenant, "admin")
    _, other = await call(client, "POST", f"/orgs/{other_tenant.slug}/invitations", b_admin,
                          {"email": "someone.else@corp.example"})  # fmt: skip
    _, own = await call(client, "POST", f"/orgs/{tenant.slug}/invitations", a_admin,
                        {"email": "joe2@corp.example"})  # fmt: skip
    before = await table_snapshot(engine, other_tenant.tenant.id)
    for sent, expected in ((other, 409), (own, 409)):
        status, body = await call(client, "POST", "/invitations/accept", {**home, **SAME_SITE},
                                  {"secret": sent["link"].rsplit("/", 1)[1]})  # fmt: skip
        assert status == expected, body
    assert await table_snapshot(engine, other_tenant.tenant.id) == before
    status, body = await call(client, "POST", "/invitations/accept", a_admin,
                              {"secret": other["link"].rsplit("/", 1)[1]})  # fmt: skip
    assert status == 403  # a key is no person
    status, _ = await call(client, "POST", "/me/switch", {**home, **SAME_SITE},
                           {"organisation": other_tenant.slug})  # fmt: skip
    assert status == 404
    cross = {**home, "Sec-Fetch-Site": "cross-site"}
    status, body = await call(client, "POST", "/me/switch", cross,
                              {"organisation": other_tenant.slug})  # fmt: skip
    assert status == 403 and body["code"] == "cross_site"


async def test_a_switch_is_no_new_login(
    client: Client,
    engine: AsyncEngine,
    tenant: TenantAccess,
    other_tenant: TenantAccess,
    scim: Scim,
) -> None:
    """A hard delete asks for a recent login; switching organisations does not make one."""
    ann = await pushed_user(scim, "ann@corp.example")
    home = await session_headers(engine, tenant, ann, age=timedelta(minutes=30))
    b_owner = await key_headers(engine, other_tenant, "owner")
    _, sent = await call(client, "POST", f"/orgs/{other_tenant.slug}/invitations", b_owner,
                         {"email": "ann@corp.example", "roles": ["owner"]})  # fmt: skip
    await call(client, "POST", "/invitations/accept", {**home, **SAME_SITE},
               {"secret": sent["link"].rsplit("/", 1)[1]})  # fmt: skip
    resp = await client.post("/api/v1/me/switch", json={"organisation": other_tenant.slug},
                             headers={**home, **SAME_SITE})  # fmt: skip
    there = {**_cookie(resp), **SAME_SITE}
    _, victim = await call(client, "POST", f"/orgs/{other_tenant.slug}/invitations", b_owner,
                           {"email": "victim@corp.example"})  # fmt: skip
    path = f"/orgs/{other_tenant.slug}/users/{victim['invitation']['user_id']}"
    status, body = await call(client, "DELETE", path, there, params={"mode": "hard"})
    assert status == 401 and body["code"] == "reauthentication_required"
