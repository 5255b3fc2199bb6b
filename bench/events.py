"""`python -m bench.events`: webhook delivery rate, and how fast a deactivation reaches every
gateway process.

1. Delivery: a local receiver (aiohttp, in this process) behind one webhook endpoint;
   `--events` events are written (users inserted set-wise: the triggers write a
   `user.created` each), then `idgate serve --workers 2` starts and its two delivery workers
   drain the queue. The figure is events delivered per second, from the first delivery to
   the last (target >= 1,000/s).
2. Revocation: the same gateway with its session cache on; `--trials` users each hold a
   session, which 8 keep-alive connections (spread over both processes by SO_REUSEPORT)
   check on `/auth/verify` while the user is deactivated by an UPDATE of the users table
   (what a SCIM PATCH writes). The figure is, per trial, the time from the commit until
   every connection sees 401 (target p99 <= 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from bench import database, report, servers
from bench.scim import RESULTS, _code_version, _machine, log
from gateway.auth_api import SESSION_COOKIE
from gateway.credentials import new_session_secret
from gateway.webhooks import new_endpoint_id, new_secret
from sso.mapping import DEFAULT_ROLE
from storage.database import create_engine
from storage.session_store import SessionStore
from storage.webhook_store import WebhookStore

DELIVERY_TARGET = 1000.0
REVOCATION_TARGET_MS = 1000.0


class Receiver:
    """Counts the deliveries it is sent (by webhook-id: a redelivery counts once)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.first = self.last = 0.0
        self.done = asyncio.Event()
        self.expected = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        now = time.perf_counter()
        self.first = self.first or now
        self.last = now
        self.seen.add(request.headers["webhook-id"])
        if len(self.seen) >= self.expected:
            self.done.set()
        return web.Response(status=204)


async def _delivery(url: str, run_dir: Path, count: int) -> dict[str, Any]:
    seeded = await database.prepare(url, 0)
    receiver = Receiver()
    receiver.expected = count
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = servers.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    engine = create_engine(url, pool_size=1)
    try:
        await WebhookStore(engine).add_endpoint(
            seeded.tenant_id,
            new_endpoint_id(),
            f"http://127.0.0.1:{port}/hook",
            (),
            new_secret(),
            datetime.now(UTC),
        )
        conn = await asyncpg.connect(database.plain_url(url))
        try:
            for start in range(0, count, 1000):
                await conn.execute(
                    """
                    INSERT INTO users (id, tenant_id, user_name, active, data, version,
                                       created_at, updated_at)
                    SELECT gen_random_uuid(), $1, 'hook' || n || '@load.example', true,
                           jsonb_build_object('userName', 'hook' || n || '@load.example'),
                           1, now(), now()
                    FROM generate_series($2::int, $3::int) n
                    """,
                    seeded.tenant_id,
                    start,
                    min(start + 1000, count) - 1,
                )
        finally:
            await conn.close()
        log(f"{count:,} events written; starting the gateway's delivery workers")
        gateway = servers.start_gateway(url, 2, run_dir)
        try:
            await asyncio.wait_for(receiver.done.wait(), timeout=max(60.0, count / 50))
        finally:
            gateway.stop()
    finally:
        await engine.dispose()
        await runner.cleanup()
    seconds = receiver.last - receiver.first
    rate = len(receiver.seen) / seconds if seconds > 0 else 0.0
    log(f"delivered {len(receiver.seen):,} events in {seconds:.2f} s: {rate:,.0f}/s")
    return {"events": len(receiver.seen), "seconds": round(seconds, 3), "rate": round(rate)}


async def _revocation(url: str, run_dir: Path, trials: int) -> dict[str, Any]:
    engine = create_engine(url, pool_size=1)
    tenant_id = await _tenant_id(url)
    users: list[tuple[uuid.UUID, str]] = []
    try:
        store = SessionStore(engine, DEFAULT_ROLE)
        conn = await asyncpg.connect(database.plain_url(url))
        try:
            for i in range(trials):
                user_id = uuid.uuid4()
                name = f"out{i}@load.example"
                await conn.execute(
                    "INSERT INTO users (id, tenant_id, user_name, active, data, version, "
                    "created_at, updated_at) VALUES ($1, $2, $3, true, $4::jsonb, 1, now(), now())",
                    user_id,
                    tenant_id,
                    name,
                    f'{{"userName": "{name}"}}',
                )
                secret, secret_hash = new_session_secret()
                await store.create(
                    secret_hash,
                    tenant_id,
                    user_id,
                    None,
                    datetime.now(UTC),
                    idle=timedelta(hours=1),
                    lifetime=timedelta(hours=1),
                )
                users.append((user_id, secret))
        finally:
            await conn.close()
    finally:
        await engine.dispose()
    gateway = servers.start_gateway(
        url, 2, run_dir, env={"IDGATE_SESSION_CACHE_SECONDS": "30", "IDGATE_WEBHOOK_DELIVERY": "0"}
    )
    latencies: list[float] = []
    try:
        conn = await asyncpg.connect(database.plain_url(url))
        sessions = [
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) for _ in range(8)
        ]
        try:
            await asyncio.sleep(1.0)  # both processes listening
            for user_id, secret in users:
                cookie = {"Cookie": f"{SESSION_COOKIE}={secret}"}

                async def status(session: aiohttp.ClientSession, cookie: dict[str, str]) -> int:
                    async with session.get(gateway.base + "/auth/verify", headers=cookie) as r:
                        return r.status

                # Warm every process's cache with this session.
                assert all(s == 200 for s in await asyncio.gather(
                    *(status(s, cookie) for s in sessions)))  # fmt: skip
                await conn.execute("UPDATE users SET active = false WHERE id = $1", user_id)
                committed = time.perf_counter()
                waiting = set(range(len(sessions)))
                while waiting:
                    answers = await asyncio.gather(*(status(sessions[i], cookie) for i in waiting))
                    waiting = {i for i, s in zip(sorted(waiting), answers, strict=True) if s != 401}
                    if time.perf_counter() - committed > 10:
                        raise RuntimeError("a process kept a revoked session for 10 s")
                latencies.append((time.perf_counter() - committed) * 1000)
        finally:
            for session in sessions:
                await session.close()
            await conn.close()
    finally:
        gateway.stop()
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    log(f"revocation across processes: p50 {p50:.1f} ms, p99 {p99:.1f} ms ({trials} trials)")
    return {"trials": trials, "p50_ms": round(p50, 2), "p99_ms": round(p99, 2)}


async def _tenant_id(url: str) -> uuid.UUID:
    conn = await asyncpg.connect(database.plain_url(url))
    try:
        found: uuid.UUID = await conn.fetchval(
            "SELECT id FROM tenants WHERE slug = $1", database.TENANT
        )
        return found
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events delivered (20000)")
    parser.add_argument("--trials", type=int, default=100, help="deactivations timed (100)")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server where the run may create and drop a database",
    )
    args = parser.parse_args()
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    run_dir = RESULTS / f"events-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    url = asyncio.run(database.create_database(args.database_url))
    try:
        delivery = asyncio.run(_delivery(url, run_dir, args.events))
        revocation = asyncio.run(_revocation(url, run_dir, args.trials))
    finally:
        asyncio.run(database.drop_database(args.database_url, url))
        log("database dropped")
    record = {
        "started": stamp,
        "command": " ".join([Path(sys.executable).name, "-m", "bench.events", *sys.argv[1:]]),
        "machine": _machine(args.database_url),
        "code": _code_version(),
        "delivery": delivery,
        "revocation": revocation,
    }
    report.write(record, RESULTS / f"events-{stamp}.json")
    print(
        "\n"
        + report.table(
            ["measure", "figure", "target", ""],
            [
                [
                    f"webhook delivery, 2 worker processes, {delivery['events']:,} events",
                    f"{delivery['rate']:,}/s",
                    f">= {DELIVERY_TARGET:,.0f}/s",
                    report.verdict(delivery["rate"] >= DELIVERY_TARGET),
                ],
                [
                    f"deactivation to 401 in every process, {revocation['trials']} trials",
                    f"p50 {revocation['p50_ms']} ms, p99 {revocation['p99_ms']} ms",
                    f"p99 <= {REVOCATION_TARGET_MS:,.0f} ms",
                    report.verdict(revocation["p99_ms"] <= REVOCATION_TARGET_MS),
                ],
            ],
        )
    )


if __name__ == "__main__":
    main()
