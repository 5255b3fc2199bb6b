"""Targets, the closing table and the JSON record of a run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import Result

POST = "POST /Users"
GET_ID = "GET /Users/{id}"
USER_NAME = 'GET ?filter=userName eq "x"'
EMAIL = 'GET ?filter=emails[value eq "x"]'
LIST = "GET ?startIndex=K&count=100"
RAW_INSERT = "INSERT (POST)"
RAW_MATCH = {POST: RAW_INSERT, GET_ID: "SELECT by id", USER_NAME: "SELECT by lower(user_name)"}
OTHER_CORES = 0.5  # CPU outside the server, PostgreSQL and the load worth a note
RAW_SHARE_TARGET = 0.40  # POST /Users reaches at least this share of the raw INSERT rate


@dataclass(frozen=True)
class Target:
    min_rate: float
    max_p99_ms: float | None

    def text(self) -> str:
        p99 = f", p99 <= {self.max_p99_ms:g} ms" if self.max_p99_ms is not None else ""
        return f">= {self.min_rate:,.0f}/s{p99}"

    def met(self, result: Result) -> bool:
        fast = self.max_p99_ms is None or result.p99_ms <= self.max_p99_ms
        return result.ok and result.rate >= self.min_rate and fast


TARGETS = {
    POST: Target(1400, 25),
    GET_ID: Target(3000, 25),
    USER_NAME: Target(2300, 25),
    LIST: Target(300, None),
}


def rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def cores(result: Result, groups: tuple[str, ...] = ("server", "postgres", "load", "other")) -> str:
    return "/".join(f"{result.cpu_cores.get(k, 0):.2f}" for k in groups)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def render(
    record: dict[str, Any], gateway: list[Result], peer: list[Result], raw: list[Result]
) -> str:
    peers = {r.name: r for r in peer}
    raws = {r.name: r for r in raw}
    rows = []
    for r in gateway:
        target = TARGETS.get(r.name)
        other = peers.get(r.name)
        rows.append(
            [
                r.name,
                rate(r.rate),
                f"{r.p50_ms:.1f}",
                f"{r.p99_ms:.1f}",
                str(r.non2xx + r.socket_errors),
                target.text() if target else "-",
                verdict(target.met(r)) if target else "-",
                rate(other.rate) if other else "-",
                f"{r.rate / other.rate:.2f}" if other and other.rate else "-",
                cores(r),
            ]
        )
    out = [
        f"idgate {record['code']['commit']}"
        f"{' + uncommitted changes' if record['code']['changed'] else ''}: "
        f"{record['users']:,} users, concurrency {record['concurrency']}, "
        f"{record['duration']:g} s per scenario, load by {record['load_tool']}",
        table(
            ["scenario", "req/s", "p50 ms", "p99 ms", "errors", "target", "", "peer req/s",
             "idgate/peer", "cores gw/pg/load/other"],
            rows,
        ),
    ]  # fmt: skip
    if raw:
        raw_rows = []
        for gateway_name, raw_name in RAW_MATCH.items():
            g = next((r for r in gateway if r.name == gateway_name), None)
            base = raws.get(raw_name)
            if g is None or base is None:
                continue
            raw_rows.append(
                [
                    raw_name,
                    rate(base.rate),
                    f"{base.p50_ms:.2f}",
                    f"{base.p99_ms:.2f}",
                    gateway_name,
                    f"{g.rate / base.rate:.0%}" if base.rate else "-",
                    cores(base, ("client", "postgres", "other")),
                ]
            )
        out += [
            "",
            "asyncpg baseline (no HTTP), same concurrency:",
            table(
                [
                    "statement",
                    "rate/s",
                    "p50 ms",
                    "p99 ms",
                    "vs",
                    "gateway/raw",
                    "cores py/pg/other",
                ],
                raw_rows,
            ),
        ]
        share = record["checks"].get("post_share_of_raw_insert")
        if share is not None:
            out.append(
                f"POST /Users / raw INSERT = {share:.0%} (target >= {RAW_SHARE_TARGET:.0%}): "
                f"{verdict(share >= RAW_SHARE_TARGET)}"
            )
    checks = record["checks"]
    out += [
        "",
        f"seeded {record['users']:,} users by COPY in {record['seed_seconds']:.1f} s",
        f"totalResults of an unfiltered list: {checks['total_results']:,} "
        f"({verdict(checks['total_results'] == record['users'])})",
        f"paged through all users (count=1000): {checks['paged_users']:,} in "
        f"{checks['paging_seconds']:.1f} s; worker RSS max {checks['max_worker_rss_mib']:.0f} MiB "
        f"(at start {checks['start_worker_rss_mib']:.0f} MiB)",
    ]
    if record.get("peer"):
        p = record["peer"]
        out.append(
            f"peer: {p['server']}, {p['users']:,} users seeded over HTTP "
            f"in {p['seed_seconds']:.0f} s"
        )
    busy = [r.name for r in [*gateway, *raw, *peer] if r.cpu_cores.get("other", 0) > OTHER_CORES]
    if busy:
        out.append(
            f"note: over {OTHER_CORES} core went outside the measured processes during: "
            + "; ".join(busy)
            + " (other programs, or kernel threads flushing commits to disk)"
        )
    if record["code"] != record["code_at_end"]:
        out.append(f"note: the work tree changed during the run; now {record['code_at_end']}")
    failed = [r for r in [*gateway, *peer] if not r.ok]
    for r in failed:
        out.append(
            f"!!! ERRORS in {r.name}: {r.non2xx} non-2xx, {r.socket_errors} socket errors; "
            f"first: {r.first_error}"
        )
    if failed:
        out.append("!!! THIS RUN HAD ERRORS: its figures are not valid.")
    return "\n".join(out)


def write(record: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
