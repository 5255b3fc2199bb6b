"""Where the gateway's CPU goes: py-spy samples of the worker processes, summed by function."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
_SOCKET_WRITE = "_SelectorSocketTransport.write"
_PROJECT = str(Path(__file__).resolve().parents[1]) + "/"
_STDLIB = re.compile(r"^.*/lib/python3\.\d+/")
_AREAS = (
    ("aiohttp", "aiohttp"),
    ("sqlalchemy", "sqlalchemy"),
    ("asyncpg", "asyncpg"),
    ("orjson", "orjson"),
    ("asyncio", "asyncio"),
    ("/gateway/", "idgate gateway"),
    ("/storage/", "idgate storage"),
    ("/scim/", "idgate scim"),
)


def py_spy() -> str | None:
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """Start sampling `pid` and its subprocesses (the workers) in collapsed-stack format."""
    binary = py_spy()
    if binary is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    argv = [
        binary, "record",
        "--pid", str(pid),
        "--subprocesses",
        "--nonblocking",
        "--duration", str(max(1, round(seconds))),
        "--rate", "200",
        "--format", "raw",
        "--output", str(output),
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def area(file: str) -> str:
    for needle, name in _AREAS:
        if needle in file:
            return name
    return "other"


def summarise(collapsed: Path, top: int = 15) -> dict[str, list[tuple[str, float]]]:
    """Shares of samples: by package (self time), by function self and inclusive time."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    writes: Counter[str] = Counter()  # time in send() on a socket, by who wrote
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = []
        for raw in stack.split(";"):
            match = _FRAME.match(raw)
            if match:
                frames.append((match["function"], match["file"]))
        if not frames:
            continue
        total += count
        function, file = frames[-1]
        own[f"{function} ({short(file)})"] += count
        areas[area(file)] += count
        for name in {f"{f} ({short(p)})" for f, p in frames}:
            inclusive[name] += count
        if function == _SOCKET_WRITE:
            caller = next((a for _, p in reversed(frames) if (a := area(p)) != "asyncio"), "?")
            writes[caller] += count

    def shares(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(name, 100.0 * c / total) for name, c in counter.most_common(n)] if total else []

    return {
        "by_package_self": shares(areas, len(areas)),
        "by_function_self": shares(own, top),
        "by_function_inclusive": shares(inclusive, top),
        "socket_write_by_caller": shares(writes, len(writes)),
    }


def short(file: str) -> str:
    """A path relative to site-packages, the project or the standard library."""
    for marker in ("site-packages/", _PROJECT):
        if marker in file:
            return file.split(marker, 1)[1]
    return _STDLIB.sub("", file)
