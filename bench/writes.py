"""`python -m bench.writes`: load idgate's SCIM writes (PATCH, large groups, Bulk).

A run creates a database `idgate_bench_<random>`, seeds users by COPY and groups by SQL,
starts `idgate serve --workers 2` and measures:

- PATCH of a user (replace displayName and active), under wrk at --concurrency;
- PATCH of a group adding 10 members, under wrk at --concurrency, over --groups groups;
- on a group that already has --big-group members: PATCHes adding 1,000 members each, and
  PATCHes removing one member each, sent one at a time (latency, p50);
- GET of that group with its members (time, and the workers' peak RSS);
- POST /Bulk with 1,000 user creations each, one at a time (users per second);
- and, with the gateway stopped, a user PATCH's two statements straight through asyncpg at
  the same concurrency: the floor the gateway's PATCH rate is compared with.

It drops the database and prints a table; the record goes to bench/results/writes-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from bench import database, profile, raw, report, servers
from bench.database import Seeded
from bench.load import Load, Result, Scenario, wrk_available
from bench.scim import RESULTS, _code_version, _machine, _measure, log

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
USER_PATCH = "PATCH /Users/{id} (displayName, active)"
GROUP_ADD = "PATCH /Groups/{id} +10 members"
BIG_ADD = "PATCH +1,000 members (big group)"
BIG_REMOVE = "PATCH -1 member (big group)"
BIG_GET = "GET big group with members"
BULK = "POST /Bulk 1,000 user creations"

RATE_TARGETS = {USER_PATCH: 1500.0, GROUP_ADD: 800.0}
P50_TARGETS_MS = {BIG_ADD: 150.0, BIG_REMOVE: 20.0}
BULK_USERS_PER_SECOND = 2000.0


def main() -> None:
    args = _parser().parse_args()
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    run_dir = RESULTS / f"writes-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    users = args.big_group + args.big_adds * 1000 + 10_000
    url = asyncio.run(database.create_database(args.database_url))
    log(f"database {url}")
    rows: list[list[str]] = []
    record: dict[str, Any] = {
        "started": stamp,
        "command": " ".join([Path(sys.executable).name, "-m", "bench.writes", *sys.argv[1:]]),
        "machine": _machine(args.database_url),
        "code": _code_version(),
        "users": users,
        "concurrency": args.concurrency,
        "results": {},
    }
    try:
        seeded = asyncio.run(database.prepare(url, users))
        log(f"seeded {users:,} users in {seeded.seconds:.1f} s")
        groups, big = asyncio.run(_seed_groups(seeded, args.groups, args.big_group))
        log(f"seeded {args.groups} groups and one of {args.big_group:,} members")
        load = Load(seeded.token, args.concurrency, wrk_available())
        gateway = servers.start_gateway(url, args.workers, run_dir)
        try:
            profiled = {USER_PATCH, GROUP_ADD} if args.profile else set()
            for scenario in _scenarios(seeded, groups, args.big_group + args.big_adds * 1000):
                result = _measure(load, gateway, scenario, args.duration, profiled, run_dir)
                record["results"][scenario.name] = result.as_json()
                rows.append(_rate_row(result))
            sequential = asyncio.run(
                _sequential(gateway, seeded, big, args.big_group, args.big_adds, args.bulks)
            )
            record["results"].update(sequential)
            rows.extend(_sequential_rows(sequential))
        finally:
            gateway.stop()
        log("asyncpg baseline")
        reserved = args.big_group + args.big_adds * 1000
        floor = asyncio.run(
            raw.patch_baseline(seeded, seeded.ids[reserved:], args.concurrency, args.duration)
        )
        record["raw"] = floor.as_json()
        patched = record["results"][USER_PATCH]["rate"]
        rows.append(
            [
                f"{floor.name}, asyncpg",
                f"{report.rate(floor.rate)}/s",
                f"{floor.p50_ms:.1f}",
                f"{floor.p99_ms:.1f}",
                f"user PATCH / raw = {patched / floor.rate:.0%}" if floor.rate else "-",
                "-",
            ]
        )
    finally:
        asyncio.run(database.drop_database(args.database_url, url))
        log("database dropped")
    text = "\n".join(
        [
            f"idgate {record['code']['commit']}"
            f"{' + uncommitted changes' if record['code']['changed'] else ''}: "
            f"{users:,} users, {args.workers} workers, concurrency {args.concurrency} "
            f"for the rates",
            report.table(["scenario", "figure", "p50 ms", "p99 ms", "target", ""], rows),
        ]
    )
    output = RESULTS / f"writes-{stamp}.json"
    report.write(record, output)
    print("\n" + text)
    for collapsed in sorted(run_dir.glob("*.collapsed")):
        summary = profile.summarise(collapsed)
        print(f"\nprofile of {collapsed.stem} (share of the workers' samples, self time):")
        for name, share in summary["by_package_self"]:
            print(f"  {share:5.1f}%  {name}")
        for name, share in summary["by_function_inclusive"][:25]:
            print(f"  {share:5.1f}%  (inclusive) {name}")
    print(f"\nresults: {output}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.writes", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=16, help="connections (16)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per rate (10)")
    parser.add_argument("--workers", type=int, default=2, help="gateway processes (2)")
    parser.add_argument("--groups", type=int, default=200, help="groups PATCHed (200)")
    parser.add_argument(
        "--big-group", type=int, default=100_000, help="members of the big group (100000)"
    )
    parser.add_argument("--big-adds", type=int, default=20, help="1,000-member PATCHes (20)")
    parser.add_argument("--bulks", type=int, default=5, help="Bulk requests of 1,000 (5)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the rate scenarios again under py-spy (unscored) and print where time goes",
    )
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server where the run may create and drop a database",
    )
    return parser


# --- data ------------------------------------------------------------------------------


async def _seed_groups(seeded: Seeded, count: int, big_members: int) -> tuple[list[str], str]:
    """`count` empty groups, and one whose members are the first `big_members` users."""
    conn = await asyncpg.connect(database.plain_url(seeded.url))
    now = datetime.now(UTC)
    try:
        ids = [str(uuid.uuid4()) for _ in range(count + 1)]
        await conn.copy_records_to_table(
            "groups",
            records=[
                (
                    gid,
                    seeded.tenant_id,
                    f"Bench group {i}",
                    orjson.dumps(
                        {"schemas": [GROUP_SCHEMA], "displayName": f"Bench group {i}"}
                    ).decode(),
                    1,
                    now,
                    now,
                )
                for i, gid in enumerate(ids)
            ],
            columns=(
                "id",
                "tenant_id",
                "display_name",
                "data",
                "version",
                "created_at",
                "updated_at",
            ),
        )
        big = ids[-1]
        await conn.copy_records_to_table(
            "group_members",
            records=[
                (big, member, seeded.tenant_id, "User") for member in seeded.ids[:big_members]
            ],
            columns=("group_id", "member_id", "tenant_id", "member_type"),
        )
        await conn.execute("VACUUM (ANALYZE) groups, group_members")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return ids[:-1], big


def _patch(*operations: dict[str, Any]) -> str:
    return json.dumps({"schemas": [PATCH_OP], "Operations": list(operations)})


def _scenarios(seeded: Seeded, groups: list[str], reserved: int) -> list[Scenario]:
    """The rate scenarios; they touch users from index `reserved` on (the big group's and
    its additions' users stay as the sequential part expects them)."""
    rng = random.Random(5)
    base = f"/scim/v2/{database.TENANT}"
    pool = seeded.ids[reserved:]
    user_patches = []
    for i in range(20_000):
        body = _patch(
            {"op": "replace", "path": "displayName", "value": f"Renamed {i}"},
            {"op": "replace", "path": "active", "value": i % 2 == 0},
        )
        user_patches.append(("PATCH", f"{base}/Users/{rng.choice(pool)}", body))
    group_adds = []
    for _ in range(20_000):
        members = [{"value": m} for m in rng.sample(seeded.ids[:reserved], 10)]
        body = _patch({"op": "add", "path": "members", "value": members})
        group_adds.append(("PATCH", f"{base}/Groups/{rng.choice(groups)}", body))
    return [
        Scenario(USER_PATCH, [], sends=user_patches),
        Scenario(GROUP_ADD, [], sends=group_adds),
    ]


# --- sequential measurements ----------------------------------------------------------


async def _sequential(
    gateway: servers.Server,
    seeded: Seeded,
    big: str,
    big_members: int,
    big_adds: int,
    bulks: int,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {seeded.token}", "Content-Type": "application/scim+json"}
    base = f"{gateway.base}/scim/v2/{database.TENANT}"
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def send(method: str, path: str, body: str | None = None) -> float:
            started = time.perf_counter()
            async with session.request(method, base + path, data=body) as response:
                text = await response.read()
                if response.status >= 300:
                    raise RuntimeError(f"{method} {path}: {response.status} {text[:300]!r}")
            return time.perf_counter() - started

        servers.wait_idle()
        adds = []
        for k in range(big_adds):
            chunk = seeded.ids[big_members + k * 1000 : big_members + (k + 1) * 1000]
            body = _patch({"op": "add", "path": "members", "value": [{"value": m} for m in chunk]})
            adds.append(await send("PATCH", f"/Groups/{big}", body))
        out[BIG_ADD] = _latencies(adds)
        log(f"{BIG_ADD}: p50 {out[BIG_ADD]['p50_ms']:.1f} ms over {len(adds)}")

        removes = []
        for member in seeded.ids[:50]:
            body = _patch({"op": "remove", "path": f'members[value eq "{member}"]'})
            removes.append(await send("PATCH", f"/Groups/{big}", body))
        out[BIG_REMOVE] = _latencies(removes)
        log(f"{BIG_REMOVE}: p50 {out[BIG_REMOVE]['p50_ms']:.1f} ms over {len(removes)}")

        out[BIG_GET] = await _big_get(session, gateway, base, big)
        log(f"{BIG_GET}: {out[BIG_GET]['members']:,} members in {out[BIG_GET]['seconds']:.2f} s")

        if not bulks:
            return out
        bulk_seconds = []
        for b in range(bulks):
            operations = [
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": f"u{i}",
                    "data": {
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": f"bulk-{b}-{i}@bulk.example",
                        "displayName": f"Bulk {b} {i}",
                        "emails": [{"value": f"bulk-{b}-{i}@bulk.example", "type": "work"}],
                    },
                }
                for i in range(1000)
            ]
            body = json.dumps({"schemas": [BULK_REQUEST], "Operations": operations})
            bulk_seconds.append(await send("POST", "/Bulk", body))
        total = sum(bulk_seconds)
        out[BULK] = {
            **_latencies(bulk_seconds),
            "users_per_second": round(1000 * len(bulk_seconds) / total, 1) if total else 0,
        }
        log(f"{BULK}: {out[BULK]['users_per_second']:,.0f} users/s")
    return out


async def _big_get(
    session: aiohttp.ClientSession, gateway: servers.Server, base: str, big: str
) -> dict[str, Any]:
    pids = servers.worker_pids(gateway.process.pid) or [gateway.process.pid]
    start_rss = max(servers.rss_kib(pid) for pid in pids)
    peak = start_rss
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.05):
            peak = max(peak, *(servers.rss_kib(pid) for pid in pids))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        async with session.get(f"{base}/Groups/{big}") as response:
            body = await response.json(content_type=None)
    finally:
        stop.set()
        sampler.join()
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "members": len(body.get("members", [])),
        "start_rss_mib": round(start_rss / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
    }


def _latencies(seconds: list[float]) -> dict[str, Any]:
    ordered = sorted(seconds)
    return {
        "count": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


# --- the table -------------------------------------------------------------------------


def _rate_row(result: Result) -> list[str]:
    target = RATE_TARGETS[result.name]
    met = result.ok and result.rate >= target
    figure = f"{report.rate(result.rate)}/s" + ("" if result.ok else " (errors)")
    return [
        result.name,
        figure,
        f"{result.p50_ms:.1f}",
        f"{result.p99_ms:.1f}",
        f">= {target:,.0f}/s",
        report.verdict(met),
    ]


def _sequential_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, target in P50_TARGETS_MS.items():
        r = results[name]
        rows.append(
            [
                name,
                f"{r['count']} requests",
                f"{r['p50_ms']:.1f}",
                "-",
                f"p50 <= {target:g} ms",
                report.verdict(r["p50_ms"] <= target),
            ]
        )
    g = results[BIG_GET]
    rows.append(
        [
            BIG_GET,
            f"{g['members']:,} members, {g['seconds']:.2f} s",
            "-",
            "-",
            f"worker RSS {g['start_rss_mib']:.0f} -> {g['peak_rss_mib']:.0f} MiB",
            "-",
        ]
    )
    b = results.get(BULK)
    if b is None:
        return rows
    rows.append(
        [
            BULK,
            f"{b['users_per_second']:,.0f} users/s",
            f"{b['p50_ms']:.0f}",
            "-",
            f">= {BULK_USERS_PER_SECOND:,.0f} users/s",
            report.verdict(b["users_per_second"] >= BULK_USERS_PER_SECOND),
        ]
    )
    return rows


if __name__ == "__main__":
    main()
