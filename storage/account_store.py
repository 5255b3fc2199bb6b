"""Accounts: the users one person has in several organisations, linked when the person
accepts an invitation to another organisation while logged in to one, so that they switch
between them without logging in again."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.errors import ConflictError, NotFoundError
from storage import audit_store
from storage.audit_store import AuditEntry
from storage.database import autocommit
from storage.tables import invitations, role_grants, tenants, users


@dataclass(frozen=True)
class Linked:
    """One of the person's users, in another organisation."""

    tenant_id: uuid.UUID
    slug: str
    name: str
    user_id: uuid.UUID
    roles: tuple[str, ...]  # organisation roles


class AccountStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.single = autocommit(engine)

    async def accept(
        self, secret_hash: bytes, user_id: uuid.UUID, now: datetime
    ) -> tuple[uuid.UUID, uuid.UUID]:
        """Accept the invitation with this link's secret for the person logged in as
        `user_id`, linking the invited user to their account: both or neither. The invited
        e-mail must be one of theirs (their userName or an e-mail). Answers (the
        organisation, the invited user)."""
        async with self.engine.begin() as conn:
            found = (
                await conn.execute(
                    select(
                        invitations.c.id, invitations.c.tenant_id, invitations.c.user_id,
                        invitations.c.email,
                    )
                    .where(
                        invitations.c.secret_hash == secret_hash,
                        invitations.c.accepted_at.is_(None),
                        invitations.c.revoked_at.is_(None),
                        invitations.c.expires_at > now,
                    )
                    .with_for_update()
                )
            ).one_or_none()  # fmt: skip
            if found is None or found.user_id is None:
                raise NotFoundError("no open invitation with this link")
            invited = (
                await conn.execute(
                    select(users.c.id).where(
                        users.c.id == found.user_id,
                        users.c.active.is_(True),
                        users.c.blocked_at.is_(None),
                    )
                )
            ).first()
            if invited is None:
                raise ConflictError("the invited user is deactivated or blocked")
            me = (
                await conn.execute(
                    select(
                        users.c.tenant_id,
                        users.c.account_id,
                        func.lower(users.c.user_name).label("name"),
                        func.idgate_ci_values(users.c.data["emails"]).label("emails"),
                    ).where(users.c.id == user_id)
                )
            ).one_or_none()
            if me is None:
                raise NotFoundError("no such user")
            if found.tenant_id == me.tenant_id:
                raise ConflictError("this invitation is to your own organisation")
            if found.email.lower() not in {me.name, *me.emails}:
                raise ConflictError("this invitation is for another e-mail address")
            account = me.account_id or uuid.uuid4()
            await conn.execute(
                update(users)
                .where(users.c.id.in_([user_id, found.user_id]))
                .values(account_id=account)
            )
            await conn.execute(
                update(invitations).where(invitations.c.id == found.id).values(accepted_at=now)
            )
            actor = f"user:{user_id}"
            accepted = AuditEntry(
                "invitation.accepted",
                f"user:{found.user_id}",
                {"invitation": found.id, "method": "account"},
            )
            linked = AuditEntry(
                "account.linked", f"user:{user_id}", {"organisation": str(found.tenant_id)}
            )
            await audit_store.write(conn, found.tenant_id, now, actor, [accepted])
            await audit_store.write(conn, me.tenant_id, now, actor, [linked])
            return found.tenant_id, found.user_id

    async def linked(self, user_id: uuid.UUID) -> list[Linked]:
        """The person's other users that may be switched to: active and not blocked."""
        me = users.alias("me")
        roles = (
            select(func.coalesce(func.array_agg(role_grants.c.role.distinct()),
                                 literal_column("'{}'::text[]")))
            .where(role_grants.c.user_id == users.c.id, role_grants.c.project_id.is_(None))
            .scalar_subquery()
        )  # fmt: skip
        async with self.single.connect() as conn:
            rows = await conn.execute(
                select(tenants.c.id, tenants.c.slug, tenants.c.name, users.c.id.label("user"),
                       roles.label("roles"))
                .select_from(
                    me.join(users, (users.c.account_id == me.c.account_id)
                            & (users.c.id != me.c.id))
                    .join(tenants, tenants.c.id == users.c.tenant_id)
                )
                .where(me.c.id == user_id, users.c.active.is_(True),
                       users.c.blocked_at.is_(None))
                .order_by(tenants.c.slug)
            )  # fmt: skip
            return [Linked(r.id, r.slug, r.name, r.user, tuple(sorted(r.roles))) for r in rows]
