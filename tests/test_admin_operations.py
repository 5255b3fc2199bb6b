"""The operations views of `/api/v1`: SSO connections, SCIM tokens, mapping rules with a dry
run, webhook endpoints and deliveries, the audit log and the SCIM request log, through the
real app on PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import utc_now
from gateway.keys import REQUEST_LOG
from sso import saml
from sso.mapping import ENTERPRISE_USER
from storage.sso_store import SsoStore
from storage.webhook_store import DEAD, Outcome, WebhookStore
from tests.admin_support import call, key_headers, pushed_user
from tests.conftest import Scim, TenantAccess, table_snapshot
from tests.saml_idp import IDP, SSO_REDIRECT

Client = TestClient[Any, Any]
BASE = "http://scim.test"  # the test settings' public URL
OIDC_SECRET = "oidc-client-secret-never-shown"


async def _saml(engine: AsyncEngine, tenant: TenantAccess, name: str = "corp") -> saml.SpKey:
    """A SAML connection as `idgate connection add` makes one; its SP key pair."""
    key = saml.new_sp_key(f"idgate {name}", utc_now())
    idp = saml.idp_from_fields(IDP, SSO_REDIRECT, [key.certificate_pem])
    settings = {
        "idp": {**idp.__dict__, "certificates": list(idp.certificates)},
        "sp_certificate": key.certificate_pem,
        "update_profile": True,
        "trust_email": False,
    }
    await SsoStore(engine).add_connection(
        tenant.tenant.id, name, "saml", settings, {"sp_private_key": key.private_key_pem},
        jit=True, idp_initiated=False, now=utc_now(),
    )  # fmt: skip
    return key


async def _oidc(engine: AsyncEngine, tenant: TenantAccess, name: str = "okta") -> None:
    settings = {"issuer": "https://idp.example/", "client_id": "client-1", "scopes": ["openid"]}
    await SsoStore(engine).add_connection(
        tenant.tenant.id, name, "oidc", settings, {"client_secret": OIDC_SECRET},
        jit=False, idp_initiated=False, now=utc_now(),
    )  # fmt: skip


async def _raw(client: Client, path: str, headers: dict[str, str], **params: str) -> str:
    """An answer's text exactly as sent: a secret must not appear in it anywhere."""
    resp = await client.get("/api/v1" + path, headers=headers, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.text()


async def _scim_status(client: Client, tenant: TenantAccess, secret: str) -> int:
    resp = await client.get(f"{tenant.base}/Users", headers={"Authorization": f"Bearer {secret}"})
    return resp.status


# --- connections -----------------------------------------------------------------------------


async def test_connections_show_what_the_idp_needs_and_never_a_secret(
    client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    key = await _saml(engine, tenant)
    await _oidc(engine, tenant)
    reader = await key_headers(engine, tenant, "admin:read")
    base = f"/orgs/{tenant.slug}/connections"
    raw = await _raw(client, base, reader)
    assert "PRIVATE KEY" not in raw and key.private_key_pem not in raw
    assert OIDC_SECRET not in raw and "client_secret" not in raw
    listed = json.loads(raw)["data"]
    assert [(c["name"], c["type"]) for c in listed] == [("corp", "saml"), ("okta", "oidc")]

    status, corp = await call(client, "GET", base + "/corp", reader)
    assert status == 200, corp
    root = f"{BASE}/sso/{tenant.slug}/corp"
    assert corp["setup"]["entity_id"] == corp["setup"]["metadata_url"] == root + "/metadata"
    assert corp["setup"]["acs_url"] == root + "/acs" and corp["setup"]["redirect_uri"] is None
    assert corp["test_login_url"] == root + "/login"
    assert corp["settings"]["idp"]["entity_id"] == IDP
    not_after = corp["setup"]["sp_certificate_not_after"]
    assert not_after and not_after.startswith(str(utc_now().year + 10))
    assert corp["created_at"] and corp["updated_at"]
    # The test URL is the live login: it sends the browser to the IdP.
    login = await client.get(corp["test_login_url"].removeprefix(BASE), allow_redirects=False)
    assert login.status == 302 and login.headers["Location"].startswith(SSO_REDIRECT)

    status, okta = await call(client, "GET", base + "/okta", reader)
    assert status == 200
    assert okta["setup"]["redirect_uri"] == f"{BASE}/sso/{tenant.slug}/okta/callback"
    assert okta["setup"]["entity_id"] is None and okta["setup"]["sp_certificate_not_after"] is None
    assert okta["settings"]["client_id"] == "client-1" and okta["jit"] is False

    for missing in ("nope", "not%20a%20name"):
        status, body = await call(client, "GET", f"{base}/{missing}", reader)
        assert status == 404 and body["code"] == "not_found", missing


# --- SCIM tokens -----------------------------------------------------------------------------


async def test_a_token_made_here_provisions_and_a_rotated_one_stops(
    client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    await _oidc(engine, tenant)
    admin = await key_headers(engine, tenant, "admin")
    base = f"/orgs/{tenant.slug}/scim-tokens"
    status, made = await call(client, "POST", base, admin, {"name": "okta", "connection": "okta"})
    assert status == 201, made
    assert made["scim_base_url"] == f"{BASE}/scim/v2/{tenant.slug}" and made["replaced"] is None
    assert made["token"]["connection"] == "okta" and made["token"]["active"] is True
    first = made["secret"]
    assert await _scim_status(client, tenant, first) == 200

    raw = await _raw(client, base, admin)
    assert first not in raw and tenant.token not in raw
    listed = {t["id"]: t for t in json.loads(raw)["data"]}
    assert listed[made["token"]["id"]]["last_used_at"] is not None  # the SCIM call above
    assert listed[tenant.token_id]["name"] == "test"

    status, rotated = await call(client, "POST", f"{base}/{made['token']['id']}/rotate", admin)
    assert status == 201, rotated
    assert rotated["replaced"] == made["token"]["id"]
    assert (rotated["token"]["name"], rotated["token"]["connection"]) == ("okta", "okta")
    assert await _scim_status(client, tenant, first) == 401
    assert await _scim_status(client, tenant, rotated["secret"]) == 200
    listed = {t["id"]: t for t in (await call(client, "GET", base, admin))[1]["data"]}
    assert listed[made["token"]["id"]]["active"] is False
    assert listed[rotated["token"]["id"]]["active"] is True

    new_id = rotated["token"]["id"]
    status, revoked = await call(client, "POST", f"{base}/{new_id}/revoke", admin)
    assert status == 200 and revoked["active"] is False and revoked["revoked_at"]
    assert await _scim_status(client, tenant, rotated["secret"]) == 401
    for action in ("revoke", "rotate"):
        status, body = await call(client, "POST", f"{base}/{new_id}/{action}", admin)
        assert status == 409 and body["code"] == "conflict", action
        status, body = await call(client, "POST", f"{base}/tok_0000/{action}", admin)
        assert status == 404, action
    assert await _scim_status(client, tenant, tenant.token) == 200  # the others untouched


async def test_token_refusals_change_nothing(
    client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    admin = await key_headers(engine, tenant, "admin")
    base = f"/orgs/{tenant.slug}/scim-tokens"
    before = (await call(client, "GET", base, admin))[1]
    snapshot = await table_snapshot(engine, tenant.tenant.id)
    for body, field in (
        ({"connection": "no-such"}, "connection"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x", "scopes": ["all"]}, "scopes"),
    ):
        status, problem = await call(client, "POST", base, admin, body)
        assert status == 400, body
        assert problem["errors"][0]["field"] == field, problem
    assert (await call(client, "GET", base, admin))[1] == before
    assert await table_snapshot(engine, tenant.tenant.id) == snapshot


# --- levels ----------------------------------------------------------------------------------


async def test_an_admin_read_key_reads_everything_and_writes_nothing(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, other_tenant: TenantAccess
) -> None:
    await _oidc(engine, tenant)
    reader = await key_headers(engine, tenant, "admin:read")
    org = f"/orgs/{tenant.slug}"
    for path in ("/connections", "/scim-tokens", "/mapping", "/webhooks", "/audit-log",
                 "/scim-log"):  # fmt: skip
        status, body = await call(client, "GET", org + path, reader)
        assert status == 200, (path, body)
    status, body = await call(
        client, "POST", org + "/mapping/dry-run", reader, {"claims": {"department": "x"}}
    )
    assert status == 200 and body["default_role"] == "readonly"  # a dry run is a read
    snapshot = await table_snapshot(engine, tenant.tenant.id)
    tokens = (await call(client, "GET", org + "/scim-tokens", reader))[1]
    for method, path, body in (
        ("POST", "/scim-tokens", {"name": "sneaky"}),
        ("POST", f"/scim-tokens/{tenant.token_id}/rotate", None),
        ("POST", f"/scim-tokens/{tenant.token_id}/revoke", None),
        ("PUT", "/mapping", {}),
        ("DELETE", "/mapping", None),
        ("POST", "/webhooks", {"url": "https://hooks.example/x"}),
    ):
        status, problem = await call(client, method, org + path, reader, body)
        assert status == 403 and problem["code"] == "forbidden", (method, path)
    assert (await call(client, "GET", org + "/scim-tokens", reader))[1] == tokens
    assert await table_snapshot(engine, tenant.tenant.id) == snapshot
    assert await _scim_status(client, tenant, tenant.token) == 200
    # Another organisation's views are not there at all.
    status, _ = await call(client, "GET", f"/orgs/{other_tenant.slug}/connections", reader)
    assert status == 404


# --- mapping rules ---------------------------------------------------------------------------

ENG_ADMINS = {
    "rules": [
        {
            "name": "eng-admins",
            "when": [{"attribute": "department", "equals": "Eng"}],
            "grant": {"roles": ["admin"]},
        }
    ]
}


async def test_rules_put_here_give_the_mapped_role_and_the_dry_run_says_why(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    admin = await key_headers(engine, tenant, "admin")
    org = f"/orgs/{tenant.slug}"
    engineer = await pushed_user(
        scim, "eng@corp.example", **{ENTERPRISE_USER: {"department": "Eng"}}
    )
    assert (await call(client, "GET", org + "/mapping", admin))[1] == {"document": None}

    status, changed = await call(client, "PUT", org + "/mapping", admin, ENG_ADMINS)
    assert status == 200, changed
    assert changed["users_recomputed"] == 1 and changed["grants_changed"] >= 1
    assert changed["document"]["rules"][0]["name"] == "eng-admins"
    assert changed["document"]["default_role"] == "readonly"  # stored with its defaults
    assert (await call(client, "GET", org + "/mapping", admin))[1] == {
        "document": changed["document"]
    }
    status, user = await call(client, "GET", f"{org}/users/{engineer}", admin)
    assert "admin" in user["roles"]

    snapshot = await table_snapshot(engine, tenant.tenant.id)
    dry = org + "/mapping/dry-run"
    status, run = await call(client, "POST", dry, admin, {"claims": {"department": "Eng"}})
    assert status == 200, run
    assert run["grants"] == [
        {"kind": "role", "target": "admin", "role": None, "rules": ["eng-admins"]}
    ]
    assert run["default_role"] is None and "eng-admins" in run["explanation"][0]
    status, run = await call(client, "POST", dry, admin, {"claims": {"department": "Sales"}})
    assert run["grants"] == [] and run["default_role"] == "readonly"
    status, run = await call(client, "POST", dry, admin, {"user_id": str(engineer)})
    assert status == 200 and [g["target"] for g in run["grants"]] == ["admin"]
    assert await table_snapshot(engine, tenant.tenant.id) == snapshot  # wrote nothing

    status, cleared = await call(client, "DELETE", org + "/mapping", admin)
    assert status == 200 and cleared["document"] is None and cleared["grants_changed"] >= 1
    status, user = await call(client, "GET", f"{org}/users/{engineer}", admin)
    assert "admin" not in user["roles"]
    assert (await call(client, "GET", org + "/mapping", admin))[1] == {"document": None}


async def test_a_mapping_that_does_not_validate_is_refused_with_its_path(
    client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    admin = await key_headers(engine, tenant, "admin")
    org = f"/orgs/{tenant.slug}"
    assert (await call(client, "PUT", org + "/mapping", admin, ENG_ADMINS))[0] == 200
    snapshot = await table_snapshot(engine, tenant.tenant.id)
    bad_regex = {"rules": [{"name": "r", "when": [{"attribute": "a", "regex": "("}],
                            "grant": {"roles": ["admin"]}}]}  # fmt: skip
    unknown_role = {"rules": [{"name": "r", "when": [{"group": "Ops"}],
                               "grant": {"roles": ["pilot"]}}]}  # fmt: skip
    for document, path in (
        (bad_regex, "rules[0].when[0].regex"),
        (unknown_role, "rules[0].grant.roles[0]"),
        ({"default_role": "owner"}, "default_role"),
        ({"rulez": []}, "rulez"),
    ):
        status, problem = await call(client, "PUT", org + "/mapping", admin, document)
        assert status == 400 and problem["code"] == "invalid_mapping", problem
        assert problem["errors"][0]["field"] == path, problem
    status, problem = await call(client, "PUT", org + "/mapping", admin, [ENG_ADMINS])
    assert status == 400 and problem["code"] == "invalid_request"
    assert await table_snapshot(engine, tenant.tenant.id) == snapshot
    stored = (await call(client, "GET", org + "/mapping", admin))[1]["document"]
    assert stored["rules"][0]["name"] == "eng-admins"


async def test_dry_run_refusals(client: Client, engine: AsyncEngine, tenant: TenantAccess) -> None:
    reader = await key_headers(engine, tenant, "admin:read")
    dry = f"/orgs/{tenant.slug}/mapping/dry-run"
    for body, field in (
        ({}, "body"),
        ({"user_id": str(uuid.uuid4()), "claims": {}}, "body"),
        ({"user_id": str(uuid.uuid4()), "connection": "okta"}, "connection"),
        ({"claims": ["not", "an", "object"]}, "claims"),
    ):
        status, problem = await call(client, "POST", dry, reader, body)
        assert status == 400 and problem["errors"][0]["field"] == field, (body, problem)
    status, problem = await call(client, "POST", dry, reader, {"user_id": str(uuid.uuid4())})
    assert status == 404 and problem["detail"] == "user not found"


# --- webhooks --------------------------------------------------------------------------------


@pytest.fixture
async def webhooks(engine: AsyncEngine, tenant: TenantAccess) -> AsyncIterator[WebhookStore]:
    """The webhook store; the tenant's endpoints are removed afterwards, since the workers of
    later tests share the delivery queue."""
    store = WebhookStore(engine)
    yield store
    for endpoint in await store.endpoints(tenant.tenant.id):
        await store.remove_endpoint(tenant.tenant.id, endpoint.id)


async def test_webhook_endpoints_added_toggled_rotated_and_removed(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, webhooks: WebhookStore
) -> None:
    admin = await key_headers(engine, tenant, "admin")
    base = f"/orgs/{tenant.slug}/webhooks"
    body = {"url": "https://hooks.example/idgate", "events": ["user.created"]}
    status, made = await call(client, "POST", base, admin, body)
    assert status == 201, made
    first, endpoint = made["secret"], made["endpoint"]
    assert first.startswith("whsec_") and endpoint["events"] == ["user.created"]
    assert endpoint["enabled"] is True and len(endpoint["signing_secrets"]) == 1
    path = f"{base}/{endpoint['id']}"

    status, off = await call(client, "POST", path + "/disable", admin)
    assert status == 200 and off["enabled"] is False
    [stored] = await webhooks.endpoints(tenant.tenant.id)
    assert stored.enabled is False and stored.secrets[0]["secret"] == first
    status, on = await call(client, "POST", path + "/enable", admin)
    assert status == 200 and on["enabled"] is True

    status, rotated = await call(client, "POST", path + "/rotate-secret", admin,
                                 params={"overlap_hours": "2"})  # fmt: skip
    assert status == 200, rotated
    second = rotated["secret"]
    assert second.startswith("whsec_") and second != first
    old_expiry = rotated["endpoint"]["signing_secrets"][1]["expires_at"]
    assert rotated["endpoint"]["signing_secrets"][0]["expires_at"] is None and old_expiry
    [stored] = await webhooks.endpoints(tenant.tenant.id)
    assert [s["secret"] for s in stored.secrets] == [second, first]
    for raw in (await _raw(client, base, admin), await _raw(client, path, admin)):
        assert first not in raw and second not in raw and "whsec_" not in raw

    assert (await call(client, "DELETE", path, admin))[0] == 204
    assert (await call(client, "GET", path, admin))[0] == 404
    assert (await call(client, "DELETE", path, admin))[0] == 404
    assert await webhooks.endpoints(tenant.tenant.id) == []


async def test_webhook_refusals_change_nothing(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, webhooks: WebhookStore
) -> None:
    admin = await key_headers(engine, tenant, "admin")
    base = f"/orgs/{tenant.slug}/webhooks"
    for body, field in (
        ({"url": "http://hooks.example/"}, "url"),  # http only to this machine
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "https://hooks.example/", "events": ["Not A Type"]}, "events.0"),
        ({}, "url"),
    ):
        status, problem = await call(client, "POST", base, admin, body)
        assert status == 400 and problem["errors"][0]["field"] == field, (body, problem)
    assert await webhooks.endpoints(tenant.tenant.id) == []
    for method, path in (
        ("GET", "/whk_0000"),
        ("POST", "/whk_0000/enable"),
        ("POST", "/whk_0000/rotate-secret"),
        ("GET", "/whk_0000/deliveries"),
        ("POST", "/whk_0000/deliveries/evt_0000/redeliver"),
    ):
        status, problem = await call(client, method, base + path, admin)
        assert status == 404 and problem["code"] == "not_found", path
    made = (await call(client, "POST", base, admin, {"url": "https://hooks.example/"}))[1]
    path = f"{base}/{made['endpoint']['id']}/rotate-secret"
    status, problem = await call(client, "POST", path, admin, params={"overlap_hours": "-1"})
    assert status == 400 and problem["errors"][0]["field"] == "overlap_hours"
    [stored] = await webhooks.endpoints(tenant.tenant.id)
    assert [s["secret"] for s in stored.secrets] == [made["secret"]]


async def test_a_dead_delivery_is_listed_and_redelivered(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim, webhooks: WebhookStore
) -> None:
    admin = await key_headers(engine, tenant, "admin")
    base = f"/orgs/{tenant.slug}/webhooks"
    made = (await call(client, "POST", base, admin, {"url": "https://hooks.example/"}))[1]
    endpoint_id = made["endpoint"]["id"]
    await pushed_user(scim, "hooked@corp.example")
    now = utc_now()
    assert await webhooks.fan_out(now) >= 1
    later = now + timedelta(seconds=1)
    async with webhooks.claiming(later, 1000) as claim:
        mine = [d for d in claim.deliveries if d.endpoint_id == endpoint_id]
        assert mine
        await claim.record(
            [Outcome(endpoint_id, d.event.seq, DEAD, 8, later, later, 500, "boom", None)
             for d in mine]
        )  # fmt: skip
    deliveries = f"{base}/{endpoint_id}/deliveries"
    status, dead = await call(client, "GET", deliveries, admin, params={"status": "dead"})
    assert status == 200, dead
    assert [d["status"] for d in dead["data"]] == ["dead"] * len(mine)
    event_id = dead["data"][0]["event_id"]
    assert dead["data"][0]["last_error"] == "boom" and dead["data"][0]["attempts"] == 8

    status, done = await call(client, "POST", f"{deliveries}/{event_id}/redeliver", admin)
    assert status == 200 and done == {"queued": 1}
    status, pending = await call(client, "GET", deliveries, admin, params={"status": "pending"})
    again = [d for d in pending["data"] if d["event_id"] == event_id]
    assert len(again) == 1 and again[0]["attempts"] == 0
    status, problem = await call(client, "POST", f"{deliveries}/evt_nope/redeliver", admin)
    assert status == 404 and problem["detail"] == "delivery not found"
    status, problem = await call(client, "GET", deliveries, admin, params={"status": "lost"})
    assert status == 400 and problem["errors"][0]["field"] == "status"


# --- audit log -------------------------------------------------------------------------------


async def test_the_audit_log_filters_and_pages_newest_first(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    admin = await key_headers(engine, tenant, "admin")
    org = f"/orgs/{tenant.slug}"
    made = []
    for name in ("a", "b", "c"):
        status, body = await call(client, "POST", org + "/scim-tokens", admin, {"name": name})
        assert status == 201
        made.append(body["token"]["id"])
    user_id = await pushed_user(scim, "audited@corp.example")
    log = org + "/audit-log"

    status, page = await call(client, "GET", log, admin, params={"action": "scim_token."})
    assert status == 200, page
    entries = page["data"]
    assert [e["target"] for e in entries] == [f"scim_token:{t}" for t in reversed(made)]
    assert entries[0]["actor"].startswith("apikey:") and entries[0]["details"]["request_id"]
    assert "secret" not in json.dumps(entries)

    first = (await call(client, "GET", log, admin, params={"action": "scim_token.", "limit": "2"}))[
        1
    ]
    assert [e["id"] for e in first["data"]] == [e["id"] for e in entries[:2]]
    assert first["next_cursor"]
    params = {"action": "scim_token.", "limit": "2", "cursor": first["next_cursor"]}
    rest = (await call(client, "GET", log, admin, params=params))[1]
    assert [e["id"] for e in rest["data"]] == [entries[2]["id"]] and rest["next_cursor"] is None
    params = {"action": "scim_token.", "before_id": str(first["data"][-1]["id"])}
    assert (await call(client, "GET", log, admin, params=params))[1]["data"] == rest["data"]

    about = (await call(client, "GET", log, admin, params={"user_id": str(user_id)}))[1]["data"]
    assert about and {e["target"] for e in about} == {f"user:{user_id}"}
    assert "user.created" in {e["action"] for e in about}
    future = (utc_now() + timedelta(days=1)).isoformat()
    assert (await call(client, "GET", log, admin, params={"since": future}))[1]["data"] == []
    assert (await call(client, "GET", log, admin, params={"until": "2000-01-01T00:00:00Z"}))[1][
        "data"
    ] == []
    since = (utc_now() - timedelta(hours=1)).isoformat()
    recent = (await call(client, "GET", log, admin, params={"since": since}))[1]["data"]
    assert {e["id"] for e in entries} <= {e["id"] for e in recent}

    for params, field in (
        ({"limit": "501"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": first["next_cursor"], "before_id": "5"}, "cursor"),
        ({"since": "yesterday"}, "since"),
        ({"user_id": "not-a-uuid"}, "user_id"),
    ):
        status, problem = await call(client, "GET", log, admin, params=params)
        assert status == 400 and problem["errors"][0]["field"] == field, (params, problem)


# --- SCIM request log ------------------------------------------------------------------------


async def test_the_scim_log_lists_requests_with_bodies_only_when_asked(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    reader = await key_headers(engine, tenant, "admin:read")
    await pushed_user(scim, "logged@corp.example", password="hunter2-Secret!")
    status, _, _ = await scim.get(f"/Users/{uuid.uuid4()}")
    assert status == 404
    await client.server.app[REQUEST_LOG].flush()
    log = f"/orgs/{tenant.slug}/scim-log"

    status, page = await call(client, "GET", log, reader)
    assert status == 200 and page["recording"] is True
    assert [(r["method"], r["status"]) for r in page["data"]] == [("GET", 404), ("POST", 201)]
    assert all(r["request_body"] is None and r["response_body"] is None for r in page["data"])
    assert page["data"][0]["token_id"] == tenant.token_id

    errors = (await call(client, "GET", log, reader, params={"errors": "true"}))[1]["data"]
    assert [r["status"] for r in errors] == [404]
    posts = (await call(client, "GET", log, reader, params={"method": "POST"}))[1]["data"]
    assert [r["method"] for r in posts] == ["POST"]
    raw = await _raw(client, log, reader, bodies="true", method="POST")
    assert "logged@corp.example" in json.loads(raw)["data"][0]["request_body"]
    assert "hunter2" not in raw  # redacted as it was logged
    for params, field in (({"limit": "0"}, "limit"), ({"method": "TRACE"}, "method")):
        status, problem = await call(client, "GET", log, reader, params=params)
        assert status == 400 and problem["errors"][0]["field"] == field
