"""The servers under load, run as subprocesses: `idgate serve` and `scim2-server`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def _start(name: str, argv: list[str], port: int, log_dir: Path, env: dict[str, str]) -> Server:
    log = (log_dir / f"{name}.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    return Server(name, process, port, log)


def _wait(server: Server, path: str, headers: dict[str, str], listeners: int) -> None:
    """Until `path` answers 200 and `listeners` sockets listen on the port.

    Several gateway workers share the port by SO_REUSEPORT; the load generator opens its
    connections once, so they must all be listening before it starts.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}")
        try:
            request = urllib.request.Request(server.base + path, headers=headers)
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200 and listening_sockets(server.port) >= listeners:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} did not start; see its log {server.log.name}")


def start_gateway(
    database_url: str, workers: int, log_dir: Path, env: dict[str, str] | None = None
) -> Server:
    """`idgate serve`; `env`: more settings (IDGATE_*)."""
    port = free_port()
    env = {
        **os.environ,
        "IDGATE_DATABASE_URL": database_url,
        "IDGATE_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    argv = [str(BIN / "idgate"), "serve", "--workers", str(workers), "--port", str(port)]
    server = _start("idgate", argv, port, log_dir, env)
    _wait(server, "/healthz", {}, workers)
    return server


def start_peer(token: str, log_dir: Path) -> Server:
    """scim2-server's own command: wsgiref's threaded server, one process, users in memory."""
    port = free_port()
    argv = [str(BIN / "scim2-server"), "--port", str(port), "--bearer-token", token]
    server = _start("scim2-server", argv, port, log_dir, dict(os.environ))
    _wait(server, "/v2/ServiceProviderConfig", {"Authorization": f"Bearer {token}"}, 1)
    return server


def listening_sockets(port: int) -> int:
    """TCP sockets in LISTEN state (0A) on `port`, from /proc/net/tcp."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def worker_pids(pid: int) -> list[int]:
    """The gateway's worker processes: children of `idgate serve` started by multiprocessing."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


_TICK = os.sysconf("SC_CLK_TCK")
Snapshot = dict[tuple[int, int], tuple[str, float]]  # (pid, start time) -> (group, CPU s)
IDLE_CORES = 0.15


def _processes() -> Iterator[tuple[tuple[int, int], int, str, float]]:
    """((pid, start time), parent pid, command name, CPU seconds used) of every process.

    The start time tells a process from a later one that reuses its pid.
    """
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        head, _, rest = stat.rpartition(")")
        fields = rest.split()
        # Fields after the command: state (0), ppid (1), utime (11), stime (12), starttime (19).
        cpu = (int(fields[11]) + int(fields[12])) / _TICK
        yield (int(entry.name), int(fields[19])), int(fields[1]), head.split("(", 1)[1], cpu


def machine_busy() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat, less idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / _TICK


def cpu_snapshot(server_pid: int) -> tuple[float, Snapshot]:
    """The machine's busy time, and CPU used so far by the server's and PostgreSQL's processes."""
    found = {}
    for key, parent, name, cpu in _processes():
        if server_pid in (key[0], parent):
            found[key] = ("server", cpu)
        elif name == "postgres":
            found[key] = ("postgres", cpu)
    return machine_busy(), found


def cores_used(
    before: tuple[float, Snapshot], after: tuple[float, Snapshot], seconds: float
) -> dict[str, float]:
    """Average cores used between two snapshots: by the server, PostgreSQL and the machine.

    Processes that exited in between are lost from their group but not from "machine".
    """
    used = {"server": 0.0, "postgres": 0.0}
    for key, (group, cpu) in after[1].items():
        used[group] += cpu - before[1].get(key, (group, 0.0))[1]
    used["machine"] = after[0] - before[0]
    return {group: round(cpu / seconds, 2) for group, cpu in used.items()}


def wait_idle(timeout: float = 300) -> float:
    """Until the whole machine is nearly idle: the last run's queued requests are done, and
    no other program takes CPU from the next measurement."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = machine_busy()
        time.sleep(0.5)
        if (machine_busy() - before) / 0.5 < IDLE_CORES:
            break
    return time.monotonic() - started
