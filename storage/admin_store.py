"""What the administration API reads: organisations, users as an admin sees them (status,
roles, groups, projects, activity), filtered, searched and paged.

A user's status is one of: `deactivated` (SCIM `active: false`), `blocked` (by an admin),
`pending` (invited, not yet joined), `active`; in that order when several hold.
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
    Select,
    Text,
    and_,
    any_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.errors import ConflictError, NotFoundError
from storage import audit_store
from storage.audit_store import AuditEntry
from storage.database import autocommit
from storage.tables import (
    group_members,
    groups,
    invitations,
    projects,
    role_grants,
    roles,
    tenants,
    user_activity,
    user_policies,
    users,
)
from storage.user_search import after_cursor, cursor_of, matching, ordering, search_users

STATUSES = ("active", "pending", "blocked", "deactivated")


@dataclass(frozen=True)
class Org:
    id: uuid.UUID
    slug: str
    name: str
    parent_id: uuid.UUID | None
    settings: dict[str, Any]


_ORGS = select(tenants.c.id, tenants.c.slug, tenants.c.name, tenants.c.parent_id,
               tenants.c.settings)  # fmt: skip


@dataclass(frozen=True)
class UserFilter:
    q: str = ""
    role: str | None = None  # holds this organisation role
    group: uuid.UUID | None = None  # member of this group
    status: str | None = None
    login_from: datetime | None = None  # last login at or after
    login_to: datetime | None = None  # last login before
    never_logged_in: bool = False
    inactive_since: datetime | None = None  # active, and no login since (nor created since)


@dataclass(frozen=True)
class UserRow:
    id: uuid.UUID
    user_name: str
    name: str | None
    email: str | None
    status: str
    roles: tuple[str, ...]
    last_login_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Grant:
    role: str
    source: str
    project_id: uuid.UUID | None = None
    project: str | None = None


@dataclass(frozen=True)
class Membership:
    group_id: uuid.UUID
    name: str
    origin: str  # 'scim' | 'product'
    source: str  # 'scim' | 'mapped' | 'manual'


@dataclass(frozen=True)
class UserDetail:
    row: UserRow
    updated_at: datetime
    version: int
    data: dict[str, Any]
    created_by: str | None
    blocked_at: datetime | None
    blocked_reason: str | None
    grants: tuple[Grant, ...]
    groups: tuple[Membership, ...]
    logins: int
    failed_logins: int
    last_failed_login_at: datetime | None
    session_idle_seconds: int | None  # the user's own limit (user_policies); None: none


@dataclass(frozen=True)
class GroupRow:
    id: uuid.UUID
    name: str
    origin: str  # 'scim' (the IdP's) | 'product'
    external_id: str | None
    members: int
    created_at: datetime


_GROUPS = select(
    groups.c.id,
    groups.c.display_name.label("name"),
    groups.c.origin,
    groups.c.external_id,
    select(func.count())
    .where(group_members.c.group_id == groups.c.id)
    .scalar_subquery()
    .label("members"),
    groups.c.created_at,
).order_by(func.lower(groups.c.display_name), groups.c.id)


@dataclass(frozen=True)
class Catalogue:
    roles: tuple[str, ...]  # custom roles (the built-in ones are not stored)
    projects: dict[str, uuid.UUID]  # by name
    groups: dict[str, uuid.UUID]  # product groups, by name


@dataclass(frozen=True)
class Person:
    """A user as a CSV import compares with it."""

    id: uuid.UUID
    user_name: str
    display_name: str | None
    emails: tuple[str, ...]
    created_by: str | None
    roles: frozenset[str]  # organisation roles
    groups: frozenset[str]  # product groups

    @property
    def managed(self) -> bool:
        return idp_managed(self.created_by)


def idp_managed(created_by: str | None) -> bool:
    """Pushed by SCIM or created at an SSO login: the IdP owns the user's profile."""
    return created_by is not None and created_by.startswith(("scim:", "sso:"))


_open_invitation = exists().where(
    invitations.c.user_id == users.c.id,
    invitations.c.accepted_at.is_(None),
    invitations.c.revoked_at.is_(None),
)

STATUS = case(
    (users.c.active.is_(False), "deactivated"),
    (users.c.blocked_at.is_not(None), "blocked"),
    (_open_invitation, "pending"),
    else_="active",
).label("status")

_NAME = func.coalesce(
    users.c.data["name"]["formatted"].astext,
    func.nullif(
        func.concat_ws(
            " ",
            users.c.data["name"]["givenName"].astext,
            users.c.data["name"]["familyName"].astext,
        ),
        "",
    ),
    users.c.display_name,
).label("name")

_EMAILS = users.c.data["emails"].label("emails")

_ORG_ROLES = (
    select(func.coalesce(func.array_agg(role_grants.c.role.distinct()), literal_column("'{}'")))
    .where(role_grants.c.user_id == users.c.id, role_grants.c.project_id.is_(None))
    .scalar_subquery()
    .label("roles")
)


def primary_email(emails: Any) -> str | None:
    """The primary e-mail, else the first."""
    if not isinstance(emails, list):
        return None
    values = [e for e in emails if isinstance(e, dict) and isinstance(e.get("value"), str)]
    chosen = next((e for e in values if e.get("primary") is True), values[0] if values else None)
    return chosen["value"] if chosen else None


def _row(r: Any) -> UserRow:
    return UserRow(
        r.id,
        r.user_name,
        r.name,
        primary_email(r.emails),
        r.status,
        tuple(sorted(r.roles)),
        r.last_login_at,
        r.created_at,
    )


def _columns() -> list[Any]:
    return [
        users.c.id,
        users.c.user_name,
        _NAME,
        _EMAILS,
        STATUS,
        _ORG_ROLES,
        user_activity.c.last_login_at,
        users.c.created_at,
    ]


def _from() -> Any:
    return users.outerjoin(user_activity, user_activity.c.user_id == users.c.id)


def _status_condition(status: str) -> ColumnElement[bool]:
    if status == "deactivated":
        return users.c.active.is_(False)
    if status == "blocked":
        return and_(users.c.active.is_(True), users.c.blocked_at.is_not(None))
    live = and_(users.c.active.is_(True), users.c.blocked_at.is_(None))
    if status == "pending":
        return and_(live, _open_invitation)
    return and_(live, ~_open_invitation)


def _filtered(tenant_id: uuid.UUID, f: UserFilter) -> Select[Any]:
    query = select(*_columns()).select_from(_from()).where(users.c.tenant_id == tenant_id)
    if f.q:
        query = query.where(matching(f.q, tenant_id))
    if f.role is not None:
        query = query.where(
            exists().where(
                role_grants.c.user_id == users.c.id,
                role_grants.c.project_id.is_(None),
                role_grants.c.role == f.role,
            )
        )
    if f.group is not None:
        query = query.where(
            exists().where(
                group_members.c.member_id == users.c.id, group_members.c.group_id == f.group
            )
        )
    if f.status is not None:
        query = query.where(_status_condition(f.status))
    if f.login_from is not None:
        query = query.where(user_activity.c.last_login_at >= f.login_from)
    if f.login_to is not None:
        query = query.where(user_activity.c.last_login_at < f.login_to)
    if f.inactive_since is not None:
        query = query.where(
            _status_condition("active"),
            func.coalesce(user_activity.c.last_login_at, users.c.created_at) < f.inactive_since,
        )
    if f.never_logged_in:
        query = query.where(
            or_(user_activity.c.last_login_at.is_(None), user_activity.c.user_id.is_(None))
        )
    return query


class AdminStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.single = autocommit(engine)

    async def org(self, slug: str) -> Org | None:
        return await self._org(tenants.c.slug == slug)

    async def org_by_id(self, tenant_id: uuid.UUID) -> Org | None:
        return await self._org(tenants.c.id == tenant_id)

    async def _org(self, where: ColumnElement[bool]) -> Org | None:
        async with self.single.connect() as conn:
            row = (await conn.execute(_ORGS.where(where))).one_or_none()
        return Org(*row) if row else None

    async def users(
        self, tenant_id: uuid.UUID, f: UserFilter, after: str | None, limit: int
    ) -> tuple[list[UserRow], str | None]:
        """A page of users in search order, and the cursor of the next page (None: last).
        A bad cursor raises ValueError."""
        if f.q and f == UserFilter(q=f.q):
            # A search alone goes the planned way (`storage.user_search`), then reads the
            # page's rows.
            async with self.single.connect() as conn:
                hits = await search_users(conn, tenant_id, f.q, after, limit + 1)
                found = {
                    r.id: r
                    for r in await conn.execute(
                        select(*_columns())
                        .select_from(_from())
                        .where(users.c.id.in_([h.id for h in hits]))
                    )
                }
            rows = [found[h.id] for h in hits if h.id in found]
        else:
            query = _filtered(tenant_id, f)
            if after:
                query = query.where(after_cursor(after))
            query = query.order_by(*ordering()).limit(limit + 1)
            async with self.single.connect() as conn:
                rows = list(await conn.execute(query))
        page = [_row(r) for r in rows[:limit]]
        more = len(rows) > limit
        return page, cursor_of(page[-1].user_name, page[-1].id) if more and page else None

    async def user(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> UserDetail | None:
        async with self.single.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        *_columns(),
                        users.c.updated_at,
                        users.c.version,
                        users.c.data,
                        users.c.created_by,
                        users.c.blocked_at,
                        users.c.blocked_reason,
                        func.coalesce(user_activity.c.logins, 0).label("logins"),
                        func.coalesce(user_activity.c.failed_logins, 0).label("failed_logins"),
                        user_activity.c.last_failed_login_at,
                        user_policies.c.session_idle_seconds,
                    )
                    .select_from(
                        _from().outerjoin(user_policies, user_policies.c.user_id == users.c.id)
                    )
                    .where(users.c.tenant_id == tenant_id, users.c.id == user_id)
                )
            ).one_or_none()
            if row is None:
                return None
            grants = await conn.execute(
                select(role_grants.c.role, role_grants.c.source, projects.c.id, projects.c.name)
                .select_from(role_grants.outerjoin(projects))
                # This organisation's: a partner's member holds roles in clients' projects.
                .where(role_grants.c.user_id == user_id, role_grants.c.tenant_id == tenant_id)
                .order_by(projects.c.name.nulls_first(), role_grants.c.role, role_grants.c.source)
            )
            memberships = await conn.execute(
                select(groups.c.id, groups.c.display_name, groups.c.origin, group_members.c.source)
                .select_from(group_members.join(groups, groups.c.id == group_members.c.group_id))
                .where(group_members.c.member_id == user_id)
                .order_by(groups.c.display_name, groups.c.id)
            )
            return UserDetail(
                _row(row),
                row.updated_at,
                row.version,
                row.data,
                row.created_by,
                row.blocked_at,
                row.blocked_reason,
                tuple(Grant(g.role, g.source, g.id, g.name) for g in grants),
                tuple(Membership(m.id, m.display_name, m.origin, m.source) for m in memberships),
                row.logins,
                row.failed_logins,
                row.last_failed_login_at,
                row.session_idle_seconds,
            )

    async def people(self, tenant_id: uuid.UUID, emails: Sequence[str]) -> list[Person]:
        """The users whose userName or any e-mail is one of `emails` (lower case), with
        their organisation roles and product groups."""
        if not emails:
            return []
        wanted = bindparam("emails", list(emails), type_=ARRAY(Text))
        product_groups = (
            select(func.coalesce(func.array_agg(groups.c.display_name), literal_column("'{}'")))
            .select_from(group_members.join(groups, groups.c.id == group_members.c.group_id))
            .where(group_members.c.member_id == users.c.id, groups.c.origin == "product")
            .scalar_subquery()
        )
        async with self.single.connect() as conn:
            rows = await conn.execute(
                select(
                    users.c.id,
                    users.c.user_name,
                    users.c.display_name,
                    _EMAILS,
                    users.c.created_by,
                    _ORG_ROLES,
                    product_groups.label("groups"),
                ).where(
                    users.c.tenant_id == tenant_id,
                    or_(
                        func.lower(users.c.user_name) == any_(wanted),
                        func.idgate_ci_values(users.c.data["emails"]).op("&&")(wanted),
                    ),
                )
            )
            return [
                Person(
                    r.id,
                    r.user_name,
                    r.display_name,
                    tuple(
                        e["value"]
                        for e in (r.emails if isinstance(r.emails, list) else [])
                        if isinstance(e, dict) and isinstance(e.get("value"), str)
                    ),
                    r.created_by,
                    frozenset(r.roles),
                    frozenset(r.groups),
                )
                for r in rows
            ]

    async def catalogue(self, tenant_id: uuid.UUID) -> Catalogue:
        """The tenant's custom roles, projects and product groups, with their ids."""
        async with self.single.connect() as conn:
            role_names = await conn.execute(
                select(roles.c.name).where(roles.c.tenant_id == tenant_id)
            )
            project_rows = await conn.execute(
                select(projects.c.id, projects.c.name).where(projects.c.tenant_id == tenant_id)
            )
            group_rows = await conn.execute(
                select(groups.c.id, groups.c.display_name).where(
                    groups.c.tenant_id == tenant_id, groups.c.origin == "product"
                )
            )
            return Catalogue(
                tuple(role_names.scalars()),
                {r.name: r.id for r in project_rows},
                {r.display_name: r.id for r in group_rows},
            )

    async def groups(self, tenant_id: uuid.UUID) -> list[GroupRow]:
        """Every group (pushed by SCIM or made in the product) with its number of members."""
        async with self.single.connect() as conn:
            rows = await conn.execute(_GROUPS.where(groups.c.tenant_id == tenant_id))
            return [GroupRow(**r._mapping) for r in rows]

    async def group(self, tenant_id: uuid.UUID, group_id: uuid.UUID) -> GroupRow | None:
        async with self.single.connect() as conn:
            row = (
                await conn.execute(
                    _GROUPS.where(groups.c.tenant_id == tenant_id, groups.c.id == group_id)
                )
            ).one_or_none()
            return GroupRow(**row._mapping) if row else None

    async def known_users(
        self, tenant_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Which of these ids are users of the tenant."""
        async with self.single.connect() as conn:
            rows = await conn.execute(
                select(users.c.id).where(
                    users.c.tenant_id == tenant_id, users.c.id.in_(list(user_ids))
                )
            )
            return set(rows.scalars())

    async def remove_members(
        self,
        tenant_id: uuid.UUID,
        group_id: uuid.UUID,
        user_ids: Sequence[uuid.UUID],
        now: datetime,
        actor: str,
    ) -> int:
        """Take users out of a product group, audited; answers how many were in it."""
        async with self.engine.begin() as conn:
            removed = list(
                await conn.execute(
                    delete(group_members)
                    .where(
                        group_members.c.tenant_id == tenant_id,
                        group_members.c.group_id == group_id,
                        group_members.c.member_id.in_(list(user_ids)),
                    )
                    .returning(group_members.c.member_id)
                )
            )
            entries = [
                AuditEntry("group.member_removed", f"user:{r.member_id}",
                           {"group_id": str(group_id)})
                for r in removed
            ]  # fmt: skip
            await audit_store.write(conn, tenant_id, now, actor, entries)
            return len(removed)

    async def set_session_idle(
        self,
        tenant_id: uuid.UUID,
        user_id: uuid.UUID,
        seconds: int | None,
        now: datetime,
        actor: str,
    ) -> None:
        """Give a user an idle limit of its own (None: the organisation's again), for its
        live sessions as well as its next ones (session_store reads it at every check)."""
        async with self.engine.begin() as conn:
            if seconds is None:
                await conn.execute(delete(user_policies).where(user_policies.c.user_id == user_id))
            else:
                new = {"session_idle_seconds": seconds, "updated_at": now}
                await conn.execute(
                    pg_insert(user_policies)
                    .values(user_id=user_id, tenant_id=tenant_id, **new)
                    .on_conflict_do_update(index_elements=[user_policies.c.user_id], set_=new)
                )
            entry = AuditEntry("user.session_policy", f"user:{user_id}",
                               {"session_idle_seconds": seconds})  # fmt: skip
            await audit_store.write(conn, tenant_id, now, actor, [entry])

    async def delete_product_group(self, tenant_id: uuid.UUID, group_id: uuid.UUID) -> bool:
        async with self.single.connect() as conn:
            result = await conn.execute(
                delete(groups).where(
                    groups.c.tenant_id == tenant_id,
                    groups.c.id == group_id,
                    groups.c.origin == "product",
                )
            )
            return result.rowcount == 1

    async def set_parent(self, slug: str, parent: str | None) -> bool:
        """Make `parent` the reseller of tenant `slug` (None: none). One level only: a
        reseller depends on no one, and a dependent resells to no one (ConflictError).
        False if there is no such tenant."""
        async with self.engine.begin() as conn:
            child = (
                await conn.execute(select(tenants.c.id).where(tenants.c.slug == slug))
            ).scalar_one_or_none()
            if child is None:
                return False
            parent_id = None
            if parent is not None:
                row = (
                    await conn.execute(
                        select(tenants.c.id, tenants.c.parent_id).where(tenants.c.slug == parent)
                    )
                ).one_or_none()
                if row is None:
                    raise NotFoundError(f"no tenant {parent!r}")
                if row.id == child or row.parent_id is not None:
                    raise ConflictError(f"{parent} depends on a reseller itself")
                dependents = await conn.execute(
                    select(tenants.c.id).where(tenants.c.parent_id == child).limit(1)
                )
                if dependents.first() is not None:
                    raise ConflictError(f"{slug} is a reseller: it cannot depend on one")
                parent_id = row.id
            await conn.execute(
                update(tenants).where(tenants.c.id == child).values(parent_id=parent_id)
            )
            return True

    async def dependents(self, tenant_id: uuid.UUID) -> list[Org]:
        """The organisations this reseller's admins manage."""
        async with self.single.connect() as conn:
            rows = await conn.execute(
                _ORGS.where(tenants.c.parent_id == tenant_id).order_by(tenants.c.slug)
            )
            return [Org(*r) for r in rows]

    async def users_by_id(
        self, tenant_id: uuid.UUID, user_ids: Sequence[uuid.UUID], f: UserFilter
    ) -> list[UserRow]:
        """Those of these users that the filter matches."""
        query = _filtered(tenant_id, f).where(users.c.id.in_(list(user_ids)))
        async with self.single.connect() as conn:
            return [_row(r) for r in await conn.execute(query)]
