"""The per-tenant SCIM request log: what it keeps, what it hides, how long."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import utc_now
from gateway.keys import REQUEST_LOG
from gateway.request_log import REDACTED, RequestLog, redact, redacted_body
from storage.request_log import LoggedRequest, RequestLogStore
from storage.scim_store import ScimStore
from tests.conftest import Scim, TenantAccess, user
from tests.test_cli import _cli

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def test_redact_hides_passwords_secrets_and_tokens_wherever_they_are() -> None:
    body = {
        "userName": "jane",
        "password": "hunter2",
        "Operations": [
            {"op": "replace", "path": "password", "value": "s3cret"},
            {"op": "replace", "path": "urn:x:User:PassWord", "value": "s3cret"},
            {"op": "replace", "path": "title", "value": "Boss"},
            {"op": "replace", "value": {"password": "s3cret", "nickName": "J"}},
        ],
        "nested": [{"client_secret": "x", "accessToken": "y", "keep": "z"}],
    }
    out = redact(body)
    assert "hunter2" not in json.dumps(out) and "s3cret" not in json.dumps(out)
    assert out["password"] == REDACTED
    assert [op["value"] for op in out["Operations"][:3]] == [REDACTED, REDACTED, "Boss"]
    assert out["Operations"][3]["value"] == {"password": REDACTED, "nickName": "J"}
    assert out["nested"] == [{"client_secret": REDACTED, "accessToken": REDACTED, "keep": "z"}]
    assert body["password"] == "hunter2"  # the input is left alone


def test_bodies_are_cut_and_non_json_is_described() -> None:
    long = json.dumps({"displayName": "x" * 100}).encode()
    cut = redacted_body(long, 20)
    assert cut is not None and cut.startswith('{"displayName":"xxx') and "more bytes]" in cut
    assert redacted_body(b"not json", 100) == "[8 bytes, not JSON]"
    assert redacted_body(b"", 100) is None


async def _logged(client: TestClient[Any, Any], store: ScimStore, tenant: TenantAccess) -> Any:
    await client.server.app[REQUEST_LOG].flush()
    return await RequestLogStore(store.engine).recent(tenant.tenant.id)


async def test_requests_are_logged_per_tenant_with_redacted_bodies(
    client: TestClient[Any, Any],
    scim: Scim,
    other_scim: Scim,
    store: ScimStore,
    tenant: TenantAccess,
) -> None:
    agent = {"User-Agent": "Okta SCIM Client 1.0"}
    status, created, _ = await scim.post(
        "/Users", user("log@corp.example", password="Hunter2!"), headers=agent
    )
    assert status == 201
    change = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "password", "value": "N3w-secret"}],
    }
    await scim.request("PATCH", f"/Users/{created['id']}", change)
    assert (await scim.post("/Users", user("LOG@corp.example")))[0] == 409
    assert (await scim.get(f"/Users/{created['id']}"))[0] == 200
    await other_scim.get("/Users")
    entries: list[LoggedRequest] = await _logged(client, store, tenant)
    assert [(e.method, e.status) for e in entries] == [
        ("GET", 200),
        ("POST", 409),
        ("PATCH", 200),
        ("POST", 201),
    ]
    assert entries[0].response_body is None  # a successful read's data is not copied
    entries = entries[1:]
    first = entries[-1]
    assert first.user_agent == "Okta SCIM Client 1.0"
    assert first.token_id == tenant.token_id
    assert first.path == f"{tenant.base}/Users"
    assert first.duration_ms > 0
    assert first.request_body is not None and json.loads(first.request_body)["password"] == REDACTED
    assert first.response_body is not None and created["id"] in first.response_body
    everything = " ".join(f"{e.request_body} {e.response_body}" for e in entries)
    assert "Hunter2!" not in everything and "N3w-secret" not in everything
    assert entries[0].response_body is not None and "uniqueness" in entries[0].response_body


async def test_unauthenticated_requests_are_not_logged(
    client: TestClient[Any, Any], store: ScimStore, tenant: TenantAccess
) -> None:
    resp = await client.get(f"{tenant.base}/Users", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401
    assert await _logged(client, store, tenant) == []


async def test_old_entries_are_pruned(
    client: TestClient[Any, Any], scim: Scim, store: ScimStore, tenant: TenantAccess
) -> None:
    await scim.get("/Users")
    await client.server.app[REQUEST_LOG].flush()
    log_store = RequestLogStore(store.engine)
    # Kept one day; the app's own log (kept a week) leaves a two-day-old row alone.
    request_log = RequestLog(log_store, utc_now, keep_days=1, body_bytes=100, flush_seconds=1)
    old = {
        "tenant_id": tenant.tenant.id,
        "at": utc_now() - timedelta(days=2),
        "token_id": None,
        "user_agent": None,
        "method": "GET",
        "path": "/old",
        "status": 200,
        "duration_ms": 1.0,
        "request_body": None,
        "response_body": None,
    }
    await log_store.write([old])
    assert (await log_store.recent(tenant.tenant.id))[0].path == "/old"
    assert await request_log.prune() == 1
    assert [e.path for e in await log_store.recent(tenant.tenant.id)] == [f"{tenant.base}/Users"]


async def test_cli_reads_the_log(
    database_url: str, client: TestClient[Any, Any], scim: Scim, tenant: TenantAccess
) -> None:
    await scim.post("/Users", user("cli-log@corp.example", password="Pa55word!"))
    await scim.get("/Users/not-an-id")
    await client.server.app[REQUEST_LOG].flush()
    result = await _cli(database_url, "scim-log", tenant.slug, "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["method"], r["status"]) for r in rows] == [("GET", 404), ("POST", 201)]
    assert "Pa55word!" not in result.output
    errors = await _cli(database_url, "scim-log", tenant.slug, "--errors")
    assert " 404 " in errors.output and " 201 " not in errors.output
