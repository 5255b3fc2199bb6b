"""The keys identity tokens are signed with: the newest signs, recent ones stay published."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.database import autocommit
from storage.tables import signing_keys


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: str
    created_at: datetime


class KeyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.single = autocommit(engine)

    async def add(self, key: SigningKey) -> None:
        async with self.single.connect() as conn:
            await conn.execute(
                insert(signing_keys).values(
                    kid=key.kid, private_pem=key.private_pem, created_at=key.created_at
                )
            )

    async def published(self) -> list[SigningKey]:
        """Every key, newest first (the first one signs)."""
        async with self.single.connect() as conn:
            rows = await conn.execute(
                select(signing_keys).order_by(signing_keys.c.created_at.desc())
            )
            return [SigningKey(r.kid, r.private_pem, r.created_at) for r in rows]

    async def prune(self, now: datetime, grace: timedelta) -> int:
        """Forget keys superseded (by a newer key) more than `grace` ago: every token they
        signed has expired by then. The newest key is never forgotten."""
        keys = await self.published()
        stale = [
            older.kid for newer, older in itertools.pairwise(keys) if newer.created_at < now - grace
        ]
        if not stale:
            return 0
        async with self.single.connect() as conn:
            result = await conn.execute(delete(signing_keys).where(signing_keys.c.kid.in_(stale)))
            return int(result.rowcount)


__all__ = ["KeyStore", "SigningKey"]
