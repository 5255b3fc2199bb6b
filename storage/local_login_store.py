"""Local logins (a password and a TOTP second factor) and the acceptance of invitations.

A person invited to a tenant without SSO sets a password and enrols an authenticator: the
credentials are written unconfirmed first, then confirmed by a code in the same
transaction that accepts the invitation. A person invited to a tenant with SSO accepts by
signing in: the identity is linked to the invited user in the transaction that accepts.
Either way the invitation is accepted at most once, only while it is open and unexpired.

The lockout is kept here so that it holds across replicas: every refused attempt adds one
to `failures` in the statement that also sets `locked_at` at the fifth, and a success (a
code of a later time step than the last one accepted, checked in the same statement)
resets it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage import audit_store
from storage.audit_store import AuditEntry
from storage.database import autocommit
from storage.invitation_store import COLUMNS as INVITATION_COLUMNS
from storage.invitation_store import Invitation
from storage.tables import invitations, local_credentials, sso_identities, tenants, users

MAX_FAILURES = 5  # refused local logins in a row before the login is locked

ACCEPTED = "accepted"
CLOSED = "closed"  # the invitation was accepted, revoked or expired meanwhile
INACTIVE = "inactive"  # the invited user was deactivated or blocked
LINKED = "linked"  # the identity already belongs to a user of the connection


@dataclass(frozen=True)
class FoundInvitation:
    """An invitation found by its link, with its tenant."""

    invitation: Invitation
    tenant_slug: str


@dataclass(frozen=True)
class LocalAccount:
    """A user with a confirmed local login, as a login attempt needs it."""

    user_id: uuid.UUID
    active: bool  # active and not blocked
    password_hash: str
    totp_secret: str
    totp_last_step: int | None
    locked: bool


@dataclass(frozen=True)
class Failure:
    failures: int
    locked: bool
    newly_locked: bool  # this failure set the lock


class _UndoError(Exception):
    """Leaves a transaction without its writes, saying why."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


_ACTIVE = users.c.active.is_(True) & users.c.blocked_at.is_(None)


class LocalLoginStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.single = autocommit(engine)

    # --- invitations -----------------------------------------------------------------------

    async def invitation(self, secret_hash: bytes) -> FoundInvitation | None:
        """The invitation a link names (in any state), or None."""
        query = (
            select(*INVITATION_COLUMNS, tenants.c.slug)
            .select_from(invitations.join(tenants, tenants.c.id == invitations.c.tenant_id))
            .where(invitations.c.secret_hash == secret_hash)
        )
        async with self.single.connect() as conn:
            row = (await conn.execute(query)).one_or_none()
        if row is None:
            return None
        fields = {c.name: row._mapping[c] for c in INVITATION_COLUMNS}
        return FoundInvitation(Invitation(**fields), row.slug)

    async def accept_with_identity(
        self,
        tenant_id: uuid.UUID,
        invitation_id: str,
        connection_id: uuid.UUID,
        subject: str,
        claims: Mapping[str, Any],
        now: datetime,
        actor: str,
    ) -> str:
        """Accept the invitation and link (connection, subject) to its user, both or
        neither. Answers ACCEPTED, CLOSED, INACTIVE or LINKED."""
        try:
            async with self.engine.begin() as conn:
                user_id = await _accept(conn, tenant_id, invitation_id, now)
                linked = (
                    await conn.execute(
                        pg_insert(sso_identities)
                        .values(
                            connection_id=connection_id,
                            subject=subject,
                            user_id=user_id,
                            created_at=now,
                            last_login_at=now,
                            claims=dict(claims),
                        )
                        .on_conflict_do_nothing()
                        .returning(sso_identities.c.user_id)
                    )
                ).one_or_none()
                if linked is None:
                    raise _UndoError(LINKED)
                target = f"user:{user_id}"
                entries = [
                    AuditEntry("invitation.accepted", target,
                               {"invitation": invitation_id, "method": actor}),
                    AuditEntry("identity.linked", target,
                               {"subject": subject, "by": "invitation"}),
                ]  # fmt: skip
                await audit_store.write(conn, tenant_id, now, actor, entries)
        except _UndoError as undo:
            return undo.outcome
        return ACCEPTED

    # --- enrolment -------------------------------------------------------------------------

    async def enrol(
        self,
        tenant_id: uuid.UUID,
        user_id: uuid.UUID,
        password_hash: str,
        totp_secret: str,
        now: datetime,
    ) -> bool:
        """Write (or write again) a user's unconfirmed credentials; False when they are
        confirmed already (a local login exists: it is not replaced this way)."""
        values = {"password_hash": password_hash, "totp_secret": totp_secret, "updated_at": now}
        statement = (
            pg_insert(local_credentials)
            .values(user_id=user_id, tenant_id=tenant_id, created_at=now, **values)
            .on_conflict_do_update(
                index_elements=[local_credentials.c.user_id],
                set_=values,
                where=local_credentials.c.totp_confirmed.is_(False),
            )
            .returning(local_credentials.c.user_id)
        )
        async with self.single.connect() as conn:
            return (await conn.execute(statement)).one_or_none() is not None

    async def enrolment(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
        """The TOTP secret of a user's unconfirmed credentials, if there are any."""
        query = select(local_credentials.c.totp_secret).where(
            local_credentials.c.tenant_id == tenant_id,
            local_credentials.c.user_id == user_id,
            local_credentials.c.totp_confirmed.is_(False),
        )
        async with self.single.connect() as conn:
            secret: str | None = (await conn.execute(query)).scalar_one_or_none()
            return secret

    async def accept_with_enrolment(
        self,
        tenant_id: uuid.UUID,
        invitation_id: str,
        user_id: uuid.UUID,
        step: int,
        now: datetime,
    ) -> str:
        """Confirm the user's credentials (the code of time step `step` was right) and
        accept the invitation, both or neither. Answers ACCEPTED, CLOSED or INACTIVE."""
        actor = f"user:{user_id}"
        try:
            async with self.engine.begin() as conn:
                confirmed = await conn.execute(
                    update(local_credentials)
                    .where(
                        local_credentials.c.user_id == user_id,
                        local_credentials.c.tenant_id == tenant_id,
                        local_credentials.c.totp_confirmed.is_(False),
                    )
                    .values(totp_confirmed=True, totp_last_step=step, updated_at=now)
                )
                if confirmed.rowcount != 1:
                    raise _UndoError(CLOSED)
                if await _accept(conn, tenant_id, invitation_id, now) != user_id:
                    raise _UndoError(CLOSED)
                entry = AuditEntry("invitation.accepted", actor,
                                   {"invitation": invitation_id, "method": "password"})  # fmt: skip
                await audit_store.write(conn, tenant_id, now, actor, [entry])
        except _UndoError as undo:
            return undo.outcome
        return ACCEPTED

    # --- logins ----------------------------------------------------------------------------

    async def account(self, tenant_id: uuid.UUID, user_name: str) -> LocalAccount | None:
        """The user named `user_name` (any case) with a confirmed local login, or None."""
        query = (
            select(
                users.c.id,
                _ACTIVE.label("active"),
                local_credentials.c.password_hash,
                local_credentials.c.totp_secret,
                local_credentials.c.totp_last_step,
                local_credentials.c.locked_at,
            )
            .select_from(users.join(local_credentials, local_credentials.c.user_id == users.c.id))
            .where(
                users.c.tenant_id == tenant_id,
                func.lower(users.c.user_name) == func.lower(literal(user_name)),
                local_credentials.c.totp_confirmed.is_(True),
            )
        )
        async with self.single.connect() as conn:
            row = (await conn.execute(query)).one_or_none()
        if row is None:
            return None
        return LocalAccount(
            row.id,
            bool(row.active),
            row.password_hash,
            row.totp_secret,
            row.totp_last_step,
            row.locked_at is not None,
        )

    async def failed(
        self,
        tenant_id: uuid.UUID,
        user_id: uuid.UUID,
        now: datetime,
        details: dict[str, Any],
    ) -> Failure:
        """Count a refused attempt (the fifth in a row locks the login) and audit it as
        `login.failed` of the user, with `details` (the reason), in one transaction."""
        column = local_credentials.c
        count = column.failures + 1
        statement = (
            update(local_credentials)
            .where(column.user_id == user_id, column.tenant_id == tenant_id)
            .values(
                failures=count,
                locked_at=case(
                    (and_(column.locked_at.is_(None), count >= MAX_FAILURES), now),
                    else_=column.locked_at,
                ),
                updated_at=now,
            )
            .returning(column.failures, column.locked_at)
        )
        target = f"user:{user_id}"
        async with self.engine.begin() as conn:
            row = (await conn.execute(statement)).one()
            newly = row.locked_at == now and row.failures == MAX_FAILURES
            entries = [AuditEntry("login.failed", target, details)]
            if newly:
                entries.append(AuditEntry("local_login.locked", target, {"failures": row.failures}))
            await audit_store.write(conn, tenant_id, now, "local", entries)
        return Failure(row.failures, row.locked_at is not None, newly)

    async def succeeded(self, tenant_id: uuid.UUID, user_id: uuid.UUID, step: int) -> bool:
        """Record a login whose code was of time step `step`: only if the login is not
        locked and no code of that step or a later one was accepted before (two logins
        with one code at once: one wins). Resets the count of failures."""
        column = local_credentials.c
        statement = (
            update(local_credentials)
            .where(
                column.user_id == user_id,
                column.tenant_id == tenant_id,
                column.totp_confirmed.is_(True),
                column.locked_at.is_(None),
                or_(column.totp_last_step.is_(None), column.totp_last_step < step),
            )
            .values(totp_last_step=step, failures=0)
        )
        async with self.single.connect() as conn:
            return (await conn.execute(statement)).rowcount == 1

    async def unlock(
        self,
        tenant_id: uuid.UUID,
        user_id: uuid.UUID,
        now: datetime,
        actor: str,
        details: dict[str, Any],
    ) -> bool | None:
        """Clear the lock and the count of failures of a user's local login, audited as
        `local_login.unlocked`. Answers whether it was locked; None if the user has no
        local login."""
        column = local_credentials.c
        # The old lock, read in the statement that clears it.
        before = (
            select(column.locked_at)
            .where(column.user_id == user_id)
            .scalar_subquery()
            .label("was_locked_at")
        )
        statement = (
            update(local_credentials)
            .where(column.user_id == user_id, column.tenant_id == tenant_id)
            .values(locked_at=None, failures=0, updated_at=now)
            .returning(before)
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(statement)).one_or_none()
            if row is None:
                return None
            was_locked = row.was_locked_at is not None
            entry = AuditEntry("local_login.unlocked", f"user:{user_id}",
                               {"was_locked": was_locked, **details})  # fmt: skip
            await audit_store.write(conn, tenant_id, now, actor, [entry])
        return was_locked


async def _accept(
    conn: AsyncConnection, tenant_id: uuid.UUID, invitation_id: str, now: datetime
) -> uuid.UUID:
    """Mark an open, unexpired invitation of an active user accepted; its user's id.
    Raises `_UndoError` (CLOSED or INACTIVE) otherwise."""
    user_is_active = exists().where(users.c.id == invitations.c.user_id, _ACTIVE)
    user_id: uuid.UUID | None = (
        await conn.execute(
            update(invitations)
            .where(
                invitations.c.tenant_id == tenant_id,
                invitations.c.id == invitation_id,
                invitations.c.accepted_at.is_(None),
                invitations.c.revoked_at.is_(None),
                invitations.c.expires_at > now,
                user_is_active,
            )
            .values(accepted_at=now)
            .returning(invitations.c.user_id)
        )
    ).scalar_one_or_none()
    if user_id is not None:
        return user_id
    still_open = (
        await conn.execute(
            select(invitations.c.id).where(
                invitations.c.tenant_id == tenant_id,
                invitations.c.id == invitation_id,
                invitations.c.accepted_at.is_(None),
                invitations.c.revoked_at.is_(None),
                invitations.c.expires_at > now,
                invitations.c.user_id.is_not(None),
            )
        )
    ).one_or_none()
    raise _UndoError(INACTIVE if still_open is not None else CLOSED)


__all__ = [
    "ACCEPTED",
    "CLOSED",
    "INACTIVE",
    "LINKED",
    "MAX_FAILURES",
    "Failure",
    "FoundInvitation",
    "LocalAccount",
    "LocalLoginStore",
]
