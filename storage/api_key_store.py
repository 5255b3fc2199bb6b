"""API keys for `/api/v1/...`: a tenant's, hashed (SHA-256 of the secret), scoped, optionally
expiring, revocable."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.database import autocommit
from storage.tables import api_keys, tenants

_TOUCH = timedelta(minutes=1)


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant_id: uuid.UUID
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class ApiCaller:
    """Who an API request authenticated as."""

    key_id: str
    tenant_id: uuid.UUID
    tenant_slug: str
    scopes: tuple[str, ...]


def _key(row: Any) -> ApiKey:
    return ApiKey(
        row.id,
        row.tenant_id,
        row.name,
        tuple(row.scopes),
        row.created_at,
        row.expires_at,
        row.last_used_at,
        row.revoked_at,
    )


class ApiKeyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.single = autocommit(engine)

    async def create(
        self,
        tenant_id: uuid.UUID,
        key_id: str,
        name: str,
        secret_hash: bytes,
        scopes: Sequence[str],
        now: datetime,
        expires_at: datetime | None,
    ) -> None:
        async with self.single.connect() as conn:
            await conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    tenant_id=tenant_id,
                    name=name,
                    secret_hash=secret_hash,
                    scopes=list(scopes),
                    created_at=now,
                    expires_at=expires_at,
                )
            )

    async def list(self, tenant_id: uuid.UUID) -> list[ApiKey]:
        async with self.single.connect() as conn:
            rows = await conn.execute(
                select(api_keys)
                .where(api_keys.c.tenant_id == tenant_id)
                .order_by(api_keys.c.created_at)
            )
            return [_key(r) for r in rows]

    async def revoke(self, tenant_id: uuid.UUID, key_id: str, now: datetime) -> bool:
        async with self.single.connect() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(
                    api_keys.c.tenant_id == tenant_id,
                    api_keys.c.id == key_id,
                    api_keys.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            return result.rowcount == 1

    async def authenticate(self, secret_hash: bytes, now: datetime) -> ApiCaller | None:
        """The live key (not revoked, not expired) with this secret, and its tenant. Its
        last use is written at most once a minute (pollers share keys)."""
        async with self.single.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        api_keys.c.id,
                        api_keys.c.tenant_id,
                        api_keys.c.scopes,
                        api_keys.c.last_used_at,
                        tenants.c.slug,
                    )
                    .select_from(api_keys.join(tenants))
                    .where(
                        api_keys.c.secret_hash == secret_hash,
                        api_keys.c.revoked_at.is_(None),
                        or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now),
                    )
                )
            ).one_or_none()
            if row is None:
                return None
            if row.last_used_at is None or now - row.last_used_at > _TOUCH:
                await conn.execute(
                    update(api_keys).where(api_keys.c.id == row.id).values(last_used_at=now)
                )
        return ApiCaller(row.id, row.tenant_id, row.slug, tuple(row.scopes))
