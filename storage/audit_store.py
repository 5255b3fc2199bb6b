"""The audit log: an append-only record of what changed or was refused in a tenant, by whom.

Entries of grant changes are written in the transaction of the change (`write`); those of
SCIM writes (with the request id and source address) right after the write commits, and
those of refusals on their own (`AuditLog.record`). Every change is also an event, written in
its own transaction (migration 0014). Details name attributes, never their values or secrets.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.database import autocommit
from storage.tables import audit_log


@dataclass(frozen=True)
class AuditEntry:
    action: str  # e.g. role.granted, login.refused
    target: str  # e.g. user:<id>, subject:<connection>/<subject>
    details: dict[str, Any]
    actor: str = ""  # e.g. scim:tok_..., sso:okta, cli (filled in by `write` when empty)
    at: datetime | None = None
    id: int = 0


async def write(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    now: datetime,
    actor: str,
    entries: Sequence[AuditEntry],
) -> None:
    """Append entries in `conn`'s transaction."""
    if entries:
        await conn.execute(
            insert(audit_log),
            [
                {
                    "tenant_id": tenant_id,
                    "at": now,
                    "actor": e.actor or actor,
                    "action": e.action,
                    "target": e.target,
                    "details": e.details,
                }
                for e in entries
            ],
        )


class AuditLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self.single = autocommit(engine)

    async def record(
        self,
        tenant_id: uuid.UUID,
        now: datetime,
        actor: str,
        entry: AuditEntry,
        *more: AuditEntry,
    ) -> None:
        """Append entries, in one statement."""
        async with self.single.connect() as conn:
            await write(conn, tenant_id, now, actor, [entry, *more])

    async def append(self, entries: Sequence[tuple[uuid.UUID, AuditEntry]]) -> None:
        """Append stamped entries (each with its tenant, actor and time) in one statement."""
        if not entries:
            return
        async with self.single.connect() as conn:
            await conn.execute(
                insert(audit_log),
                [
                    {
                        "tenant_id": tenant_id,
                        "at": e.at,
                        "actor": e.actor,
                        "action": e.action,
                        "target": e.target,
                        "details": e.details,
                    }
                    for tenant_id, e in entries
                ],
            )

    async def purge(self, before: datetime) -> int:
        """Forget entries older than `before` (the retention setting)."""
        async with self.single.connect() as conn:
            result = await conn.execute(delete(audit_log).where(audit_log.c.at < before))
            return int(result.rowcount)

    async def latest(
        self,
        tenant_id: uuid.UUID,
        *,
        limit: int,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        """The newest entries first; `action` matches a prefix (`role.` for both). `since`
        and `until` bound the time (at or after, before); `before_id` continues a listing
        after its last entry: entries are ordered by id, so pages never overlap."""
        query = select(audit_log).where(audit_log.c.tenant_id == tenant_id)
        if action:
            query = query.where(audit_log.c.action.startswith(action, autoescape=True))
        if target:
            query = query.where(audit_log.c.target == target)
        if since is not None:
            query = query.where(audit_log.c.at >= since)
        if until is not None:
            query = query.where(audit_log.c.at < until)
        if before_id is not None:
            query = query.where(audit_log.c.id < before_id)
        async with self.single.connect() as conn:
            rows = await conn.execute(query.order_by(audit_log.c.id.desc()).limit(limit))
            return [AuditEntry(r.action, r.target, r.details, r.actor, r.at, r.id) for r in rows]
