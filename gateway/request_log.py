"""The per-tenant SCIM request log: what each IdP sent and what it was answered.

Every authenticated SCIM request becomes one row: time, token id, User-Agent, method, path,
status, duration, and the bodies. Request bodies are parsed and redacted (passwords, secrets
and tokens, also where a PATCH operation's `path` names them) before they are cut to
`request_log_body_bytes`. A response body is redacted the same way when it is an error (an
error's detail may quote input); a successful SCIM response never carries a password or token
(`password` is write-only), so it is only cut. The body of a successful GET (the stored data
itself, often a whole page) is not kept. Rows older than `request_log_days` are pruned.

Rows are buffered in the process and written in one transaction at least every
`request_log_flush_seconds`, so that logging costs a request no database round trip. A process
that dies loses at most that window of log; nothing else depends on these rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from gateway.errors import Handler
from gateway.keys import PRINCIPAL, REQUEST_LOG
from storage.request_log import RequestLogStore

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
_SENSITIVE = ("password", "secret", "token", "authorization", "credential")
_FLUSH_AT = 500  # entries: write early when this many are waiting
_PRUNE_EVERY = 600.0  # seconds


def _sensitive(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SENSITIVE)


def _path_is_sensitive(path: Any) -> bool:
    """A PATCH path such as `password` or `urn:...:User:password` (its last name)."""
    if not isinstance(path, str):
        return False
    last = path.rsplit(":", 1)[-1].split("[", 1)[0].rsplit(".", 1)[-1]
    return _sensitive(last)


def redact(value: Any) -> Any:
    """A copy of a JSON value with every sensitive value replaced by "[redacted]"."""
    if isinstance(value, dict):
        hide_value = _path_is_sensitive(value.get("path"))
        out: dict[str, Any] = {}
        for key, item in value.items():
            if (isinstance(key, str) and _sensitive(key)) or (hide_value and key == "value"):
                out[key] = REDACTED
            else:
                out[key] = redact(item)
        return out
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _cut(text: bytes, limit: int) -> str:
    if len(text) <= limit:
        return text.decode("utf-8", "replace")
    return text[:limit].decode("utf-8", "ignore") + f"...[{len(text) - limit} more bytes]"


def redacted_body(raw: bytes, limit: int) -> str | None:
    """A body as the log keeps it: redacted JSON cut to `limit` bytes, or a note if not JSON."""
    if not raw:
        return None
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return f"[{len(raw)} bytes, not JSON]"
    return _cut(orjson.dumps(redact(parsed)), limit)


class RequestLog:
    """Buffers entries and writes them in batches from one background task per process."""

    def __init__(
        self,
        store: RequestLogStore,
        clock: Callable[[], datetime],
        *,
        keep_days: float,
        body_bytes: int,
        flush_seconds: float,
    ) -> None:
        self.store = store
        self.clock = clock
        self.keep = timedelta(days=keep_days)
        self.body_bytes = body_bytes
        self.flush_seconds = flush_seconds
        self._pending: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._last_prune: float | None = None

    def record(self, entry: dict[str, Any]) -> None:
        self._pending.append(entry)
        if len(self._pending) >= _FLUSH_AT:
            self._wake.set()

    async def flush(self) -> None:
        entries, self._pending = self._pending, []
        try:
            await self.store.write(entries)
        except Exception:
            log.exception("could not write %d SCIM request log entries", len(entries))
        if self._last_prune is None or time.monotonic() - self._last_prune > _PRUNE_EVERY:
            await self.prune()

    async def prune(self) -> int:
        """Delete entries older than the retention; a failure is logged and retried later."""
        self._last_prune = time.monotonic()
        try:
            pruned = await self.store.prune(self.clock() - self.keep)
        except Exception:
            log.exception("could not prune the SCIM request log")
            return 0
        if pruned:
            log.info("pruned %d SCIM request log entries", pruned)
        return pruned

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_seconds)
            self._wake.clear()
            await self.flush()

    def entry(
        self, request: web.Request, response: web.StreamResponse, raw: bytes, took: float
    ) -> dict[str, Any]:
        principal = request[PRINCIPAL]
        answer = response.body if isinstance(response, web.Response) else None
        response_body = None
        # A successful read's answer is the stored data itself: not copied into the log.
        if (
            isinstance(answer, bytes)
            and answer
            and (request.method != "GET" or response.status >= 400)
        ):
            response_body = (
                redacted_body(answer, self.body_bytes)
                if response.status >= 400
                else _cut(answer, self.body_bytes)
            )
        return {
            "tenant_id": principal.tenant_id,
            "at": self.clock(),
            "token_id": principal.token_id,
            "user_agent": request.headers.get("User-Agent"),
            "method": request.method,
            "path": request.path_qs,
            "status": response.status,
            "duration_ms": round(took * 1000, 3),
            "request_body": redacted_body(raw, self.body_bytes),
            "response_body": response_body,
        }


@web.middleware
async def log_scim_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost SCIM middleware: sees the final response, errors included."""
    started = time.perf_counter()
    response = await handler(request)
    request_log = request.config_dict.get(REQUEST_LOG)
    if request_log is not None and PRINCIPAL in request:
        # Requests that fail authentication have no tenant to be logged under.
        try:
            raw = await request.read() if request.body_exists else b""
        except web.HTTPRequestEntityTooLarge:
            raw = f'"[more than {request.client_max_size} bytes, not read]"'.encode()
        request_log.record(request_log.entry(request, response, raw, time.perf_counter() - started))
    return response


@contextlib.asynccontextmanager
async def running(request_log: RequestLog) -> AsyncIterator[None]:
    """Run the writer for the app's lifetime; write what is left at shutdown."""
    task = asyncio.create_task(request_log.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await request_log.flush()
