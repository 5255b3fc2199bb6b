"""Filling the reference peer: scim2-server keeps users in memory, so they are POSTed."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson

from bench.users import user


async def seed(base: str, token: str, count: int, concurrency: int) -> tuple[list[str], float]:
    """POST users 0..count-1 to `base`/v2/Users; their ids in order, and the seconds taken."""
    ids: list[str] = [""] * count
    todo = iter(range(count))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}

    async def client(session: aiohttp.ClientSession) -> None:
        for i in todo:
            async with session.post(f"{base}/v2/Users", data=orjson.dumps(user(i))) as response:
                body = await response.read()
                if response.status != 201:
                    raise RuntimeError(f"peer answered {response.status} to a POST: {body[:300]!r}")
                ids[i] = orjson.loads(body)["id"]

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return ids, time.perf_counter() - started
