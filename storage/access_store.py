"""The tenant's access model in Postgres: its own roles and projects, the grants users hold
(each with its source), the mapping document, and the reads and writes that recompute the
grants the rules give.

Contract:
- every read and write is scoped by `tenant_id`;
- role and project names are unique per tenant whatever their case; a duplicate raises
  `ConflictError`;
- a recomputation (`recomputing`) holds a shared per-tenant lock and a lock per user it
  recomputes (advisory locks, never row locks: SCIM writes and Bulk never wait on it): two
  recomputations of one user run one after the other, and each reads the state the other
  left. Changing the mapping document takes the tenant's lock exclusively, so no
  recomputation that read the old rules can write after it;
- a recomputation replaces a user's `mapped` and `scim` grants and `mapped` memberships of
  product groups, and never touches `manual` ones; every change of the user's effective
  roles and groups is written to the audit log in the same transaction.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Integer,
    Text,
    Uuid,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scim.errors import ConflictError, NotFoundError
from storage import audit_store as audit
from storage.audit_store import AuditEntry
from storage.database import autocommit, is_unique_violation
from storage.tables import (
    group_members,
    groups,
    mapping_documents,
    projects,
    role_grants,
    roles,
    sso_connections,
    sso_identities,
    users,
)

MAPPED, SCIM, MANUAL = "mapped", "scim", "manual"
_GRANT_KEY = ("users", "projects", "roles", "sources")
_LOCK_CLASS = 7152011  # pg_advisory_xact_lock(class, key): this module's locks


@dataclass(frozen=True)
class CatalogueNames:
    """What exists in a tenant for rules to name (custom roles only; built-ins are not stored)."""

    roles: tuple[str, ...]
    groups: tuple[str, ...]  # product groups
    projects: tuple[str, ...]


@dataclass(frozen=True)
class NamedItem:
    name: str
    description: str
    created_at: datetime


@dataclass(frozen=True)
class MemberGroup:
    """A SCIM group a user is a member of, as the rules see it."""

    id: str
    external_id: str | None
    name: str
    ambiguous: bool  # another SCIM group of the tenant has the same name (any case)


@dataclass(frozen=True)
class SubjectRow:
    """What the rules read about one user."""

    user_id: uuid.UUID
    scim: dict[str, Any]  # the SCIM resource body
    enabled: bool  # active, and not blocked: a user who is out holds no grant the rules give
    claims: tuple[tuple[str, dict[str, Any]], ...]  # (connection name, last login's claims)
    groups: tuple[MemberGroup, ...]


@dataclass(frozen=True)
class GrantRow:
    project: str | None  # None: the organisation
    role: str
    source: str
    rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Desired:
    """What the rules (and the accepted SCIM roles) give one user."""

    roles: tuple[GrantRow, ...]  # sources `mapped` and `scim`
    groups: Mapping[str, tuple[str, ...]]  # product group name -> the rules that give it


@dataclass(frozen=True)
class Change:
    user_id: uuid.UUID
    action: str  # role.granted | role.revoked | group.member_added | group.member_removed
    details: dict[str, Any]


def _key(tenant_id: uuid.UUID) -> Any:
    return func.hashtext(literal(str(tenant_id), Text))


_CLAIMS = (
    select(
        func.coalesce(
            func.jsonb_agg(func.jsonb_build_array(sso_connections.c.name, sso_identities.c.claims)),
            text("'[]'::jsonb"),
        )
    )
    .select_from(sso_identities.join(sso_connections))
    .where(sso_identities.c.user_id == users.c.id)
    .scalar_subquery()
)
_other = groups.alias("other")
_MEMBER_GROUPS = (
    select(
        func.coalesce(
            func.jsonb_agg(
                func.jsonb_build_object(
                    "id",
                    groups.c.id,
                    # An externalId is a SCIM client's to choose: it identifies the group
                    # only when no other SCIM group of the tenant has it.
                    "external_id",
                    case(
                        (
                            select(_other.c.id)
                            .where(
                                _other.c.tenant_id == groups.c.tenant_id,
                                _other.c.external_id == groups.c.external_id,
                                _other.c.origin == "scim",
                                _other.c.id != groups.c.id,
                            )
                            .exists(),
                            None,
                        ),
                        else_=groups.c.external_id,
                    ),
                    "name",
                    groups.c.display_name,
                    "ambiguous",
                    select(_other.c.id)
                    .where(
                        _other.c.tenant_id == groups.c.tenant_id,
                        func.lower(_other.c.display_name) == func.lower(groups.c.display_name),
                        _other.c.origin == "scim",
                        _other.c.id != groups.c.id,
                    )
                    .exists(),
                )
            ),
            text("'[]'::jsonb"),
        )
    )
    .select_from(group_members.join(groups, groups.c.id == group_members.c.group_id))
    .where(group_members.c.member_id == users.c.id, groups.c.origin == "scim")
    .scalar_subquery()
)


_USER_LOCK_CLASS = 7152012
_LOCK_USERS = text(
    """
    SELECT count(pg_advisory_xact_lock(:class, k))
    FROM (SELECT k FROM unnest(:keys) WITH ORDINALITY AS u(k, n) ORDER BY n) ordered
    """
).bindparams(bindparam("keys", type_=ARRAY(Integer)), bindparam("class", _USER_LOCK_CLASS))


def _user_key(user_id: uuid.UUID) -> int:
    """A user's recomputation lock: 32 bits of its id (two users sharing one only wait)."""
    return int.from_bytes(user_id.bytes[:4], "big", signed=True)


def _subjects(rows: Iterable[Any]) -> list[SubjectRow]:
    return [
        SubjectRow(
            row.id,
            row.data,
            row.active and row.blocked_at is None,
            tuple((name, claims) for name, claims in row.claims),
            tuple(
                MemberGroup(g["id"], g["external_id"], g["name"], g["ambiguous"])
                for g in sorted(row.groups, key=lambda g: g["id"])
            ),
        )
        for row in rows
    ]


class Recomputation:
    """One recomputation's transaction (see `AccessStore.recomputing`)."""

    def __init__(self, conn: AsyncConnection, tenant_id: uuid.UUID) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    async def document(self) -> dict[str, Any] | None:
        return (
            await self.conn.execute(
                select(mapping_documents.c.document).where(
                    mapping_documents.c.tenant_id == self.tenant_id
                )
            )
        ).scalar_one_or_none()

    async def catalogue(self) -> CatalogueNames:
        return await _catalogue(self.conn, self.tenant_id)

    async def subjects(self, user_ids: Sequence[uuid.UUID]) -> list[SubjectRow]:
        """The users' attributes, SCIM groups and last logins' claims.

        First each user's recomputation lock is taken (an advisory lock, held until the
        transaction ends, taken in key order so two recomputations never wait on each
        other; no row is locked, so no SCIM write or Bulk waits on a recomputation). Then
        the users are read by a statement of their own, which sees everything committed
        until the locks were held, including what the previous recomputation wrote."""
        keys = sorted({_user_key(u) for u in user_ids})
        await self.conn.execute(_LOCK_USERS, {"keys": keys})
        rows = await self.conn.execute(
            select(
                users.c.id,
                users.c.data,
                users.c.active,
                users.c.blocked_at,
                _CLAIMS.label("claims"),
                _MEMBER_GROUPS.label("groups"),
            )
            .where(users.c.tenant_id == self.tenant_id, users.c.id == _any(sorted(set(user_ids))))
            .order_by(users.c.id)
        )
        return _subjects(rows)

    async def write(
        self, desired: Mapping[uuid.UUID, Desired], now: datetime, actor: str
    ) -> list[Change]:
        """Make the users' `mapped` and `scim` grants and `mapped` product-group memberships
        exactly `desired`; audit what changed; return the changes."""
        if not desired:
            return []
        ids = list(desired)
        conn, tenant_id = self.conn, self.tenant_id
        project_ids = {
            r.name.lower(): r.id
            for r in await conn.execute(
                select(projects.c.id, projects.c.name).where(projects.c.tenant_id == tenant_id)
            )
        }
        before = await conn.execute(
            select(
                role_grants.c.user_id,
                role_grants.c.project_id,
                projects.c.name.label("project"),
                role_grants.c.role,
                role_grants.c.source,
                role_grants.c.rules,
            )
            .select_from(role_grants.outerjoin(projects))
            .where(role_grants.c.user_id == _any(ids))
        )
        held: dict[tuple[uuid.UUID, uuid.UUID | None, str, str], tuple[str, ...]] = {}
        effective_before: dict[uuid.UUID, set[tuple[str | None, str]]] = {u: set() for u in ids}
        manual: dict[uuid.UUID, set[tuple[str | None, str]]] = {u: set() for u in ids}
        for row in before:
            effective_before[row.user_id].add((row.project, row.role))
            if row.source == MANUAL:
                manual[row.user_id].add((row.project, row.role))
            else:
                held[(row.user_id, row.project_id, row.role, row.source)] = tuple(row.rules)
        wanted: dict[tuple[uuid.UUID, uuid.UUID | None, str, str], tuple[str, ...]] = {}
        for user_id, want in desired.items():
            for grant in want.roles:
                project_id = project_ids[grant.project.lower()] if grant.project else None
                wanted[(user_id, project_id, grant.role, grant.source)] = grant.rules
        gone = [key for key in held if key not in wanted]
        fresh = [(key, rules) for key, rules in wanted.items() if held.get(key) != rules]
        if gone:
            await conn.execute(
                text(
                    """
                    DELETE FROM role_grants g
                    USING unnest(:users, :projects, :roles, :sources) AS d(u, p, r, s)
                    WHERE g.user_id = d.u AND g.project_id IS NOT DISTINCT FROM d.p
                      AND g.role = d.r AND g.source = d.s
                    """
                ).bindparams(*_GRANT_ARRAYS),
                _columns(gone, _GRANT_KEY),
            )
        if fresh:
            await conn.execute(
                text(
                    """
                    INSERT INTO role_grants
                      (tenant_id, user_id, project_id, role, source, rules, granted_at)
                    SELECT :tenant_id, u, p, r, s,
                           ARRAY(SELECT jsonb_array_elements_text(k::jsonb)), :now
                    FROM unnest(:users, :projects, :roles, :sources, :rules) AS d(u, p, r, s, k)
                    ON CONFLICT (user_id, project_id, role, source)
                    DO UPDATE SET rules = excluded.rules
                    """
                ).bindparams(
                    *_GRANT_ARRAYS,
                    bindparam("rules", type_=ARRAY(Text)),  # each a JSON array
                ),
                {
                    "tenant_id": tenant_id,
                    "now": now,
                    **_columns([key for key, _ in fresh], _GRANT_KEY),
                    "rules": [json.dumps(list(rules)) for _, rules in fresh],
                },
            )
        changes: list[Change] = []
        for user_id in ids:
            after = manual[user_id] | {(g.project, g.role) for g in desired[user_id].roles}
            changes += _role_changes(user_id, effective_before[user_id], after, desired[user_id])
        changes += await self._write_groups(desired)
        await _audit(conn, tenant_id, now, actor, changes)
        return changes

    async def _write_groups(self, desired: Mapping[uuid.UUID, Desired]) -> list[Change]:
        conn, tenant_id = self.conn, self.tenant_id
        ids = list(desired)
        product = {
            r.display_name.lower(): (r.id, r.display_name)
            for r in await conn.execute(
                select(groups.c.id, groups.c.display_name).where(
                    groups.c.tenant_id == tenant_id, groups.c.origin == "product"
                )
            )
        }
        current = {
            (r.member_id, r.group_id): (r.source, r.display_name)
            for r in await conn.execute(
                select(
                    group_members.c.member_id,
                    group_members.c.group_id,
                    group_members.c.source,
                    groups.c.display_name,
                )
                .select_from(group_members.join(groups))
                .where(group_members.c.member_id == _any(ids), groups.c.origin == "product")
            )
        }
        wanted = {
            (user_id, product[name.lower()][0]): product[name.lower()][1]
            for user_id, want in desired.items()
            for name in want.groups
        }
        gone = [
            key for key, (source, _) in current.items() if source == MAPPED and key not in wanted
        ]
        new = [key for key in wanted if key not in current]
        if gone:
            await conn.execute(
                text(
                    """
                    DELETE FROM group_members m USING unnest(:users, :groups) AS d(u, g)
                    WHERE m.member_id = d.u AND m.group_id = d.g AND m.source = 'mapped'
                    """
                ).bindparams(*_MEMBER_ARRAYS),
                _columns(gone, ("users", "groups")),
            )
        if new:
            await conn.execute(
                text(
                    """
                    INSERT INTO group_members
                      (group_id, member_id, tenant_id, member_type, source)
                    SELECT g, u, :tenant_id, 'User', 'mapped'
                    FROM unnest(:users, :groups) AS d(u, g)
                    ON CONFLICT DO NOTHING
                    """
                ).bindparams(*_MEMBER_ARRAYS),
                {"tenant_id": tenant_id, **_columns(new, ("users", "groups"))},
            )
        return [
            Change(u, "group.member_removed", {"group": current[(u, g)][1]}) for u, g in gone
        ] + [
            Change(
                u,
                "group.member_added",
                {"group": wanted[(u, g)], "rules": list(_rules_for(desired[u], wanted[(u, g)]))},
            )
            for u, g in new
        ]


def _rules_for(want: Desired, group: str) -> tuple[str, ...]:
    return next((r for name, r in want.groups.items() if name.lower() == group.lower()), ())


def _role_changes(
    user_id: uuid.UUID,
    before: set[tuple[str | None, str]],
    after: set[tuple[str | None, str]],
    want: Desired,
) -> list[Change]:
    changes = [
        Change(user_id, "role.revoked", _role_details(p, r))
        for p, r in sorted(before - after, key=_order)
    ]
    for project, role in sorted(after - before, key=_order):
        why = next(
            (g for g in want.roles if g.role == role and (g.project or None) == project), None
        )
        entry = _role_details(project, role)
        if why is not None:
            entry["source"] = why.source
            if why.rules:
                entry["rules"] = list(why.rules)
        changes.append(Change(user_id, "role.granted", entry))
    return changes


def _role_details(project: str | None, role: str) -> dict[str, Any]:
    return {"role": role} | ({"project": project} if project is not None else {})


def _order(item: tuple[str | None, str]) -> tuple[str, str]:
    return (item[0] or "", item[1])


def _any(ids: Sequence[uuid.UUID]) -> Any:
    """`= ANY(:ids)`: one array parameter, not one parameter per id."""
    return any_(literal(list(ids), ARRAY(Uuid)))


def _arrays(*names: tuple[str, Any]) -> list[Any]:
    return [bindparam(name, type_=ARRAY(kind)) for name, kind in names]


_GRANT_ARRAYS = _arrays(("users", Uuid), ("projects", Uuid), ("roles", Text), ("sources", Text))
_MEMBER_ARRAYS = _arrays(("users", Uuid), ("groups", Uuid))


def _columns(rows: Sequence[tuple[Any, ...]], names: Sequence[str]) -> dict[str, list[Any]]:
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


async def _audit(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    now: datetime,
    actor: str,
    changes: Sequence[Change],
) -> None:
    entries = [AuditEntry(c.action, f"user:{c.user_id}", c.details) for c in changes]
    await audit.write(conn, tenant_id, now, actor, entries)


async def _catalogue(conn: AsyncConnection, tenant_id: uuid.UUID) -> CatalogueNames:
    def names(table: Any, column: Any, *where: Any) -> Any:
        return (
            select(func.coalesce(func.array_agg(column), text("'{}'::text[]")))
            .where(table.c.tenant_id == tenant_id, *where)
            .scalar_subquery()
        )

    row = (
        await conn.execute(
            select(
                names(roles, roles.c.name).label("roles"),
                names(groups, groups.c.display_name, groups.c.origin == "product").label("groups"),
                names(projects, projects.c.name).label("projects"),
            )
        )
    ).one()
    return CatalogueNames(tuple(row.roles), tuple(row.groups), tuple(row.projects))


_HAS_DOCUMENT = select(mapping_documents.c.tenant_id).where(
    mapping_documents.c.tenant_id == bindparam("tenant_id")
)


class AccessStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.single = autocommit(engine)

    # --- recomputation ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def recomputing(self, tenant_id: uuid.UUID) -> AsyncIterator[Recomputation]:
        """A transaction for recomputing users' grants, under the tenant's shared lock."""
        async with self.engine.begin() as conn:
            await conn.execute(
                select(func.pg_advisory_xact_lock_shared(_LOCK_CLASS, _key(tenant_id)))
            )
            yield Recomputation(conn, tenant_id)

    async def set_document(
        self, tenant_id: uuid.UUID, document: dict[str, Any] | None, now: datetime
    ) -> None:
        """Store the tenant's mapping document (None removes it), waiting for running
        recomputations: those that start afterwards read the new one."""
        async with self.engine.begin() as conn:
            await conn.execute(select(func.pg_advisory_xact_lock(_LOCK_CLASS, _key(tenant_id))))
            await conn.execute(
                delete(mapping_documents).where(mapping_documents.c.tenant_id == tenant_id)
            )
            if document is not None:
                await conn.execute(
                    insert(mapping_documents).values(
                        tenant_id=tenant_id, document=document, updated_at=now
                    )
                )

    async def has_document(self, tenant_id: uuid.UUID) -> bool:
        async with self.single.connect() as conn:
            found = await conn.execute(_HAS_DOCUMENT, {"tenant_id": tenant_id})
            return found.first() is not None

    async def document(self, tenant_id: uuid.UUID) -> dict[str, Any] | None:
        async with self.single.connect() as conn:
            return (
                await conn.execute(
                    select(mapping_documents.c.document).where(
                        mapping_documents.c.tenant_id == tenant_id
                    )
                )
            ).scalar_one_or_none()

    async def catalogue(self, tenant_id: uuid.UUID) -> CatalogueNames:
        async with self.single.connect() as conn:
            return await _catalogue(conn, tenant_id)

    async def user_ids(
        self, tenant_id: uuid.UUID, after: uuid.UUID | None, limit: int
    ) -> list[uuid.UUID]:
        """A page of the tenant's user ids, in id order (keyset: those after `after`)."""
        query = select(users.c.id).where(users.c.tenant_id == tenant_id)
        if after is not None:
            query = query.where(users.c.id > after)
        async with self.single.connect() as conn:
            return list((await conn.scalars(query.order_by(users.c.id).limit(limit))).all())

    # --- the catalogue ------------------------------------------------------------------

    async def add_role(
        self, tenant_id: uuid.UUID, name: str, description: str, now: datetime
    ) -> None:
        await self._add(
            insert(roles).values(
                tenant_id=tenant_id, name=name, description=description, created_at=now
            ),
            f"role {name!r} already exists",
        )

    async def add_project(
        self, tenant_id: uuid.UUID, name: str, description: str, now: datetime
    ) -> uuid.UUID:
        project_id = uuid.uuid4()
        await self._add(
            insert(projects).values(
                id=project_id,
                tenant_id=tenant_id,
                name=name,
                description=description,
                created_at=now,
            ),
            f"project {name!r} already exists",
        )
        return project_id

    async def _add(self, statement: Any, taken: str) -> None:
        try:
            async with self.single.connect() as conn:
                await conn.execute(statement)
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise ConflictError(taken) from None
            raise

    async def list_roles(self, tenant_id: uuid.UUID) -> list[NamedItem]:
        return await self._list(roles, tenant_id)

    async def list_projects(self, tenant_id: uuid.UUID) -> list[NamedItem]:
        return await self._list(projects, tenant_id)

    async def _list(self, table: Any, tenant_id: uuid.UUID) -> list[NamedItem]:
        async with self.single.connect() as conn:
            rows = await conn.execute(
                select(table.c.name, table.c.description, table.c.created_at)
                .where(table.c.tenant_id == tenant_id)
                .order_by(func.lower(table.c.name))
            )
            return [NamedItem(r.name, r.description, r.created_at) for r in rows]

    async def remove_role(self, tenant_id: uuid.UUID, name: str, now: datetime, actor: str) -> bool:
        """Remove a custom role and every grant of it (audited)."""
        async with self.engine.begin() as conn:
            found = (
                await conn.execute(
                    delete(roles)
                    .where(roles.c.tenant_id == tenant_id, func.lower(roles.c.name) == name.lower())
                    .returning(roles.c.name)
                )
            ).scalar_one_or_none()
            if found is None:
                return False
            taken = await conn.execute(
                delete(role_grants)
                .where(
                    role_grants.c.tenant_id == tenant_id,
                    func.lower(role_grants.c.role) == name.lower(),
                )
                .returning(role_grants.c.user_id, role_grants.c.project_id)
            )
            held = {(row.user_id, row.project_id) for row in taken}
            revoked = [
                Change(user_id, "role.revoked", {"role": found, "removed_from_catalogue": True})
                for user_id, _project in sorted(held, key=str)
            ]
            await _audit(conn, tenant_id, now, actor, revoked)
        return True

    async def remove_project(self, tenant_id: uuid.UUID, name: str) -> bool:
        """Remove a project; its grants go with it."""
        async with self.single.connect() as conn:
            result = await conn.execute(
                delete(projects).where(
                    projects.c.tenant_id == tenant_id, func.lower(projects.c.name) == name.lower()
                )
            )
            return result.rowcount == 1

    # --- grants -------------------------------------------------------------------------

    async def grants(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[GrantRow]:
        """Every grant a user holds, organisation roles first."""
        async with self.single.connect() as conn:
            rows = await conn.execute(
                select(
                    projects.c.name, role_grants.c.role, role_grants.c.source, role_grants.c.rules
                )
                .select_from(role_grants.outerjoin(projects))
                .where(role_grants.c.tenant_id == tenant_id, role_grants.c.user_id == user_id)
                .order_by(projects.c.name.nulls_first(), role_grants.c.role, role_grants.c.source)
            )
            return [GrantRow(r.name, r.role, r.source, tuple(r.rules)) for r in rows]

    async def grant_manual(
        self,
        tenant_id: uuid.UUID,
        user_id: uuid.UUID,
        role: str,
        project: str | None,
        now: datetime,
        actor: str,
    ) -> bool:
        """Give a user a role by hand (kept by recomputation); False if held so already."""
        async with self.engine.begin() as conn:
            await _user_exists(conn, tenant_id, user_id)
            return await _grant_manual(conn, tenant_id, user_id, role, project, now, actor)

    async def revoke_manual(
        self,
        tenant_id: uuid.UUID,
        user_id: uuid.UUID,
        role: str,
        project: str | None,
        now: datetime,
        actor: str,
    ) -> bool:
        """Take back a role given by hand; False if there was none. A role the rules give
        stays until the rules stop giving it."""
        async with self.engine.begin() as conn:
            return await _revoke_manual(conn, tenant_id, user_id, role, project, now, actor)

    async def set_manual(
        self,
        tenant_id: uuid.UUID,
        user_id: uuid.UUID,
        grant: Sequence[tuple[str | None, str]],
        revoke: Sequence[tuple[str | None, str]],
        now: datetime,
        actor: str,
    ) -> None:
        """Give and take back several (project, role) grants by hand, all or none."""
        async with self.engine.begin() as conn:
            await _user_exists(conn, tenant_id, user_id)
            for project, role in revoke:
                await _revoke_manual(conn, tenant_id, user_id, role, project, now, actor)
            for project, role in grant:
                await _grant_manual(conn, tenant_id, user_id, role, project, now, actor)

    async def add_group_member(
        self, tenant_id: uuid.UUID, group: str, user_id: uuid.UUID, now: datetime, actor: str
    ) -> bool:
        """Add a user to a product group by hand (kept by recomputation)."""
        async with self.engine.begin() as conn:
            group_id = (
                await conn.execute(
                    select(groups.c.id).where(
                        groups.c.tenant_id == tenant_id,
                        groups.c.origin == "product",
                        func.lower(groups.c.display_name) == group.lower(),
                    )
                )
            ).scalar_one_or_none()
            if group_id is None:
                raise NotFoundError(f"no product group named {group!r}")
            await _user_exists(conn, tenant_id, user_id)
            row = (
                await conn.execute(
                    text(
                        """
                        INSERT INTO group_members
                          (group_id, member_id, tenant_id, member_type, source)
                        VALUES (:group_id, :user_id, :tenant_id, 'User', 'manual')
                        ON CONFLICT (group_id, member_id) DO UPDATE SET source = 'manual'
                        WHERE group_members.source <> 'manual'
                        RETURNING (xmax = 0) AS inserted
                        """
                    ),
                    {"group_id": group_id, "user_id": user_id, "tenant_id": tenant_id},
                )
            ).first()
            if row is not None and row.inserted:
                await _audit(
                    conn,
                    tenant_id,
                    now,
                    actor,
                    [Change(user_id, "group.member_added", {"group": group, "source": MANUAL})],
                )
        return row is not None


async def _grant_manual(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    project: str | None,
    now: datetime,
    actor: str,
) -> bool:
    project_id = await _project_id(conn, tenant_id, project)
    held = await _effective(conn, user_id, project_id, role)
    inserted = (
        await conn.execute(
            text(
                """
                INSERT INTO role_grants
                  (tenant_id, user_id, project_id, role, source, granted_at)
                VALUES (:tenant_id, :user_id, :project_id, :role, 'manual', :now)
                ON CONFLICT DO NOTHING RETURNING 1
                """
            ),
            {
                "tenant_id": tenant_id,
                "user_id": user_id,
                "project_id": project_id,
                "role": role,
                "now": now,
            },
        )
    ).first() is not None
    if inserted and not held:
        details = _role_details(project, role) | {"source": MANUAL}
        await _audit(conn, tenant_id, now, actor, [Change(user_id, "role.granted", details)])
    return inserted


async def _revoke_manual(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    project: str | None,
    now: datetime,
    actor: str,
) -> bool:
    project_id = await _project_id(conn, tenant_id, project)
    result = await conn.execute(
        delete(role_grants).where(
            role_grants.c.tenant_id == tenant_id,
            role_grants.c.user_id == user_id,
            role_grants.c.project_id.is_not_distinct_from(project_id),
            func.lower(role_grants.c.role) == role.lower(),
            role_grants.c.source == MANUAL,
        )
    )
    if result.rowcount == 0:
        return False
    if not await _effective(conn, user_id, project_id, role):
        details = _role_details(project, role)
        await _audit(conn, tenant_id, now, actor, [Change(user_id, "role.revoked", details)])
    return True


async def _effective(
    conn: AsyncConnection, user_id: uuid.UUID, project_id: uuid.UUID | None, role: str
) -> bool:
    """Whether the user holds `role` (there) from any source."""
    return (
        await conn.execute(
            select(role_grants.c.role).where(
                role_grants.c.user_id == user_id,
                role_grants.c.project_id.is_not_distinct_from(project_id),
                func.lower(role_grants.c.role) == role.lower(),
            )
        )
    ).first() is not None


async def _project_id(
    conn: AsyncConnection, tenant_id: uuid.UUID, project: str | None
) -> uuid.UUID | None:
    if project is None:
        return None
    found: uuid.UUID | None = (
        await conn.execute(
            select(projects.c.id).where(
                projects.c.tenant_id == tenant_id, func.lower(projects.c.name) == project.lower()
            )
        )
    ).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"no project named {project!r}")
    return found


async def _user_exists(conn: AsyncConnection, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    found = (
        await conn.execute(
            select(users.c.id).where(users.c.tenant_id == tenant_id, users.c.id == user_id)
        )
    ).first()
    if found is None:
        raise NotFoundError(f"User {user_id} not found")


__all__ = [
    "AccessStore",
    "CatalogueNames",
    "Change",
    "Desired",
    "GrantRow",
    "MemberGroup",
    "NamedItem",
    "Recomputation",
    "SubjectRow",
]
