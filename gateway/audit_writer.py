"""Audit entries of SCIM writes, written in batches: a write costs its request no extra
database round trip. Entries wait at most `flush_seconds` (or until 500 are waiting); a
process that dies loses at most that window of entries, never the events (written in each
change's transaction). With `flush_seconds` 0 each entry is written at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from storage.audit_store import AuditEntry, AuditLog

log = logging.getLogger(__name__)
_FLUSH_AT = 500


class AuditWriter:
    def __init__(
        self, store: AuditLog, clock: Callable[[], datetime], flush_seconds: float
    ) -> None:
        self.store = store
        self.clock = clock
        self.flush_seconds = flush_seconds
        self._pending: list[tuple[uuid.UUID, AuditEntry]] = []
        self._wake = asyncio.Event()

    async def add(self, tenant_id: uuid.UUID, actor: str, *entries: AuditEntry) -> None:
        """Audit entries of writes that have committed (stamped now, by `actor`)."""
        stamped = [
            (tenant_id, AuditEntry(e.action, e.target, e.details, e.actor or actor, self.clock()))
            for e in entries
        ]
        if self.flush_seconds <= 0:
            await self._write(stamped)
            return
        self._pending += stamped
        if len(self._pending) >= _FLUSH_AT:
            self._wake.set()

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await self._write(pending)

    async def _write(self, entries: list[tuple[uuid.UUID, AuditEntry]]) -> None:
        try:
            await self.store.append(entries)
        except Exception:  # the writes happened: losing their entries must not fail them
            log.exception("%d audit entries lost, the first %s", len(entries), entries[0][1])

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_seconds)
            self._wake.clear()
            await self.flush()


@contextlib.asynccontextmanager
async def writing(writer: AuditWriter) -> AsyncIterator[AuditWriter]:
    """Flush `writer` in the background while the context is open, and at its end (with
    `flush_seconds` 0 every entry is written at once: nothing runs)."""
    if writer.flush_seconds <= 0:
        yield writer
        return
    task = asyncio.create_task(writer.run(), name="audit")
    try:
        yield writer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await writer.flush()
