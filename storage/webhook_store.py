"""Webhook endpoints and deliveries: the queue the webhook workers of every gateway process
share.

Contract:
- `fan_out` copies the events after each enabled endpoint's cursor (of its types) into
  `webhook_deliveries` and moves the cursor, in one statement; endpoints being fanned out by
  another worker are skipped (`SKIP LOCKED`). It numbers newly committed events first; numbers
  have no gaps and only grow (migration 0014), so no event is ever passed over.
- `claiming` hands out due pending deliveries, locked (`FOR UPDATE SKIP LOCKED`) until the
  caller's transaction ends: each is sent by one worker at a time. A delivery is not handed
  out while an earlier delivery of the same resource to the same endpoint is pending, so a
  receiver sees each resource's events in order (a membership is its own resource: a group's
  members are sent independently of each other). A worker that dies mid-delivery releases
  its locks and the deliveries are sent again (at least once; `webhook-id` is the same).
- `record` writes the outcomes of a claim in one statement, in the claim's transaction.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    Integer,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.database import autocommit
from storage.event_store import Event, event, number_events
from storage.tables import event_counters, webhook_deliveries, webhook_endpoints

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


@dataclass(frozen=True)
class Endpoint:
    id: str
    tenant_id: uuid.UUID
    url: str
    event_types: tuple[str, ...]
    secrets: tuple[dict[str, Any], ...]  # newest first: {"secret", "created_at", "expires_at"}
    enabled: bool
    cursor: int
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    endpoint_id: str
    url: str
    secrets: tuple[dict[str, Any], ...]
    tenant_slug: str
    event: Event
    attempts: int  # before this one
    first_attempt_at: datetime | None


@dataclass(frozen=True)
class Outcome:
    endpoint_id: str
    seq: int
    status: str  # pending (to retry) | delivered | dead
    attempts: int
    next_attempt_at: datetime
    first_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None


@dataclass(frozen=True)
class DeliveryRecord:
    endpoint_id: str
    seq: int
    event_id: str
    resource: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        row.id,
        row.tenant_id,
        row.url,
        tuple(row.event_types),
        tuple(row.secrets),
        row.enabled,
        row.cursor,
        row.created_at,
    )


_FAN_OUT = text(
    """
    WITH due AS (
      SELECT id, tenant_id, cursor, event_types FROM webhook_endpoints
      WHERE enabled AND cursor < coalesce(
        (SELECT seq FROM event_counters c WHERE c.tenant_id = webhook_endpoints.tenant_id), 0)
      ORDER BY id
      FOR UPDATE SKIP LOCKED
    ),
    new AS (
      SELECT due.id AS endpoint_id, due.event_types, e.*
      FROM due CROSS JOIN LATERAL (
        SELECT * FROM events e
        WHERE e.tenant_id = due.tenant_id AND e.seq > due.cursor
        ORDER BY e.seq LIMIT :limit
      ) e
    ),
    queued AS (
      INSERT INTO webhook_deliveries
        (endpoint_id, seq, tenant_id, event_id, resource, status, attempts, next_attempt_at)
      -- The order key: the resource, and for a membership the member too (a group's
      -- memberships are independent of each other).
      SELECT endpoint_id, seq, tenant_id, id,
             resource_type || '/' || resource_id || coalesce('/' || (data ->> 'member_id'), ''),
             'pending', 0, :now
      FROM new
      WHERE cardinality(event_types) = 0 OR type = ANY(event_types)
      ON CONFLICT DO NOTHING
      RETURNING 1
    ),
    moved AS (
      UPDATE webhook_endpoints w SET cursor = m.last
      FROM (SELECT endpoint_id, max(seq) AS last FROM new GROUP BY endpoint_id) m
      WHERE w.id = m.endpoint_id
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM queued) AS queued, (SELECT count(*) FROM moved) AS moved
    """
).bindparams(bindparam("now", type_=DateTime(timezone=True)))

# Due pending deliveries whose resource has no earlier pending delivery to the endpoint.
_CLAIM = text(
    """
    SELECT d.endpoint_id, d.seq, d.attempts, d.first_attempt_at,
           w.url, w.secrets, t.slug,
           e.id, e.type, e.resource_type, e.resource_id, e.data, e.occurred_at
    FROM webhook_deliveries d
    JOIN webhook_endpoints w ON w.id = d.endpoint_id
    JOIN tenants t ON t.id = d.tenant_id
    JOIN events e ON e.tenant_id = d.tenant_id AND e.seq = d.seq
    WHERE d.status = 'pending' AND d.next_attempt_at <= :now AND w.enabled
      AND NOT EXISTS (
        SELECT 1 FROM webhook_deliveries p
        WHERE p.endpoint_id = d.endpoint_id AND p.resource = d.resource
          AND p.status = 'pending' AND p.seq < d.seq
      )
    ORDER BY d.next_attempt_at, d.seq
    LIMIT :limit
    FOR UPDATE OF d SKIP LOCKED
    """
).bindparams(bindparam("now", type_=DateTime(timezone=True)))

_RECORD = text(
    """
    UPDATE webhook_deliveries d
    SET status = r.status, attempts = r.attempts, next_attempt_at = r.next_at,
        first_attempt_at = r.first_at, last_status = r.last_status,
        last_error = r.last_error, delivered_at = r.delivered_at
    FROM unnest(:endpoints, :seqs, :statuses, :attempts, :next_ats, :first_ats,
                :last_statuses, :last_errors, :delivered_ats)
         AS r(endpoint_id, seq, status, attempts, next_at, first_at, last_status,
              last_error, delivered_at)
    WHERE d.endpoint_id = r.endpoint_id AND d.seq = r.seq
    """
).bindparams(
    bindparam("endpoints", type_=ARRAY(Text)),
    bindparam("seqs", type_=ARRAY(BigInteger)),
    bindparam("statuses", type_=ARRAY(Text)),
    bindparam("attempts", type_=ARRAY(Integer)),
    bindparam("next_ats", type_=ARRAY(DateTime(timezone=True))),
    bindparam("first_ats", type_=ARRAY(DateTime(timezone=True))),
    bindparam("last_statuses", type_=ARRAY(Integer)),
    bindparam("last_errors", type_=ARRAY(Text)),
    bindparam("delivered_ats", type_=ARRAY(DateTime(timezone=True))),
)


class Claim:
    """Deliveries handed to one worker, locked until `WebhookStore.claiming` ends."""

    def __init__(self, conn: AsyncConnection, deliveries: list[Delivery]) -> None:
        self.conn = conn
        self.deliveries = deliveries

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        await self.conn.execute(
            _RECORD,
            {
                "endpoints": [o.endpoint_id for o in outcomes],
                "seqs": [o.seq for o in outcomes],
                "statuses": [o.status for o in outcomes],
                "attempts": [o.attempts for o in outcomes],
                "next_ats": [o.next_attempt_at for o in outcomes],
                "first_ats": [o.first_attempt_at for o in outcomes],
                "last_statuses": [o.last_status for o in outcomes],
                "last_errors": [o.last_error for o in outcomes],
                "delivered_ats": [o.delivered_at for o in outcomes],
            },
        )


class WebhookStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.single = autocommit(engine)

    # --- endpoints ------------------------------------------------------------------------

    async def add_endpoint(
        self,
        tenant_id: uuid.UUID,
        endpoint_id: str,
        url: str,
        event_types: Sequence[str],
        secret: str,
        now: datetime,
    ) -> Endpoint:
        """A new endpoint receives the events that happen from now on."""
        secrets = [{"secret": secret, "created_at": now.isoformat(), "expires_at": None}]
        async with self.single.connect() as conn:
            await number_events(conn)  # "from now on": after every event committed so far
            row = (
                await conn.execute(
                    insert(webhook_endpoints)
                    .values(
                        id=endpoint_id,
                        tenant_id=tenant_id,
                        url=url,
                        event_types=list(event_types),
                        secrets=secrets,
                        enabled=True,
                        cursor=func.coalesce(
                            select(event_counters.c.seq)
                            .where(event_counters.c.tenant_id == tenant_id)
                            .scalar_subquery(),
                            0,
                        ),
                        created_at=now,
                    )
                    .returning(webhook_endpoints)
                )
            ).one()
        return _endpoint(row)

    async def endpoints(self, tenant_id: uuid.UUID) -> list[Endpoint]:
        async with self.single.connect() as conn:
            rows = await conn.execute(
                select(webhook_endpoints)
                .where(webhook_endpoints.c.tenant_id == tenant_id)
                .order_by(webhook_endpoints.c.created_at)
            )
            return [_endpoint(r) for r in rows]

    async def remove_endpoint(self, tenant_id: uuid.UUID, endpoint_id: str) -> bool:
        async with self.single.connect() as conn:
            result = await conn.execute(
                delete(webhook_endpoints).where(
                    webhook_endpoints.c.tenant_id == tenant_id,
                    webhook_endpoints.c.id == endpoint_id,
                )
            )
            return result.rowcount == 1

    async def set_enabled(self, tenant_id: uuid.UUID, endpoint_id: str, enabled: bool) -> bool:
        async with self.single.connect() as conn:
            result = await conn.execute(
                update(webhook_endpoints)
                .where(
                    webhook_endpoints.c.tenant_id == tenant_id,
                    webhook_endpoints.c.id == endpoint_id,
                )
                .values(enabled=enabled)
            )
            return result.rowcount == 1

    async def rotate_secret(
        self,
        tenant_id: uuid.UUID,
        endpoint_id: str,
        secret: str,
        now: datetime,
        old_expire_at: datetime,
    ) -> bool:
        """Sign with `secret` from now on; the secrets in use also sign until
        `old_expire_at`, so receivers can switch over."""
        async with self.engine.begin() as conn:
            current = (
                await conn.execute(
                    select(webhook_endpoints.c.secrets)
                    .where(
                        webhook_endpoints.c.tenant_id == tenant_id,
                        webhook_endpoints.c.id == endpoint_id,
                    )
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if current is None:
                return False
            kept = [
                s | {"expires_at": s.get("expires_at") or old_expire_at.isoformat()}
                for s in current
                if s.get("expires_at") is None or datetime.fromisoformat(s["expires_at"]) > now
            ]
            fresh = {"secret": secret, "created_at": now.isoformat(), "expires_at": None}
            await conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint_id)
                .values(secrets=[fresh, *kept])
            )
        return True

    # --- the queue ------------------------------------------------------------------------

    async def fan_out(self, now: datetime, limit: int = 1000) -> int:
        """Queue new events for every endpoint not being fanned out elsewhere; the number of
        deliveries queued."""
        async with self.single.connect() as conn:
            await number_events(conn)
            row = (await conn.execute(_FAN_OUT, {"now": now, "limit": limit})).one()
            return int(row.queued)

    @contextlib.asynccontextmanager
    async def claiming(self, now: datetime, limit: int) -> AsyncIterator[Claim]:
        async with self.engine.begin() as conn:
            rows = await conn.execute(_CLAIM, {"now": now, "limit": limit})
            deliveries = [
                Delivery(
                    r.endpoint_id,
                    r.url,
                    tuple(r.secrets),
                    r.slug,
                    event(r),
                    r.attempts,
                    r.first_attempt_at,
                )
                for r in rows
            ]
            yield Claim(conn, deliveries)

    async def deliveries(
        self,
        tenant_id: uuid.UUID,
        *,
        endpoint_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[DeliveryRecord]:
        """The newest deliveries first."""
        query = select(webhook_deliveries).where(webhook_deliveries.c.tenant_id == tenant_id)
        if endpoint_id:
            query = query.where(webhook_deliveries.c.endpoint_id == endpoint_id)
        if status:
            query = query.where(webhook_deliveries.c.status == status)
        async with self.single.connect() as conn:
            rows = await conn.execute(query.order_by(webhook_deliveries.c.seq.desc()).limit(limit))
            return [
                DeliveryRecord(
                    r.endpoint_id,
                    r.seq,
                    r.event_id,
                    r.resource,
                    r.status,
                    r.attempts,
                    r.next_attempt_at,
                    r.last_status,
                    r.last_error,
                    r.delivered_at,
                )
                for r in rows
            ]

    async def redeliver(
        self,
        tenant_id: uuid.UUID,
        endpoint_id: str,
        now: datetime,
        *,
        event_ids: Sequence[str] = (),
        dead: bool = False,
    ) -> int:
        """Send deliveries again (the events named, or every dead one), from now."""
        condition = (
            webhook_deliveries.c.event_id.in_(list(event_ids))
            if event_ids
            else webhook_deliveries.c.status == DEAD
        )
        if not event_ids and not dead:
            return 0
        async with self.single.connect() as conn:
            result = await conn.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.tenant_id == tenant_id,
                    webhook_deliveries.c.endpoint_id == endpoint_id,
                    condition,
                )
                .values(
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    first_attempt_at=None,
                    delivered_at=None,
                )
            )
            return int(result.rowcount)
