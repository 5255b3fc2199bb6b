"""The SCIM request log's rows: written in batches, read newest first, pruned by age."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.database import autocommit
from storage.tables import scim_requests


@dataclass(frozen=True)
class LoggedRequest:
    id: int
    tenant_id: uuid.UUID
    at: datetime
    token_id: str | None
    user_agent: str | None
    method: str
    path: str
    status: int
    duration_ms: float
    request_body: str | None
    response_body: str | None


_FIELDS = tuple(c.name for c in scim_requests.columns if c.name != "id")
_INSERT = insert(scim_requests)  # executed with many rows of parameters: compiled once


class RequestLogStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.single = autocommit(engine)  # reads and single-statement deletes

    async def write(self, entries: Sequence[dict[str, Any]]) -> None:
        """Insert entries (dicts with every column but `id`)."""
        if not entries:
            return
        async with self.engine.begin() as conn:  # one commit for the batch
            await conn.execute(_INSERT, [{k: e[k] for k in _FIELDS} for e in entries])

    async def prune(self, before: datetime) -> int:
        async with self.single.connect() as conn:
            result = await conn.execute(delete(scim_requests).where(scim_requests.c.at < before))
            return result.rowcount

    async def recent(
        self,
        tenant_id: uuid.UUID,
        limit: int = 50,
        *,
        min_status: int = 0,
        method: str | None = None,
    ) -> list[LoggedRequest]:
        """The tenant's latest requests, newest first."""
        statement = (
            select(scim_requests)
            .where(scim_requests.c.tenant_id == tenant_id)
            .order_by(scim_requests.c.id.desc())
            .limit(limit)
        )
        if min_status:
            statement = statement.where(scim_requests.c.status >= min_status)
        if method:
            statement = statement.where(scim_requests.c.method == method.upper())
        async with self.single.connect() as conn:
            return [LoggedRequest(**r._mapping) for r in await conn.execute(statement)]


__all__ = ["LoggedRequest", "RequestLogStore"]
