"""Invitations: users an admin adds by e-mail, pending until they accept the link sent to
them, and the access they are given (roles, project roles, product groups) in the same
transaction as the user, so that an invitation is all there or not at all.

CSV imports use the same writes (`invite` for new people, `add_access` for existing ones)
and record each confirmed file by the digest of its rows (`csv_imports`), so that a file
confirmed again changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    DateTime,
    Text,
    Uuid,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scim.errors import ConflictError
from scim.schema import USER_SCHEMA_ID
from storage import audit_store
from storage.audit_store import AuditEntry
from storage.database import autocommit
from storage.scim_store import ScimStore
from storage.tables import csv_imports, invitations

MANUAL = "manual"
STATES = ("pending", "expired", "accepted", "revoked")


@dataclass(frozen=True)
class Access:
    """What a person is given by hand: organisation roles, (project id, role) pairs and
    product groups (ids). Names are already checked against the catalogue."""

    roles: tuple[str, ...] = ()
    project_roles: tuple[tuple[uuid.UUID, str], ...] = ()
    groups: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True)
class Invitee:
    email: str
    name: str | None
    access: Access
    invitation_id: str
    secret_hash: bytes


@dataclass(frozen=True)
class Invitation:
    id: str
    user_id: uuid.UUID | None
    email: str
    created_by: str
    created_at: datetime
    sent_at: datetime
    sends: int
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None or (self.user_id is None and self.accepted_at is None):
            return "revoked"  # by an admin, or its pending user was deleted
        if self.accepted_at is not None:
            return "accepted"
        return "expired" if now >= self.expires_at else "pending"


def _open(tenant_id: uuid.UUID, invitation_id: str) -> list[ColumnElement[bool]]:
    """The invitation, if neither accepted nor revoked."""
    return [
        invitations.c.tenant_id == tenant_id,
        invitations.c.id == invitation_id,
        invitations.c.accepted_at.is_(None),
        invitations.c.revoked_at.is_(None),
    ]


def invited_user(email: str, name: str | None) -> dict[str, Any]:
    """The SCIM resource of an invited person: their e-mail is their userName."""
    resource: dict[str, Any] = {
        "schemas": [USER_SCHEMA_ID],
        "userName": email,
        "emails": [{"value": email, "type": "work", "primary": True}],
        "active": True,
    }
    if name:
        resource["displayName"] = name
    return resource


_GRANTS = text(
    """
    INSERT INTO role_grants (tenant_id, user_id, project_id, role, source, granted_at)
    SELECT :tenant_id, u, p, r, 'manual', :now FROM unnest(:users, :projects, :roles) AS g(u, p, r)
    ON CONFLICT DO NOTHING
    RETURNING user_id, project_id, role,
      EXISTS (SELECT 1 FROM role_grants x
              WHERE x.user_id = role_grants.user_id AND x.role = role_grants.role
                AND x.project_id IS NOT DISTINCT FROM role_grants.project_id) AS held
    """
).bindparams(
    bindparam("tenant_id", type_=Uuid),
    bindparam("now", type_=DateTime(timezone=True)),
    bindparam("users", type_=ARRAY(Uuid)),
    bindparam("projects", type_=ARRAY(Uuid)),
    bindparam("roles", type_=ARRAY(Text)),
)

_MEMBERS = text(
    """
    INSERT INTO group_members (group_id, member_id, tenant_id, member_type, source)
    SELECT m.g, m.u, :tenant_id, 'User', 'manual' FROM unnest(:groups, :users) AS m(g, u)
    JOIN users ON users.id = m.u AND users.tenant_id = :tenant_id
    JOIN groups ON groups.id = m.g AND groups.tenant_id = :tenant_id
    ON CONFLICT (group_id, member_id) DO NOTHING
    RETURNING group_id, member_id
    """
).bindparams(
    bindparam("tenant_id", type_=Uuid),
    bindparam("groups", type_=ARRAY(Uuid)),
    bindparam("users", type_=ARRAY(Uuid)),
)


async def _add_access(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    given: Sequence[tuple[uuid.UUID, Access]],
    now: datetime,
    actor: str,
) -> int:
    """Give each user their access, set-wise; audit what was new. Answers how many grants
    and memberships were added."""
    grants: list[tuple[uuid.UUID, uuid.UUID | None, str]] = [
        (u, None, r) for u, a in given for r in a.roles
    ]
    grants += [(u, p, r) for u, a in given for p, r in a.project_roles]
    members = [(g, u) for u, a in given for g in a.groups]
    entries: list[AuditEntry] = []
    if grants:
        rows = await conn.execute(
            _GRANTS,
            {
                "tenant_id": tenant_id,
                "now": now,
                "users": [g[0] for g in grants],
                "projects": [g[1] for g in grants],
                "roles": [g[2] for g in grants],
            },
        )
        for row in rows:
            if row.held:  # held already from the rules or the IdP: no change of access
                continue
            details = {"role": row.role, "source": MANUAL}
            if row.project_id is not None:
                details["project_id"] = str(row.project_id)
            entries.append(AuditEntry("role.granted", f"user:{row.user_id}", details))
    if members:
        rows = await conn.execute(
            _MEMBERS,
            {"tenant_id": tenant_id, "groups": [m[0] for m in members],
             "users": [m[1] for m in members]},
        )  # fmt: skip
        for row in rows:
            details = {"group_id": str(row.group_id), "source": MANUAL}
            entries.append(AuditEntry("group.member_added", f"user:{row.member_id}", details))
    await audit_store.write(conn, tenant_id, now, actor, entries)
    return len(entries)


class InvitationStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.single = autocommit(engine)

    async def invite(
        self,
        tenant_id: uuid.UUID,
        people: Sequence[Invitee],
        now: datetime,
        expires_at: datetime,
        actor: str,
    ) -> list[uuid.UUID]:
        """Create each person as a pending user with an invitation and their access, all or
        none; ConflictError names the e-mails already taken. Answers the users' ids."""
        async with self.engine.begin() as conn:
            return await self._invite(conn, tenant_id, people, now, expires_at, actor)

    async def _invite(
        self,
        conn: AsyncConnection,
        tenant_id: uuid.UUID,
        people: Sequence[Invitee],
        now: datetime,
        expires_at: datetime,
        actor: str,
    ) -> list[uuid.UUID]:
        if not people:
            return []
        created = await ScimStore(self.engine, conn).create_users(
            tenant_id, [(invited_user(p.email, p.name), None) for p in people], now, actor
        )
        taken = [p.email for p, user in zip(people, created, strict=True) if user is None]
        if taken:
            raise ConflictError(f"already a user: {', '.join(taken[:10])}")
        ids = [uuid.UUID(user["id"]) for user in created if user is not None]
        await conn.execute(
            insert(invitations),
            [
                {
                    "id": p.invitation_id,
                    "tenant_id": tenant_id,
                    "user_id": user_id,
                    "email": p.email,
                    "secret_hash": p.secret_hash,
                    "created_by": actor,
                    "created_at": now,
                    "sent_at": now,
                    "expires_at": expires_at,
                }
                for p, user_id in zip(people, ids, strict=True)
            ],
        )
        await _add_access(
            conn, tenant_id, [(u, p.access) for p, u in zip(people, ids, strict=True)], now, actor
        )
        await audit_store.write(
            conn,
            tenant_id,
            now,
            actor,
            [
                AuditEntry("invitation.created", f"user:{u}", {"invitation": p.invitation_id})
                for p, u in zip(people, ids, strict=True)
            ],
        )
        return ids

    async def add_access(
        self,
        tenant_id: uuid.UUID,
        given: Sequence[tuple[uuid.UUID, Access]],
        now: datetime,
        actor: str,
    ) -> int:
        async with self.engine.begin() as conn:
            return await _add_access(conn, tenant_id, given, now, actor)

    async def recent(self, tenant_id: uuid.UUID, limit: int = 1000) -> list[Invitation]:
        """The newest invitations first."""
        async with self.single.connect() as conn:
            rows = await conn.execute(
                select(*COLUMNS)
                .where(invitations.c.tenant_id == tenant_id)
                .order_by(invitations.c.created_at.desc(), invitations.c.id)
                .limit(limit)
            )
            return [Invitation(**r._mapping) for r in rows]

    async def get(self, tenant_id: uuid.UUID, invitation_id: str) -> Invitation | None:
        async with self.single.connect() as conn:
            row = (
                await conn.execute(
                    select(*COLUMNS).where(
                        invitations.c.tenant_id == tenant_id, invitations.c.id == invitation_id
                    )
                )
            ).one_or_none()
            return Invitation(**row._mapping) if row else None

    async def resend(
        self,
        tenant_id: uuid.UUID,
        invitation_id: str,
        secret_hash: bytes,
        now: datetime,
        expires_at: datetime,
        actor: str,
    ) -> Invitation | None:
        """A new link (the old one stops working) and a new expiry, for an invitation not
        accepted or revoked; None otherwise."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    update(invitations)
                    .where(*_open(tenant_id, invitation_id), invitations.c.user_id.is_not(None))
                    .values(
                        secret_hash=secret_hash,
                        sent_at=now,
                        sends=invitations.c.sends + 1,
                        expires_at=expires_at,
                    )
                    .returning(*COLUMNS)
                )
            ).one_or_none()
            if row is not None:
                entry = AuditEntry("invitation.resent", f"user:{row.user_id}",
                                   {"invitation": invitation_id})  # fmt: skip
                await audit_store.write(conn, tenant_id, now, actor, [entry])
            return Invitation(**row._mapping) if row else None

    async def revoke(
        self,
        conn: AsyncConnection,
        tenant_id: uuid.UUID,
        invitation_id: str,
        now: datetime,
        actor: str,
    ) -> tuple[bool, uuid.UUID | None]:
        """In the caller's transaction `conn` (which then deletes the pending user): revoke an
        invitation not yet accepted. Answers whether there was one, and its pending user."""
        found = (
            await conn.execute(
                update(invitations)
                .where(*_open(tenant_id, invitation_id))
                .values(revoked_at=now)
                .returning(invitations.c.user_id)
            )
        ).one_or_none()
        if found is None:
            return False, None
        entry = AuditEntry("invitation.revoked", f"user:{found.user_id}",
                           {"invitation": invitation_id})  # fmt: skip
        await audit_store.write(conn, tenant_id, now, actor, [entry])
        return True, found.user_id

    # --- CSV imports ---------------------------------------------------------------------

    async def imported(self, tenant_id: uuid.UUID, file_digest: str) -> dict[str, Any] | None:
        """The outcome of the latest confirmed import of this file, if there was one."""
        async with self.single.connect() as conn:
            result: dict[str, Any] | None = (
                await conn.execute(
                    select(csv_imports.c.result)
                    .where(
                        csv_imports.c.tenant_id == tenant_id,
                        csv_imports.c.result["file"].astext == file_digest,
                    )
                    .order_by(csv_imports.c.created_at.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
            return result

    async def run_import(
        self,
        conn: AsyncConnection,
        tenant_id: uuid.UUID,
        digest: str,
        people: Sequence[Invitee],
        given: Sequence[tuple[uuid.UUID, Access]],
        result: dict[str, Any],
        now: datetime,
        expires_at: datetime,
        actor: str,
    ) -> tuple[list[uuid.UUID], dict[str, Any] | None]:
        """In the caller's transaction `conn`: invite `people` and give `given` their access,
        recorded under `digest` with `result`. Answers the new users' ids, and the first
        outcome instead when the same rows were imported before (also by a concurrent
        request): then nothing is written."""
        # Of two identical imports at once, the second's insert waits for the first to
        # commit, then finds its record.
        recorded = (
            await conn.execute(
                pg_insert(csv_imports)
                .values(tenant_id=tenant_id, digest=digest, created_by=actor, created_at=now,
                        result=result)
                .on_conflict_do_nothing()
                .returning(csv_imports.c.digest)
            )
        ).first()  # fmt: skip
        if recorded is None:
            first = await conn.execute(
                select(csv_imports.c.result).where(
                    csv_imports.c.tenant_id == tenant_id, csv_imports.c.digest == digest
                )
            )
            return [], dict(first.scalar_one())
        ids = await self._invite(conn, tenant_id, people, now, expires_at, actor)
        await _add_access(conn, tenant_id, given, now, actor)
        return ids, None


COLUMNS = (  # an Invitation's, in its order
    invitations.c.id,
    invitations.c.user_id,
    invitations.c.email,
    invitations.c.created_by,
    invitations.c.created_at,
    invitations.c.sent_at,
    invitations.c.sends,
    invitations.c.expires_at,
    invitations.c.accepted_at,
    invitations.c.revoked_at,
)
