"""Test harness: a real PostgreSQL for the whole run, the real app per test.

`IDGATE_TEST_DATABASE_URL` (a server URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres)
gets a fresh database created for the run and dropped after it. Without it, an embedded
PostgreSQL 16 (pgserver) is started in a temporary folder. Each test that needs data gets its
own tenant, so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import create_app, utc_now
from gateway.credentials import new_token
from gateway.settings import Settings
from storage import migrate
from storage.database import create_engine, start_embedded
from storage.scim_store import ScimStore, Tenant

SCIM = "application/scim+json"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server_url = os.environ.get("IDGATE_TEST_DATABASE_URL")
    if not server_url:
        with tempfile.TemporaryDirectory(prefix="idgate-pg-") as folder:
            url = start_embedded(Path(folder) / "data")
            asyncio.run(migrate.upgrade(url))
            yield url
        return
    name = f"idgate_test_{os.getpid()}_{secrets.token_hex(3)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _with_database(server_url, name)
    asyncio.run(migrate.upgrade(url))
    try:
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # Token and session checks hit the database every time, so revocation tests see it at
    # once; tests/test_token_cache.py and tests/test_session_cache.py cover the caches.
    return Settings(
        database_url=database_url,
        public_url="http://scim.test",
        token_cache_seconds=0,
        session_cache_seconds=0,
        # Tests run webhook delivery themselves (tests/test_webhooks.py).
        webhook_delivery=False,
        audit_flush_seconds=0,  # so that a test reads the audit entry of the write it made
    )


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def store(engine: AsyncEngine) -> ScimStore:
    return ScimStore(engine)


@dataclass
class TenantAccess:
    tenant: Tenant
    token: str
    token_id: str

    @property
    def slug(self) -> str:
        return self.tenant.slug

    @property
    def base(self) -> str:
        return f"/scim/v2/{self.tenant.slug}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": SCIM}


async def make_tenant(store: ScimStore, prefix: str = "t") -> TenantAccess:
    slug = f"{prefix}-{secrets.token_hex(4)}"
    tenant = await store.create_tenant(slug, slug.upper(), utc_now())
    token_id, secret, secret_hash = new_token()
    await store.create_token(tenant, token_id, "test", secret_hash, utc_now())
    return TenantAccess(tenant, secret, token_id)


@pytest.fixture
async def tenant(store: ScimStore) -> TenantAccess:
    return await make_tenant(store, "a")


@pytest.fixture
async def other_tenant(store: ScimStore) -> TenantAccess:
    return await make_tenant(store, "b")


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    return client


class Scim:
    """A tiny SCIM client over the aiohttp test client, bound to one tenant."""

    def __init__(self, client: TestClient[Any, Any], access: TenantAccess) -> None:
        self.client = client
        self.access = access

    async def request(
        self, method: str, path: str, body: Any = None, **kwargs: Any
    ) -> tuple[int, Any, Any]:
        headers = {**self.access.headers, **kwargs.pop("headers", {})}
        resp = await self.client.request(
            method, self.access.base + path, json=body, headers=headers, **kwargs
        )
        data = await resp.json(content_type=None) if resp.status != 204 else None
        return resp.status, data, resp

    async def post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("POST", path, body, **kw)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("GET", path, **kw)

    async def put(self, path: str, body: Any, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("PUT", path, body, **kw)

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("DELETE", path, **kw)


@pytest.fixture
def scim(client: TestClient[Any, Any], tenant: TenantAccess) -> Scim:
    return Scim(client, tenant)


@pytest.fixture
def other_scim(client: TestClient[Any, Any], other_tenant: TenantAccess) -> Scim:
    return Scim(client, other_tenant)


def user(user_name: str, /, **extra: Any) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        **extra,
    }


def group(display_name: str, members: Sequence[str] = (), /, **extra: Any) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": display_name,
        "members": [{"value": m} for m in members],
        **extra,
    }


async def table_snapshot(engine: AsyncEngine, tenant_id: Any) -> dict[str, list[Any]]:
    """Every row the tenant owns, for "a failed request changes no row" checks."""
    async with engine.connect() as conn:
        out: dict[str, list[Any]] = {}
        for table in (
            "users",
            "groups",
            "group_members",
            "roles",
            "projects",
            "role_grants",
            "mapping_documents",
            "audit_log",
            "invitations",
            "csv_imports",
            "user_activity",
            "user_policies",
        ):
            from sqlalchemy import text

            rows = await conn.execute(
                text(f"SELECT * FROM {table} AS r WHERE tenant_id = :t ORDER BY r::text"),
                {"t": tenant_id},
            )
            out[table] = [tuple(r) for r in rows]
        return out
