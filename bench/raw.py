"""The floor under the gateway: its SQL statements sent straight through an asyncpg pool.

Each operation is what one request costs the database, without HTTP, authentication,
SQLAlchemy or JSON shaping: a POST is one INSERT ... RETURNING, autocommitted (as the store
sends it), a GET one SELECT with the groups sub-select.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import orjson

from bench import servers
from bench.database import Seeded, plain_url
from bench.load import Result, percentile
from bench.users import user, user_name

_COLUMNS = """
    users.id, users.data, users.version, users.created_at, users.updated_at,
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'value', groups.id::text, 'display', groups.display_name, 'type', 'direct')),
        '[]'::jsonb)
     FROM group_members JOIN groups ON groups.id = group_members.group_id
     WHERE group_members.member_id = users.id) AS groups
"""
SELECT_BY_ID = f"SELECT {_COLUMNS} FROM users WHERE users.tenant_id = $1 AND users.id = $2"
SELECT_BY_NAME = (
    f"SELECT {_COLUMNS} FROM users WHERE users.tenant_id = $1 AND lower(users.user_name) = $2"
)
INSERT = """
    INSERT INTO users (id, tenant_id, user_name, external_id, display_name, active, data,
                       password_hash, version, created_at, updated_at)
    VALUES ($1, $2, $3, NULL, $4, true, $5, NULL, 1, $6, $6)
    RETURNING users.created_at, users.updated_at, users.version
"""

UPDATE = f"""
    UPDATE users SET data = $3, display_name = $4, active = $5, version = version + 1,
                     updated_at = now()
    WHERE users.id = $2 AND users.tenant_id = $1 AND users.version = $6
    RETURNING {_COLUMNS}
"""

Operation = Callable[[asyncpg.Connection, int], Awaitable[object]]


async def patch_baseline(
    seeded: Seeded, ids: list[str], concurrency: int, seconds: float
) -> Result:
    """A user PATCH's statements, as the store sends them: the read, then the UPDATE that
    applies only to the version read (both autocommitted)."""
    tenant = seeded.tenant_id

    async def patch(conn: asyncpg.Connection, n: int) -> object:
        user_id = uuid.UUID(random.choice(ids))
        row = await conn.fetchrow(SELECT_BY_ID, tenant, user_id)
        data = orjson.loads(row["data"]) | {"displayName": f"Raw {n}", "active": n % 2 == 0}
        return await conn.fetchrow(
            UPDATE,
            tenant,
            user_id,
            orjson.dumps(data).decode(),
            data["displayName"],
            data["active"],
            row["version"],
        )

    pool = await asyncpg.create_pool(
        plain_url(seeded.url), min_size=concurrency, max_size=concurrency, max_queries=10**9
    )
    try:
        name = "SELECT + UPDATE (PATCH)"
        await _measure(pool, name, patch, concurrency, min(2.0, seconds / 5))
        servers.wait_idle()
        return await _measure(pool, name, patch, concurrency, seconds)
    finally:
        await pool.close()


async def baseline(seeded: Seeded, concurrency: int, seconds: float) -> list[Result]:
    tenant, ids, count = seeded.tenant_id, seeded.ids, len(seeded.ids)
    prefix = secrets.token_hex(4)
    serial = itertools.count()  # unique userNames across the warm-up and the measured run

    async def insert(conn: asyncpg.Connection, n: int) -> object:
        data = user(n)
        data["userName"] = f"raw-{prefix}-{next(serial)}@load.example"
        return await conn.fetchrow(
            INSERT,
            uuid.uuid4(),
            tenant,
            data["userName"],
            data["displayName"],
            orjson.dumps(data).decode(),
            datetime.now(UTC),
        )

    async def by_id(conn: asyncpg.Connection, _n: int) -> object:
        return await conn.fetchrow(SELECT_BY_ID, tenant, random.choice(ids))

    async def by_name(conn: asyncpg.Connection, _n: int) -> object:
        return await conn.fetchrow(SELECT_BY_NAME, tenant, user_name(random.randrange(count)))

    # The same connections throughout: by default asyncpg replaces a connection after 50,000
    # queries, which would lose its backend's CPU time from the figures.
    pool = await asyncpg.create_pool(
        plain_url(seeded.url), min_size=concurrency, max_size=concurrency, max_queries=10**9
    )
    try:
        results = []
        # The rows the gateway's POSTs added would start autovacuum in the middle of a run.
        async with pool.acquire() as conn:
            await conn.execute("VACUUM (ANALYZE) users")
        # Reads first: the inserts would start autovacuum too.
        for name, operation in (
            ("SELECT by id", by_id),
            ("SELECT by lower(user_name)", by_name),
            ("INSERT (POST)", insert),
        ):
            await _measure(pool, name, operation, concurrency, min(2.0, seconds / 5))
            servers.wait_idle()
            results.append(await _measure(pool, name, operation, concurrency, seconds))
        return results
    finally:
        await pool.close()


async def _measure(
    pool: asyncpg.Pool, name: str, operation: Operation, concurrency: int, seconds: float
) -> Result:
    latencies: list[float] = []
    counter = iter(range(1 << 62))
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        # One connection per client for the whole run: a release would add the pool's reset
        # query (a round trip) that the gateway's SQLAlchemy pool does not send.
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await operation(conn, next(counter))
                latencies.append(time.perf_counter() - started)

    before = servers.cpu_snapshot(os.getpid())
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    after = servers.cpu_snapshot(os.getpid())
    cores = servers.cores_used(before, after, elapsed)
    cores["client"] = cores.pop("server")  # this process is the client here
    cores["other"] = round(cores.pop("machine") - cores["client"] - cores["postgres"], 2)
    latencies.sort()
    return Result(
        name=name,
        tool="asyncpg",
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=percentile(latencies, 50) * 1e3,
        p99_ms=percentile(latencies, 99) * 1e3,
        non2xx=0,
        socket_errors=0,
        cpu_cores=cores,
    )
