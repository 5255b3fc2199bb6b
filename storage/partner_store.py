"""Partners: organisations (agencies) a client enables on some of its projects, the partner
users who work there, and their roles in those projects.

The boundary: a partner sees the client's projects it is enabled on and its own members'
roles there, nothing else of the client; the client sees the partner's members on its
projects (id, name, e-mail), nothing else of the partner.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, literal_column, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scim.errors import ConflictError, NotFoundError
from storage import audit_store
from storage.admin_store import primary_email
from storage.audit_store import AuditEntry
from storage.database import autocommit
from storage.tables import partner_members, partner_projects, projects, role_grants, tenants, users


@dataclass(frozen=True)
class Member:
    user_id: uuid.UUID
    user_name: str
    name: str | None
    email: str | None
    roles: tuple[str, ...]  # in the project


@dataclass(frozen=True)
class Partnership:
    """One partner on one client project."""

    client: str  # slug
    client_name: str
    partner: str  # slug
    partner_name: str
    project_id: uuid.UUID
    project: str
    enabled_at: datetime
    members: tuple[Member, ...]


def _partnerships() -> Any:
    client = tenants.alias("client")
    partner = tenants.alias("partner")
    return (
        select(
            client.c.slug.label("client"),
            client.c.name.label("client_name"),
            partner.c.slug.label("partner"),
            partner.c.name.label("partner_name"),
            projects.c.id.label("project_id"),
            projects.c.name.label("project"),
            partner_projects.c.enabled_at,
            partner_projects.c.partner_id,
        )
        .select_from(
            partner_projects.join(projects, projects.c.id == partner_projects.c.project_id)
            .join(client, client.c.id == partner_projects.c.client_id)
            .join(partner, partner.c.id == partner_projects.c.partner_id)
        )
        .order_by(client.c.slug, func.lower(projects.c.name), partner.c.slug)
    )


async def _members(conn: AsyncConnection, keys: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> Any:
    """(project, partner) -> its members with their roles in the project."""
    found: dict[tuple[uuid.UUID, uuid.UUID], list[Member]] = {}
    if not keys:
        return found
    project_roles = (
        select(func.coalesce(func.array_agg(role_grants.c.role), literal_column("'{}'::text[]")))
        .where(
            role_grants.c.user_id == partner_members.c.user_id,
            role_grants.c.project_id == partner_members.c.project_id,
        )
        .scalar_subquery()
    )
    rows = await conn.execute(
        select(
            partner_members.c.project_id,
            partner_members.c.partner_id,
            users.c.id,
            users.c.user_name,
            users.c.display_name,
            users.c.data["emails"].label("emails"),
            project_roles.label("roles"),
        )
        .select_from(partner_members.join(users, users.c.id == partner_members.c.user_id))
        .where(tuple_(partner_members.c.project_id, partner_members.c.partner_id).in_(keys))
        .order_by(func.lower(users.c.user_name))
    )
    for r in rows:
        member = Member(r.id, r.user_name, r.display_name, primary_email(r.emails),
                        tuple(sorted(r.roles)))  # fmt: skip
        found.setdefault((r.project_id, r.partner_id), []).append(member)
    return found


class PartnerStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.single = autocommit(engine)

    async def _list(self, where: Any) -> list[Partnership]:
        async with self.single.connect() as conn:
            rows = list(await conn.execute(_partnerships().where(where)))
            members = await _members(conn, [(r.project_id, r.partner_id) for r in rows])
        return [
            Partnership(r.client, r.client_name, r.partner, r.partner_name, r.project_id,
                        r.project, r.enabled_at,
                        tuple(members.get((r.project_id, r.partner_id), ())))
            for r in rows
        ]  # fmt: skip

    async def of_project(self, client_id: uuid.UUID, project_id: uuid.UUID) -> list[Partnership]:
        """The partners on a client's project (the client's view)."""
        return await self._list(
            (partner_projects.c.client_id == client_id)
            & (partner_projects.c.project_id == project_id)
        )

    async def of_partner(self, partner_id: uuid.UUID) -> list[Partnership]:
        """The client projects a partner works on (the partner's view)."""
        return await self._list(partner_projects.c.partner_id == partner_id)

    async def enable(
        self,
        client_id: uuid.UUID,
        project_id: uuid.UUID,
        partner_id: uuid.UUID,
        now: datetime,
        actor: str,
    ) -> bool:
        """Enable a partner on a project; False if it already was."""
        if partner_id == client_id:
            raise ConflictError("an organisation cannot be its own partner")
        async with self.engine.begin() as conn:
            added = (
                await conn.execute(
                    pg_insert(partner_projects)
                    .values(project_id=project_id, partner_id=partner_id, client_id=client_id,
                            enabled_by=actor, enabled_at=now)
                    .on_conflict_do_nothing()
                    .returning(partner_projects.c.project_id)
                )
            ).first() is not None  # fmt: skip
            if added:
                entry = AuditEntry("partner.enabled", f"project:{project_id}",
                                   {"partner_id": str(partner_id)})  # fmt: skip
                await audit_store.write(conn, client_id, now, actor, [entry])
            return added

    async def disable(
        self,
        client_id: uuid.UUID,
        project_id: uuid.UUID,
        partner_id: uuid.UUID,
        now: datetime,
        actor: str,
    ) -> bool:
        """Take a partner off a project, with its members and their roles there."""
        async with self.engine.begin() as conn:
            if await _lock_link(conn, project_id, partner_id) != client_id:
                return False
            # The members' roles first: the members go with the link.
            await _drop_roles(conn, client_id, project_id, partner_id, None)
            await conn.execute(
                delete(partner_projects).where(
                    partner_projects.c.project_id == project_id,
                    partner_projects.c.partner_id == partner_id,
                )
            )
            entry = AuditEntry("partner.disabled", f"project:{project_id}",
                               {"partner_id": str(partner_id)})  # fmt: skip
            await audit_store.write(conn, client_id, now, actor, [entry])
            return True

    async def set_members(
        self,
        partner_id: uuid.UUID,
        project_id: uuid.UUID,
        user_ids: Sequence[uuid.UUID],
        now: datetime,
        actor: str,
    ) -> None:
        """The partner's users who work on the project become exactly these (the partner's
        own active users); those taken out lose their roles there."""
        async with self.engine.begin() as conn:
            link = await _lock_link(conn, project_id, partner_id)
            if link is None:
                raise NotFoundError("this organisation is not a partner on that project")
            own = set(
                (
                    await conn.execute(
                        select(users.c.id).where(
                            users.c.tenant_id == partner_id,
                            users.c.id.in_(list(user_ids)),
                            users.c.active.is_(True),
                            users.c.blocked_at.is_(None),
                        )
                    )
                ).scalars()
            )
            stray = [str(u) for u in user_ids if u not in own]
            if stray:
                raise NotFoundError(f"no active user of this organisation: {', '.join(stray[:5])}")
            await _drop_roles(conn, link, project_id, partner_id, user_ids)
            await conn.execute(
                delete(partner_members).where(
                    partner_members.c.project_id == project_id,
                    partner_members.c.partner_id == partner_id,
                    partner_members.c.user_id.not_in(list(user_ids)),
                )
            )
            if user_ids:
                await conn.execute(
                    pg_insert(partner_members)
                    .values([{"project_id": project_id, "user_id": u, "partner_id": partner_id,
                              "added_by": actor, "added_at": now} for u in user_ids])
                    .on_conflict_do_nothing()
                )  # fmt: skip
            entry = AuditEntry("partner.members_set", f"project:{project_id}",
                               {"users": [str(u) for u in user_ids]})  # fmt: skip
            await audit_store.write(conn, partner_id, now, actor, [entry])

    async def set_roles(
        self,
        client_id: uuid.UUID,
        project_id: uuid.UUID,
        partner_id: uuid.UUID,
        user_id: uuid.UUID,
        roles: Sequence[str],
        now: datetime,
        actor: str,
    ) -> None:
        """A partner member's roles in the client's project become exactly these. The link
        is locked, so a member taken out meanwhile is not given a role (NotFoundError)."""
        async with self.engine.begin() as conn:
            if await _lock_link(conn, project_id, partner_id) != client_id:
                raise NotFoundError("this partner is not on that project")
            member = await conn.execute(
                select(partner_members.c.user_id).where(
                    partner_members.c.project_id == project_id,
                    partner_members.c.partner_id == partner_id,
                    partner_members.c.user_id == user_id,
                )
            )
            if member.first() is None:
                raise NotFoundError("not a member of this partner on that project")
            await conn.execute(
                delete(role_grants).where(
                    role_grants.c.tenant_id == client_id,
                    role_grants.c.user_id == user_id,
                    role_grants.c.project_id == project_id,
                )
            )
            if roles:
                await conn.execute(
                    insert(role_grants),
                    [{"tenant_id": client_id, "user_id": user_id, "project_id": project_id,
                      "role": r, "source": "manual", "granted_at": now} for r in roles],
                )  # fmt: skip
            entry = AuditEntry("partner.roles_set", f"user:{user_id}",
                               {"project_id": str(project_id), "roles": list(roles)})  # fmt: skip
            await audit_store.write(conn, client_id, now, actor, [entry])


async def _lock_link(
    conn: AsyncConnection, project_id: uuid.UUID, partner_id: uuid.UUID
) -> uuid.UUID | None:
    """Lock a partner's link to a project (its member and role changes go one at a time);
    answers the client, or None if there is no such link."""
    client: uuid.UUID | None = (
        await conn.execute(
            select(partner_projects.c.client_id)
            .where(
                partner_projects.c.project_id == project_id,
                partner_projects.c.partner_id == partner_id,
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    return client


async def _drop_roles(
    conn: AsyncConnection,
    client_id: uuid.UUID,
    project_id: uuid.UUID,
    partner_id: uuid.UUID,
    keep: Sequence[uuid.UUID] | None,
) -> None:
    """Take back the project roles of the partner's members (but those in `keep`)."""
    members = select(partner_members.c.user_id).where(
        partner_members.c.project_id == project_id, partner_members.c.partner_id == partner_id
    )
    if keep:
        members = members.where(partner_members.c.user_id.not_in(list(keep)))
    await conn.execute(
        delete(role_grants).where(
            role_grants.c.tenant_id == client_id,
            role_grants.c.project_id == project_id,
            role_grants.c.user_id.in_(members),
        )
    )
