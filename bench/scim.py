"""`python -m bench.scim`: load idgate's SCIM endpoints and print throughput and latency.

A run creates a database `idgate_bench_<random>` on the server, migrates it, seeds users by
COPY, starts `idgate serve --workers 2` on a free port and drives it with wrk; then it runs the
same SQL straight through asyncpg and the same load against scim2-server; it drops the
database, prints a table and writes bench/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import random
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg

from bench import database, peer, profile, raw, report, servers
from bench.database import Seeded
from bench.load import Load, Result, Scenario, wrk_available
from bench.users import user_name, work_email

RESULTS = Path(__file__).parent / "results"
SAMPLE = 50_000  # distinct paths per GET scenario; one is drawn at random per request
PAGE = 1000  # page size when paging through every user
PROFILE_KEYS = {
    "id": report.GET_ID,
    "username": report.USER_NAME,
    "email": report.EMAIL,
    "list": report.LIST,
    "post": report.POST,
}


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def main() -> None:
    args = _parser().parse_args()
    use_wrk = wrk_available()
    if not use_wrk:
        print(
            "!!! wrk not found (Debian: apt-get install -y wrk): falling back to an asyncio "
            "client, which takes CPU from the servers and understates their rates",
            file=sys.stderr,
        )
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    run_dir = RESULTS / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    load = None

    url = asyncio.run(database.create_database(args.database_url))
    log(f"database {url}")
    gateway_results: list[Result] = []
    peer_results: list[Result] = []
    raw_results: list[Result] = []
    checks: dict[str, Any] = {}
    code: dict[str, Any] = {}
    peer_record: dict[str, Any] | None = None
    try:
        seeded = asyncio.run(database.prepare(url, args.users))
        log(f"seeded {args.users:,} users in {seeded.seconds:.1f} s")
        load = Load(seeded.token, args.concurrency, use_wrk)
        code = _code_version()  # what the gateway's processes load
        gateway = servers.start_gateway(url, args.workers, run_dir)
        try:
            log(f"idgate serve --workers {args.workers} on {gateway.base}")
            checks = _page_all(gateway.base, seeded.token, gateway.process.pid, args.workers)
            profiled = (
                {PROFILE_KEYS[k] for k in (args.profile or ["id"])}
                if args.profile is not None
                else set()
            )
            for scenario in _gateway_scenarios(seeded, args.users):
                gateway_results.append(
                    _measure(load, gateway, scenario, args.duration, profiled, run_dir)
                )
        finally:
            gateway.stop()
        log("asyncpg baseline")
        raw_results = asyncio.run(raw.baseline(seeded, args.concurrency, args.duration))
        if not args.skip_peer:
            peer_record, peer_results = _run_peer(load, seeded, args, run_dir)
    finally:
        asyncio.run(database.drop_database(args.database_url, url))
        log("database dropped")

    post = next((r for r in gateway_results if r.name == report.POST), None)
    insert = next((r for r in raw_results if r.name == report.RAW_INSERT), None)
    if post and insert and insert.rate:
        checks["post_share_of_raw_insert"] = post.rate / insert.rate
    record: dict[str, Any] = {
        "started": stamp,
        "command": " ".join([Path(sys.executable).name, "-m", "bench.scim", *sys.argv[1:]]),
        "machine": _machine(args.database_url),
        "code": code,
        "code_at_end": _code_version(),
        "users": args.users,
        "concurrency": args.concurrency,
        "duration": args.duration,
        "workers": args.workers,
        "load_tool": load.tool if load else "-",
        "seed_seconds": seeded.seconds,
        "gateway": [r.as_json() for r in gateway_results],
        "raw": [r.as_json() for r in raw_results],
        "peer": peer_record,
        "peer_results": [r.as_json() for r in peer_results],
        "checks": checks,
        "targets": {
            r.name: {"target": t.text(), "met": t.met(r)}
            for r in gateway_results
            if (t := report.TARGETS.get(r.name))
        },
    }
    record["profiles"] = {
        key: profile.summarise(path)
        for key in PROFILE_KEYS
        if (path := run_dir / f"{key}.collapsed").exists()
    }
    text = report.render(record, gateway_results, peer_results, raw_results)
    output = RESULTS / f"{stamp}.json"
    report.write(record, output)
    print("\n" + text)
    for key, summary in record["profiles"].items():
        print(f"\nprofile of {PROFILE_KEYS[key]} (share of the workers' samples, self time):")
        for name, share in summary["by_package_self"]:
            print(f"  {share:5.1f}%  {name}")
        writes = ", ".join(
            f"{name} {share:.1f}%" for name, share in summary["socket_write_by_caller"]
        )
        print(f"  of which in socket send() by caller: {writes}")
        for name, share in summary["by_function_self"][:8]:
            print(f"  {share:5.1f}%  {name}")
        print(f"  stacks: {run_dir / key}.collapsed")
    print(f"\nresults: {output}")
    if any(not r.ok for r in [*gateway_results, *peer_results]):
        sys.exit(1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.scim", description=__doc__)
    parser.add_argument("--users", type=int, default=100_000, help="users seeded (100000)")
    parser.add_argument("--concurrency", type=int, default=16, help="connections (16)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per scenario (10)")
    parser.add_argument("--workers", type=int, default=2, help="gateway processes (2)")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server where the run may create and drop a database",
    )
    parser.add_argument("--skip-peer", action="store_true", help="do not load scim2-server")
    parser.add_argument(
        "--peer-users",
        type=int,
        help="users POSTed to scim2-server before its load (default: --users, at most 100000)",
    )
    parser.add_argument(
        "--profile",
        nargs="*",
        choices=sorted(PROFILE_KEYS),
        metavar="SCENARIO",
        help="after a scenario, run it again under py-spy (unscored) and summarise where the "
        f"workers' time goes; scenarios: {', '.join(sorted(PROFILE_KEYS))} (default: id)",
    )
    return parser


# --- scenarios ------------------------------------------------------------------------


def _filter(expression: str) -> str:
    return "?filter=" + quote(expression, safe="")


def _sample(count: int) -> list[int]:
    rng = random.Random(7)
    return [rng.randrange(count) for _ in range(SAMPLE)]


def _list_pages(count: int) -> list[str]:
    rng = random.Random(11)
    return [f"?startIndex={rng.randint(1, max(1, count - 99))}&count=100" for _ in range(SAMPLE)]


def _searches(base: str, picks: list[int]) -> tuple[list[str], list[str]]:
    by_name = [base + _filter(f'userName eq "{user_name(i)}"') for i in picks]
    by_email = [base + _filter(f'emails[value eq "{work_email(i)}"]') for i in picks]
    return by_name, by_email


def _gateway_scenarios(seeded: Seeded, count: int) -> list[Scenario]:
    base = f"/scim/v2/{database.TENANT}/Users"
    picks = _sample(count)
    by_name, by_email = _searches(base, picks)
    return [
        Scenario(report.GET_ID, [f"{base}/{seeded.ids[i]}" for i in picks]),
        Scenario(report.USER_NAME, by_name),
        Scenario(report.EMAIL, by_email),
        Scenario(report.LIST, [base + q for q in _list_pages(count)]),
        Scenario(report.POST, [base], post=True),
    ]


def _peer_scenarios(ids: list[str]) -> list[Scenario]:
    base = "/v2/Users"
    picks = _sample(len(ids))
    by_name, _ = _searches(base, picks)
    return [
        Scenario(report.GET_ID, [f"{base}/{ids[i]}" for i in picks]),
        Scenario(report.USER_NAME, by_name),
        Scenario(report.LIST, [base + q for q in _list_pages(len(ids))]),
        Scenario(report.POST, [base], post=True),
    ]


def _measure(
    load: Load,
    server: servers.Server,
    scenario: Scenario,
    seconds: float,
    profiled: set[str],
    run_dir: Path,
) -> Result:
    servers.wait_idle()
    load.run(server.base, scenario, min(2.0, seconds / 5))  # warm pools and statement caches
    waited = servers.wait_idle()
    if waited > 2:
        log(f"waited {waited:.0f} s for an idle machine (the warm-up's queued requests, or others)")
    before = servers.cpu_snapshot(server.process.pid)
    load_before = _own_cpu()
    result = load.run(server.base, scenario, seconds)
    cores = servers.cores_used(before, servers.cpu_snapshot(server.process.pid), result.seconds)
    cores["load"] = round((_own_cpu() - load_before) / result.seconds, 2)
    cores["other"] = round(cores.pop("machine") - sum(cores.values()), 2)
    result = dataclasses.replace(result, cpu_cores=cores)
    errors = "" if result.ok else f"  !!! {result.non2xx} non-2xx: {result.first_error}"
    log(
        f"{server.name} {scenario.name}: {result.rate:,.0f}/s p50 {result.p50_ms:.1f} ms "
        f"p99 {result.p99_ms:.1f} ms; cores used: "
        + ", ".join(f"{k} {v:.2f}" for k, v in cores.items())
        + errors
    )
    if scenario.name in profiled:
        output = run_dir / f"{_profile_key(scenario.name)}.collapsed"
        servers.wait_idle()
        sampler = profile.record(server.process.pid, seconds, output)
        time.sleep(0.5)  # py-spy attaches before the load starts
        sampled = load.run(server.base, scenario, seconds)
        sampler.wait(timeout=seconds + 30)
        log(f"under py-spy: {sampled.rate:,.0f}/s (not scored); stacks in {output}")
    return result


def _profile_key(name: str) -> str:
    """The short name of a scenario's profile file."""
    known = next((key for key, scenario in PROFILE_KEYS.items() if scenario == name), None)
    return known or "-".join("".join(c if c.isalnum() else " " for c in name).lower().split())


def _own_cpu() -> float:
    """CPU seconds of this process and its finished children (wrk runs as one)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# --- checks on the whole data set -----------------------------------------------------


def _get(base: str, path: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=600) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


def _page_all(base: str, token: str, serve_pid: int, workers: int) -> dict[str, Any]:
    """totalResults of an unfiltered list, and the workers' RSS while paging through all."""
    path = f"/scim/v2/{database.TENANT}/Users"
    total = int(_get(base, path + "?count=1", token)["totalResults"])
    pids = servers.worker_pids(serve_pid) if workers > 1 else [serve_pid]
    start_rss = max(servers.rss_kib(pid) for pid in pids)
    peak = start_rss
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.1):
            peak = max(peak, *(servers.rss_kib(pid) for pid in pids))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started, seen, index = time.perf_counter(), 0, 1
    try:
        while index <= total:
            page = _get(base, f"{path}?startIndex={index}&count={PAGE}", token)
            got = len(page.get("Resources", []))
            if got == 0:
                break
            seen += got
            index += got
    finally:
        stop.set()
        sampler.join()
    seconds = time.perf_counter() - started
    log(f"totalResults {total:,}; paged {seen:,} users in {seconds:.1f} s; RSS max {peak} KiB")
    return {
        "total_results": total,
        "paged_users": seen,
        "paging_seconds": seconds,
        "worker_pids": pids,
        "start_worker_rss_mib": start_rss / 1024,
        "max_worker_rss_mib": peak / 1024,
    }


# --- the reference peer ---------------------------------------------------------------


def _run_peer(
    load: Load, seeded: Seeded, args: argparse.Namespace, run_dir: Path
) -> tuple[dict[str, Any], list[Result]]:
    count = args.peer_users if args.peer_users is not None else min(args.users, 100_000)
    server = servers.start_peer(seeded.token, run_dir)
    try:
        log(f"scim2-server on {server.base}: POSTing {count:,} users")
        ids, seconds = asyncio.run(peer.seed(server.base, seeded.token, count, args.concurrency))
        log(f"peer seeded in {seconds:.0f} s")
        results = [
            _measure(load, server, scenario, args.duration, set(), run_dir)
            for scenario in _peer_scenarios(ids)
        ]
    finally:
        server.stop()
    record = {
        "server": "scim2-server command (wsgiref ThreadingWSGIServer, one process, in memory)",
        "users": count,
        "seed_seconds": seconds,
    }
    return record, results


def _machine(server_url: str) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_kib / 2**20, 1),
        "python": platform.python_version(),
        "postgres": asyncio.run(_server_version(server_url)),
        "wrk": (wrk.stdout or wrk.stderr).split("\n", 1)[0] if wrk_available() else None,
    }


def _code_version() -> dict[str, Any]:
    """The commit measured, and tracked files changed since it (the gateway is run from them)."""
    root = Path(__file__).resolve().parents[1]

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=root, capture_output=True, text=True)
        return done.stdout

    # Porcelain lines are "XY path": two status letters, a space, the path.
    changed = [
        line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
    ]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "changed": changed}


async def _server_version(server_url: str) -> str:
    conn = await asyncpg.connect(database.plain_url(server_url))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
