"""Browser sessions: created at login, checked on every request the product forwards to
`/auth/verify`, ended by logout, expiry, idleness, or the user's deactivation.

A session is found by the SHA-256 of its cookie; the cookie itself is never stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    LargeBinary,
    Numeric,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.database import autocommit
from storage.tables import (
    group_members,
    groups,
    mapping_documents,
    projects,
    role_grants,
    sessions,
    tenants,
    user_policies,
    users,
)


@dataclass(frozen=True)
class SessionUser:
    """Who a live session belongs to, as `/auth/verify` hands it to the product."""

    user_id: uuid.UUID
    tenant: str  # slug
    user_name: str
    email: str | None  # the primary e-mail, else the first
    groups: tuple[str, ...]  # display names of the user's groups (SCIM and product groups)
    roles: tuple[str, ...]  # organisation roles: every grant's, else the tenant's default role
    project_roles: tuple[tuple[str, str], ...]  # (project, role)
    # How long it stays live, for whoever keeps it (`gateway.session_cache`).
    tenant_id: uuid.UUID
    last_seen_at: datetime
    idle_seconds: int
    expires_at: datetime
    started_at: datetime  # when the user logged in (a hard delete asks for a recent login)

    def live_at(self, now: datetime) -> bool:
        """Whether neither the lifetime nor the idle limit has passed at `now` (as far as
        this copy knows: a logout or deactivation since it was read is not in it)."""
        idle = (now - self.last_seen_at).total_seconds()
        return now < self.expires_at and idle < self.idle_seconds


_NOW = bindparam("now", type_=DateTime(timezone=True))
_EMPTY: Any = literal_column("'{}'::text[]")
_user_groups = (
    select(func.coalesce(func.array_agg(groups.c.display_name), _EMPTY))
    .select_from(group_members.join(groups, groups.c.id == group_members.c.group_id))
    .where(group_members.c.member_id == sessions.c.user_id)
    .scalar_subquery()
)
_user_roles = (
    select(func.coalesce(func.array_agg(role_grants.c.role.distinct()), _EMPTY))
    .where(role_grants.c.user_id == sessions.c.user_id, role_grants.c.project_id.is_(None))
    .scalar_subquery()
)
# A project of another organisation (the user works on it for a partner) is named
# `<client slug>/<project>`.
_client = tenants.alias("client")
_project_name = case(
    (role_grants.c.tenant_id == sessions.c.tenant_id, projects.c.name),
    else_=func.concat(
        select(_client.c.slug).where(_client.c.id == role_grants.c.tenant_id).scalar_subquery(),
        "/",
        projects.c.name,
    ),
)
_user_project_roles = (
    select(
        func.coalesce(
            func.jsonb_agg(func.jsonb_build_array(_project_name, role_grants.c.role).distinct()),
            literal_column("'[]'::jsonb"),
        )
    )
    .select_from(role_grants.join(projects))
    .where(role_grants.c.user_id == sessions.c.user_id)
    .scalar_subquery()
)

# A session's idle limit, in seconds, as it is now: the user's own, else its organisation's,
# else the one it started with (migration 0021).
_IDLE_SECONDS = func.coalesce(
    user_policies.c.session_idle_seconds,
    func.round(tenants.c.settings["session_idle_minutes"].astext.cast(Numeric) * 60).cast(Integer),
    sessions.c.idle_seconds,
)

# One statement per check: the session, its user (who must still be active) and the groups.
_LIVE = (
    select(
        sessions.c.user_id,
        sessions.c.tenant_id,
        sessions.c.last_seen_at,
        _IDLE_SECONDS.label("idle_seconds"),
        sessions.c.expires_at,
        sessions.c.created_at,
        tenants.c.slug,
        users.c.user_name,
        users.c.data["emails"].label("emails"),
        _user_groups.label("groups"),
        _user_roles.label("roles"),
        _user_project_roles.label("project_roles"),
        mapping_documents.c.document["default_role"].astext.label("default_role"),
    )
    .select_from(
        sessions.join(users, users.c.id == sessions.c.user_id)
        .join(tenants, tenants.c.id == sessions.c.tenant_id)
        .outerjoin(mapping_documents, mapping_documents.c.tenant_id == sessions.c.tenant_id)
        .outerjoin(user_policies, user_policies.c.user_id == sessions.c.user_id)
    )
    .where(
        sessions.c.secret_hash == bindparam("secret_hash", type_=LargeBinary),
        sessions.c.revoked_at.is_(None),
        sessions.c.expires_at > _NOW,
        sessions.c.last_seen_at + func.make_interval(0, 0, 0, 0, 0, 0, _IDLE_SECONDS) > _NOW,
        users.c.active.is_(True),
        users.c.blocked_at.is_(None),
    )
)


def _email(emails: Any) -> str | None:
    if not isinstance(emails, list):
        return None
    values = [e for e in emails if isinstance(e, dict) and isinstance(e.get("value"), str)]
    primary = next((e for e in values if e.get("primary") is True), None)
    chosen = primary or (values[0] if values else None)
    return chosen["value"] if chosen else None


class SessionStore:
    def __init__(self, engine: AsyncEngine, default_role: str) -> None:
        """`default_role`: the organisation role of a user nothing gives one, in a tenant
        whose mapping document names none."""
        self.single = autocommit(engine)
        self.default_role = default_role

    async def create(
        self,
        secret_hash: bytes,
        tenant_id: uuid.UUID,
        user_id: uuid.UUID,
        connection_id: uuid.UUID | None,
        now: datetime,
        *,
        idle: timedelta,
        lifetime: timedelta,
        started_at: datetime | None = None,
    ) -> None:
        """`started_at`: when the person logged in, for a session that carries on an earlier
        one (a switch of organisation): its lifetime and its login time are that login's."""
        started = started_at or now
        async with self.single.connect() as conn:
            await conn.execute(
                insert(sessions).values(
                    secret_hash=secret_hash,
                    tenant_id=tenant_id,
                    user_id=user_id,
                    connection_id=connection_id,
                    created_at=started,
                    last_seen_at=now,
                    idle_seconds=int(idle.total_seconds()),
                    expires_at=started + lifetime,
                )
            )

    async def check(
        self, secret_hash: bytes, now: datetime, touch_after: float
    ) -> SessionUser | None:
        """The user of a live session, or None. The idle clock restarts at most once per
        `touch_after` seconds (one write a minute, not one per request)."""
        async with self.single.connect() as conn:
            row = (
                await conn.execute(_LIVE, {"secret_hash": secret_hash, "now": now})
            ).one_or_none()
            if row is None:
                return None
            last_seen = row.last_seen_at
            if (now - last_seen).total_seconds() > touch_after:
                await conn.execute(
                    update(sessions)
                    .where(sessions.c.secret_hash == secret_hash)
                    .values(last_seen_at=now)
                )
                last_seen = now
        return SessionUser(
            row.user_id,
            row.slug,
            row.user_name,
            _email(row.emails),
            tuple(sorted(set(row.groups))),
            tuple(sorted(row.roles)) or (row.default_role or self.default_role,),
            tuple(sorted((project, role) for project, role in row.project_roles)),
            row.tenant_id,
            last_seen,
            row.idle_seconds,
            row.expires_at,
            row.created_at,
        )

    async def revoke(self, secret_hash: bytes, now: datetime) -> bool:
        async with self.single.connect() as conn:
            result = await conn.execute(
                update(sessions)
                .where(sessions.c.secret_hash == secret_hash, sessions.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return result.rowcount == 1

    async def revoke_user(self, user_id: uuid.UUID, now: datetime) -> int:
        """End every session of a user (deprovisioning, block)."""
        async with self.single.connect() as conn:
            result = await conn.execute(
                update(sessions)
                .where(
                    and_(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None)),
                    sessions.c.expires_at > now,
                )
                .values(revoked_at=now)
            )
            return int(result.rowcount)


__all__ = ["SessionStore", "SessionUser"]
