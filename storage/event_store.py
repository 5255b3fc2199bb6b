"""Reading the events the triggers of migration 0014 write: a tenant's events after a
sequence number, in order. The events committed since the last read are numbered first
(`number_events`); numbers have no gaps and only grow, so a reader that keeps the last
number it saw misses nothing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.database import autocommit
from storage.tables import events


@dataclass(frozen=True)
class Event:
    seq: int
    id: str
    type: str
    resource_type: str
    resource_id: str
    data: dict[str, Any]
    occurred_at: datetime


# How many unnumbered events one sequencer run numbers at most.
_SEQUENCE_BATCH = 5000
_NUMBER = text("SELECT idgate_sequence_events(:limit)")


async def number_events(conn: AsyncConnection) -> int:
    """Number the committed events that have no number yet (all of them, in runs)."""
    total = 0
    while done := int((await conn.execute(_NUMBER, {"limit": _SEQUENCE_BATCH})).scalar_one()):
        total += done
        if done < _SEQUENCE_BATCH:
            break
    return total


_PURGE_DELIVERIES = text(
    "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND next_attempt_at < :before"
).bindparams(bindparam("before", type_=DateTime(timezone=True)))
_PURGE_EVENTS = text(
    """
    DELETE FROM events e WHERE e.occurred_at < :before AND e.seq IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                      WHERE d.tenant_id = e.tenant_id AND d.seq = e.seq AND d.status = 'pending')
    """
).bindparams(bindparam("before", type_=DateTime(timezone=True)))

_PAGE = (
    select(events)
    .where(events.c.tenant_id == bindparam("tenant_id"), events.c.seq > bindparam("after"))
    .order_by(events.c.seq)
    .limit(bindparam("limit"))
)


def event(row: Any) -> Event:
    return Event(
        row.seq,
        row.id,
        row.type,
        row.resource_type,
        row.resource_id,
        row.data,
        row.occurred_at,
    )


class EventStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.single = autocommit(engine)

    async def after(
        self,
        tenant_id: uuid.UUID,
        after: int,
        limit: int,
        types: Sequence[str] = (),
    ) -> list[Event]:
        """Up to `limit` events numbered above `after`, of `types` if given, in order."""
        query = _PAGE if not types else _PAGE.where(events.c.type.in_(list(types)))
        params = {"tenant_id": tenant_id, "after": after, "limit": limit}
        async with self.single.connect() as conn:
            await number_events(conn)
            return [event(row) for row in await conn.execute(query, params)]

    async def purge(self, before: datetime) -> int:
        """Forget events that happened before `before`, and finished deliveries of them; an
        event a delivery still waits to send stays."""
        async with self.single.connect() as conn:
            await conn.execute(_PURGE_DELIVERIES, {"before": before})
            return int((await conn.execute(_PURGE_EVENTS, {"before": before})).rowcount)
