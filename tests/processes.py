"""Real `idgate serve` processes for the tests that need more than the in-process app: a
second replica on the same database, or one to kill."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import aiohttp

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(
    database_url: str, log: IO[bytes], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """`idgate serve --workers 1` on a free port, with `env` (IDGATE_* settings) added."""
    port = free_port()
    settings = {
        **os.environ,
        "IDGATE_DATABASE_URL": database_url,
        "IDGATE_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    argv = [str(BIN / "idgate"), "serve", "--port", str(port), "--workers", "1"]
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=settings), port


async def until(what: str, check: Any, seconds: float, interval: float = 0.05) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(interval)


async def healthy(http: aiohttp.ClientSession, process: subprocess.Popen[bytes], port: int) -> None:
    async def up() -> bool:
        assert process.poll() is None, f"idgate serve exited with {process.returncode}"
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                return response.status == 200
        return False

    await until("the gateway is up", up, 20, 0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
