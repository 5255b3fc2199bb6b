"""Tenant isolation and token lifecycle."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import utc_now
from storage.scim_store import ScimStore
from tests.conftest import Scim, TenantAccess, group, make_tenant, user


async def test_other_tenants_ids_are_404_everywhere(scim: Scim, other_scim: Scim) -> None:
    _, u, _ = await scim.post("/Users", user("mine@corp.example"))
    _, g, _ = await scim.post("/Groups", group("Mine", [u["id"]]))
    for path in (f"/Users/{u['id']}", f"/Groups/{g['id']}"):
        assert (await other_scim.get(path))[0] == 404
        assert (await other_scim.delete(path))[0] == 404
        body = user("x@corp.example") if "Users" in path else group("x")
        assert (await other_scim.put(path, body))[0] == 404
    for filter_ in (f'id eq "{u["id"]}"', 'userName eq "mine@corp.example"'):
        _, page, _ = await other_scim.get("/Users", params={"filter": filter_})
        assert page["totalResults"] == 0
    _, groups, _ = await other_scim.get("/Groups")
    assert groups["totalResults"] == 0
    # ... and the owner still has everything.
    assert (await scim.get(f"/Users/{u['id']}"))[0] == 200
    assert (await scim.get(f"/Groups/{g['id']}"))[0] == 200


async def test_token_is_bound_to_its_tenants_url(
    client: TestClient[Any, Any], tenant: TenantAccess, other_tenant: TenantAccess
) -> None:
    for path in ("/Users", "/Groups", "/ServiceProviderConfig", "/Schemas"):
        resp = await client.get(other_tenant.base + path, headers=tenant.headers)
        assert resp.status == 401, path
    resp = await client.get("/scim/v2/no-such-tenant/Users", headers=tenant.headers)
    assert resp.status == 401


async def test_two_tenants_creating_concurrently_stay_apart(
    client: TestClient[Any, Any], store: ScimStore
) -> None:
    a, b = await make_tenant(store, "ca"), await make_tenant(store, "cb")
    scims = {a.slug: Scim(client, a), b.slug: Scim(client, b)}
    jobs = [(slug, i) for i in range(200) for slug in scims]
    semaphore = asyncio.Semaphore(16)

    async def create(slug: str, i: int) -> int:
        async with semaphore:
            status, _, _ = await scims[slug].post("/Users", user(f"{slug}-{i}@corp.example"))
            return status

    statuses = await asyncio.gather(*(create(slug, i) for slug, i in jobs))
    assert statuses.count(201) == 400
    for access in (a, b):
        _, page, _ = await scims[access.slug].get("/Users", params={"count": "1000"})
        assert page["totalResults"] == 200
        assert all(r["userName"].startswith(access.slug + "-") for r in page["Resources"])


async def test_rotation_and_revocation(client: TestClient[Any, Any], store: ScimStore) -> None:
    from gateway.credentials import new_token

    access = await make_tenant(store, "rot")
    token_id, secret, secret_hash = new_token()
    await store.create_token(access.tenant, token_id, "second", secret_hash, utc_now())
    second = TenantAccess(access.tenant, secret, token_id)
    # Both tokens work at once.
    for who in (access, second):
        assert (await client.get(who.base + "/Users", headers=who.headers)).status == 200
    assert await store.revoke_token(access.tenant, access.token_id, utc_now())
    assert (await client.get(access.base + "/Users", headers=access.headers)).status == 401
    assert (await client.get(second.base + "/Users", headers=second.headers)).status == 200
    records = {r.id: r for r in await store.list_tokens(access.tenant)}
    assert records[access.token_id].revoked_at is not None
    assert records[token_id].last_used_at is not None


async def test_tokens_are_stored_hashed(store: ScimStore, tenant: TenantAccess) -> None:
    from sqlalchemy import text

    async with store.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM scim_tokens"))).all()
    assert rows
    assert all(tenant.token not in repr(row) for row in rows)
