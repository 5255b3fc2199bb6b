"""Accepting an invitation through the tenant's SSO, through the app on PostgreSQL: the link's
page offers the tenant's connections; the login it starts carries the invitation in its
saved state; a real pysaml2 IdP (and an OpenID provider built from authlib) answers; the
identity is linked to the invited user only when the e-mail the IdP vouches for is the one
invited."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth_api import SESSION_COOKIE
from gateway.forms import CSP
from gateway.sso_api import LOGIN_COOKIE
from tests.admin_support import audit_entries, call, key_headers
from tests.conftest import Scim, TenantAccess, table_snapshot
from tests.oidc_provider import OidcProvider, User, new_key
from tests.saml_idp import SSO_REDIRECT, key_pair
from tests.test_cli import _cli
from tests.test_local_login import PASSWORD, Browser
from tests.test_sso_login import Login, _connection

Client = TestClient[Any, Any]


@pytest.fixture
async def okta(database_url: str, client: Client, tenant: TenantAccess, tmp_path: Path) -> Login:
    return await _connection(
        database_url, client, tenant, key_pair(tmp_path, "okta"), tmp_path, "okta"
    )


async def _invite(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, email: str, *roles: str
) -> tuple[str, uuid.UUID, str]:
    """(the link's path, the invited user, the invitation id)."""
    owner = await key_headers(engine, tenant, "owner")
    body = {"email": email, "roles": list(roles)}
    status, sent = await call(client, "POST", f"/orgs/{tenant.slug}/invitations", owner, body)
    assert status == 201, sent
    invitation = sent["invitation"]
    return urlsplit(sent["link"]).path, uuid.UUID(invitation["user_id"]), invitation["id"]


async def _sso_link(client: Client, path: str, connection: str) -> str:
    """The invitation page's "Sign in with CONNECTION" link."""
    resp = await client.get(path)
    page = await resp.text()
    assert resp.status == 200, page
    assert resp.headers["Content-Security-Policy"] == CSP
    assert f"Sign in with {connection}" in page
    found = re.search(rf'<a href="([^"]+)">Sign in with {re.escape(connection)}</a>', page)
    assert found, page
    return found.group(1).replace("&amp;", "&")


async def _start(login: Login, link: str) -> tuple[str, str]:
    """Follow the page's link: the login starts at our SSO endpoint and goes to the IdP.
    (The IdP redirect URL, its RelayState.)"""
    resp = await login.client.get(link, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    location = resp.headers["Location"]
    assert location.startswith(SSO_REDIRECT + "?")
    login.browser_cookie = f"{LOGIN_COOKIE}={resp.cookies[LOGIN_COOKIE].value}"
    return location, parse_qs(urlsplit(location).query)["RelayState"][0]


async def _accept(login: Login, path: str, name_id: str, email: str) -> Any:
    location, relay_state = await _start(login, await _sso_link(login.client, path, login.name))
    return await login.post(login.answer(location, name_id, {"email": [email]}), relay_state)


async def _verify(client: Client, resp: Any) -> Any:
    cookie = resp.cookies[SESSION_COOKIE]
    return await client.get("/auth/verify", headers={"Cookie": f"{SESSION_COOKIE}={cookie.value}"})


async def _invitation_status(
    client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> dict[str, str]:
    headers = await key_headers(engine, tenant, "admin:read")
    status, body = await call(client, "GET", f"/orgs/{tenant.slug}/invitations", headers)
    assert status == 200, body
    return {i["email"]: i["status"] for i in body["data"]}


async def _identities(engine: AsyncEngine, user_id: uuid.UUID) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT subject FROM sso_identities WHERE user_id = :u"), {"u": user_id}
        )
        return [r.subject for r in rows]


async def test_an_sso_login_accepts_the_invitation_and_links_the_identity(
    okta: Login, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    client = okta.client
    path, nia, invitation_id = await _invite(client, engine, tenant, "nia@corp.example", "admin")
    location, relay_state = await _start(okta, await _sso_link(client, path, "okta"))
    # The invitation travels in the login's state saved in the database.
    async with engine.connect() as conn:
        saved = (
            await conn.execute(
                text("SELECT data FROM sso_requests WHERE id = :k"), {"k": relay_state}
            )
        ).scalar_one()
    assert saved["invitation"] == invitation_id
    answer = okta.answer(location, "00u-nia", {"email": ["Nia@Corp.Example"]})
    resp = await okta.post(answer, relay_state)
    assert resp.status == 200, await resp.text()
    verified = await _verify(client, resp)
    assert verified.status == 200
    assert verified.headers["X-Idgate-User"] == str(nia)
    assert verified.headers["X-Idgate-Roles"] == "admin"
    assert (await _invitation_status(client, engine, tenant)) == {"nia@corp.example": "accepted"}
    assert await _identities(engine, nia) == ["00u-nia"]
    (accepted,) = await audit_entries(engine, f"user:{nia}", "invitation.accepted")
    assert accepted.actor == "sso:okta"
    assert accepted.details == {"invitation": invitation_id, "method": "sso:okta"}
    (linked,) = await audit_entries(engine, f"user:{nia}", "identity.linked")
    assert linked.details == {"subject": "00u-nia", "by": "invitation"}
    _, page, _ = await scim.get("/Users")
    assert page["totalResults"] == 1  # the invited user; no user made just in time

    # The next login, without the link, finds her by the identity.
    again = await okta.login("00u-nia", {"email": ["nia@corp.example"]}, return_to=None)
    assert again.status == 200
    assert (await _verify(client, again)).headers["X-Idgate-User"] == str(nia)
    # The link is used up, on its page and for a login.
    used = await client.get(path)
    assert used.status == 410
    started = await client.get(
        f"/sso/{tenant.slug}/okta/login", params={"invitation": path.rsplit("/", 1)[1]}
    )
    assert started.status == 410


async def test_an_sso_login_of_another_address_is_refused(
    database_url: str, okta: Login, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    client = okta.client
    path, omar, _ = await _invite(client, engine, tenant, "omar@corp.example", "member")
    refused = await _accept(okta, path, "00u-mallory", "mallory@corp.example")
    assert refused.status == 403 and SESSION_COOKIE not in refused.cookies
    (failed,) = await audit_entries(engine, f"user:{omar}", "login.failed")
    assert failed.actor == "sso:okta"
    assert failed.details["reason"] == "invitation_email_mismatch"
    assert failed.details["subject"] == "00u-mallory"
    assert (await _invitation_status(client, engine, tenant)) == {"omar@corp.example": "pending"}
    assert await _identities(engine, omar) == []
    _, page, _ = await scim.get("/Users")
    assert [u["userName"] for u in page["Resources"]] == ["omar@corp.example"]  # no JIT user
    async with engine.connect() as conn:
        failures = (
            await conn.execute(
                text("SELECT failed_logins FROM user_activity WHERE user_id = :u"), {"u": omar}
            )
        ).scalar_one()
    assert failures == 1
    # The invitation still works for the person invited.
    accepted = await _accept(okta, path, "00u-omar", "omar@corp.example")
    assert accepted.status == 200
    assert (await _verify(client, accepted)).headers["X-Idgate-User"] == str(omar)


async def test_an_identity_linked_to_another_user_does_not_accept(
    okta: Login, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    client = okta.client
    first = await okta.login("00u-zed", {"email": ["zed@corp.example"]}, return_to=None)
    assert first.status == 200  # a user made just in time, linked to 00u-zed
    path, zoe, _ = await _invite(client, engine, tenant, "zoe@corp.example")
    before = await table_snapshot(engine, tenant.tenant.id)
    refused = await _accept(okta, path, "00u-zed", "zoe@corp.example")
    assert refused.status == 403 and SESSION_COOKIE not in refused.cookies
    (failed,) = await audit_entries(engine, f"user:{zoe}", "login.failed")
    assert failed.details["reason"] == "identity_already_linked"
    # Nothing was accepted: only the refusal was written.
    after = await table_snapshot(engine, tenant.tenant.id)
    assert after["invitations"] == before["invitations"]
    assert await _identities(engine, zoe) == []


async def test_an_invitation_revoked_during_the_login_is_not_accepted(
    okta: Login, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    client = okta.client
    path, _, invitation_id = await _invite(client, engine, tenant, "kim@corp.example")
    location, relay_state = await _start(okta, await _sso_link(client, path, "okta"))
    owner = await key_headers(engine, tenant, "owner")
    revoked, _ = await call(
        client, "DELETE", f"/orgs/{tenant.slug}/invitations/{invitation_id}", owner
    )
    assert revoked == 204
    answer = okta.answer(location, "00u-kim", {"email": ["kim@corp.example"]})
    refused = await okta.post(answer, relay_state)
    assert refused.status == 403 and SESSION_COOKIE not in refused.cookies
    (failed,) = await audit_entries(engine, "subject:okta/00u-kim", "login.failed")
    assert failed.details["reason"] == "invitation_closed"
    _, page, _ = await scim.get("/Users")
    assert page["totalResults"] == 0


async def test_a_tenant_with_sso_offers_no_password(
    okta: Login, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    path, user_id, _ = await _invite(okta.client, engine, tenant, "pat@corp.example")
    browser = Browser(okta.client)
    resp, page = await browser.get(path)
    assert resp.status == 200 and 'type="password"' not in page and "Sign in with okta" in page
    before = await table_snapshot(engine, tenant.tenant.id)
    data = {"csrf": browser.token(), "step": "password", "password": PASSWORD}
    resp, _ = await browser.post(path, data | {"confirm": PASSWORD})
    assert resp.status == 409
    assert await table_snapshot(engine, tenant.tenant.id) == before
    async with engine.connect() as conn:
        stored = await conn.execute(
            text("SELECT 1 FROM local_credentials WHERE user_id = :u"), {"u": user_id}
        )
        assert stored.first() is None


# --- OpenID Connect --------------------------------------------------------------------------

ADA = User(subject="user-42", email="ada@corp.example", name="Ada Lovelace")


@pytest.fixture
async def oidc(
    aiohttp_server: Any, database_url: str, tenant: TenantAccess
) -> AsyncIterator[tuple[OidcProvider, aiohttp.ClientSession]]:
    provider = OidcProvider(ADA, key=new_key("key-1"))
    server = await aiohttp_server(provider.app())
    provider.issuer = f"http://127.0.0.1:{server.port}"
    provider.register(
        "idgate-app", "app secret", f"http://scim.test/sso/{tenant.slug}/ada-idp/callback"
    )
    added = await _cli(
        database_url, "connection", "add", tenant.slug, "ada-idp", "--type", "oidc",
        "--issuer", provider.issuer, "--client-id", "idgate-app",
        "--client-secret", "app secret",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    async with aiohttp.ClientSession() as browser:
        yield provider, browser


async def test_an_oidc_login_accepts_the_invitation(
    client: Client,
    engine: AsyncEngine,
    tenant: TenantAccess,
    oidc: tuple[OidcProvider, aiohttp.ClientSession],
) -> None:
    _, provider_browser = oidc
    path, ada, _ = await _invite(client, engine, tenant, "ada@corp.example")
    start = await client.get(await _sso_link(client, path, "ada-idp"), allow_redirects=False)
    assert start.status == 302, await start.text()
    cookie = f"{LOGIN_COOKIE}={start.cookies[LOGIN_COOKIE].value}"
    async with provider_browser.get(start.headers["Location"], allow_redirects=False) as answer:
        assert answer.status == 302, await answer.text()
        back = urlsplit(answer.headers["Location"])
    done = await client.get(
        f"{back.path}?{back.query}", headers={"Cookie": cookie}, allow_redirects=False
    )
    assert done.status == 200, await done.text()
    assert (await _verify(client, done)).headers["X-Idgate-User"] == str(ada)
    assert await _identities(engine, ada) == ["user-42"]
    assert (await _invitation_status(client, engine, tenant)) == {"ada@corp.example": "accepted"}
