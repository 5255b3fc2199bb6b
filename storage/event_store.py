"""Reading the events the triggers of migration 0014 write: a tenant's events after a
sequence number, in order. Numbers have no gaps and follow commit order, so a reader that
keeps the last number it saw misses nothing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

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
            return [event(row) for row in await conn.execute(query, params)]
