"""The load generator: wrk with bench/lua/scim.lua, or an asyncio client when wrk is missing.

wrk (C, one thread, keep-alive connections) leaves the two cores to the servers under test;
the asyncio client costs a core of its own and so understates every server's rate.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

LUA = Path(__file__).parent / "lua" / "scim.lua"


@dataclass(frozen=True)
class Scenario:
    name: str
    paths: list[str]  # GET: one is picked at random per request; POST: the collection
    post: bool = False
    # Instead of paths: (method, path, JSON body) triples, one picked at random per request.
    sends: list[tuple[str, str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # added to every request
    # GET paths[0], each request with one of these as its Cookie header, picked at random.
    cookies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Result:
    name: str
    tool: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int
    first_error: str = ""
    cpu_cores: dict[str, float] = field(default_factory=dict)  # CPU used / wall time, by process

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return self.non2xx == 0 and self.socket_errors == 0

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "rate": round(self.rate, 1)}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


class Load:
    def __init__(self, token: str, concurrency: int, use_wrk: bool) -> None:
        self.token = token
        self.concurrency = concurrency
        self.tool = "wrk" if use_wrk else "aiohttp"

    def run(self, base: str, scenario: Scenario, seconds: float) -> Result:
        if self.tool == "wrk":
            return self._wrk(base, scenario, seconds)
        return asyncio.run(self._aiohttp(base, scenario, seconds))

    # --- wrk -------------------------------------------------------------------------

    def _wrk(self, base: str, scenario: Scenario, seconds: float) -> Result:
        with tempfile.NamedTemporaryFile("w", suffix=".paths") as paths:
            if scenario.post:
                args = ["post", scenario.paths[0], self.token, secrets.token_hex(4)]
            elif scenario.sends:
                paths.write("".join(f"{m} {p} {b}\n" for m, p, b in scenario.sends))
                paths.flush()
                args = ["send", paths.name, self.token]
            elif scenario.cookies:
                paths.write("".join(f"{c}\n" for c in scenario.cookies))
                paths.flush()
                args = ["cookie", paths.name, self.token, scenario.paths[0]]
            else:
                paths.write("\n".join(scenario.paths) + "\n")
                paths.flush()
                args = ["get", paths.name, self.token]
            argv = [
                "wrk",
                "--threads", "1",
                "--connections", str(self.concurrency),
                "--duration", f"{max(1, round(seconds))}s",
                "--timeout", "10s",
                "--script", str(LUA),
                *(f"--header={k}: {v}" for k, v in scenario.headers.items()),
                base,
                "--",
                *args,
            ]  # fmt: skip
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
        result: dict[str, Any] | None = None
        first_error = ""
        for line in done.stdout.splitlines():
            if line.startswith("BENCH_RESULT "):
                result = json.loads(line.removeprefix("BENCH_RESULT "))
            elif line.startswith("BENCH_ERROR ") and not first_error:
                first_error = line.removeprefix("BENCH_ERROR ")
        if result is None:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
        return Result(
            name=scenario.name,
            tool="wrk",
            requests=result["requests"],
            seconds=result["duration_us"] / 1e6,
            p50_ms=result["p50_us"] / 1e3,
            p99_ms=result["p99_us"] / 1e3,
            non2xx=result["non2xx"],
            socket_errors=result["socket_errors"],
            first_error=first_error,
        )

    # --- asyncio fallback ------------------------------------------------------------

    async def _aiohttp(self, base: str, scenario: Scenario, seconds: float) -> Result:
        latencies: list[float] = []
        bad: list[str] = []
        prefix = secrets.token_hex(4)
        counter = 0
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/scim+json",
            **scenario.headers,
        }
        deadline = time.perf_counter() + seconds
        connector = aiohttp.TCPConnector(limit=self.concurrency)

        async def client(session: aiohttp.ClientSession) -> None:
            nonlocal counter
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                if scenario.post:
                    counter += 1
                    name = f"{prefix}-{counter}"
                    body = post_body(name)
                    response = await session.post(base + scenario.paths[0], data=body)
                elif scenario.sends:
                    method, path, sent = random.choice(scenario.sends)
                    response = await session.request(method, base + path, data=sent.encode())
                elif scenario.cookies:
                    cookie = {"Cookie": random.choice(scenario.cookies)}
                    response = await session.get(base + scenario.paths[0], headers=cookie)
                else:
                    response = await session.get(base + random.choice(scenario.paths))
                async with response:
                    text = await response.read()
                latencies.append(time.perf_counter() - started)
                if not 200 <= response.status < 300:
                    bad.append(f"{response.status} {text[:300].decode(errors='replace')}")

        started = time.perf_counter()
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            await asyncio.gather(*(client(session) for _ in range(self.concurrency)))
        elapsed = time.perf_counter() - started
        latencies.sort()
        return Result(
            name=scenario.name,
            tool="aiohttp",
            requests=len(latencies),
            seconds=elapsed,
            p50_ms=percentile(latencies, 50) * 1e3,
            p99_ms=percentile(latencies, 99) * 1e3,
            non2xx=len(bad),
            socket_errors=0,
            first_error=bad[0] if bad else "",
        )


def percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def post_body(name: str) -> bytes:
    """The body bench/lua/scim.lua posts, for the asyncio client."""
    return json.dumps(
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": f"{name}@load.example",
            "name": {"givenName": "Load", "familyName": name},
            "displayName": f"Load {name}",
            "active": True,
            "emails": [{"value": f"{name}@mail.load.example", "type": "work", "primary": True}],
        }
    ).encode()
