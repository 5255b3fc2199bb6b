"""`python -m bench.auth`: load `GET /auth/verify` (forward auth) with a live session.

A run creates a database, seeds users by COPY, starts sessions for `--sessions` of them in
the sessions table (as logins do), starts `idgate serve --workers 2` and drives
`/auth/verify` with those sessions' cookies, one picked at random per request, under wrk;
then it drops the database and prints the figure against the target (>= 3,000 requests/s at
concurrency 32). `--cache-seconds` sets the gateway's `session_cache_seconds` (0: every
check asks the database). The same load on
`GET /healthz`, which touches no database, shows the HTTP ceiling of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import database, report, servers
from bench.load import Load, Scenario, wrk_available
from bench.scim import RESULTS, _code_version, _machine, _measure, log
from gateway.auth_api import SESSION_COOKIE
from gateway.credentials import new_session_secret
from sso.mapping import DEFAULT_ROLE
from storage.database import create_engine
from storage.session_store import SessionStore

VERIFY = "GET /auth/verify (live session)"
CEILING = "GET /healthz (no database: the HTTP ceiling)"
TARGET = 3000.0


async def _sessions(seeded: database.Seeded, count: int) -> list[str]:
    """Session cookies of `count` different users."""
    engine = create_engine(seeded.url, pool_size=1)
    store = SessionStore(engine, DEFAULT_ROLE)
    secrets = []
    try:
        for user_id in seeded.ids[:count]:
            secret, secret_hash = new_session_secret()
            await store.create(
                secret_hash,
                seeded.tenant_id,
                uuid.UUID(user_id),
                None,
                datetime.now(UTC),
                idle=timedelta(hours=1),
                lifetime=timedelta(hours=12),
            )
            secrets.append(secret)
    finally:
        await engine.dispose()
    return secrets


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.auth", description=__doc__)
    parser.add_argument("--users", type=int, default=100_000, help="users seeded (100000)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections (32)")
    parser.add_argument("--duration", type=float, default=10, help="seconds (10)")
    parser.add_argument("--workers", type=int, default=2, help="gateway processes (2)")
    parser.add_argument("--sessions", type=int, default=1000, help="distinct sessions (1000)")
    parser.add_argument(
        "--cache-seconds", type=float, default=1.0, help="session_cache_seconds (1.0)"
    )
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server where the run may create and drop a database",
    )
    args = parser.parse_args()
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    run_dir = RESULTS / f"auth-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    url = asyncio.run(database.create_database(args.database_url))
    try:
        seeded = asyncio.run(database.prepare(url, args.users))
        cookies = [f"{SESSION_COOKIE}={s}" for s in asyncio.run(_sessions(seeded, args.sessions))]
        load = Load(seeded.token, args.concurrency, wrk_available())
        gateway = servers.start_gateway(
            url,
            args.workers,
            run_dir,
            env={"IDGATE_SESSION_CACHE_SECONDS": str(args.cache_seconds)},
        )
        try:
            scenario = Scenario(VERIFY, ["/auth/verify"], cookies=cookies)
            result = _measure(load, gateway, scenario, args.duration, set(), run_dir)
            ceiling = _measure(
                load, gateway, Scenario(CEILING, ["/healthz"]), args.duration, set(), run_dir
            )
        finally:
            gateway.stop()
    finally:
        asyncio.run(database.drop_database(args.database_url, url))
        log("database dropped")
    record = {
        "started": stamp,
        "command": " ".join([Path(sys.executable).name, "-m", "bench.auth", *sys.argv[1:]]),
        "machine": _machine(args.database_url),
        "code": _code_version(),
        "result": result.as_json(),
        "ceiling": ceiling.as_json(),
    }
    report.write(record, RESULTS / f"auth-{stamp}.json")
    met = result.ok and result.rate >= TARGET
    print(
        "\n"
        + report.table(
            [
                "scenario",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "target",
                "",
                "cores gw/pg/load/other",
            ],
            [
                [
                    VERIFY,
                    report.rate(result.rate),
                    f"{result.p50_ms:.1f}",
                    f"{result.p99_ms:.1f}",
                    str(result.non2xx + result.socket_errors),
                    f">= {TARGET:,.0f}/s",
                    report.verdict(met),
                    report.cores(result),
                ],
                [
                    CEILING,
                    report.rate(ceiling.rate),
                    f"{ceiling.p50_ms:.1f}",
                    f"{ceiling.p99_ms:.1f}",
                    str(ceiling.non2xx + ceiling.socket_errors),
                    "-",
                    "",
                    report.cores(ceiling),
                ],
            ],
        )
    )


if __name__ == "__main__":
    main()
