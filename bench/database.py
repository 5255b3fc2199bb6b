"""A throw-away database: created, migrated, given a tenant and a token, seeded by COPY."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from bench.users import user
from gateway.credentials import new_token
from storage import migrate
from storage.database import create_engine
from storage.scim_store import ScimStore

TENANT = "bench"
_COPY_COLUMNS = (
    "id",
    "tenant_id",
    "user_name",
    "display_name",
    "active",
    "data",
    "version",
    "created_at",
    "updated_at",
)
_CHUNK = 10_000  # rows per COPY (one transaction each)


@dataclass(frozen=True)
class Seeded:
    url: str  # the benchmark database
    tenant_id: uuid.UUID
    token: str
    ids: list[str]  # in seeding order: ids[i] is user(i)
    seconds: float


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def plain_url(url: str) -> str:
    """asyncpg takes postgresql:// URLs only."""
    return urlunsplit(urlsplit(url)._replace(scheme="postgresql"))


async def create_database(server_url: str) -> str:
    name = "idgate_bench_" + secrets.token_hex(4)
    conn = await asyncpg.connect(plain_url(server_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(plain_url(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def prepare(url: str, count: int) -> Seeded:
    """Migrate, create the tenant and a token, COPY `count` users in, VACUUM and ANALYZE."""
    await migrate.upgrade(url)
    engine = create_engine(url, pool_size=1)
    try:
        store = ScimStore(engine)
        tenant = await store.create_tenant(TENANT, "Benchmark", datetime.now(UTC))
        token_id, secret, secret_hash = new_token()
        await store.create_token(tenant, token_id, "bench", secret_hash, datetime.now(UTC))
    finally:
        await engine.dispose()
    started = time.perf_counter()
    ids = [str(uuid.uuid4()) for _ in range(count)]
    conn = await asyncpg.connect(plain_url(url))
    try:
        for start in range(0, count, _CHUNK):
            stop = min(start + _CHUNK, count)
            await conn.copy_records_to_table(
                "users", records=_records(tenant.id, ids, start, stop), columns=_COPY_COLUMNS
            )
        # VACUUM too: it sets the visibility map, so that index-only scans skip the heap, as
        # they do on a table that autovacuum has visited; otherwise autovacuum would start
        # in the middle of the measurements.
        await conn.execute("VACUUM (ANALYZE)")
        # Write the seeded pages out now: otherwise the checkpointer and the kernel flush them
        # during the first measurements, on the same two cores.
        await conn.execute("CHECKPOINT")
        # The runs' own inserts (POST, raw INSERT) would start autovacuum at a moment that
        # differs from run to run and take a core from whatever is measured then; the bench
        # vacuums at fixed points instead.
        await conn.execute("ALTER TABLE users SET (autovacuum_enabled = false)")
    finally:
        await conn.close()
    return Seeded(url, tenant.id, secret, ids, time.perf_counter() - started)


def _records(
    tenant_id: uuid.UUID, ids: list[str], start: int, stop: int
) -> Iterator[tuple[object, ...]]:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(start, stop):
        data = user(i)
        when = base + timedelta(seconds=i)
        yield (
            ids[i],
            tenant_id,
            data["userName"],
            data["displayName"],
            True,
            orjson.dumps(data).decode(),
            1,
            when,
            when,
        )
