"""`python -m bench.access`: recompute the roles of a large group's members after a rule change.

A run creates a database `idgate_bench_<random>` and a tenant with --members users (every
4th in the enterprise `department` "Finance", the others spread over three other
departments), one SCIM group "Support Team" holding them all, a custom role `chat-operator`,
a project `Billing` and a product group `Operators`. Then, --repeat times, from a tenant
without rules or grants, it times `Access.set_rules`:

1. RULES_A, first applied: Support Team -> role chat-operator and product group Operators,
   department Finance -> readonly on project Billing (every member gains grants);
2. RULES_B, the rule changed: Support Team -> role admin instead of chat-operator (every
   member loses one role and gains another);
3. RULES_B again: nothing changes, nothing is written.

After the runs, `Access.recompute` of one user is timed --single times (p50, p99). Each step
reports the CPU seconds spent by this Python process and by PostgreSQL's processes.

It drops the database and prints a table; the record goes to bench/results/access-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import platform
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from bench import database, report, servers
from bench.load import percentile
from bench.scim import RESULTS, _code_version, _server_version, log
from bench.users import USER_SCHEMA, user
from gateway.access import Access
from sso.mapping import ENTERPRISE_USER
from storage import migrate
from storage.access_store import AccessStore
from storage.database import create_engine
from storage.scim_store import ScimStore

SUPPORT = "Support Team"
ROLE = "chat-operator"
PROJECT = "Billing"
PRODUCT_GROUP = "Operators"
DEPARTMENTS = ("Finance", "Engineering", "Sales", "Support")  # user i: DEPARTMENTS[i % 4]
ACTOR = "bench"

RULES_A: dict[str, Any] = {
    "rules": [
        {
            "name": "support-operators",
            "when": [{"group": SUPPORT}],
            "grant": {"roles": [ROLE], "groups": [PRODUCT_GROUP]},
        },
        {
            "name": "finance-billing",
            "when": [{"attribute": "department", "equals": "Finance"}],
            "grant": {"projects": {PROJECT: ["readonly"]}},
        },
    ]
}
RULES_B: dict[str, Any] = {
    "rules": [
        {
            "name": "support-operators",
            "when": [{"group": SUPPORT}],
            "grant": {"roles": ["admin"], "groups": [PRODUCT_GROUP]},
        },
        RULES_A["rules"][1],
    ]
}

FIRST = "set_rules A (first application)"
CHANGED = "set_rules B (rule changed)"
UNCHANGED = "set_rules B again (no change)"
SINGLE = "recompute(1 user)"
STEPS = (FIRST, CHANGED, UNCHANGED)
TARGET_SECONDS = 5.0  # each set_rules over the group's members
_CREATE_CHUNK = 2000  # users per create_users call

T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    seconds: float
    users: int
    changes: int
    python_cpu: float  # CPU seconds of this process
    postgres_cpu: float  # CPU seconds of PostgreSQL's processes

    def as_json(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "users": self.users,
            "changes": self.changes,
            "python_cpu": round(self.python_cpu, 2),
            "postgres_cpu": round(self.postgres_cpu, 2),
        }


@dataclass(frozen=True)
class Tenant:
    id: uuid.UUID
    ids: list[uuid.UUID]  # ids[i] is user(i)


def main() -> None:
    args = _parser().parse_args()
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    record: dict[str, Any] = {
        "started": stamp,
        "command": " ".join([Path(sys.executable).name, "-m", "bench.access", *sys.argv[1:]]),
        "machine": _machine(),
        "code": _code_version(),
        "members": args.members,
        "runs": [],
    }
    url = asyncio.run(database.create_database(args.database_url))
    log(f"database {url}")
    try:
        asyncio.run(_run(url, args, record))
    finally:
        asyncio.run(database.drop_database(args.database_url, url))
        log("database dropped")
    text = "\n".join(
        [
            f"idgate {record['code']['commit']}"
            f"{' + uncommitted changes' if record['code']['changed'] else ''}: "
            f"{args.members:,} members of one SCIM group, {args.repeat} runs (median shown)",
            report.table(
                ["scenario", "seconds", "users", "changes", "CPU s py/pg", "target", ""],
                _rows(record),
            ),
        ]
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / f"access-{stamp}.json"
    report.write(record, output)
    print("\n" + text)
    if record.get("profile"):
        print(f"\nprofile of {FIRST} and {CHANGED} (cumulative):\n{record['profile']}")
    print(f"\nresults: {output}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.access", description=__doc__)
    parser.add_argument("--members", type=int, default=10_000, help="group members (10000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of steps 1-3 (3)")
    parser.add_argument("--single", type=int, default=200, help="one-user recomputes (200)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="apply RULES_A then RULES_B once more under cProfile (unscored) and print it",
    )
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server where the run may create and drop a database",
    )
    return parser


# --- the run ---------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}


async def _run(url: str, args: argparse.Namespace, record: dict[str, Any]) -> None:
    await migrate.upgrade(url)
    record["machine"]["postgres"] = await _server_version(url)
    engine = create_engine(url, pool_size=2)
    try:
        started = time.perf_counter()
        tenant = await _seed(engine, url, args.members)
        log(f"seeded {args.members:,} users and the group in {time.perf_counter() - started:.1f} s")
        access = Access(AccessStore(engine), lambda: datetime.now(UTC))
        for run in range(1, args.repeat + 1):
            await _reset(url, tenant.id)
            steps: dict[str, Step] = {}
            for name, rules in ((FIRST, RULES_A), (CHANGED, RULES_B), (UNCHANGED, RULES_B)):
                steps[name] = await _step(access, tenant.id, rules)
                s = steps[name]
                log(
                    f"run {run} {name}: {s.seconds:.2f} s, {s.users:,} users, "
                    f"{s.changes:,} changes, CPU {s.python_cpu:.2f} s python / "
                    f"{s.postgres_cpu:.2f} s postgres"
                )
            record["runs"].append({name: step.as_json() for name, step in steps.items()})
        record["single"] = await _single(access, tenant, args.single)
        single = record["single"]
        log(f"{SINGLE}: p50 {single['p50_ms']:.1f} ms, p99 {single['p99_ms']:.1f} ms")
        if args.profile:
            record["profile"] = await _profiled(url, access, tenant.id)
    finally:
        await engine.dispose()


async def _seed(engine: Any, url: str, count: int) -> Tenant:
    """The tenant, its users (by the store's bulk insert), the SCIM group holding them all
    (by SQL) and the catalogue the rules name."""
    now = datetime.now(UTC)
    scim = ScimStore(engine)
    created = await scim.create_tenant("bench-access", "Access benchmark", now)
    ids: list[uuid.UUID] = []
    for start in range(0, count, _CREATE_CHUNK):
        items = [(_member(i), None) for i in range(start, min(start + _CREATE_CHUNK, count))]
        made = await scim.create_users(created.id, items, now)
        ids += [uuid.UUID(str(m["id"])) for m in made if m is not None]
    if len(ids) != count:
        raise RuntimeError(f"created {len(ids)} users of {count}")
    store = AccessStore(engine)
    await store.add_role(created.id, ROLE, "Answers chats", now)
    await store.add_project(created.id, PROJECT, "Invoices", now)
    await scim.create_product_group(created.id, PRODUCT_GROUP, now)
    conn = await asyncpg.connect(database.plain_url(url))
    try:
        group_id = uuid.uuid4()
        await conn.execute(
            """
            INSERT INTO groups
              (id, tenant_id, display_name, data, version, created_at, updated_at, origin)
            VALUES ($1, $2, $3, $4::jsonb, 1, now(), now(), 'scim')
            """,
            group_id,
            created.id,
            SUPPORT,
            '{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], '
            f'"displayName": "{SUPPORT}"}}',
        )
        await conn.execute(
            """
            INSERT INTO group_members (group_id, member_id, tenant_id, member_type, source)
            SELECT $1, id, tenant_id, 'User', 'scim' FROM users WHERE tenant_id = $2
            """,
            group_id,
            created.id,
        )
        await conn.execute("VACUUM (ANALYZE)")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return Tenant(created.id, ids)


def _member(i: int) -> dict[str, Any]:
    body = user(i)
    body["schemas"] = [USER_SCHEMA, ENTERPRISE_USER]
    body[ENTERPRISE_USER] = {"department": DEPARTMENTS[i % len(DEPARTMENTS)]}
    return body


async def _reset(url: str, tenant_id: uuid.UUID) -> None:
    """Back to a tenant without rules, mapped grants or audit entries (not timed)."""
    conn = await asyncpg.connect(database.plain_url(url))
    try:
        await conn.execute("DELETE FROM mapping_documents WHERE tenant_id = $1", tenant_id)
        await conn.execute("DELETE FROM role_grants WHERE tenant_id = $1", tenant_id)
        await conn.execute(
            "DELETE FROM group_members WHERE tenant_id = $1 AND source <> 'scim'", tenant_id
        )
        await conn.execute("DELETE FROM audit_log WHERE tenant_id = $1", tenant_id)
        await conn.execute("VACUUM (ANALYZE) role_grants, group_members, audit_log")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _step(access: Access, tenant_id: uuid.UUID, rules: dict[str, Any]) -> Step:
    (users, changes), seconds, python_cpu, postgres_cpu = await _timed(
        lambda: access.set_rules(tenant_id, rules, ACTOR)
    )
    return Step(seconds, users, changes, python_cpu, postgres_cpu)


async def _timed(call: Callable[[], Awaitable[T]]) -> tuple[T, float, float, float]:
    """The call's result, wall seconds, and CPU seconds of this process and of PostgreSQL."""
    before = _postgres_cpu()
    cpu = time.process_time()
    started = time.perf_counter()
    result = await call()
    seconds = time.perf_counter() - started
    python_cpu = time.process_time() - cpu
    return result, seconds, python_cpu, _postgres_cpu(before)


def _postgres_cpu(since: servers.Snapshot | None = None) -> Any:
    """A snapshot of PostgreSQL's processes' CPU, or (given one) the CPU seconds used since."""
    now = servers.cpu_snapshot(os.getpid())[1]
    if since is None:
        return now
    return sum(
        cpu - since.get(key, (group, 0.0))[1]
        for key, (group, cpu) in now.items()
        if group == "postgres"
    )


async def _single(access: Access, tenant: Tenant, count: int) -> dict[str, Any]:
    """`Access.recompute` of one member (a Finance one, under RULES_B: nothing changes)."""
    member = tenant.ids[0]
    for _ in range(10):
        await access.recompute(tenant.id, [member], ACTOR)
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        await access.recompute(tenant.id, [member], ACTOR)
        seconds.append(time.perf_counter() - started)
    ordered = sorted(seconds)
    return {
        "count": count,
        "p50_ms": round(percentile(ordered, 50) * 1000, 2),
        "p99_ms": round(percentile(ordered, 99) * 1000, 2),
    }


async def _profiled(url: str, access: Access, tenant_id: uuid.UUID) -> str:
    await _reset(url, tenant_id)
    profiler = cProfile.Profile()
    profiler.enable()
    await access.set_rules(tenant_id, RULES_A, ACTOR)
    await access.set_rules(tenant_id, RULES_B, ACTOR)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    return out.getvalue()


# --- the table -------------------------------------------------------------------------


def _rows(record: dict[str, Any]) -> list[list[str]]:
    rows = []
    runs = record["runs"]
    for name in STEPS:
        for number, run in enumerate(runs, 1):
            rows.append(_step_row(f"{name}, run {number}", run[name], "", ""))
        median = {key: statistics.median(run[name][key] for run in runs) for key in runs[0][name]}
        met = median["seconds"] <= TARGET_SECONDS
        rows.append(
            _step_row(f"{name}, median", median, f"<= {TARGET_SECONDS:g} s", report.verdict(met))
        )
    single = record.get("single")
    if single:
        rows.append(
            [
                SINGLE,
                f"p50 {single['p50_ms']:.1f} ms",
                "1",
                "0",
                "-",
                f"p99 {single['p99_ms']:.1f} ms over {single['count']}",
                "-",
            ]
        )
    return rows


def _step_row(name: str, step: dict[str, Any], target: str, verdict: str) -> list[str]:
    return [
        name,
        f"{step['seconds']:.2f}",
        f"{step['users']:,.0f}",
        f"{step['changes']:,.0f}",
        f"{step['python_cpu']:.2f}/{step['postgres_cpu']:.2f}",
        target,
        verdict,
    ]


if __name__ == "__main__":
    main()
