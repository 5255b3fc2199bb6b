"""The user lifecycle through the app on Postgres: deactivation, block and deletion take a
user out at once and keep their data; reactivation and re-provisioning bring them back."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import utc_now
from gateway.auth_api import SESSION_COOKIE
from storage.event_store import EventStore
from storage.scim_store import ScimStore
from tests.conftest import Scim, TenantAccess, group, user
from tests.processes import healthy, serve, stop, until
from tests.test_access import RULES, _grants, _set_rules, _set_up
from tests.test_auth_verify import _session
from tests.test_cli import _cli
from tests.test_events import _types

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _active(value: bool) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": value}}]}


async def _verify(client: TestClient[Any, Any], secret: str) -> int:
    answer = await client.get("/auth/verify", headers={"Cookie": f"{SESSION_COOKIE}={secret}"})
    return answer.status


async def test_deactivation_suspends_and_reactivation_restores(
    database_url: str,
    client: TestClient[Any, Any],
    engine: AsyncEngine,
    tenant: TenantAccess,
    scim: Scim,
    tmp_path: Path,
) -> None:
    await _set_up(database_url, tenant, tmp_path, RULES)
    _, ann, _ = await scim.post("/Users", user("ann@corp.example"))
    _, team, _ = await scim.post("/Groups", group("Support Team", [ann["id"]]))
    await _cli(database_url, "role", "grant", tenant.slug, ann["id"], "admin")
    secret = await _session(engine, tenant, ann["id"])
    assert await _verify(client, secret) == 200

    await scim.request("PATCH", f"/Users/{ann['id']}", _active(False))
    assert await _verify(client, secret) == 401
    # The mapped grants are suspended; the hand-given one and the membership are kept.
    assert await _grants(engine, ann["id"]) == {(None, "admin", "manual")}
    _, kept, _ = await scim.get(f"/Groups/{team['id']}")
    assert [m["value"] for m in kept["members"]] == [ann["id"]]

    await scim.request("PATCH", f"/Users/{ann['id']}", _active(True))
    assert await _grants(engine, ann["id"]) == {
        (None, "admin", "manual"),
        (None, "chat-operator", "mapped"),
    }
    # The session the deactivation revoked stays revoked; a new login works.
    assert await _verify(client, secret) == 401
    assert await _verify(client, await _session(engine, tenant, ann["id"])) == 200
    types = await _types(engine, tenant)
    assert types.index("user.deactivated") < types.index("session.revoked")
    assert "user.reactivated" in types


async def test_a_blocked_user_is_out_whatever_scim_says(
    database_url: str,
    client: TestClient[Any, Any],
    engine: AsyncEngine,
    tenant: TenantAccess,
    scim: Scim,
    tmp_path: Path,
) -> None:
    await _set_up(database_url, tenant, tmp_path, RULES)
    _, bob, _ = await scim.post("/Users", user("bob@corp.example"))
    await scim.post("/Groups", group("Support Team", [bob["id"]]))
    secret = await _session(engine, tenant, bob["id"])
    blocked = await _cli(
        database_url, "user", "block", tenant.slug, "bob@corp.example", "--reason", "Left"
    )
    assert blocked.exit_code == 0, blocked.output
    assert await _verify(client, secret) == 401
    assert await _verify(client, await _session(engine, tenant, bob["id"])) == 401
    assert await _grants(engine, bob["id"]) == set()
    # SCIM still sees an active user (the block is the product's, not the IdP's).
    _, shown, _ = await scim.get(f"/Users/{bob['id']}")
    assert shown["active"] is True
    audited = await _cli(database_url, "audit", tenant.slug, "--action", "user.bl", "--json")
    (entry,) = json.loads(audited.output)
    assert entry["action"] == "user.blocked" and entry["details"] == {"reason": "Left"}
    assert "user.blocked" in await _types(engine, tenant)

    unblocked = await _cli(database_url, "user", "unblock", tenant.slug, bob["id"])
    assert unblocked.exit_code == 0, unblocked.output
    assert await _verify(client, await _session(engine, tenant, bob["id"])) == 200
    assert await _grants(engine, bob["id"]) == {(None, "chat-operator", "mapped")}
    refused = await _cli(database_url, "user", "block", tenant.slug, bob["id"], "--reason", " ")
    assert refused.exit_code == 1


async def test_soft_delete_keeps_the_user_apart_and_frees_its_names(
    database_url: str,
    engine: AsyncEngine,
    store: ScimStore,
    tenant: TenantAccess,
    scim: Scim,
    tmp_path: Path,
) -> None:
    await _set_up(database_url, tenant, tmp_path, RULES)
    _, cy, _ = await scim.post("/Users", user("cy@corp.example", externalId="00u-cy"))
    await scim.post("/Groups", group("Support Team", [cy["id"]]))
    assert (await scim.delete(f"/Users/{cy['id']}"))[0] == 204
    assert (await scim.get(f"/Users/{cy['id']}"))[0] == 404
    async with engine.connect() as conn:
        kept = (
            await conn.execute(
                sql("SELECT user_name, external_id, data, deleted_by FROM deleted_users "
                    "WHERE id = :u"),
                {"u": uuid.UUID(cy["id"])},
            )
        ).one()  # fmt: skip
    assert (kept.user_name, kept.external_id) == ("cy@corp.example", "00u-cy")
    assert kept.deleted_by == f"scim:{tenant.token_id}"
    assert len(kept.data["groups"]) == 2  # Support Team, and Operators from the rules
    assert kept.data["grants"] == [
        {"role": "chat-operator", "project_id": None, "source": "mapped"}
    ]
    # The same userName and externalId can be provisioned again.
    status, again, _ = await scim.post("/Users", user("cy@corp.example", externalId="00u-cy"))
    assert status == 201 and again["id"] != cy["id"]

    # Kept 30 days by default, then purged (other tests' deleted users may go too).
    async def kept() -> int:
        async with engine.connect() as conn:
            return int(
                await conn.scalar(
                    sql("SELECT count(*) FROM deleted_users WHERE id = :u"),
                    {"u": uuid.UUID(cy["id"])},
                )
            )

    await store.purge_deleted(utc_now() + timedelta(days=29))
    assert await kept() == 1
    assert await store.purge_deleted(utc_now() + timedelta(days=31)) >= 1
    assert await kept() == 0


async def test_hard_delete_keeps_nothing(
    database_url: str, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    done = await _cli(database_url, "tenant", "set", tenant.slug, "--delete-policy", "hard")
    assert done.exit_code == 0 and '"delete_policy": "hard"' in done.output
    _, di, _ = await scim.post("/Users", user("di@corp.example"))
    await _session(engine, tenant, di["id"])
    assert (await scim.delete(f"/Users/{di['id']}"))[0] == 204
    async with engine.connect() as conn:
        kept = await conn.scalar(
            sql("SELECT count(*) FROM deleted_users WHERE id = :u"), {"u": uuid.UUID(di["id"])}
        )
    assert kept == 0
    # Its session ends as a deactivation's would, then the user goes.
    assert (await _types(engine, tenant))[-2:] == ["session.revoked", "user.deleted"]
    # Events are kept `events_days`, then purged (numbers are never reused).
    events = EventStore(engine)
    assert await events.purge(utc_now() + timedelta(days=1)) >= 4  # every tenant's
    assert await _types(engine, tenant) == []
    _, again, _ = await scim.post("/Users", user("di@corp.example"))
    (created,) = await events.after(tenant.tenant.id, 0, 10)
    assert created.seq == 5 and created.resource_id == again["id"]


async def test_grants_follow_what_is_unambiguous(
    database_url: str, engine: AsyncEngine, tenant: TenantAccess, scim: Scim, tmp_path: Path
) -> None:
    await _set_up(database_url, tenant, tmp_path, RULES)
    _, cat, _ = await scim.post("/Users", user("cat@corp.example"))
    _, eve, _ = await scim.post("/Users", user("eve@corp.example"))
    _, real, _ = await scim.post("/Groups", group("Access Admins", [cat["id"]], externalId="ext-1"))
    rules = {
        "default_role": "MEMBER",
        "rules": [
            {
                "name": "by-name",
                "when": [{"group": "Access Admins"}],
                "grant": {"roles": ["admin"]},
            },
            {"name": "by-ext", "when": [{"group_id": "ext-1"}], "grant": {"roles": ["member"]}},
        ],
    }
    await _set_rules(database_url, tenant, tmp_path, rules)
    assert await _grants(engine, cat["id"]) == {
        (None, "admin", "mapped"),
        (None, "member", "mapped"),
    }
    # A name the database tells apart ("ß" is not "ss" to lower()) is another group: eve gets
    # nothing, and cat keeps what the name gives.
    await scim.post("/Groups", group("Acceß Admins", [eve["id"]]))
    assert await _grants(engine, eve["id"]) == set()
    # A second group with the same externalId: the externalId names neither any more.
    await scim.post("/Groups", group("Other", [eve["id"]], externalId="ext-1"))
    assert await _grants(engine, eve["id"]) == set()
    assert await _grants(engine, cat["id"]) == {(None, "admin", "mapped")}
    # The rules are stored canonical: the default role reads as the catalogue names it.
    shown = json.loads((await _cli(database_url, "mapping", "show", tenant.slug)).output)
    assert shown["default_role"] == "member"
    assert real["externalId"] == "ext-1"


async def test_deactivation_reaches_another_gateway_process(
    database_url: str, engine: AsyncEngine, tenant: TenantAccess, scim: Scim, tmp_path: Path
) -> None:
    """Two replicas: a second `idgate serve` on the same database, holding the
    session in its cache; a SCIM deactivation through this process; the other's next check
    is 401."""
    _, fay, _ = await scim.post("/Users", user("fay@corp.example"))
    secret = await _session(engine, tenant, fay["id"])
    cookie = {"Cookie": f"{SESSION_COOKIE}={secret}"}
    log = (tmp_path / "idgate.log").open("wb")
    process, port = serve(database_url, log, {"IDGATE_SESSION_CACHE_SECONDS": "60"})
    try:
        async with aiohttp.ClientSession() as http:
            await healthy(http, process, port)

            async def status() -> int:
                url = f"http://127.0.0.1:{port}/auth/verify"
                async with http.get(url, headers=cookie) as answer:
                    return answer.status

            # Listening may take a moment after start; then the session is kept.
            async def kept() -> bool:
                return await status() == 200

            await until("the other process answers", kept, 10)
            await asyncio.sleep(0.5)
            assert await status() == 200
            await scim.request("PATCH", f"/Users/{fay['id']}", _active(False))
            started = time.monotonic()

            async def out() -> bool:
                return await status() == 401

            await until("the other process refuses the session", out, 1.0, 0.005)
            assert time.monotonic() - started < 1.0
    finally:
        stop(process)
        log.close()
